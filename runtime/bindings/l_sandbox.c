/* l_sandbox.c: Lua binding of the PAL sandbox (sandbox.h). */
#include "l_sandbox.h"
#include "l_opts.h"

#include <lauxlib.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "conv.h"
#include "l_state.h"
#include "lc.h"
#include "sandbox.h"
#include "sched.h"

static char rbox_mt_key;

void lc_l_sbox_release(struct lc_l_sbox *b) {
  lc_sandbox_job_free(b->job);
  b->job = NULL;
  lc_sandbox_result_free(&b->res);
  cJSON_Delete(b->input);
  b->input = NULL;
}

void lc_l_sbox_cancel(struct lc_wait *w) {
  struct lc_l_sbox *b = (struct lc_l_sbox *)((char *)w - offsetof(struct lc_l_sbox, wait));
  lc_sandbox_job_free(b->job);
  b->job = NULL;
}

void lc_l_sbox_done(struct lc_sandbox_job *j, void *ud) {
  struct lc_l_sbox *b = ud;
  b->rc = lc_sandbox_job_rc(j);
  b->res = *lc_sandbox_job_result(j);
  memset(lc_sandbox_job_result(j), 0, sizeof b->res);
  lc_sandbox_job_free(j);
  b->job = NULL;
  lc_task_wake(b->task, &b->wait);
}

/* __gc and __close of the box: the paths taken when pushing the results
 * raised, or when the waiting task was closed. */
static int l_rbox_free(lua_State *L) {
  struct lc_l_sbox *b = lua_touserdata(L, 1);
  if (b) lc_l_sbox_release(b);
  return 0;
}

/* Reads opts[name] as a non-negative number; raises on a wrong type. */
static double opt_num(lua_State *L, int t, const char *name, double def) {
  int ty = lua_getfield(L, t, name);
  double v = def;
  if (ty != LUA_TNIL) {
    if (!lua_isnumber(L, -1) || lua_tonumber(L, -1) < 0)
      luaL_error(L, "sandbox.run: opts.%s must be a non-negative number", name);
    v = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

static void push_details(lua_State *L, const struct lc_sandbox_result *r) {
  lua_createtable(L, 0, 5);
  lua_pushlstring(L, r->output, r->output_len);
  lua_setfield(L, -2, "output");
  if (r->traceback) {
    lua_pushstring(L, r->traceback);
    lua_setfield(L, -2, "traceback");
  }
  lua_pushinteger(L, (lua_Integer)r->mem_peak);
  lua_setfield(L, -2, "memory");
  lua_pushinteger(L, (lua_Integer)r->instructions);
  lua_setfield(L, -2, "instructions");
  lua_pushnumber(L, r->elapsed_ms);
  lua_setfield(L, -2, "elapsed_ms");
}

/* [-0, +1|4, m] Pushes the outcome of a run held by box b (index 3):
 * result | nil, message, code, details. Raises on a host error. */
static int push_run(lua_State *L, struct lc_l_sbox *b, int rc) {
  const struct lc_sandbox_result *r = &b->res;
  if (rc < 0 && rc != LC_ENOMEM)
    return luaL_error(L, "sandbox.run: %s", r->error ? r->error : "failed");
  if (rc == LC_ENOMEM) {
    lua_pushnil(L);
    lua_pushliteral(L, "host out of memory");
    lua_pushliteral(L, "memory");
    return 3;
  }
  if (r->status == LC_SANDBOX_OK) {
    lua_createtable(L, 0, 6); /* ... box result */
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "ok");
    if (r->value && !cJSON_IsNull(r->value)) {
      lc_conv_push_json(L, r->value);
      lua_setfield(L, -2, "value");
    }
    lua_pushlstring(L, r->output, r->output_len);
    lua_setfield(L, -2, "output");
    lua_pushinteger(L, (lua_Integer)r->mem_peak);
    lua_setfield(L, -2, "memory");
    lua_pushinteger(L, (lua_Integer)r->instructions);
    lua_setfield(L, -2, "instructions");
    lua_pushnumber(L, r->elapsed_ms);
    lua_setfield(L, -2, "elapsed_ms");
    lc_l_sbox_release(b); /* now rather than at the next GC */
    return 1;
  }
  lua_pushnil(L);
  lua_pushstring(L, r->error);
  lua_pushstring(L, lc_sandbox_status_code(r->status));
  push_details(L, r);
  lc_l_sbox_release(b);
  return 4;
}

/* Continuation of l_run after the task waited for the child. */
static int run_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  struct lc_l_sbox *b = lua_touserdata(L, 3);
  int rc = b->rc;
  return push_run(L, b, rc);
}

/* run(code [, opts]) -> result | nil, message, code, details. Inside a
 * task it yields while the child runs. */
static int l_run(lua_State *L) {
  size_t len;
  const char *code = luaL_checklstring(L, 1, &len);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  struct lc_sandbox_opts o;
  lc_sandbox_opts_init(&o);
  struct lc_l_sbox *b = lua_newuserdatauv(L, sizeof *b, 0); /* code opts box */
  memset(b, 0, sizeof *b);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &rbox_mt_key);
  lua_setmetatable(L, -2);
  if (lua_istable(L, 2)) {
    lc_l_check_opts(L, 2, "luact.sandbox.run");
    /* Range checks before the casts (1e300 would make them undefined). */
    o.mem_limit = lc_lua_checksize(L, opt_num(L, 2, "mem_limit", (double)o.mem_limit), 0,
                                   SIZE_MAX, "sandbox.run: opts.mem_limit");
    o.instr_limit = lc_lua_checklong(L, opt_num(L, 2, "instr_limit", (double)o.instr_limit), 0,
                                     LONG_MAX, "sandbox.run: opts.instr_limit");
    o.wall_ms = (double)lc_lua_checklong(L, opt_num(L, 2, "wall_ms", o.wall_ms), 0,
                                         1000000000000L, "sandbox.run: opts.wall_ms");
    o.output_limit = lc_lua_checksize(L, opt_num(L, 2, "output_limit", (double)o.output_limit),
                                      0, SIZE_MAX, "sandbox.run: opts.output_limit");
    o.result_limit = lc_lua_checksize(L, opt_num(L, 2, "result_limit", (double)o.result_limit),
                                      0, SIZE_MAX, "sandbox.run: opts.result_limit");
    if (lua_getfield(L, 2, "input") != LUA_TNIL) { /* code opts box input */
      char err[256];
      if (lc_conv_to_json(L, -1, &b->input, err, sizeof err))
        return luaL_error(L, "sandbox.run: opts.input: %s", err);
    }
    lua_pop(L, 1);
  }
  struct lc_task *task = lc_task_current(L);
  struct lc_sched *sched =
      task && lua_isyieldable(L) ? lc_sched_get(L) : NULL;
  if (sched) {
    /* In a task: the loop drives the child; other tasks run meanwhile. */
    b->task = task;
    b->wait.cancel = lc_l_sbox_cancel;
    int rc = lc_sandbox_start(lc_sched_loop(sched), code, len, &o, b->input,
                              lc_l_sbox_done, b, &b->job);
    if (rc == 0) {
      lua_toclose(L, 3); /* a killed task kills the child */
      lc_task_wait(task, &b->wait);
      return lua_yieldk(L, 0, 0, run_k);
    }
    if (rc != LC_EIO) return push_run(L, b, rc);
    /* no child could be spawned: say so like the synchronous form */
  }
  return push_run(L, b, lc_sandbox_run(code, len, &o, b->input, &b->res));
}

static const luaL_Reg sandbox_funcs[] = {{"run", l_run}, {NULL, NULL}};

int lc_open_sandbox(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &rbox_mt_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, l_rbox_free);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_rbox_free);
    lua_setfield(L, -2, "__close");
    lua_pushliteral(L, "luact.SandboxRun");
    lua_setfield(L, -2, "__name");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &rbox_mt_key);
  } else {
    lua_pop(L, 1);
  }
  luaL_newlib(L, sandbox_funcs);
  return 1;
}
