/* l_mcp_serve.c: the C half of the server side of luact.mcp (`luact mcp
 * serve`, runtime/lua/mcp_serve.lua): the stdio channel, the Streamable
 * HTTP channel over runtime/mcp/mcp_httpd.c, the one-shot slot a served
 * call waits on for its client's answer, and the CLI entry point.
 *
 *   luact.mcp._stdio() -> channel: read() -> line | nil; write(line)
 *   luact.mcp._http(port, token) -> channel | nil, message
 *   luact.mcp._slot() -> slot: wait() -> value; put(value) -> bool
 *   luact.mcp._path() -> the running task's path */
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lua.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "jsonrpc.h"
#include "l_closable.h"
#include "l_luact.h"
#include "l_mcp_serve.h"
#include "l_state.h"
#include "lc.h"
#include "loop.h"
#include "mcp_httpd.h"
#include "sched.h"
#include "secrets.h"

/* ---- the server side's stdio: lines in from fd 0, lines out to fd 1,
 * both on the loop (a slow client never blocks the other calls) ---- */

#define STDIO_MT "luact.McpStdio"

struct lstdio {
  struct lc_closable cl; /* first */
  struct lc_loop *loop;
  struct lc_fdwatch rw, ww;
  int r_on, w_on, eof, failed;
  struct lc_jr_split split;
  struct lc_buf lines; /* complete lines, each followed by a NUL */
  size_t head;         /* read offset in lines */
  struct lc_buf outq;
  struct lc_task *reader;
  struct lc_wait wait;
};

static int stdio_line(void *ud, const char *line, size_t n) {
  struct lstdio *io = ud;
  if (memchr(line, '\0', n)) return 0; /* not JSON: dropped */
  if (lc_buf_append(&io->lines, line, n) < 0 ||
      lc_buf_append(&io->lines, "", 1) < 0)
    return LC_ENOMEM;
  return 0;
}

static void stdio_wake(struct lstdio *io) {
  if (io->reader && lc_task_waiting_on(io->reader, &io->wait))
    lc_task_wake(io->reader, &io->wait);
}

/* Watcher of fd 0 (from the loop). */
static void stdio_on_read(struct lc_loop *loop, struct lc_fdwatch *w,
                          unsigned ev) {
  struct lstdio *io = w->ud;
  char buf[16384];
  for (int i = 0; i < 8; i++) {
    ssize_t k = read(0, buf, sizeof buf);
    if (k > 0) {
      if (lc_jr_split_feed(&io->split, buf, (size_t)k, stdio_line, io) < 0)
        io->failed = 1;
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && errno == EAGAIN) break;
    io->eof = 1;
    lc_loop_unwatch(loop, &io->rw);
    io->r_on = 0;
    break;
  }
  stdio_wake(io);
}

static void stdio_flush(struct lstdio *io) {
  while (io->outq.len) {
    ssize_t k = write(1, io->outq.data, io->outq.len);
    if (k > 0) {
      lc_buf_consume(&io->outq, (size_t)k);
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && errno == EAGAIN) break;
    lc_buf_reset(&io->outq); /* the client is gone */
    break;
  }
  int want = io->outq.len > 0;
  if (want && !io->w_on) io->w_on = lc_loop_watch(io->loop, &io->ww) == 0;
  else if (!want && io->w_on) {
    lc_loop_unwatch(io->loop, &io->ww);
    io->w_on = 0;
  }
}

/* Watcher of fd 1 (from the loop): writable again. */
static void stdio_on_write(struct lc_loop *loop, struct lc_fdwatch *w,
                           unsigned ev) {
  stdio_flush(w->ud);
}

static void stdio_stop(struct lstdio *io) {
  lc_closable_remove(&io->cl);
  if (!io->loop) return;
  if (io->r_on) lc_loop_unwatch(io->loop, &io->rw);
  if (io->w_on) lc_loop_unwatch(io->loop, &io->ww);
  io->r_on = io->w_on = 0;
  /* What is still queued goes out now: the server is ending. */
  if (io->outq.len) {
    int fl = fcntl(1, F_GETFL);
    if (fl >= 0) fcntl(1, F_SETFL, fl & ~O_NONBLOCK);
    while (io->outq.len) {
      ssize_t k = write(1, io->outq.data, io->outq.len);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) break;
      lc_buf_consume(&io->outq, (size_t)k);
    }
  }
  lc_jr_split_free(&io->split);
  lc_buf_free(&io->lines);
  lc_buf_free(&io->outq);
  io->loop = NULL;
}

static void stdio_close_cl(struct lc_closable *c) { stdio_stop((struct lstdio *)c); }

static int stdio_gc(lua_State *L) {
  stdio_stop(luaL_checkudata(L, 1, STDIO_MT));
  return 0;
}

static void stdio_cancel(struct lc_wait *w) {
  struct lstdio *io = (struct lstdio *)((char *)w - offsetof(struct lstdio, wait));
  io->reader = NULL;
}

static int stdio_pop(lua_State *L, struct lstdio *io) {
  if (io->head < io->lines.len) {
    const char *p = io->lines.data + io->head;
    size_t n = strlen(p);
    lua_pushlstring(L, p, n);
    io->head += n + 1;
    if (io->head == io->lines.len) {
      lc_buf_reset(&io->lines);
      io->head = 0;
    }
    return 1;
  }
  if (io->failed) {
    lua_pushnil(L);
    lua_pushliteral(L, "a message over the size limit");
    return 2;
  }
  if (io->eof) {
    lua_pushnil(L);
    return 1;
  }
  return 0;
}

static int stdio_read_k(lua_State *L, int status, lua_KContext ctx) {
  struct lstdio *io = luaL_checkudata(L, 1, STDIO_MT);
  int n = stdio_pop(L, io);
  if (n) {
    io->reader = NULL;
    return n;
  }
  lc_task_wait(io->reader, &io->wait);
  return lua_yieldk(L, 0, 0, stdio_read_k);
}

/* io:read() -> line | nil at EOF | nil, message */
static int l_stdio_read(lua_State *L) {
  struct lstdio *io = luaL_checkudata(L, 1, STDIO_MT);
  lua_settop(L, 1);
  if (!io->loop) return luaL_error(L, "stdio is closed");
  if (io->reader) return luaL_error(L, "stdio: another task is reading");
  int n = stdio_pop(L, io);
  if (n) return n;
  io->reader = lc_task_check(L, "luact.mcp.serve");
  io->wait.cancel = stdio_cancel;
  lc_task_wait(io->reader, &io->wait);
  return lua_yieldk(L, 0, 0, stdio_read_k);
}

/* io:write(line): queued, never blocks. */
static int l_stdio_write(lua_State *L) {
  struct lstdio *io = luaL_checkudata(L, 1, STDIO_MT);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  if (!io->loop) return luaL_error(L, "stdio is closed");
  size_t at = io->outq.len;
  if (lc_buf_append(&io->outq, s, n) < 0) return luaL_error(L, "out of memory");
  /* A tool's output may echo a key (secrets.h): never to the client. */
  io->outq.len = at + lc_secrets_scrub(io->outq.data + at, n, LC_SCRUB_JSON);
  if (lc_buf_append(&io->outq, "\n", 1) < 0) return luaL_error(L, "out of memory");
  stdio_flush(io);
  return 0;
}

/* luact.mcp._stdio() -> the process's stdin/stdout as a line channel. */
static int l_stdio(lua_State *L) {
  struct lstdio *io = lua_newuserdatauv(L, sizeof *io, 0);
  memset(io, 0, sizeof *io);
  luaL_setmetatable(L, STDIO_MT);
  io->cl.close = stdio_close_cl;
  lc_jr_split_init(&io->split, 4u << 20);
  lc_buf_init(&io->lines, 0);
  lc_buf_init(&io->outq, 0);
  io->loop = lc_sched_loop(lc_sched_get(L));
  lc_closable_add(L, &io->cl);
  for (int fd = 0; fd <= 1; fd++) {
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  }
  io->rw = (struct lc_fdwatch){.fd = 0, .events = LC_READ, .cb = stdio_on_read, .ud = io};
  io->ww = (struct lc_fdwatch){.fd = 1, .events = LC_WRITE, .cb = stdio_on_write, .ud = io};
  if (lc_loop_watch(io->loop, &io->rw) < 0) {
    /* a regular file or /dev/null cannot be polled: read it whole now */
    char buf[16384];
    ssize_t k;
    while ((k = read(0, buf, sizeof buf)) > 0)
      if (lc_jr_split_feed(&io->split, buf, (size_t)k, stdio_line, io) < 0) io->failed = 1;
    io->eof = 1;
  } else io->r_on = 1;
  return 1;
}

static const luaL_Reg stdio_methods[] = {
    {"read", l_stdio_read}, {"write", l_stdio_write}, {NULL, NULL}};

/* ---- the server side over Streamable HTTP (mcp_httpd.c) ---- */

#define HTTPD_MT "luact.McpHttpd"

struct hmsg {
  struct hmsg *next;
  long id;
  char method[8];
  char *session, *last_event_id; /* in body's allocation, or NULL */
  size_t n;
  char body[];
};

struct lhttpd {
  struct lc_closable cl; /* first */
  struct lc_mcp_httpd *h;
  struct hmsg *head, **tail;
  struct lc_task *reader;
  struct lc_wait wait;
};

/* on_msg (inside MHD_run, from the loop): queue it, wake the reader. */
static void httpd_msg(void *ud, long id, const struct lc_mcp_httpd_msg *in) {
  struct lhttpd *x = ud;
  size_t ls = in->session ? strlen(in->session) + 1 : 0;
  size_t le = in->last_event_id ? strlen(in->last_event_id) + 1 : 0;
  struct hmsg *m = lc_malloc(sizeof *m + in->n + 1 + ls + le);
  if (!m) {
    lc_mcp_httpd_reply(x->h, id, 500, "", 0);
    return;
  }
  m->next = NULL;
  m->id = id;
  snprintf(m->method, sizeof m->method, "%s", in->method);
  m->n = in->n;
  memcpy(m->body, in->body, in->n);
  m->body[in->n] = '\0';
  char *p = m->body + in->n + 1;
  m->session = m->last_event_id = NULL;
  if (ls) memcpy(m->session = p, in->session, ls), p += ls;
  if (le) memcpy(m->last_event_id = p, in->last_event_id, le);
  *x->tail = m;
  x->tail = &m->next;
  if (x->reader && lc_task_waiting_on(x->reader, &x->wait))
    lc_task_wake(x->reader, &x->wait);
}

static void httpd_stop(struct lhttpd *x) {
  lc_closable_remove(&x->cl);
  if (x->h) {
    lc_mcp_httpd_free(x->h);
    x->h = NULL;
  }
  while (x->head) {
    struct hmsg *m = x->head;
    x->head = m->next;
    lc_free(m);
  }
  x->tail = &x->head;
}

static void httpd_close_cl(struct lc_closable *c) { httpd_stop((struct lhttpd *)c); }

static int httpd_gc(lua_State *L) {
  httpd_stop(luaL_checkudata(L, 1, HTTPD_MT));
  return 0;
}

static void httpd_cancel(struct lc_wait *w) {
  struct lhttpd *x = (struct lhttpd *)((char *)w - offsetof(struct lhttpd, wait));
  x->reader = NULL;
}

static int httpd_pop(lua_State *L, struct lhttpd *x) {
  struct hmsg *m = x->head;
  if (!m) return 0;
  x->head = m->next;
  if (!x->head) x->tail = &x->head;
  lua_pushlstring(L, m->body, m->n); /* m is not ours to leak: copy all, then free */
  lua_pushinteger(L, m->id);
  lua_pushstring(L, m->method);
  lua_pushstring(L, m->session);       /* nil when NULL */
  lua_pushstring(L, m->last_event_id); /* nil when NULL */
  lc_free(m);
  return 5;
}

static int httpd_read_k(lua_State *L, int status, lua_KContext ctx) {
  struct lhttpd *x = luaL_checkudata(L, 1, HTTPD_MT);
  int n = httpd_pop(L, x);
  if (n) {
    x->reader = NULL;
    return n;
  }
  lc_task_wait(x->reader, &x->wait);
  return lua_yieldk(L, 0, 0, httpd_read_k);
}

/* srv:read() -> body, reqid, method, session, last_event_id (waits; the
 * server runs until closed) */
static int l_httpd_read(lua_State *L) {
  struct lhttpd *x = luaL_checkudata(L, 1, HTTPD_MT);
  lua_settop(L, 1);
  if (!x->h) return luaL_error(L, "the MCP HTTP server is closed");
  if (x->reader) return luaL_error(L, "the MCP HTTP server: another task is reading");
  int n = httpd_pop(L, x);
  if (n) return n;
  x->reader = lc_task_check(L, "luact.mcp.serve");
  x->wait.cancel = httpd_cancel;
  lc_task_wait(x->reader, &x->wait);
  return lua_yieldk(L, 0, 0, httpd_read_k);
}

/* srv:reply(reqid, status [, body]) */
static int l_httpd_reply(lua_State *L) {
  struct lhttpd *x = luaL_checkudata(L, 1, HTTPD_MT);
  long id = (long)luaL_checkinteger(L, 2);
  /* checked before the cast: a script's 2^32 + 200 wrapped to 200 */
  lua_Integer st = luaL_checkinteger(L, 3);
  luaL_argcheck(L, st >= 100 && st <= 599, 3, "not an HTTP status (100 to 599)");
  int status = (int)st;
  size_t n = 0;
  const char *body = luaL_optlstring(L, 4, "", &n);
  if (x->h) lc_mcp_httpd_reply(x->h, id, status, body, n);
  return 0;
}

/* srv:event(reqid, body [, event_id [, retry_ms]]) -> true | nil: one SSE
 * event on reqid's answer (which becomes a stream; srv:reply then ends
 * it). nil when the client is gone. */
static int l_httpd_event(lua_State *L) {
  struct lhttpd *x = luaL_checkudata(L, 1, HTTPD_MT);
  long id = (long)luaL_checkinteger(L, 2);
  size_t n = 0;
  const char *body = luaL_checklstring(L, 3, &n);
  const char *eid = luaL_optstring(L, 4, NULL);
  lua_Integer retry = luaL_optinteger(L, 5, 0);
  luaL_argcheck(L, retry >= 0 && retry <= 3600000, 5, "not a retry in ms");
  int ok = x->h && lc_mcp_httpd_event(x->h, id, eid, (int)retry, body, n) == 0;
  if (ok) lua_pushboolean(L, 1);
  else lua_pushnil(L);
  return 1;
}

/* srv:session(reqid, sid) -> true | nil: reqid's answer carries
 * Mcp-Session-Id: sid. */
static int l_httpd_session(lua_State *L) {
  struct lhttpd *x = luaL_checkudata(L, 1, HTTPD_MT);
  long id = (long)luaL_checkinteger(L, 2);
  const char *sid = luaL_checkstring(L, 3);
  if (x->h && lc_mcp_httpd_session(x->h, id, sid) == 0) lua_pushboolean(L, 1);
  else lua_pushnil(L);
  return 1;
}

static int l_httpd_port(lua_State *L) {
  struct lhttpd *x = luaL_checkudata(L, 1, HTTPD_MT);
  lua_pushinteger(L, x->h ? lc_mcp_httpd_port(x->h) : 0);
  return 1;
}

/* luact.mcp._http(port, token) -> server | nil, message */
static int l_http(lua_State *L) {
  /* checked before the cast: a script's 2^32 + 80 wrapped to port 80 */
  lua_Integer p = luaL_checkinteger(L, 1);
  luaL_argcheck(L, p >= 0 && p < 65536, 1, "not a port (0 to 65535)");
  int port = (int)p;
  const char *token = luaL_checkstring(L, 2);
  struct lhttpd *x = lua_newuserdatauv(L, sizeof *x, 0);
  memset(x, 0, sizeof *x);
  x->tail = &x->head;
  x->cl.close = httpd_close_cl;
  luaL_setmetatable(L, HTTPD_MT);
  lc_closable_add(L, &x->cl);
  char err[256];
  if (lc_mcp_httpd_start(lc_sched_loop(lc_sched_get(L)), port, token, 0, httpd_msg, x, &x->h,
                         err, sizeof err) < 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  return 1;
}

static const luaL_Reg httpd_methods[] = {{"read", l_httpd_read},
                                         {"reply", l_httpd_reply},
                                         {"event", l_httpd_event},
                                         {"session", l_httpd_session},
                                         {"port", l_httpd_port},
                                         {"close", httpd_gc},
                                         {NULL, NULL}};

/* ---- a one-shot slot: a served call's task waits for its client's answer ----
 *
 * luact mcp serve sends elicitation/create to its client and the asking
 * task waits here, suspended (the loop keeps serving other calls), until
 * the serve loop puts the client's response in. A task killed while it
 * waits (its timeout, notifications/cancelled) just stops waiting. */

#define SLOT_MT "luact.McpSlot"

struct lslot {
  struct lc_task *waiter;
  struct lc_wait wait;
  int filled;
};

static void slot_cancel(struct lc_wait *w) {
  struct lslot *s = (struct lslot *)((char *)w - offsetof(struct lslot, wait));
  s->waiter = NULL;
}

static int slot_wait_k(lua_State *L, int status, lua_KContext ctx) {
  struct lslot *s = luaL_checkudata(L, 1, SLOT_MT);
  (void)status;
  (void)ctx;
  if (s->filled) {
    s->waiter = NULL;
    lua_getiuservalue(L, 1, 1);
    return 1;
  }
  lc_task_wait(s->waiter, &s->wait);
  return lua_yieldk(L, 0, 0, slot_wait_k);
}

/* slot:wait() -> the value put (waits for it) */
static int l_slot_wait(lua_State *L) {
  struct lslot *s = luaL_checkudata(L, 1, SLOT_MT);
  lua_settop(L, 1);
  if (s->filled) {
    lua_getiuservalue(L, 1, 1);
    return 1;
  }
  if (s->waiter) return luaL_error(L, "slot: another task is waiting");
  s->waiter = lc_task_check(L, "slot:wait");
  s->wait.cancel = slot_cancel;
  lc_task_wait(s->waiter, &s->wait);
  return lua_yieldk(L, 0, 0, slot_wait_k);
}

/* slot:put(v) -> true, or false when it was filled already (the first
 * answer wins; a second one is the caller's to count). */
static int l_slot_put(lua_State *L) {
  struct lslot *s = luaL_checkudata(L, 1, SLOT_MT);
  luaL_checkany(L, 2);
  if (s->filled) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_settop(L, 2);
  lua_setiuservalue(L, 1, 1);
  s->filled = 1;
  if (s->waiter && lc_task_waiting_on(s->waiter, &s->wait)) lc_task_wake(s->waiter, &s->wait);
  lua_pushboolean(L, 1);
  return 1;
}

/* luact.mcp._slot() -> a one-shot slot */
static int l_slot(lua_State *L) {
  struct lslot *s = lua_newuserdatauv(L, sizeof *s, 1);
  memset(s, 0, sizeof *s);
  luaL_setmetatable(L, SLOT_MT);
  return 1;
}

/* luact.mcp._path() -> the running task's path ("1.2.1"), or nil outside
 * a task: a served call finds the asks of its own task and descendants. */
static int l_path(lua_State *L) {
  struct lc_task *t = lc_task_current(L);
  const char *p = t ? lc_task_path(t) : NULL;
  if (p) lua_pushstring(L, p);
  else lua_pushnil(L);
  return 1;
}

static const luaL_Reg slot_methods[] = {{"wait", l_slot_wait}, {"put", l_slot_put}, {NULL, NULL}};

static const luaL_Reg serve_funcs[] = {{"_stdio", l_stdio}, {"_http", l_http},
                                       {"_slot", l_slot}, {"_path", l_path}, {NULL, NULL}};

void lc_mcp_serve_register(lua_State *L) {
  luaL_newmetatable(L, HTTPD_MT);
  luaL_newlib(L, httpd_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, httpd_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, SLOT_MT);
  luaL_newlib(L, slot_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newmetatable(L, STDIO_MT);
  luaL_newlib(L, stdio_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, stdio_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, stdio_gc);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
  luaL_setfuncs(L, serve_funcs, 0);
}

/* luact mcp serve AGENTS_DIR: a Lua state and scheduler running
 * luact.mcp.serve(dir) as the root task (runtime/lua/mcp_serve.lua). */
int lc_l_mcp_main(int argc, char **argv) {
  const char *http = NULL;
  int i = 1;
  if (argc >= 3 && !strcmp(argv[1], "--http")) {
    http = argv[2];
    i = 3;
  }
  char *end = NULL;
  long port = http ? strtol(http, &end, 10) : 0;
  if (argc != i + 1 || strcmp(argv[0], "serve") || argv[i][0] == '-' ||
      (http && (*end || port < 0 || port > 65535))) {
    fputs("usage: luact mcp serve [--http PORT] AGENTS_DIR\n"
          "\n"
          "Serves every agent and tool that AGENTS_DIR/*.lua return as MCP\n"
          "tools, and the resources, resource templates and prompts they\n"
          "declare: over stdio (JSON-RPC lines on stdin/stdout), or with --http\n"
          "as Streamable HTTP on 127.0.0.1:PORT/mcp (0 = a free port, printed\n"
          "on stderr; sessions with Mcp-Session-Id), every request carrying\n"
          "'Authorization: Bearer' and the token in $LUACT_MCP_TOKEN (16\n"
          "characters or more). See docs/mcp.md.\n",
          stderr);
    return 2;
  }
  const char *token = getenv("LUACT_MCP_TOKEN");
  if (http && (!token || strlen(token) < 16)) {
    fputs("luact mcp serve: --http needs LUACT_MCP_TOKEN (16 characters or more)\n", stderr);
    return 2;
  }
  lua_State *L = lc_lua_newstate(); /* logs and aborts on a panic */
  if (!L) return 1;
  lc_lua_setup(L);
  struct lc_sched *s;
  if (lc_sched_new(L, &s)) {
    lua_close(L);
    return 1;
  }
  int rc = 1;
  struct lc_task *t;
  if (luaL_loadstring(L, "local dir, port, token = ...\n"
                          "return luact.mcp.serve(dir, port and {http = port, token = token})") ==
      LUA_OK) {
    lua_pushstring(L, argv[i]);
    if (http) {
      lua_pushinteger(L, port);
      lua_pushstring(L, token);
    } else {
      lua_pushnil(L);
      lua_pushnil(L);
    }
    if (lc_sched_spawn(s, L, 3, NULL, &t) == 0 && lc_sched_run(s, t) == 0) {
      if (lc_task_status(t) == LUA_OK) rc = 0;
      else {
        const char *msg = lua_tostring(lc_task_thread(t), -1);
        fprintf(stderr, "luact mcp serve: %s\n", msg ? msg : "error");
      }
    } else {
      fprintf(stderr, "luact mcp serve: %s\n", lc_sched_error(s));
    }
  }
  lc_sched_free(s);
  lua_close(L);
  return rc;
}
