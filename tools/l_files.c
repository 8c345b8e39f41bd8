/* l_files.c: Lua binding of the files tool: luact.files.root() ->
 * luact.FilesRoot with read/list/close.
 *
 * Inside a luact task that can yield, a read or a list runs on the
 * offload pool (sched/offload.h) and the task yields until it is done, so
 * a slow disk (a network filesystem) stalls no other task. The call keeps
 * a duplicate of the root's fd: closing the root meanwhile does not touch
 * it. The job lives in a to-be-closed "luact.FilesCall" userdata: a kill
 * drops it if it has not started (else it finishes on its thread and
 * frees itself there). Elsewhere (a bare state, a metamethod, a coroutine
 * of the script's) the call runs inline: a local read is microseconds. */
#include <lauxlib.h>

#include "l_opts.h"
#include "l_luact.h"
#include <errno.h>
#include <fcntl.h>
#include <lua.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "conv.h"
#include "files.h"
#include "l_files.h"
#include "fdwait.h"
#include "offload.h"

#define ROOT_MT "luact.FilesRoot"

#define CALL_MT "luact.FilesCall"

/* One read or list: its arguments and, once run, its result. Owned by
 * the box below until a job takes it (then the job frees it). */
struct fcall {
  int fd;      /* the root: a duplicate when run as a job, else borrowed */
  int list;    /* 1: list, 0: read */
  char *rel;
  size_t max;
  int rc;
  char err[512];
  char *content; /* read */
  size_t len;
  cJSON *out;    /* list */
};

static void fcall_free(void *p) {
  struct fcall *c = p;
  if (!c) return;
  if (c->fd >= 0) close(c->fd);
  lc_free(c->rel);
  lc_free(c->content);
  cJSON_Delete(c->out);
  lc_free(c);
}

/* On a pool thread, or inline. */
static void fcall_run(void *p) {
  struct fcall *c = p;
  struct lc_files_root r = {c->fd};
  if (c->list)
    c->rc = lc_files_list(&r, c->rel, c->max, &c->out, c->err, sizeof c->err);
  else
    c->rc = lc_files_read(&r, c->rel, c->max, &c->content, &c->len, c->err, sizeof c->err);
}

/* The call in flight, to-be-closed on the caller's stack. Before the job
 * takes the call, the op owns it (op->c). */
struct fop {
  struct fcall *c;
  struct lc_offload_wait ow;
};

/* The one close: __close, __gc and the normal end. A kill only unwatches
 * (fdwait); the close that follows releases. */
static int op_gc(lua_State *L) {
  struct fop *op = luaL_checkudata(L, 1, CALL_MT);
  lc_offload_wait_close(&op->ow);
  fcall_free(op->c);
  op->c = NULL;
  return 0;
}

/* [-0, +3, m] nil, message, code */
static int push_fail(lua_State *L, const char *msg, int rc) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushstring(L, lc_files_errcode(rc));
  return 3;
}

static struct lc_files_root *checkroot(lua_State *L) {
  struct lc_files_root *r = luaL_checkudata(L, 1, ROOT_MT);
  if (r->fd < 0) luaL_error(L, "attempt to use a closed luact.FilesRoot");
  return r;
}

/* The relative path argument; model-supplied paths with NUL bytes are an
 * operational failure (returned), not a script bug. */
static const char *checkrel(lua_State *L, int idx, int *has_nul) {
  size_t n;
  const char *s = luaL_optlstring(L, idx, ".", &n);
  *has_nul = memchr(s, 0, n) != NULL;
  return s;
}

static size_t opt_size(lua_State *L, int idx, const char *name) {
  if (lua_isnoneornil(L, idx)) return 0;
  luaL_checktype(L, idx, LUA_TTABLE);
  size_t v = 0;
  if (lua_getfield(L, idx, name) != LUA_TNIL) {
    int ok;
    lua_Integer i = lua_tointegerx(L, -1, &ok);
    if (!ok || i <= 0)
      luaL_error(L, "option %s must be a positive integer", name);
    v = (size_t)i;
  }
  lua_pop(L, 1);
  return v;
}

/* [-0, +(1|3), m] The call's result: the content or the list, or nil,
 * msg, code. */
static int push_result(lua_State *L, const struct fcall *c) {
  if (c->rc) return push_fail(L, c->err, c->rc);
  if (c->list)
    lc_conv_push_json(L, c->out);
  else
    lua_pushlstring(L, c->content, c->len);
  return 1;
}

/* Continuation: the stack is root rel opts op. */
static int call_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  struct fop *op = luaL_checkudata(L, 4, CALL_MT);
  if (!lc_offload_wait_done(&op->ow)) return lua_yieldk(L, 0, 0, call_k);
  return push_result(L, lc_offload_arg(op->ow.job)); /* the op closes on return */
}

/* root:read / root:list. */
static int files_call(lua_State *L, int list) {
  struct lc_files_root *r = checkroot(L);
  int nul;
  const char *rel = checkrel(L, 2, &nul);
  const char *what = list ? "root:list" : "root:read";
  if (lua_istable(L, 3)) lc_l_check_opts(L, 3, what);
  size_t max = opt_size(L, 3, list ? "max_entries" : "max_bytes");
  if (nul) return push_fail(L, "path contains a NUL byte", LC_EINVAL);
  lua_settop(L, 3);
  struct fop *op = lua_newuserdatauv(L, sizeof *op, 0); /* 4 */
  memset(op, 0, sizeof *op);
  luaL_setmetatable(L, CALL_MT);
  lua_toclose(L, 4);
  struct fcall *c = op->c = lc_calloc(1, sizeof *c);
  if (!c || !(c->rel = lc_strdup(rel))) return luaL_error(L, "out of memory");
  c->fd = -1;
  c->list = list;
  c->max = max;
  /* No scheduler (a bare state): the extra space is not ours to read. */
  struct lc_sched *sch = lc_sched_get(L);
  struct lc_task *task = sch ? lc_task_current(L) : NULL;
  if (!task || !lua_isyieldable(L)) {
    c->fd = r->fd; /* borrowed for the call */
    fcall_run(c);
    c->fd = -1;
    return push_result(L, c); /* the op closes on return and frees it */
  }
  if ((c->fd = fcntl(r->fd, F_DUPFD_CLOEXEC, 3)) < 0) {
    char err[160];
    snprintf(err, sizeof err, "%s: cannot hold the root: %s", what, strerror(errno));
    return push_fail(L, err, LC_EIO);
  }
  op->c = NULL; /* the job takes it, whatever the outcome */
  const char *step;
  int rc = lc_offload_wait_start(&op->ow, task, lc_sched_loop(sch), fcall_run, fcall_free, c,
                                 &step);
  if (rc == LC_ENOMEM) return luaL_error(L, "out of memory");
  if (rc) {
    char err[160];
    snprintf(err, sizeof err, "%s: %s", what, step);
    return push_fail(L, err, LC_EIO);
  }
  return lua_yieldk(L, 0, 0, call_k);
}

/* root:read(rel [, {max_bytes=}]) -> string, or nil, msg, code */
static int l_read(lua_State *L) { return files_call(L, 0); }

/* root:list([rel [, {max_entries=}]]) -> {{name=, type=, size=}...}, or
 * nil, msg, code */
static int l_list(lua_State *L) { return files_call(L, 1); }

/* close(), __close and __gc: idempotent; safe on a root whose open failed
 * (fd is -1 from the start). */
static int l_close(lua_State *L) {
  lc_files_close_root(luaL_checkudata(L, 1, ROOT_MT));
  return 0;
}

static int l_tostring(lua_State *L) {
  struct lc_files_root *r = luaL_checkudata(L, 1, ROOT_MT);
  lua_pushstring(L, r->fd < 0 ? "luact.FilesRoot (closed)"
                              : "luact.FilesRoot");
  return 1;
}

/* files.root(path) -> luact.FilesRoot, or nil, msg, code */
static int l_root(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  /* Userdata first, closed, then the fd (liolib.c newprefile). */
  struct lc_files_root *r = lua_newuserdatauv(L, sizeof *r, 0);
  r->fd = -1;
  luaL_setmetatable(L, ROOT_MT);
  char err[512];
  int rc = lc_files_open_root(r, path, err, sizeof err);
  if (rc) return push_fail(L, err, rc);
  return 1;
}

static const luaL_Reg root_methods[] = {
    {"read", l_read}, {"list", l_list}, {"close", l_close}, {NULL, NULL}};

static const luaL_Reg root_meta[] = {{"__gc", l_close},
                                     {"__close", l_close},
                                     {"__tostring", l_tostring},
                                     {"__index", NULL},
                                     {NULL, NULL}};

static const luaL_Reg files_funcs[] = {{"root", l_root}, {NULL, NULL}};

int lc_open_files(lua_State *L) {
  lc_l_class(L, ROOT_MT, root_meta, root_methods);
  if (luaL_newmetatable(L, CALL_MT)) {
    lua_pushcfunction(L, op_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, op_gc);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  luaL_newlib(L, files_funcs);
  return 1;
}
