/* budget.h: run limits (steps, tokens, cost, wall time, invalid outputs,
 * repeated actions), the per-model price table, and the loop guard.
 *
 * Limits are on by default (lc_budget_limits_default): 20 steps, 100k
 * tokens, $1, 300 s, 5 invalid outputs, 3 identical calls, 100 tool
 * calls. A value of 0 or less turns that limit off.
 *
 *  steps         - actions executed or attempted (lc_budget_note_step)
 *  tokens        - input + output tokens over all LLM calls
 *  cost_usd      - from the price table or the provider's own figure; a
 *                  model without a price counts 0 and sets cost_unknown,
 *                  so the cost limit cannot stop it (set a price with
 *                  lc_price_set)
 *  wall_s        - since lc_budget_init, monotonic clock
 *  max_invalid   - replies that did not parse or named a bad action/args,
 *                  counted over the whole run (not consecutively)
 *  repeat        - the repeat-th identical call (same action, same args
 *                  ignoring key order) ends the run; each earlier repeat
 *                  gets a warning Observation. 3 = call, warning, stop.
 *  tool_calls    - tool calls handed to the host over the whole run
 *                  (lc_budget_note_tool_calls)
 *
 * A reply may ask for many calls at once: the engine admits them one by
 * one before any runs (lc_budget_steps_left, lc_budget_admit), so no call
 * runs past a limit that the reply's own calls reach.
 *
 * Ownership: a budget borrows its price table, which must outlive it.
 * Errors: 0 or negative LC_E*. */
#ifndef LC_BUDGET_H
#define LC_BUDGET_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "llm.h"

enum lc_limit {
  LC_LIMIT_NONE = 0,
  LC_LIMIT_STEPS,
  LC_LIMIT_TOKENS,
  LC_LIMIT_COST,
  LC_LIMIT_WALL,
  LC_LIMIT_INVALID,
  LC_LIMIT_REPEAT,
  LC_LIMIT_TOOL_CALLS
};

/* "steps", "tokens", "cost", "wall_time", "invalid_output",
 * "repeated_action", "tool_calls"; "none" for LC_LIMIT_NONE. */
const char *lc_limit_name(enum lc_limit l);

struct lc_budget_limits {
  long steps;
  long tokens;
  double cost_usd;
  double wall_s;
  long max_invalid;
  long repeat;
  long tool_calls;
};

void lc_budget_limits_default(struct lc_budget_limits *l);

/* USD per 1M tokens. cached applies to the cached part of the input. */
struct lc_price {
  const char *model; /* heap-owned in a table's own entries */
  double in, out, cached;
};

struct lc_price_table {
  struct lc_price *v;
  size_t n, cap;
};

/* An empty table: lookups see the built-in entries until lc_price_set
 * adds or overrides one. Returns 0 (kept int for callers' error paths). */
int lc_price_table_init(struct lc_price_table *t);
void lc_price_table_free(struct lc_price_table *t);
/* Adds or replaces the entry for model. Negative prices: LC_EINVAL. */
int lc_price_set(struct lc_price_table *t, const char *model, double in,
                 double out, double cached);
/* Exact name, then the longest entry that is a prefix of model ending at a
 * '-', '@', ':' or '_' ("gpt-4o-mini-2024-07-18" -> "gpt-4o-mini"), then
 * the same for the part after a "provider:" prefix. NULL when none. */
const struct lc_price *lc_price_find(const struct lc_price_table *t,
                                     const char *model);

struct lc_guard_entry {
  uint64_t hash;
  long count;
};

struct lc_budget {
  struct lc_budget_limits lim;
  const struct lc_price_table *prices; /* may be NULL: every cost unknown */
  double start_ms;
  long steps;
  long tokens_in, tokens_out, tokens_cached;
  double cost_usd;
  int cost_unknown; /* some call's model had no price */
  long invalid;
  long repeat_max;  /* highest identical-call count seen */
  long tool_calls;  /* handed to the host */
  struct lc_guard_entry *guard;
  size_t n_guard, cap_guard;
};

void lc_budget_init(struct lc_budget *b, const struct lc_budget_limits *lim,
                    const struct lc_price_table *prices, double now_ms);
void lc_budget_free(struct lc_budget *b);

/* Adds one LLM call's usage. model is the provider's model name. Returns
 * the cost of this call in USD (0 when unknown, then b->cost_unknown = 1).
 * usage->has_cost (a provider-reported cost) wins over the table. */
double lc_budget_charge(struct lc_budget *b, const struct lc_llm_usage *usage,
                        const char *model);
/* Cost of usage under price p (no budget involved). */
double lc_price_cost(const struct lc_price *p, const struct lc_llm_usage *u);

void lc_budget_note_step(struct lc_budget *b);
void lc_budget_note_invalid(struct lc_budget *b);
void lc_budget_note_tool_calls(struct lc_budget *b, long n);

/* Steps the run may still record (LONG_MAX when the limit is off, 0 when
 * it is reached): a reply's actions beyond it are not steps at all. */
long lc_budget_steps_left(const struct lc_budget *b);
/* Whether one more tool call may run, when pending calls of the same
 * reply were admitted already and have not run yet: LC_LIMIT_NONE, or
 * the limit that forbids it (tool_calls, then tokens and cost, which the
 * reply's own usage may have reached: its calls then do not run). */
enum lc_limit lc_budget_admit(const struct lc_budget *b, long pending);

/* Loop guard: records one call of action with args (NULL = {}). Returns 0
 * for a first call, 1 for a repeat below the limit (a warning for the model
 * is appended to warn when warn is non-NULL), 2 when this repeat reaches the
 * limit (lc_budget_check now reports LC_LIMIT_REPEAT; do not run it), or
 * LC_ENOMEM. Call it for tool actions only, not for finish. */
int lc_budget_note_action(struct lc_budget *b, const char *action,
                          const cJSON *args, struct lc_buf *warn);

/* Hash of (action, canonical args): objects with keys sorted, compact. */
int lc_action_hash(const char *action, const cJSON *args, uint64_t *out);

/* The first limit reached, in the order of enum lc_limit, or
 * LC_LIMIT_NONE. now_ms is lc_now_ms() (passed in so tests control time). */
enum lc_limit lc_budget_check(const struct lc_budget *b, double now_ms);

/* Appends a human reason: "step limit reached: 20 of 20 steps". */
int lc_budget_reason(const struct lc_budget *b, enum lc_limit l, double now_ms,
                     struct lc_buf *out);

#endif
