/* react.h: the ReAct loop (Yao et al. 2022) as a state machine on the loop:
 * prompt -> LLM call -> parse -> allowed-action check -> tool calls (run by
 * the host) -> Observations -> budget checks -> ... until finish or a limit.
 * Lua-free: the host (l_react.c) runs tools and receives steps through
 * callbacks.
 *
 * Modes. Text: the paper's prompt (react_prompt.h), one action per reply,
 * parsed by react_parse.h; with `constrained` the request asks for a JSON
 * reply that fits lc_actions_decoding_schema. Native: the provider's tool
 * calling, the declared tools plus `finish`; several calls in one reply are
 * one batch that the host runs concurrently; results go back in the order
 * the model asked for them.
 *
 * Invalid output (no parse, unknown action, bad or broken arguments, text
 * instead of a tool call, finish mixed with other calls) never runs
 * anything: it becomes an Observation that says what was wrong and what is
 * allowed, and counts against limits.max_invalid. Tool failures and tool
 * timeouts are Observations too, but are counted separately
 * (lc_react_usage.tool_errors) and not against max_invalid: the model chose
 * a valid action and cannot fix the tool; the step limit bounds them.
 *
 * Steps: every action the model asks for (valid or not) is one step of the
 * trajectory and one step of the budget, so a native reply with three tool
 * calls is three steps. Limits are checked between turns, after a reply's
 * actions have run and before the next model call; the wall-time limit also
 * interrupts a turn in flight (LLM call cancelled, host told to stop its
 * tools). A run that hits a limit ends with status LC_TRAJ_LIMIT; with
 * final_answer_on_limit one more call, without tools, asks for the best
 * answer (the status stays "limit", the answer is filled in).
 *
 * Completion (STYLE 3): lc_react_start either fails now (no callback ever
 * runs) or succeeds, and then done runs exactly once, from the loop, unless
 * lc_react_free comes first (then never). Host callbacks always run from
 * the loop (a timer or a transfer completion), never from inside a call the
 * host made into the engine.
 *
 * Ownership: lc_react_new copies the config strings and takes ownership of
 * cfg->base (the request template) also on failure; lc_react_add_tool takes
 * its schema; lc_react_add_action and cfg->finish are shared actions the run
 * holds a reference to until lc_react_free (the request's tools borrow
 * from them). The trajectory and usage belong to the engine and stay valid
 * until lc_react_free.
 *
 * Requests: lc_react_start turns the template into the run's one request
 * (system prompt, user message, tools built once) and every LLM call
 * borrows it (lc_llm_call_start_borrowed); the conversation is appended to
 * it between calls, never while one is in flight, and with cache_wire set
 * the adapters keep the last body up to its last message and append only
 * the new messages (llm.h, the body prefix cache). */
#ifndef LC_REACT_H
#define LC_REACT_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "actions.h"
#include "budget.h"
#include "engine.h"
#include "llm.h"
#include "llm_call.h"
#include "trajectory.h"

struct lc_loop;
struct lc_react;

enum lc_react_mode { LC_REACT_NATIVE = 0, LC_REACT_TEXT };

/* One tool call of a batch handed to the host. Pointers are owned by the
 * engine and valid until the host has reported this call's result. */
struct lc_react_call {
  size_t index;     /* position in the batch; report with this */
  const char *id;   /* the provider's call id (native) or "step_<n>" */
  const char *name; /* a declared tool, never finish, never anything else */
  const cJSON *args; /* validated against the tool's schema */
};

struct lc_react_host {
  /* Runs every call of the batch (concurrently if it likes) and later
   * reports each with lc_react_tool_result, from the loop, never from
   * inside this callback. Returns 0, or < 0 when it could not start them
   * (the run then fails). */
  int (*run_tools)(void *ud, struct lc_react *r,
                   const struct lc_react_call *calls, size_t n);
  /* Optional: the engine no longer wants the results of the batch in
   * flight (wall-time limit). The host stops its calls; reporting a result
   * afterwards is harmless (ignored). */
  void (*cancel_tools)(void *ud, struct lc_react *r);
  /* Optional: one step was added to the trajectory (live output). */
  void (*on_step)(void *ud, struct lc_react *r, const struct lc_traj_step *s);
  /* The run ended: see lc_react_trajectory / lc_react_usage. */
  void (*done)(void *ud, struct lc_react *r);
  void *ud;
};

struct lc_react_config {
  enum lc_react_mode mode;
  /* Request template: provider, model, base_url, api_key, sampling, stop,
   * stream. Messages, tools, tool_choice and format are the engine's. */
  struct lc_llm_request *base;
  struct lc_llm_opts llm; /* timeouts and retries of every call */
  const char *instructions; /* may be NULL */
  const char *question;     /* required */
  const char *const *examples; /* few-shot examples, verbatim */
  size_t n_examples;
  struct lc_budget_limits limits;
  int final_answer_on_limit;
  int strict;      /* native: ask for strict tool schemas */
  int constrained; /* text: JSON-schema constrained replies */
  /* native: a reply with text and no tool call is the final answer (what
   * OpenAI's and LangGraph's agents do; default). Off: every reply must
   * call a tool (finish included) and tool_choice is "required". */
  int text_is_final;
  size_t max_observation; /* bytes an observation may take in the prompt;
                             0 = 16 KiB */
  /* The `finish` action to share (lc_action_new_finish; the run takes its
   * own reference), or NULL for one of the run's own. */
  struct lc_action *finish;
};

/* Usage totals over every LLM call of the run (the final-answer call too). */
struct lc_react_usage {
  struct lc_engine_usage llm; /* tokens, calls, cost (engine.h) */
  long tool_calls, tool_errors;
  long invalid;
};

/* Sets cfg to defaults: native, default limits and LLM options. */
void lc_react_config_default(struct lc_react_config *cfg);

/* Creates a run (not started). Takes ownership of cfg->base, also on
 * failure. Returns 0, LC_EINVAL (no question / no base request; message in
 * err) or LC_ENOMEM. */
int lc_react_new(const struct lc_react_config *cfg,
                 const struct lc_react_host *host, struct lc_react **out,
                 char *err, size_t errlen);
/* Declares an allowed tool (before start). Takes ownership of schema
 * (NULL = no arguments). LC_EINVAL with the message in err. */
int lc_react_add_tool(struct lc_react *r, const char *name,
                      const char *description, cJSON *schema,
                      enum lc_effect effect, char *err, size_t errlen);
/* Declares a shared action (before start): the same rules and messages as
 * lc_react_add_tool; the run takes its own reference to x, so the caller
 * may drop its own at any time. */
int lc_react_add_action(struct lc_react *r, struct lc_action *x, char *err,
                        size_t errlen);
/* Adds or replaces a price (USD per 1M tokens) for cost accounting. */
int lc_react_set_price(struct lc_react *r, const char *model, double in,
                       double out, double cached);

/* The run's base (engine.h): prices, usage, the loop it runs on. */
struct lc_engine *lc_react_engine(struct lc_react *r);

/* Starts the run on loop. 0 (done will run exactly once) or LC_ENOMEM /
 * LC_ESTATE (already started) / LC_EINVAL, with no callback. */
int lc_react_start(struct lc_react *r, struct lc_loop *loop);

/* Reports the result of call `index` of the current batch: ok with the
 * observation text (a tool's result), or !ok with the error text and an
 * optional code ("timeout", "tool_error", ...). Copies text. Returns 0,
 * LC_EINVAL (no such call pending; ignored) or LC_ENOMEM. */
int lc_react_tool_result(struct lc_react *r, size_t index, int ok,
                         const char *text, size_t len, const char *code);

/* Stops everything in flight (the LLM call, timers) and frees the run. No
 * callback runs from here or afterwards; the host stops its own tools. */
void lc_react_free(struct lc_react *r);

const struct lc_trajectory *lc_react_trajectory(const struct lc_react *r);
const struct lc_react_usage *lc_react_usage(const struct lc_react *r);
/* Which limit ended the run (LC_LIMIT_NONE otherwise). */
enum lc_limit lc_react_limit(const struct lc_react *r);
/* "native" / "text". */
const char *lc_react_mode_name(enum lc_react_mode m);

/* An lc_schema_validate_fn for lc_actions_init over schema.c (compiles
 * the schema per check). ud is unused. The engine itself uses its own,
 * which uses the schema compiled once per action (lc_action_compiled) and
 * shared by every run that offers the action. */
int lc_react_schema_validate(void *ud, const struct lc_action *act, const cJSON *args,
                             char *err, size_t errlen);

#endif
