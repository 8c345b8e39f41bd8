/* engine.h: what every agent loop (react.c, pal.c) is built on: its copies
 * of the instructions, question and examples, the request template, the
 * price table and budget, the loop with the LLM call in flight, the kick
 * timer (the deferred half of every event) and the wall timer, and the
 * LLM usage totals. A loop embeds struct lc_engine as its FIRST member
 * and keeps only what differs (its phases, its replies, its results).
 *
 * Ownership: lc_engine_init takes the request template (cfg->base) also on
 * failure and copies every string; lc_engine_free releases all of it,
 * stopping the timers and the call first (free the call before anything it
 * borrows). The usage struct is the embedding run's (usage pointer). */
#ifndef LC_ENGINE_H
#define LC_ENGINE_H

#include <stddef.h>

#include "budget.h"
#include "llm.h"
#include "llm_call.h"
#include "loop.h"

/* Totals over every LLM call of a run; each engine's usage embeds it. */
struct lc_engine_usage {
  long input, output, cached;
  long llm_calls;
  double cost_usd;
  int cost_unknown; /* some call's model had no price */
};

struct lc_engine_config {
  struct lc_llm_request *base; /* taken, also on failure */
  const char *instructions;    /* NULL = none */
  const char *question;        /* required (the caller checks) */
  const char *const *examples;
  size_t n_examples;
};

struct lc_engine {
  char *instructions, *question; /* copies (instructions may be NULL) */
  char **examples;
  size_t n_examples;
  struct lc_llm_request *base; /* the template; owned until a loop takes it */
  struct lc_price_table prices;
  struct lc_budget budget; /* initialised by lc_engine_start */
  struct lc_engine_usage *usage;
  struct lc_loop *loop;
  struct lc_llm_call *call; /* in flight, or NULL */
  struct lc_timer kick, wall;
  int started;
  int wall_fired; /* the wall timer went off (the clock check may lag) */
};

/* The constructor prologue: takes c->base, copies the strings, inits the
 * timers (on_kick/on_wall with ud) and the price table. 0 or LC_ENOMEM
 * (then lc_engine_free still releases what was made). */
int lc_engine_init(struct lc_engine *e, const struct lc_engine_config *c,
                   struct lc_engine_usage *usage, lc_timer_fn on_kick,
                   lc_timer_fn on_wall, void *ud);
/* A constructor that fails before lc_engine_init: frees the template it
 * was to take, puts msg in err and returns rc. */
int lc_engine_refuse(struct lc_llm_request *base, int rc, const char *msg,
                     char *err, size_t errlen);
/* Stops the timers and the call in flight (no callback runs afterwards),
 * frees the template, the budget, the prices and the copies. */
void lc_engine_free(struct lc_engine *e);

/* Adds or replaces a price (USD per 1M tokens). */
int lc_engine_set_price(struct lc_engine *e, const char *model, double in,
                        double out, double cached);
/* Marks the run started on loop, opens the budget with lim and arms the
 * wall timer. 0, LC_ESTATE (already started) or LC_ENOMEM. */
int lc_engine_start(struct lc_engine *e, struct lc_loop *loop,
                    const struct lc_budget_limits *lim);
/* Arms the kick timer for the next loop pass: 0 or < 0 (no timer slot:
 * the caller finishes on the spot, it is on the loop already). */
int lc_engine_defer(struct lc_engine *e);
/* The call (if any) is no longer wanted: freed; the wall timer stops. */
void lc_engine_end_call(struct lc_engine *e);
/* Charges a response's usage to the budget and the totals; returns its
 * cost. model: the response's, else fallback. */
double lc_engine_charge(struct lc_engine *e, const struct lc_llm_response *resp,
                        const char *fallback_model);
/* The budget's verdict now, the wall timer's firing included. */
enum lc_limit lc_engine_check(struct lc_engine *e, double now_ms);
/* *m = a text message of role with owned content; LC_ENOMEM when owned is
 * NULL (the failed allocation it stands for). */
int lc_engine_text_msg(struct lc_llm_msg *m, enum lc_llm_role role, char *owned);

#endif
