/* l_pal.c: luact.pal{...}: a waiting binding over the PAL engine (pal.c).
 * The engine runs on the loop; this task waits in its continuation, which
 * hands each attempt to on_attempt and at the end returns the result table.
 * The run lives in a "luact.PalRun" userdata marked to-be-closed, so a
 * normal return, an error and a kill all end it (LLM call, timers) through
 * one idempotent close. */
#include "l_pal.h"

#include <lauxlib.h>
#include <stdint.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "conv.h"
#include "l_engine.h"
#include "l_luact.h"
#include "l_opts.h"
#include "l_sandbox.h"
#include "l_status.h"
#include "l_state.h"
#include "lc.h"
#include "llm.h"
#include "pal.h"
#include "sched.h"

#define PAL_MT "luact.PalRun"
#define WHO "luact.pal"

struct pal_box {
  struct lc_l_run run; /* first (l_engine.h) */
  struct lc_pal *p;
  cJSON *input; /* until the engine has copied it */
};

#define IDX_CB 3 /* on_attempt or nil */

/* The class's close (l_engine.h): the run, the input copy. */
static void pal_close(struct lc_l_run *run) {
  struct pal_box *b = (struct pal_box *)run;
  lc_pal_free(b->p); /* stops the LLM call, the timers, the sandbox child */
  b->p = NULL;
  cJSON_Delete(b->input);
  b->input = NULL;
}

/* ---- engine callbacks (from the loop) ---- */

static void host_on_attempt(void *ud, struct lc_pal *p, const struct lc_pal_attempt *a) {
  (void)p;
  struct pal_box *b = ud;
  if (b->run.live) {
    lc_l_status_clear();
    fprintf(stderr, "pal attempt %d  %s: ", a->index, a->status);
    if (a->value) {
      char *j = lc_json_print(a->value);
      if (j) lc_l_put_flat(stderr, j, 100);
      cJSON_free(j);
    } else {
      lc_l_put_flat(stderr, a->error ? a->error : "", 160);
    }
    fprintf(stderr, "  (%.0f ms, %ld tok)\n", a->llm_ms + a->run_ms,
            a->tokens_in + a->tokens_out);
  }
  struct lc_buf *l = lc_l_run_trace_line(&b->run);
  if (l && lc_pal_attempt_trace_line(a, l) == 0) lc_l_run_trace(&b->run);
  lc_l_run_wake(&b->run); /* on_attempt runs from the continuation */
}

static void host_done(void *ud, struct lc_pal *p) {
  struct pal_box *b = ud;
  b->run.done = 1;
  if (b->run.live) {
    size_t n;
    lc_pal_attempts(p, &n);
    const struct lc_pal_usage *u = lc_pal_usage(p);
    lc_l_status_clear();
    fprintf(stderr, "pal %s after %zu attempt%s", lc_pal_status_name(lc_pal_result_status(p)),
            n, n == 1 ? "" : "s");
    if (lc_pal_reason(p)) {
      fputs(": ", stderr);
      lc_l_put_flat(stderr, lc_pal_reason(p), 200);
    }
    fprintf(stderr, "  (%ld tok, ", u->llm.input + u->llm.output);
    lc_l_print_cost(stderr, &u->llm);
    fputs(")\n", stderr);
  }
  struct lc_buf *l = lc_l_run_trace_line(&b->run);
  if (l && lc_pal_end_trace_line(p, l) == 0) lc_l_run_trace(&b->run);
  lc_l_run_wake(&b->run);
}

/* ---- Lua side ---- */

/* [-0, +1, m] One attempt as a table. */
static void push_attempt(lua_State *L, const struct lc_pal_attempt *a) {
  lua_createtable(L, 0, 14);
  lc_l_set_int(L, "index", a->index);
  lc_l_set_str(L, "status", a->status);
  lc_l_set_str(L, "reply", a->reply);
  lc_l_set_str(L, "code", a->code);
  lc_l_set_str(L, "error", a->error);
  if (a->output) {
    lua_pushlstring(L, a->output, a->output_len);
    lua_setfield(L, -2, "output");
  }
  if (a->value) {
    lc_conv_push_json(L, a->value);
    lua_setfield(L, -2, "value");
  }
  lc_l_set_int(L, "tokens_in", a->tokens_in);
  lc_l_set_int(L, "tokens_out", a->tokens_out);
  lc_l_set_num(L, "cost", a->cost_usd);
  lc_l_set_num(L, "latency_ms", a->llm_ms + a->run_ms);
  lc_l_set_num(L, "llm_ms", a->llm_ms);
  lc_l_set_num(L, "run_ms", a->run_ms);
  lc_l_set_int(L, "instructions", a->instructions);
  lc_l_set_int(L, "memory", (lua_Integer)a->memory);
}

static size_t pal_count(struct lc_l_run *run) {
  size_t n;
  lc_pal_attempts(((struct pal_box *)run)->p, &n);
  return n;
}

static void pal_push_item(lua_State *L, struct lc_l_run *run, size_t i) {
  size_t n;
  push_attempt(L, &lc_pal_attempts(((struct pal_box *)run)->p, &n)[i]);
}

/* [-0, +1, m] The run's result table. */
static void pal_push_result(lua_State *L, struct lc_l_run *run) {
  struct lc_pal *p = ((struct pal_box *)run)->p;
  const struct lc_pal_usage *u = lc_pal_usage(p);
  lua_createtable(L, 0, 8);
  const cJSON *ans = lc_pal_answer(p);
  if (ans) {
    lc_conv_push_json(L, ans);
    lua_setfield(L, -2, "answer");
  }
  lc_l_set_str(L, "status", lc_pal_status_name(lc_pal_result_status(p)));
  lc_l_set_str(L, "reason", lc_pal_reason(p));
  if (lc_pal_limit(p) != LC_LIMIT_NONE) lc_l_set_str(L, "limit", lc_limit_name(lc_pal_limit(p)));
  lc_l_run_push_items(L, run, pal_count(run));
  lua_setfield(L, -2, "attempts");
  lc_l_run_push_usage(L, &u->llm, 1);
  lc_l_set_int(L, "runs", u->runs);
  lua_setfield(L, -2, "usage");
  lc_l_run_set_cost(L, &u->llm);
}

/* The engine base is lc_pal's first member (engine.h). */
static struct lc_engine *pal_engine(struct lc_l_run *run) {
  return (struct lc_engine *)((struct pal_box *)run)->p;
}

static const struct lc_l_run_class pal_class = {
    .mt = PAL_MT,
    .who = WHO,
    .cb_idx = IDX_CB,
    .count = pal_count,
    .push_item = pal_push_item,
    .push_result = pal_push_result,
    .close = pal_close,
    .engine = pal_engine,
};

/* ---- parsing ---- */

/* The value at -1 as a positive number, or raise naming what. */
static double positive(lua_State *L, const char *what) {
  if (lua_type(L, -1) != LUA_TNUMBER || !(lua_tonumber(L, -1) > 0) ||
      !isfinite(lua_tonumber(L, -1)))
    luaL_error(L, WHO ": %s must be a positive number", what);
  return lua_tonumber(L, -1);
}

/* sandbox = {memory = bytes, instructions = n, time = seconds,
 * output = bytes}. */
static void parse_sandbox(lua_State *L, struct lc_sandbox_opts *o) {
  int t = lua_getfield(L, LC_L_RUN_OPTS, "sandbox");
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  if (t != LUA_TTABLE)
    luaL_error(L, WHO ": 'sandbox' must be a table {memory=, instructions=, time=, output=}");
  int si = lua_gettop(L);
  lc_l_check_opts(L, si, "luact.pal sandbox");
  lua_pushnil(L);
  while (lua_next(L, si)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
    char what[64];
    snprintf(what, sizeof what, "sandbox.%s", k);
    /* Range checks before the casts (1e300 would make them undefined). */
    if (!strcmp(k, "memory"))
      o->mem_limit = lc_lua_checksize(L, positive(L, what), 1, SIZE_MAX, what);
    else if (!strcmp(k, "instructions"))
      o->instr_limit = lc_lua_checklong(L, positive(L, what), 1, LONG_MAX, what);
    else if (!strcmp(k, "time"))
      o->wall_ms = (double)lc_lua_checklong(L, positive(L, what) * 1000.0, 1, 1000000000000L, what);
    else if (!strcmp(k, "output"))
      o->output_limit = lc_lua_checksize(L, positive(L, what), 1, SIZE_MAX, what);
    else
      luaL_error(L, WHO ": unknown sandbox option '%s' (memory, instructions, time, output)", k);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* luact.pal{model=, question=, ...} -> result table. A run that fails
 * (no working program, LLM error, a limit) is a result; misuse raises. */
static int l_pal(lua_State *L) {
  struct lc_pal_config cfg;
  lc_pal_config_default(&cfg);
  struct pal_box *b = lc_l_run_new(L, &pal_class, sizeof *b, &cfg.llm); /* opts box */
  lua_getfield(L, LC_L_RUN_OPTS, "on_attempt"); /* opts box cb */
  if (!lua_isnil(L, IDX_CB) && !lua_isfunction(L, IDX_CB))
    return luaL_error(L, WHO ": 'on_attempt' must be a function");
  lc_l_run_texts(L, WHO, &cfg.question, &cfg.instructions);
  int t = lua_getfield(L, LC_L_RUN_OPTS, "repairs");
  if (t != LUA_TNIL) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 || lua_tointeger(L, -1) > 100)
      return luaL_error(L, WHO ": 'repairs' must be an integer from 0 to 100");
    cfg.repairs = (int)lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  parse_sandbox(L, &cfg.sandbox);
  lc_l_run_limits(L, WHO, "luact.pal limits", &cfg.limits);
  if (lua_getfield(L, LC_L_RUN_OPTS, "input") != LUA_TNIL) {
    char err[256];
    int rc = lc_conv_to_json(L, -1, &b->input, err, sizeof err);
    if (rc == LC_ENOMEM) return luaL_error(L, "out of memory");
    if (rc) return luaL_error(L, WHO ": 'input' cannot be passed to the program: %s", err);
    cfg.input = b->input;
  }
  lua_pop(L, 1);
  lc_l_run_examples(L, WHO, 0, &cfg.examples, &cfg.n_examples); /* ... cb list scratch */
  lc_l_run_output(L, &b->run, &cfg.llm);

  struct lc_pal_host host = {.on_attempt = host_on_attempt, .done = host_done, .ud = b};
  char err[512];
  cfg.base = b->run.req;
  b->run.req = NULL; /* the engine owns it now, also on failure */
  int rc = lc_pal_new(&cfg, &host, &b->p, err, sizeof err);
  if (rc == LC_ENOMEM) return luaL_error(L, "out of memory");
  if (rc) return luaL_error(L, WHO ": %s", err);
  lua_settop(L, IDX_CB); /* examples: copied by the engine */
  cJSON_Delete(b->input); /* copied too */
  b->input = NULL;
  lc_l_run_prices(L, WHO, lc_pal_engine(b->p));
  if (lc_pal_start(b->p, lc_sched_loop(lc_sched_get(L)))) return luaL_error(L, "out of memory");
  return lc_l_run_wait(L, &b->run);
}

/* ---- luact.pal.run: one program, no model ---- */

#define RUN_MT "luact.PalCodeRun"

/* The box: struct lc_l_sbox (l_sandbox.h), shared with luact.sandbox.run. */

static int push_run(lua_State *L, struct lc_l_sbox *b, int rc);
static int run_k(lua_State *L, int status, lua_KContext ctx);

static int rbox_gc(lua_State *L) {
  lc_l_sbox_release(luaL_checkudata(L, 1, RUN_MT));
  return 0;
}

/* run(code [, opts]) -> {ok=true, value=, output=, instructions=, memory=,
 * elapsed_ms=} | nil, message, code, {output=, traceback=, ...}: the
 * program as luact.pal runs it (its return value, else solution()).
 * opts: memory, instructions, time (s), output, input, allow_nil. Misuse
 * raises. Inside a task it yields while the program runs (the loop watches
 * the child); outside one it blocks for at most about opts.time. */
static int l_run(lua_State *L) {
  size_t len;
  const char *code = luaL_checklstring(L, 1, &len);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  struct lc_l_sbox *b = lua_newuserdatauv(L, sizeof *b, 0); /* code opts box */
  memset(b, 0, sizeof *b);
  luaL_setmetatable(L, RUN_MT);
  struct lc_sandbox_opts o;
  lc_sandbox_opts_init(&o);
  int nil_ok = 0;
  if (lua_istable(L, 2)) {
    lc_l_check_opts(L, 2, "luact.pal.run");
    static const char *const caps[] = {"memory", "instructions", "time", "output"};
    for (size_t i = 0; i < LC_ARRAY_LEN(caps); i++) {
      if (lua_getfield(L, 2, caps[i]) != LUA_TNIL) {
        char what[32];
        snprintf(what, sizeof what, "run: opts.%s", caps[i]);
        double v = positive(L, what);
        /* Range checks before the casts (1e300 would make them undefined). */
        if (i == 0) o.mem_limit = lc_lua_checksize(L, v, 1, SIZE_MAX, what);
        else if (i == 1) o.instr_limit = lc_lua_checklong(L, v, 1, LONG_MAX, what);
        else if (i == 2)
          o.wall_ms = (double)lc_lua_checklong(L, v * 1000.0, 1, 1000000000000L, what);
        else o.output_limit = lc_lua_checksize(L, v, 1, SIZE_MAX, what);
      }
      lua_pop(L, 1);
    }
    nil_ok = lc_l_opt_bool(L, 2, WHO, "allow_nil", 0);
    if (lua_getfield(L, 2, "input") != LUA_TNIL) {
      char err[256];
      int rc = lc_conv_to_json(L, -1, &b->input, err, sizeof err);
      if (rc == LC_ENOMEM) return luaL_error(L, "out of memory");
      if (rc) return luaL_error(L, WHO ".run: opts.input: %s", err);
    }
    lua_pop(L, 1);
  }
  struct lc_task *task = lc_task_current(L);
  struct lc_sched *sched = task && lua_isyieldable(L) ? lc_sched_get(L) : NULL;
  if (sched) {
    /* In a task: the loop drives the child; other tasks run meanwhile. */
    b->task = task;
    b->wait.cancel = lc_l_sbox_cancel;
    b->o = o;
    b->nil_ok = nil_ok;
    int rc = lc_pal_code_start(lc_sched_loop(sched), code, len, &b->o, b->input, lc_l_sbox_done, b,
                               &b->job, &b->res);
    if (rc == 0) {
      lua_toclose(L, 3); /* a killed task kills the child */
      lc_task_wait(task, &b->wait);
      return lua_yieldk(L, 0, 0, run_k);
    }
    if (rc == 1) return push_run(L, b, 0);
    if (rc != LC_EIO) return push_run(L, b, rc);
    /* no child could be spawned: run as the synchronous form does */
  }
  return push_run(L, b, lc_pal_run_code(code, len, &o, b->input, nil_ok, &b->res));
}

/* Continuation of l_run after the task waited for the child. */
static int run_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  struct lc_l_sbox *b = luaL_checkudata(L, 3, RUN_MT);
  size_t len;
  const char *code = lua_tolstring(L, 1, &len);
  return push_run(L, b, lc_pal_code_finish(code, len, &b->o, b->nil_ok, b->rc, &b->res));
}

/* [-0, +1|4, m] The outcome of a run held by box b (index 3). */
static int push_run(lua_State *L, struct lc_l_sbox *b, int rc) {
  const struct lc_sandbox_result *r = &b->res;
  if (rc == LC_ENOMEM) return luaL_error(L, "out of memory");
  if (rc < 0) return luaL_error(L, WHO ".run: %s", r->error ? r->error : "failed");
  int ok = r->status == LC_SANDBOX_OK;
  if (!ok) {
    lua_pushnil(L);
    lua_pushstring(L, r->error);
    lua_pushstring(L, lc_sandbox_status_code(r->status));
  }
  lua_createtable(L, 0, 6);
  if (ok) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "ok");
    if (r->value && !cJSON_IsNull(r->value)) {
      lc_conv_push_json(L, r->value);
      lua_setfield(L, -2, "value");
    }
  } else {
    lc_l_set_str(L, "traceback", r->traceback);
  }
  lua_pushlstring(L, r->output ? r->output : "", r->output_len);
  lua_setfield(L, -2, "output");
  lc_l_set_int(L, "memory", (lua_Integer)r->mem_peak);
  lc_l_set_int(L, "instructions", r->instructions);
  lc_l_set_num(L, "elapsed_ms", r->elapsed_ms);
  lc_l_sbox_release(b); /* now rather than at the next GC */
  return ok ? 1 : 4;
}

static int l_pal_call(lua_State *L) {
  lua_remove(L, 1); /* the luact.pal table */
  return l_pal(L);
}

/* [-0, +1, e] Pushes luact.pal: callable like luact.react (luact.pal{...})
 * and holding run(code [, opts]). */
int lc_open_pal(lua_State *L) {
  lc_l_run_register(L, &pal_class);
  if (luaL_newmetatable(L, RUN_MT)) {
    lua_pushcfunction(L, rbox_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, rbox_gc);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, l_run);
  lua_setfield(L, -2, "run");
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, l_pal_call);
  lua_setfield(L, -2, "__call");
  lua_pushliteral(L, "luact.pal");
  lua_setfield(L, -2, "__name");
  lua_setmetatable(L, -2);
  return 1;
}
