/* l_engine.c: the Lua glue shared by the engine bindings (see l_engine.h). */
#include "l_engine.h"

#include <lauxlib.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "conv.h"
#include "engine.h"
#include "l_effect.h"
#include "l_luact.h"
#include "l_opts.h"
#include "l_status.h"
#include "l_state.h"
#include "lc.h"
#include "llm.h"
#include "llm_call.h"
#include "secrets.h"

#define RUNOPTS_MT "luact.RunOpts"

static char runopts_key;

/* ---- the command line's settings ---- */

struct runopts_box {
  int quiet;
  char *trace_path;
  char *history;
};

static int runopts_gc(lua_State *L) {
  struct runopts_box *o = luaL_checkudata(L, 1, RUNOPTS_MT);
  lc_free(o->trace_path);
  o->trace_path = NULL;
  lc_free(o->history);
  o->history = NULL;
  return 0;
}

void lc_l_set_run_opts(lua_State *L, const struct lc_run_opts *o) {
  struct runopts_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  if (luaL_newmetatable(L, RUNOPTS_MT)) {
    lua_pushcfunction(L, runopts_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  b->quiet = o->quiet;
  if (o->trace_path && !(b->trace_path = lc_strdup(o->trace_path)))
    luaL_error(L, "out of memory");
  if (o->history && !(b->history = lc_strdup(o->history))) luaL_error(L, "out of memory");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &runopts_key);
}

void lc_l_get_run_opts(lua_State *L, struct lc_run_opts *o) {
  memset(o, 0, sizeof *o);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &runopts_key);
  struct runopts_box *b = luaL_testudata(L, -1, RUNOPTS_MT);
  if (b) {
    o->quiet = b->quiet;
    o->trace_path = b->trace_path;
    o->history = b->history;
  }
  lua_pop(L, 1); /* the registry keeps it */
}

/* ---- the box ---- */

void lc_l_run_close(struct lc_l_run *run) {
  if (run->closed) return;
  run->closed = 1;
  lc_l_intr_unlink(&run->intr);
  if (run->cls) run->cls->close(run); /* stops the LLM call and the timers */
  if (run->req) {
    lc_llm_request_delete(run->req);
    run->req = NULL;
  }
  if (run->trace) fclose(run->trace);
  run->trace = NULL;
  lc_buf_free(&run->line);
}

/* __gc and __close of every run box; upvalue 1 is its class. */
static int run_gc(lua_State *L) {
  const struct lc_l_run_class *cls = lua_touserdata(L, lua_upvalueindex(1));
  lc_l_run_close(luaL_checkudata(L, 1, cls->mt));
  return 0;
}

void lc_l_run_register(lua_State *L, const struct lc_l_run_class *cls) {
  if (luaL_newmetatable(L, cls->mt)) {
    lua_pushlightuserdata(L, (void *)cls);
    lua_pushcclosure(L, run_gc, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__gc");
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
}

/* The scheduler calls this when the task is killed: the close comes with
 * the task's to-be-closed variables right after; nothing to do first. */
static void run_cancel(struct lc_wait *w) { (void)w; }

void *lc_l_run_new(lua_State *L, const struct lc_l_run_class *cls, size_t size,
                   struct lc_llm_opts *llm) {
  const char *who = cls->who;
  luaL_checktype(L, LC_L_RUN_OPTS, LUA_TTABLE);
  lua_settop(L, LC_L_RUN_OPTS);
  lc_l_check_opts(L, LC_L_RUN_OPTS, who);
  struct lc_task *task = lc_task_check(L, who);
  struct lc_l_run *run = lua_newuserdatauv(L, size, 0); /* opts box */
  memset(run, 0, size);
  luaL_setmetatable(L, cls->mt);
  lua_toclose(L, LC_L_RUN_BOX);
  run->cls = cls;
  run->task = task;
  run->wait.cancel = run_cancel;
  if (!(run->req = lc_calloc(1, sizeof *run->req))) luaL_error(L, "out of memory");
  lc_l_parse_llm_common(L, LC_L_RUN_OPTS, who, run->req, llm);
  lc_l_effect_src(L, task, &llm->effect); /* the engine's calls: this task's effects */
  run->req->stream = lc_l_opt_bool(L, LC_L_RUN_OPTS, who, "stream", 0);
  return run;
}

/* ---- options every engine reads ---- */

void lc_l_run_texts(lua_State *L, const char *who, const char **question,
                    const char **instructions) {
  *question = lc_l_opt_string(L, LC_L_RUN_OPTS, who, "question", 0);
  if (!*question || !**question) luaL_error(L, "%s: 'question' is required (a string)", who);
  *instructions = lc_l_opt_string(L, LC_L_RUN_OPTS, who, "instructions", 0);
}

void lc_l_run_examples(lua_State *L, const char *who, int allow_empty,
                       const char *const **ex, size_t *n) {
  *ex = NULL;
  *n = 0;
  int t = lua_getfield(L, LC_L_RUN_OPTS, "examples");
  if (t == LUA_TNIL) {
    lua_pushnil(L); /* keep the stack shape: examples scratch */
    return;
  }
  if (t != LUA_TTABLE) luaL_error(L, "%s: 'examples' must be a list of strings", who);
  size_t k = lua_rawlen(L, -1);
  if (k == 0 && !allow_empty)
    luaL_error(L, "%s: 'examples' must not be empty (omit it for the built-in ones)", who);
  /* Scratch array owned by Lua, so a raise below frees it. */
  const char **v = lua_newuserdatauv(L, (k ? k : 1) * sizeof *v, 0);
  for (size_t i = 1; i <= k; i++) {
    if (lua_rawgeti(L, -2, (lua_Integer)i) != LUA_TSTRING)
      luaL_error(L, "%s: examples[%d] must be a string", who, (int)i);
    v[i - 1] = lua_tostring(L, -1);
    lua_pop(L, 1); /* the examples table keeps it */
  }
  *ex = v;
  *n = k;
}

/* Every limit an engine may accept; which ones it does is its option set. */
static const struct {
  const char *name;
  int is_long;
  size_t off;
} limit_fields[] = {
    {"steps", 1, offsetof(struct lc_budget_limits, steps)},
    {"tokens", 1, offsetof(struct lc_budget_limits, tokens)},
    {"cost", 0, offsetof(struct lc_budget_limits, cost_usd)},
    {"wall_time", 0, offsetof(struct lc_budget_limits, wall_s)},
    {"max_invalid", 1, offsetof(struct lc_budget_limits, max_invalid)},
    {"repeat", 1, offsetof(struct lc_budget_limits, repeat)},
    {"max_repeat", 1, offsetof(struct lc_budget_limits, repeat)},
    {"tool_calls", 1, offsetof(struct lc_budget_limits, tool_calls)},
};

void lc_l_run_limits(lua_State *L, const char *who, const char *set,
                     struct lc_budget_limits *lim) {
  int t = lua_getfield(L, LC_L_RUN_OPTS, "limits");
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  if (t != LUA_TTABLE) luaL_error(L, "%s: 'limits' must be a table", who);
  int li = lua_gettop(L);
  lc_l_check_opts(L, li, set); /* only this engine's names from here on */
  lua_pushnil(L);
  while (lua_next(L, li)) {
    const char *k = lua_tostring(L, -2); /* a string: checked above */
    double v = 0; /* false turns a limit off, like 0 */
    if (lua_type(L, -1) == LUA_TNUMBER) v = lua_tonumber(L, -1);
    else if (!(lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)))
      luaL_error(L, "%s: limits.%s must be a number (or false)", who, k);
    if (!(v >= 0)) luaL_error(L, "%s: limits.%s must be >= 0", who, k); /* NaN too */
    size_t i = 0;
    while (i < LC_ARRAY_LEN(limit_fields) && strcmp(k, limit_fields[i].name)) i++;
    if (i == LC_ARRAY_LEN(limit_fields)) luaL_error(L, "%s: unknown limit '%s'", who, k);
    char *f = (char *)lim + limit_fields[i].off;
    char what[96];
    snprintf(what, sizeof what, "%s: limits.%s", who, k);
    /* Counts are cast to long: a range check first (1e300, inf). */
    if (limit_fields[i].is_long) *(long *)f = lc_lua_checklong(L, v, 0, LONG_MAX, what);
    else if (!(v <= 1e300)) luaL_error(L, "%s must be a finite number", what);
    else *(double *)f = v;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

void lc_l_run_prices(lua_State *L, const char *who, struct lc_engine *e) {
  int t = lua_getfield(L, LC_L_RUN_OPTS, "prices");
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  if (t != LUA_TTABLE)
    luaL_error(L, "%s: 'prices' must be {[model] = {input=, output=, cached=}} "
                  "(USD per 1M tokens)", who);
  int pi = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, pi)) {
    if (lua_type(L, -2) != LUA_TSTRING || !lua_istable(L, -1))
      luaL_error(L, "%s: prices entries are [model] = {input=, output=}", who);
    const char *model = lua_tostring(L, -2);
    lua_getfield(L, -1, "input");
    lua_getfield(L, -2, "output");
    lua_getfield(L, -3, "cached");
    double in = luaL_optnumber(L, -3, 0), out = luaL_optnumber(L, -2, 0);
    double cached = luaL_optnumber(L, -1, in);
    lua_pop(L, 3);
    int rc = lc_engine_set_price(e, model, in, out, cached);
    if (rc == LC_ENOMEM) luaL_error(L, "out of memory");
    if (rc) luaL_error(L, "%s: prices[%s]: prices must be >= 0", who, model);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

void lc_l_run_output(lua_State *L, struct lc_l_run *run, struct lc_llm_opts *llm) {
  const char *who = run->cls->who;
  struct lc_run_opts ro;
  lc_l_get_run_opts(L, &ro);
  int verbose = lua_getfield(L, LC_L_RUN_OPTS, "verbose");
  lua_pop(L, 1);
  run->live = verbose != LUA_TNIL ? lc_l_opt_bool(L, LC_L_RUN_OPTS, who, "verbose", 0)
                                  : (!ro.quiet && isatty(2));
  if (run->live) lc_l_status_attach(L, llm); /* a terminal and no --quiet only */
  if (ro.trace_path && !(run->trace = fopen(ro.trace_path, "a")))
    luaL_error(L, "%s: cannot open trace file %s", who, ro.trace_path);
}

/* ---- from the engine ---- */

struct lc_buf *lc_l_run_trace_line(struct lc_l_run *run) {
  if (!run->trace) return NULL;
  lc_buf_reset(&run->line);
  return &run->line;
}

void lc_l_run_trace(struct lc_l_run *run) {
  struct lc_buf *line = &run->line;
  if (!run->trace || !line->data) return;
  /* A tool result or a model reply may carry a key (secrets.h). */
  line->len = lc_secrets_scrub(line->data, line->len, LC_SCRUB_JSON);
  fwrite(line->data, 1, line->len, run->trace);
  fflush(run->trace); /* as it happens: a crash keeps what was done */
}

void lc_l_run_wake(struct lc_l_run *run) { lc_task_wake(run->task, &run->wait); }

/* l_chat.c, on Ctrl-C: the engine's LLM call in flight ends with
 * "cancelled", and the run with it (failed, with that reason). */
static int run_interrupt(struct lc_l_intr *i) {
  struct lc_l_run *run = (struct lc_l_run *)((char *)i - offsetof(struct lc_l_run, intr));
  struct lc_engine *e = run->cls && run->cls->engine ? run->cls->engine(run) : NULL;
  return e && e->call ? lc_llm_call_interrupt(e->call, "interrupted (Ctrl-C)") : 0;
}

static void run_link(struct lc_l_run *run) {
  run->intr.fn = run_interrupt;
  lc_l_intr_link(&run->intr);
}

/* ---- the continuation ---- */

/* Pump, deliver items to the callback, wait; at the end the result. ctx
 * is the class. */
static int run_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  const struct lc_l_run_class *cls = (const struct lc_l_run_class *)ctx;
  struct lc_l_run *run = luaL_checkudata(L, LC_L_RUN_BOX, cls->mt);
  for (;;) {
    if (run->closed) return luaL_error(L, "%s: the run was cancelled", cls->who);
    if (cls->pump) cls->pump(L, run);
    if (lua_isfunction(L, cls->cb_idx) && run->delivered < cls->count(run)) {
      lua_pushvalue(L, cls->cb_idx);
      cls->push_item(L, run, run->delivered++);
      lua_callk(L, 1, 0, ctx, run_k); /* the callback may itself wait */
      continue;
    }
    if (run->done) break;
    run_link(run);
    lc_task_wait(run->task, &run->wait);
    return lua_yieldk(L, 0, ctx, run_k);
  }
  cls->push_result(L, run);
  lc_l_run_close(run);
  return 1;
}

int lc_l_run_wait(lua_State *L, struct lc_l_run *run) {
  run_link(run);
  lc_task_wait(run->task, &run->wait);
  return lua_yieldk(L, 0, (lua_KContext)run->cls, run_k);
}

/* ---- result fields ---- */

void lc_l_run_push_usage(lua_State *L, const struct lc_engine_usage *u, int extra) {
  lc_l_push_usage(L, u->input, u->output, u->cached, u->llm_calls, extra);
}

void lc_l_run_set_cost(lua_State *L, const struct lc_engine_usage *u) {
  lc_l_set_cost(L, u->cost_usd, u->cost_unknown);
}

void lc_l_run_push_items(lua_State *L, struct lc_l_run *run, size_t n) {
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    run->cls->push_item(L, run, i);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lc_conv_push_array_mt(L);
  lua_setmetatable(L, -2);
}
