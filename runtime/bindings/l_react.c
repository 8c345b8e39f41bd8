/* l_react.c: luact.react{...}: a waiting binding over the ReAct engine
 * (react.c). The engine runs on the loop; this task waits in its
 * continuation, which is also where every piece of Lua work happens: the
 * tool calls of a batch are spawned as child tasks (tool:call(args)), their
 * results collected and handed back, and steps passed to on_step. The run
 * lives in a "luact.ReactRun" userdata marked to-be-closed, so a normal
 * return, an error and a kill all end it (LLM call, timers, tool tasks)
 * through one idempotent close. */
#include "l_react.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "l_engine.h"
#include "l_luact.h"
#include "l_status.h"
#include "l_opts.h"
#include "lc.h"
#include "llm.h"
#include "llm_call.h"
#include "react.h"
#include "sched.h"
#include "trajectory.h"

#define REACT_MT "luact.ReactRun"
#define ACTION_MT "luact.ReactAction"

/* The state's shared actions (actions.h "Sharing"): a weak-keyed table
 * luact.tool -> action box, and the state's one `finish` box. */
static char actions_key;
static char finish_key;

/* ---- shared actions ---- */

/* One reference to a shared action, held by Lua: the cache's (or the
 * finish slot's). User value 1 is the tool's params value the action was
 * made from. A run holds references of its own, so collecting the box
 * (the tool was collected, or changed and made again) never pulls an
 * action from under a run. */
struct action_box {
  struct lc_action *x;
};

static int action_box_gc(lua_State *L) {
  struct action_box *b = luaL_checkudata(L, 1, ACTION_MT);
  lc_action_unref(b->x);
  b->x = NULL;
  return 0;
}

/* [-0, +1, m] An empty box (x NULL): made before the action it holds. */
static struct action_box *action_box_new(lua_State *L) {
  struct action_box *b = lua_newuserdatauv(L, sizeof *b, 1);
  b->x = NULL;
  luaL_setmetatable(L, ACTION_MT);
  return b;
}

/* [-0, +0, m] The state's `finish`, made at its first run. Borrowed: the
 * registry keeps it. */
static struct lc_action *state_finish(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &finish_key) == LUA_TUSERDATA) {
    struct action_box *b = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return b->x;
  }
  lua_pop(L, 1);
  struct action_box *b = action_box_new(L);
  if (lc_action_new_finish(&b->x)) luaL_error(L, "out of memory");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &finish_key);
  return b->x;
}

/* [-0, +0, e] The shared action of the luact.tool at ti, whose name,
 * description and effect the caller has read: the cached one while they
 * and params (the same value: a table by identity, as tool.lua's
 * schema_of) are unchanged, else a new one, converted from params and
 * cached in place of the old (which lives on in the runs that hold it).
 * Borrowed: the cache keeps it while the tool lives and stays unchanged. */
static struct lc_action *tool_action(lua_State *L, int ti, const char *name,
                                     const char *desc, enum lc_effect eff) {
  if (!desc) desc = "";
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &actions_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &actions_key);
  }
  int cache = lua_gettop(L);
  lua_getfield(L, ti, "params"); /* cache params */
  int pi = cache + 1;
  lua_pushvalue(L, ti);
  if (lua_rawget(L, cache) == LUA_TUSERDATA) { /* cache params box */
    struct action_box *b = lua_touserdata(L, -1);
    lua_getiuservalue(L, -1, 1);
    struct lc_action *x = b->x;
    if (x && lua_rawequal(L, -1, pi) && x->effect == eff && !strcmp(x->name, name) &&
        !strcmp(x->description, desc)) {
      lua_settop(L, cache - 1);
      return x;
    }
  }
  lua_settop(L, pi);
  struct action_box *b = action_box_new(L); /* cache params box */
  cJSON *schema = NULL;
  char err[512];
  if (!lua_isnil(L, pi) && lc_conv_to_json(L, pi, &schema, err, sizeof err))
    luaL_error(L, "luact.react: tool %s: params: %s", name, err);
  if (lc_action_new(name, desc, schema, eff, &b->x)) luaL_error(L, "out of memory");
  lua_pushvalue(L, pi);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, ti);
  lua_pushvalue(L, -2);
  lua_rawset(L, cache); /* cache[tool] = box */
  struct lc_action *x = b->x;
  lua_settop(L, cache - 1);
  return x;
}

/* One tool call of the batch running as a child task. */
struct kid {
  struct lc_task *task;
  size_t index; /* in the engine's batch */
  int finished;
  struct react_box *box;
};

struct react_box {
  struct lc_l_run run; /* first (l_engine.h) */
  struct lc_react *r;
  struct lc_sched *s;
  const struct lc_react_call *calls; /* the batch to spawn (engine-owned) */
  size_t n_calls;
  struct kid *kids;
  size_t n_kids, kids_left;
  struct lc_buf text; /* a tool result as JSON, reused (zeroed = empty) */
};

static void kids_release(struct react_box *b) {
  for (size_t i = 0; i < b->n_kids; i++) {
    struct kid *k = &b->kids[i];
    if (!k->task) continue;
    lc_task_on_done(k->task, NULL, NULL);
    lc_task_release(k->task); /* kills it first if it still runs */
    k->task = NULL;
  }
  lc_free(b->kids);
  b->kids = NULL;
  b->n_kids = b->kids_left = 0;
}

/* The class's close (l_engine.h): the tool tasks, then the run. */
static void react_close(struct lc_l_run *run) {
  struct react_box *b = (struct react_box *)run;
  kids_release(b);
  lc_react_free(b->r); /* stops the LLM call and the timers */
  b->r = NULL;
  b->calls = NULL;
  lc_buf_free(&b->text);
}

/* ---- engine callbacks (from the loop) ---- */

static int host_run_tools(void *ud, struct lc_react *r, const struct lc_react_call *calls,
                          size_t n) {
  struct react_box *b = ud;
  b->calls = calls;
  b->n_calls = n;
  lc_l_run_wake(&b->run);
  return 0;
}

static void host_cancel_tools(void *ud, struct lc_react *r) {
  struct react_box *b = ud;
  b->calls = NULL;
  b->n_calls = 0;
  kids_release(b);
}

static void host_on_step(void *ud, struct lc_react *r, const struct lc_traj_step *s) {
  struct react_box *b = ud;
  if (b->run.live) {
    lc_l_status_clear();
    /* The trajectory's line, plus the observation abbreviated when it is
     * not an error (errors are already on the line). */
    char *line = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&line, &len);
    if (m) {
      lc_traj_step_print(m, s);
      fclose(m);
      if (len && line[len - 1] == '\n') line[--len] = '\0';
      fputs(line, stderr);
      free(line);
      if (!s->is_error && s->observation) {
        fputs("  -> ", stderr);
        lc_l_put_flat(stderr, s->observation, 100);
      }
      fputc('\n', stderr);
    }
  }
  struct lc_buf *l = lc_l_run_trace_line(&b->run);
  if (l && lc_traj_step_trace_line(s, l) == 0) lc_l_run_trace(&b->run);
  lc_l_run_wake(&b->run); /* on_step runs from the continuation */
}

static void host_done(void *ud, struct lc_react *r) {
  struct react_box *b = ud;
  b->run.done = 1;
  const struct lc_trajectory *t = lc_react_trajectory(r);
  if (b->run.live) {
    lc_l_status_clear();
    lc_trajectory_print_end(stderr, t);
  }
  struct lc_buf *l = lc_l_run_trace_line(&b->run);
  if (l && lc_trajectory_trace_end(t, l) == 0) lc_l_run_trace(&b->run);
  lc_l_run_wake(&b->run);
}

/* Called by the scheduler when a tool task finishes. */
static void kid_done(struct lc_task *t, void *ud) {
  struct kid *k = ud;
  k->finished = 1;
  lc_l_run_wake(&k->box->run);
}

/* ---- Lua side ---- */

#define IDX_OPTS LC_L_RUN_OPTS
#define IDX_TOOLS 3 /* name -> luact.tool object */
#define IDX_CB 4    /* on_step or nil */

/* [-0, +1, m] One trajectory step as a table. */
static void push_step(lua_State *L, const struct lc_traj_step *s) {
  lua_createtable(L, 0, 10);
  lc_l_set_int(L, "index", s->index);
  lc_l_set_str(L, "thought", s->thought);
  lc_l_set_str(L, "action", s->action);
  if (s->args || s->args_json) {
    /* The tree lives in a box: pushing it may raise (out of memory). */
    struct lc_conv_box *box = lc_conv_box_push(L);
    if (!(box->tree = lc_traj_step_args(s))) luaL_error(L, "out of memory");
    lc_conv_push_json(L, box->tree);
    lc_conv_box_clear(box);
    lua_remove(L, -2);
    lua_setfield(L, -2, "args");
  }
  lc_l_set_str(L, "observation", s->observation);
  lua_pushboolean(L, s->is_error);
  lua_setfield(L, -2, "is_error");
  lc_l_set_int(L, "tokens_in", s->tokens_in);
  lc_l_set_int(L, "tokens_out", s->tokens_out);
  lc_l_set_num(L, "cost", s->cost_usd);
  lc_l_set_num(L, "latency_ms", s->latency_ms);
}

static size_t react_count(struct lc_l_run *run) {
  return lc_react_trajectory(((struct react_box *)run)->r)->n;
}

static void react_push_item(lua_State *L, struct lc_l_run *run, size_t i) {
  push_step(L, &lc_react_trajectory(((struct react_box *)run)->r)->steps[i]);
}

/* [-0, +1, m] The run's result table. */
static void react_push_result(lua_State *L, struct lc_l_run *run) {
  struct lc_react *r = ((struct react_box *)run)->r;
  const struct lc_trajectory *t = lc_react_trajectory(r);
  const struct lc_react_usage *u = lc_react_usage(r);
  lua_createtable(L, 0, 8);
  lc_l_set_str(L, "answer", t->answer);
  lc_l_set_str(L, "status", lc_traj_status_name(t->status));
  lc_l_set_str(L, "reason", lc_trajectory_reason(t));
  if (lc_react_limit(r) != LC_LIMIT_NONE) lc_l_set_str(L, "limit", lc_limit_name(lc_react_limit(r)));
  lc_l_run_push_items(L, run, t->n);
  lua_setfield(L, -2, "steps");
  lc_l_run_push_usage(L, &u->llm, 3);
  lc_l_set_int(L, "tool_calls", u->tool_calls);
  lc_l_set_int(L, "tool_errors", u->tool_errors);
  lc_l_set_int(L, "invalid", u->invalid);
  lua_setfield(L, -2, "usage");
  lc_l_run_set_cost(L, &u->llm);
}

/* Spawns one child task per call of the pending batch: tool:call(args),
 * each started at once (lc_task_start). A kid keeps the call's identity:
 * its path names the tool's effect in the journal, and killing it cancels
 * the call (run cancelled, wall-time limit). */
static void spawn_batch(lua_State *L, struct react_box *b) {
  size_t n = b->n_calls;
  const struct lc_react_call *calls = b->calls;
  b->calls = NULL;
  b->n_calls = 0;
  kids_release(b);
  b->kids = lc_calloc(n, sizeof *b->kids);
  if (!b->kids) luaL_error(L, "out of memory");
  b->n_kids = n;
  for (size_t i = 0; i < n; i++) {
    struct kid *k = &b->kids[i];
    k->box = b;
    k->index = calls[i].index;
    if (lua_getfield(L, IDX_TOOLS, calls[i].name) == LUA_TNIL)
      luaL_error(L, "luact.react: internal error: no tool '%s'", calls[i].name);
    lua_getfield(L, -1, "call"); /* tool call */
    lua_insert(L, -2);           /* call tool */
    lc_conv_push_json(L, calls[i].args); /* call tool args */
    if (lc_sched_spawn(b->s, L, 2, b->run.task, &k->task)) luaL_error(L, "out of memory");
    lc_task_on_done(k->task, kid_done, k);
    b->kids_left++;
    /* Now rather than next pass: a tool that never waits is done before
     * the next call starts (the order queued kids ran in), and collect
     * hands its result over without a round trip through the loop. */
    lc_task_start(k->task);
  }
}

/* Without the scheduler's traceback: the model needs the message. */
static void push_clean_error(lua_State *L, int idx) {
  size_t n;
  const char *m = lua_tolstring(L, idx, &n);
  if (!m) {
    lua_pushliteral(L, "the tool failed");
    return;
  }
  const char *tb = strstr(m, "\nstack traceback:");
  lua_pushlstring(L, m, tb ? (size_t)(tb - m) : n);
}

/* Hands every finished tool task's result to the engine, then releases it. */
static void collect(lua_State *L, struct react_box *b) {
  for (size_t i = 0; i < b->n_kids; i++) {
    struct kid *k = &b->kids[i];
    if (!k->task || !k->finished) continue;
    lua_State *co = lc_task_thread(k->task);
    int n = lua_gettop(co);
    int st = lc_task_status(k->task);
    luaL_checkstack(L, n + 4, "luact.react");
    int base = lua_gettop(L);
    lua_xmove(co, L, n); /* the results, moved to our stack */
    lc_task_on_done(k->task, NULL, NULL);
    lc_task_release(k->task);
    k->task = NULL;
    b->kids_left--;
    int ok = 0;
    const char *code = NULL;
    if (st != LUA_OK) {
      if (n) push_clean_error(L, base + n);
      else lua_pushliteral(L, "the tool failed");
      code = "tool_error";
    } else if (n >= 1 && !lua_isnil(L, base + 1)) {
      ok = 1;
      if (lua_type(L, base + 1) == LUA_TSTRING) {
        lua_pushvalue(L, base + 1);
      } else {
        /* The one encode of the result: text straight from the Lua value
         * into the box's buffer (Lua-owned, so a raise leaks nothing). */
        char err[256];
        lc_buf_reset(&b->text);
        int rc = lc_conv_to_text(L, base + 1, &b->text, err, sizeof err);
        if (rc == LC_ENOMEM) luaL_error(L, "out of memory");
        if (rc) {
          ok = 0;
          lua_pushfstring(L, "the tool returned a value that cannot be shown "
                             "to the model: %s", err);
          code = "bad_result";
        } else {
          lua_pushlstring(L, b->text.data, b->text.len);
        }
      }
    } else {
      if (n >= 2 && !lua_isnil(L, base + 2)) push_clean_error(L, base + 2);
      else lua_pushliteral(L, "the tool failed without a message");
      code = n >= 3 && lua_type(L, base + 3) == LUA_TSTRING ? lua_tostring(L, base + 3)
                                                             : "tool_error";
    }
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    if (lc_react_tool_result(b->r, k->index, ok, text, len, code) == LC_ENOMEM)
      luaL_error(L, "out of memory");
    lua_settop(L, base);
  }
  if (b->kids && b->kids_left == 0) kids_release(b);
}

/* The class's pump (l_engine.h): spawn the batch, collect results. */
static void react_pump(lua_State *L, struct lc_l_run *run) {
  struct react_box *b = (struct react_box *)run;
  if (b->calls) spawn_batch(L, b);
  collect(L, b);
}

/* The engine base is lc_react's first member (engine.h). */
static struct lc_engine *react_engine(struct lc_l_run *run) {
  return (struct lc_engine *)((struct react_box *)run)->r;
}

static const struct lc_l_run_class react_class = {
    .mt = REACT_MT,
    .who = "luact.react",
    .cb_idx = IDX_CB,
    .pump = react_pump,
    .count = react_count,
    .push_item = react_push_item,
    .push_result = react_push_result,
    .close = react_close,
    .engine = react_engine,
};

/* ---- parsing ---- */

static enum lc_effect parse_effect(lua_State *L, int ti, const char *name) {
  lua_getfield(L, ti, "effect");
  const char *e = lua_tostring(L, -1);
  enum lc_effect v = LC_EFFECT_PURE;
  if (e && !strcmp(e, "idempotent")) v = LC_EFFECT_IDEMPOTENT;
  else if (e && !strcmp(e, "at_most_once")) v = LC_EFFECT_AT_MOST_ONCE;
  else if (e && strcmp(e, "pure")) luaL_error(L, "luact.react: tool %s: bad effect '%s'", name, e);
  lua_pop(L, 1);
  return v;
}

/* Declares every luact.tool of opts.tools to the engine (their shared
 * actions) and fills the name -> tool table at IDX_TOOLS. */
static void add_tools(lua_State *L, struct react_box *b) {
  int t = lua_getfield(L, IDX_OPTS, "tools");
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  if (t != LUA_TTABLE) luaL_error(L, "luact.react: 'tools' must be a list of luact.tool objects");
  int list = lua_gettop(L);
  size_t n = lua_rawlen(L, list);
  for (size_t i = 1; i <= n; i++) {
    lua_rawgeti(L, list, (lua_Integer)i);
    int ti = lua_gettop(L);
    int isTool = 0;
    if (luaL_getmetafield(L, ti, "__name") == LUA_TSTRING) {
      isTool = !strcmp(lua_tostring(L, -1), "luact.Tool");
      lua_pop(L, 1);
    }
    if (!isTool) luaL_error(L, "luact.react: tools[%d] is not a luact.tool object", (int)i);
    lua_getfield(L, ti, "name");
    const char *name = lua_tostring(L, -1);
    if (!name) luaL_error(L, "luact.react: tools[%d] has no name", (int)i);
    lua_getfield(L, ti, "description");
    const char *desc = lua_tostring(L, -1);
    enum lc_effect eff = parse_effect(L, ti, name);
    char err[512];
    struct lc_action *x = tool_action(L, ti, name, desc, eff);
    int rc = lc_react_add_action(b->r, x, err, sizeof err); /* the run's own ref */
    if (rc == LC_ENOMEM) luaL_error(L, "out of memory");
    if (rc) luaL_error(L, "luact.react: tool %s: %s", name, err);
    lua_pushvalue(L, ti);
    lua_setfield(L, IDX_TOOLS, name);
    lua_pop(L, 3); /* name desc tool */
  }
  lua_pop(L, 1);
}

/* luact.react{model=, tools=, question=, ...} -> result table. A run that
 * ends at a limit or fails on the LLM side is a result (status says so);
 * misuse raises. */
static int l_react(lua_State *L) {
  struct lc_react_config cfg;
  lc_react_config_default(&cfg);
  struct react_box *b = lc_l_run_new(L, &react_class, sizeof *b, &cfg.llm); /* opts box */
  b->s = lc_sched_get(L);
  lua_newtable(L); /* opts box tools */
  lua_getfield(L, IDX_OPTS, "on_step"); /* opts box tools cb */
  if (!lua_isnil(L, IDX_CB) && !lua_isfunction(L, IDX_CB))
    return luaL_error(L, "luact.react: 'on_step' must be a function");
  const char *mode = lc_l_opt_string(L, IDX_OPTS, "luact.react", "mode", 0);
  if (mode && !strcmp(mode, "text")) cfg.mode = LC_REACT_TEXT;
  else if (mode && strcmp(mode, "native"))
    return luaL_error(L, "luact.react: 'mode' must be \"native\" or \"text\"");
  lc_l_run_texts(L, "luact.react", &cfg.question, &cfg.instructions);
  lc_l_run_examples(L, "luact.react", 1, &cfg.examples, &cfg.n_examples); /* ... list scratch */
  lc_l_run_limits(L, "luact.react", "luact.react limits", &cfg.limits);
  cfg.final_answer_on_limit = lc_l_opt_bool(L, IDX_OPTS, "luact.react", "final_answer_on_limit", 0);
  cfg.strict = lc_l_opt_bool(L, IDX_OPTS, "luact.react", "strict", 0);
  cfg.constrained = lc_l_opt_bool(L, IDX_OPTS, "luact.react", "constrained", 0);
  cfg.text_is_final = lc_l_opt_bool(L, IDX_OPTS, "luact.react", "finish_on_text", 1);
  lc_l_run_output(L, &b->run, &cfg.llm);

  struct lc_react_host host = {.run_tools = host_run_tools,
                               .cancel_tools = host_cancel_tools,
                               .on_step = host_on_step,
                               .done = host_done,
                               .ud = b};
  char err[512];
  cfg.finish = state_finish(L);
  cfg.base = b->run.req;
  b->run.req = NULL; /* the engine owns it now, also on failure */
  int rc = lc_react_new(&cfg, &host, &b->r, err, sizeof err);
  if (rc == LC_ENOMEM) return luaL_error(L, "out of memory");
  if (rc) return luaL_error(L, "luact.react: %s", err);
  lua_settop(L, IDX_CB); /* examples: copied by the engine */
  add_tools(L, b);
  lc_l_run_prices(L, "luact.react", lc_react_engine(b->r));
  if (lc_react_start(b->r, lc_sched_loop(b->s))) return luaL_error(L, "out of memory");
  return lc_l_run_wait(L, &b->run);
}

/* [-0, +1, e] Pushes the luact.react function. */
int lc_open_react(lua_State *L) {
  lc_l_run_register(L, &react_class);
  if (luaL_newmetatable(L, ACTION_MT)) {
    lua_pushcfunction(L, action_box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_react);
  return 1;
}
