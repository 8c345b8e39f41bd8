/* engine.c: the base every agent loop embeds (see engine.h). */
#include "engine.h"

#include <stdio.h>
#include <string.h>

#include "lc.h"

static char *dup0(const char *s) { return s ? lc_strdup(s) : NULL; }

int lc_engine_init(struct lc_engine *e, const struct lc_engine_config *c,
                   struct lc_engine_usage *usage, lc_timer_fn on_kick,
                   lc_timer_fn on_wall, void *ud) {
  memset(e, 0, sizeof *e);
  e->base = c->base; /* ours from here, also on failure */
  e->usage = usage;
  lc_timer_init(&e->kick, on_kick, ud);
  lc_timer_init(&e->wall, on_wall, ud);
  int rc = lc_price_table_init(&e->prices);
  e->instructions = dup0(c->instructions);
  e->question = dup0(c->question);
  if (!rc && ((c->instructions && !e->instructions) || !e->question)) rc = LC_ENOMEM;
  if (!rc && c->n_examples) {
    e->examples = lc_calloc(c->n_examples, sizeof *e->examples);
    if (!e->examples) rc = LC_ENOMEM;
    for (size_t i = 0; !rc && i < c->n_examples; i++) {
      if (!(e->examples[i] = lc_strdup(c->examples[i]))) rc = LC_ENOMEM;
      e->n_examples = i + 1;
    }
  }
  return rc;
}

int lc_engine_refuse(struct lc_llm_request *base, int rc, const char *msg,
                     char *err, size_t errlen) {
  lc_llm_request_delete(base);
  snprintf(err, errlen, "%s", msg);
  return rc;
}

void lc_engine_free(struct lc_engine *e) {
  if (e->loop) {
    lc_timer_stop(e->loop, &e->kick);
    lc_timer_stop(e->loop, &e->wall);
  }
  lc_llm_call_free(e->call); /* cancels a transfer in flight */
  e->call = NULL;
  lc_llm_request_delete(e->base);
  e->base = NULL;
  if (e->started) lc_budget_free(&e->budget);
  lc_price_table_free(&e->prices);
  lc_free(e->instructions);
  lc_free(e->question);
  for (size_t i = 0; i < e->n_examples; i++) lc_free(e->examples[i]);
  lc_free(e->examples);
  e->instructions = e->question = NULL;
  e->examples = NULL;
  e->n_examples = 0;
}

int lc_engine_set_price(struct lc_engine *e, const char *model, double in,
                        double out, double cached) {
  return lc_price_set(&e->prices, model, in, out, cached);
}

int lc_engine_start(struct lc_engine *e, struct lc_loop *loop,
                    const struct lc_budget_limits *lim) {
  if (e->started) return LC_ESTATE;
  e->started = 1;
  e->loop = loop;
  lc_budget_init(&e->budget, lim, &e->prices, lc_now_ms());
  if (lim->wall_s > 0 && lc_timer_start(loop, &e->wall, lim->wall_s * 1000.0) < 0)
    return LC_ENOMEM;
  return 0;
}

int lc_engine_defer(struct lc_engine *e) { return lc_timer_start(e->loop, &e->kick, 0); }

void lc_engine_end_call(struct lc_engine *e) {
  lc_llm_call_free(e->call);
  e->call = NULL;
  lc_timer_stop(e->loop, &e->wall);
}

double lc_engine_charge(struct lc_engine *e, const struct lc_llm_response *resp,
                        const char *fallback_model) {
  const char *model = resp->model ? resp->model : fallback_model;
  double cost = lc_budget_charge(&e->budget, &resp->usage, model);
  struct lc_engine_usage *u = e->usage;
  u->input += resp->usage.input;
  u->output += resp->usage.output;
  u->cached += resp->usage.cached;
  u->llm_calls++;
  u->cost_usd += cost;
  u->cost_unknown = e->budget.cost_unknown;
  return cost;
}

enum lc_limit lc_engine_check(struct lc_engine *e, double now_ms) {
  enum lc_limit l = lc_budget_check(&e->budget, now_ms);
  return l == LC_LIMIT_NONE && e->wall_fired ? LC_LIMIT_WALL : l;
}

int lc_engine_text_msg(struct lc_llm_msg *m, enum lc_llm_role role, char *owned) {
  memset(m, 0, sizeof *m);
  if (!owned) return LC_ENOMEM;
  m->role = role;
  m->content = owned;
  m->content_len = strlen(owned);
  return 0;
}
