/* l_pal.c: luact.pal{...}: a waiting binding over the PAL engine (pal.c).
 * The engine runs on the loop; this task waits in its continuation, which
 * hands each attempt to on_attempt and at the end returns the result table.
 * The run lives in a "luact.PalRun" userdata marked to-be-closed, so a
 * normal return, an error and a kill all end it (LLM call, timers) through
 * one idempotent close. */
#include "l_pal.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "conv.h"
#include "l_effect.h"
#include "l_luact.h"
#include "l_opts.h"
#include "l_react.h"
#include "lc.h"
#include "llm.h"
#include "pal.h"
#include "sched.h"
#include "secrets.h"

#define PAL_MT "luact.PalRun"
#define WHO "luact.pal"

struct pal_box {
  struct lc_pal *p;
  struct lc_llm_request *req; /* until the engine owns it */
  cJSON *input;               /* until the engine has copied it */
  struct lc_task *task;
  struct lc_wait wait;
  size_t delivered; /* attempts handed to on_attempt */
  int done;
  int closed;
  int live; /* print attempts on stderr */
  FILE *trace;
};

/* The one close: __gc, __close (normal end, error, kill). Idempotent. */
static void box_close(struct pal_box *b) {
  if (b->closed) return;
  b->closed = 1;
  lc_pal_free(b->p); /* stops the LLM call and the timers */
  b->p = NULL;
  if (b->req) {
    lc_llm_request_delete(b->req);
    b->req = NULL;
  }
  cJSON_Delete(b->input);
  b->input = NULL;
  if (b->trace) fclose(b->trace);
  b->trace = NULL;
}

static int box_gc(lua_State *L) {
  box_close(luaL_checkudata(L, 1, PAL_MT));
  return 0;
}

/* The scheduler calls this when the task is killed: the close comes with
 * the task's to-be-closed variables right after. */
static void box_cancel(struct lc_wait *w) { (void)w; }

/* ---- engine callbacks (from the loop) ---- */

/* Writes s on one line, at most max bytes (UTF-8 safe), "..." if cut. */
static void trace_write(struct pal_box *b, struct lc_buf *line) {
  if (!b->trace || !line->data) return;
  line->len = lc_secrets_scrub(line->data, line->len, LC_SCRUB_JSON); /* secrets.h */
  fwrite(line->data, 1, line->len, b->trace);
  fflush(b->trace); /* as it happens: a crash keeps what was done */
}

static void host_on_attempt(void *ud, struct lc_pal *p, const struct lc_pal_attempt *a) {
  (void)p;
  struct pal_box *b = ud;
  if (b->live) {
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
  if (b->trace) {
    struct lc_buf l;
    lc_buf_init(&l, 0);
    if (lc_pal_attempt_trace_line(a, &l) == 0) trace_write(b, &l);
    lc_buf_free(&l);
  }
  lc_task_wake(b->task, &b->wait); /* on_attempt runs from the continuation */
}

static void host_done(void *ud, struct lc_pal *p) {
  struct pal_box *b = ud;
  b->done = 1;
  if (b->live) {
    size_t n;
    lc_pal_attempts(p, &n);
    const struct lc_pal_usage *u = lc_pal_usage(p);
    fprintf(stderr, "pal %s after %zu attempt%s", lc_pal_status_name(lc_pal_result_status(p)),
            n, n == 1 ? "" : "s");
    if (lc_pal_reason(p)) {
      fputs(": ", stderr);
      lc_l_put_flat(stderr, lc_pal_reason(p), 200);
    }
    fprintf(stderr, "  (%ld tok)\n", u->llm.input + u->llm.output);
  }
  if (b->trace) {
    struct lc_buf l;
    lc_buf_init(&l, 0);
    if (lc_pal_end_trace_line(p, &l) == 0) trace_write(b, &l);
    lc_buf_free(&l);
  }
  lc_task_wake(b->task, &b->wait);
}

/* ---- Lua side ---- */

#define IDX_OPTS 1
#define IDX_BOX 2
#define IDX_CB 3 /* on_attempt or nil */

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

/* [-0, +1, m] The run's result table. */
static void push_result(lua_State *L, struct lc_pal *p) {
  const struct lc_pal_usage *u = lc_pal_usage(p);
  size_t n;
  const struct lc_pal_attempt *att = lc_pal_attempts(p, &n);
  lua_createtable(L, 0, 8);
  const cJSON *ans = lc_pal_answer(p);
  if (ans) {
    lc_conv_push_json(L, ans);
    lua_setfield(L, -2, "answer");
  }
  lc_l_set_str(L, "status", lc_pal_status_name(lc_pal_result_status(p)));
  lc_l_set_str(L, "reason", lc_pal_reason(p));
  if (lc_pal_limit(p) != LC_LIMIT_NONE) lc_l_set_str(L, "limit", lc_limit_name(lc_pal_limit(p)));
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    push_attempt(L, &att[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lc_conv_push_array_mt(L);
  lua_setmetatable(L, -2);
  lua_setfield(L, -2, "attempts");
  lc_l_push_usage(L, u->llm.input, u->llm.output, u->llm.cached, u->llm.llm_calls, 1);
  lc_l_set_int(L, "runs", u->runs);
  lua_setfield(L, -2, "usage");
  lc_l_set_cost(L, u->llm.cost_usd, u->llm.cost_unknown);
}

/* Continuation: deliver attempts to on_attempt; wait; return the result. */
static int pal_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  struct pal_box *b = luaL_checkudata(L, IDX_BOX, PAL_MT);
  for (;;) {
    if (b->closed) return luaL_error(L, WHO ": the run was cancelled");
    size_t n;
    const struct lc_pal_attempt *att = lc_pal_attempts(b->p, &n);
    if (lua_isfunction(L, IDX_CB) && b->delivered < n) {
      lua_pushvalue(L, IDX_CB);
      push_attempt(L, &att[b->delivered++]);
      lua_callk(L, 1, 0, ctx, pal_k); /* on_attempt may itself wait */
      continue;
    }
    if (b->done) break;
    lc_task_wait(b->task, &b->wait);
    return lua_yieldk(L, 0, ctx, pal_k);
  }
  push_result(L, b->p);
  box_close(b);
  return 1;
}

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
  int t = lua_getfield(L, IDX_OPTS, "sandbox");
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
    if (!strcmp(k, "memory")) o->mem_limit = (size_t)positive(L, what);
    else if (!strcmp(k, "instructions")) o->instr_limit = (long)positive(L, what);
    else if (!strcmp(k, "time")) o->wall_ms = positive(L, what) * 1000.0;
    else if (!strcmp(k, "output")) o->output_limit = (size_t)positive(L, what);
    else
      luaL_error(L, WHO ": unknown sandbox option '%s' (memory, instructions, time, output)", k);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

static void parse_limits(lua_State *L, struct lc_budget_limits *lim) {
  int t = lua_getfield(L, IDX_OPTS, "limits");
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  if (t != LUA_TTABLE) luaL_error(L, WHO ": 'limits' must be a table");
  int li = lua_gettop(L);
  lc_l_check_opts(L, li, "luact.pal limits");
  lua_pushnil(L);
  while (lua_next(L, li)) {
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, WHO ": limits keys must be names");
    const char *k = lua_tostring(L, -2);
    double v = 0; /* false turns a limit off, like 0 */
    if (lua_type(L, -1) == LUA_TNUMBER) v = lua_tonumber(L, -1);
    else if (!(lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)))
      luaL_error(L, WHO ": limits.%s must be a number (or false)", k);
    if (v < 0) luaL_error(L, WHO ": limits.%s must be >= 0", k);
    if (!strcmp(k, "tokens")) lim->tokens = (long)v;
    else if (!strcmp(k, "cost")) lim->cost_usd = v;
    else if (!strcmp(k, "wall_time")) lim->wall_s = v;
    else luaL_error(L, WHO ": unknown limit '%s' (tokens, cost or wall_time)", k);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

static void add_prices(lua_State *L, struct pal_box *b) {
  int t = lua_getfield(L, IDX_OPTS, "prices");
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  if (t != LUA_TTABLE)
    luaL_error(L, WHO ": 'prices' must be {[model] = {input=, output=, cached=}} "
                  "(USD per 1M tokens)");
  int pi = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, pi)) {
    if (lua_type(L, -2) != LUA_TSTRING || !lua_istable(L, -1))
      luaL_error(L, WHO ": prices entries are [model] = {input=, output=}");
    const char *model = lua_tostring(L, -2);
    lua_getfield(L, -1, "input");
    lua_getfield(L, -2, "output");
    lua_getfield(L, -3, "cached");
    double in = luaL_optnumber(L, -3, 0), out = luaL_optnumber(L, -2, 0);
    double cached = luaL_optnumber(L, -1, in);
    lua_pop(L, 3);
    int rc = lc_pal_set_price(b->p, model, in, out, cached);
    if (rc == LC_ENOMEM) luaL_error(L, "out of memory");
    if (rc) luaL_error(L, WHO ": prices[%s]: prices must be >= 0", model);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* luact.pal{model=, question=, ...} -> result table. A run that fails
 * (no working program, LLM error, a limit) is a result; misuse raises. */
static int l_pal(lua_State *L) {
  luaL_checktype(L, IDX_OPTS, LUA_TTABLE);
  lua_settop(L, IDX_OPTS);
  lc_l_check_opts(L, IDX_OPTS, "luact.pal");
  struct lc_task *task = lc_task_check(L, WHO);
  struct pal_box *b = lua_newuserdatauv(L, sizeof *b, 0); /* opts box */
  memset(b, 0, sizeof *b);
  luaL_setmetatable(L, PAL_MT);
  lua_toclose(L, IDX_BOX);
  b->task = task;
  b->wait.cancel = box_cancel;
  lua_getfield(L, IDX_OPTS, "on_attempt"); /* opts box cb */
  if (!lua_isnil(L, IDX_CB) && !lua_isfunction(L, IDX_CB))
    return luaL_error(L, WHO ": 'on_attempt' must be a function");

  if (!(b->req = lc_calloc(1, sizeof *b->req))) return luaL_error(L, "out of memory");
  struct lc_pal_config cfg;
  lc_pal_config_default(&cfg);
  lc_l_parse_llm_common(L, IDX_OPTS, WHO, b->req, &cfg.llm);
  lc_l_effect_src(L, task, &cfg.llm.effect); /* journaled as this task's effects */
  b->req->stream = lc_l_opt_bool(L, IDX_OPTS, WHO, "stream", 0);
  cfg.question = lc_l_opt_string(L, IDX_OPTS, WHO, "question", 0);
  if (!cfg.question || !*cfg.question)
    return luaL_error(L, WHO ": 'question' is required (a string)");
  cfg.instructions = lc_l_opt_string(L, IDX_OPTS, WHO, "instructions", 0);
  int t = lua_getfield(L, IDX_OPTS, "repairs");
  if (t != LUA_TNIL) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 || lua_tointeger(L, -1) > 100)
      return luaL_error(L, WHO ": 'repairs' must be an integer from 0 to 100");
    cfg.repairs = (int)lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  parse_sandbox(L, &cfg.sandbox);
  parse_limits(L, &cfg.limits);
  if (lua_getfield(L, IDX_OPTS, "input") != LUA_TNIL) {
    char err[256];
    int rc = lc_conv_to_json(L, -1, &b->input, err, sizeof err);
    if (rc == LC_ENOMEM) return luaL_error(L, "out of memory");
    if (rc) return luaL_error(L, WHO ": 'input' cannot be passed to the program: %s", err);
    cfg.input = b->input;
  }
  lua_pop(L, 1);
  t = lua_getfield(L, IDX_OPTS, "examples"); /* opts box cb examples */
  if (t == LUA_TTABLE) {
    size_t n = lua_rawlen(L, -1);
    if (n == 0)
      return luaL_error(L, WHO ": 'examples' must not be empty (omit it for the built-in ones)");
    /* Scratch array owned by Lua, so a raise below frees it. */
    const char **ex = lua_newuserdatauv(L, n * sizeof *ex, 0);
    for (size_t i = 1; i <= n; i++) {
      if (lua_rawgeti(L, -2, (lua_Integer)i) != LUA_TSTRING)
        return luaL_error(L, WHO ": examples[%d] must be a string", (int)i);
      ex[i - 1] = lua_tostring(L, -1);
      lua_pop(L, 1); /* the examples table keeps it */
    }
    cfg.examples = ex;
    cfg.n_examples = n;
  } else if (t != LUA_TNIL) {
    return luaL_error(L, WHO ": 'examples' must be a list of strings");
  } else {
    lua_pushnil(L); /* keep the stack shape: examples scratch */
  }

  /* Live lines: verbose wins; else on a terminal unless --quiet. */
  struct lc_run_opts ro;
  lc_react_get_run_opts(L, &ro);
  int verbose = lua_getfield(L, IDX_OPTS, "verbose");
  lua_pop(L, 1);
  b->live = verbose != LUA_TNIL ? lc_l_opt_bool(L, IDX_OPTS, WHO, "verbose", 0) : (!ro.quiet && isatty(2));

  struct lc_pal_host host = {.on_attempt = host_on_attempt, .done = host_done, .ud = b};
  char err[512];
  cfg.base = b->req;
  b->req = NULL; /* the engine owns it now, also on failure */
  int rc = lc_pal_new(&cfg, &host, &b->p, err, sizeof err);
  if (rc == LC_ENOMEM) return luaL_error(L, "out of memory");
  if (rc) return luaL_error(L, WHO ": %s", err);
  lua_settop(L, IDX_CB); /* examples: copied by the engine */
  cJSON_Delete(b->input); /* copied too */
  b->input = NULL;
  add_prices(L, b);
  if (ro.trace_path && !(b->trace = fopen(ro.trace_path, "a")))
    return luaL_error(L, WHO ": cannot open trace file %s", ro.trace_path);
  if (lc_pal_start(b->p, lc_sched_loop(lc_sched_get(L)))) return luaL_error(L, "out of memory");
  lc_task_wait(task, &b->wait);
  return lua_yieldk(L, 0, 0, pal_k);
}

/* ---- luact.pal.run: one program, no model ---- */

#define RUN_MT "luact.PalCodeRun"

/* Holds the C resources of one run so that a raise while results are
 * being pushed leaks nothing (STYLE 3: owned by Lua before any lua_*). */
struct rbox {
  struct lc_sandbox_result res;
  cJSON *input;
};

static void rbox_release(struct rbox *b) {
  lc_sandbox_result_free(&b->res);
  cJSON_Delete(b->input);
  b->input = NULL;
}

static int rbox_gc(lua_State *L) {
  rbox_release(luaL_checkudata(L, 1, RUN_MT));
  return 0;
}

/* run(code [, opts]) -> {ok=true, value=, output=, instructions=, memory=,
 * elapsed_ms=} | nil, message, code, {output=, traceback=, ...}: the
 * program as luact.pal runs it (its return value, else solution()).
 * opts: memory, instructions, time (s), output, input, allow_nil. Misuse
 * raises. Blocks for at most about opts.time. */
static int l_run(lua_State *L) {
  size_t len;
  const char *code = luaL_checklstring(L, 1, &len);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  struct rbox *b = lua_newuserdatauv(L, sizeof *b, 0); /* code opts box */
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
        if (i == 0) o.mem_limit = (size_t)v;
        else if (i == 1) o.instr_limit = (long)v;
        else if (i == 2) o.wall_ms = v * 1000.0;
        else o.output_limit = (size_t)v;
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
  int rc = lc_pal_run_code(code, len, &o, b->input, nil_ok, &b->res);
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
  rbox_release(b); /* now rather than at the next GC */
  return ok ? 1 : 4;
}

static int l_pal_call(lua_State *L) {
  lua_remove(L, 1); /* the luact.pal table */
  return l_pal(L);
}

static const luaL_Reg box_meta[] = {{"__gc", box_gc}, {"__close", box_gc}, {NULL, NULL}};

/* [-0, +1, e] Pushes luact.pal: callable like luact.react (luact.pal{...})
 * and holding run(code [, opts]). */
int lc_open_pal(lua_State *L) {
  if (luaL_newmetatable(L, PAL_MT)) luaL_setfuncs(L, box_meta, 0);
  lua_pop(L, 1);
  if (luaL_newmetatable(L, RUN_MT)) {
    lua_pushcfunction(L, rbox_gc);
    lua_setfield(L, -2, "__gc");
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
