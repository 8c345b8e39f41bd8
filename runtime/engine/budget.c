/* budget.c: run limits, model prices and the repeated-action guard. */
#include "budget.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cnum.h"
#include "lc.h"

void lc_budget_limits_default(struct lc_budget_limits *l) {
  l->steps = 20;
  l->tokens = 100000;
  l->cost_usd = 1.0;
  l->wall_s = 300.0;
  l->max_invalid = 5;
  l->repeat = 3;
  /* Each call is a step too, so under the default 20 steps this binds only
   * when steps are raised or off; it bounds what one run can make its
   * tools do whatever the other limits say. */
  l->tool_calls = 100;
}

const char *lc_limit_name(enum lc_limit l) {
  switch (l) {
  case LC_LIMIT_NONE: return "none";
  case LC_LIMIT_STEPS: return "steps";
  case LC_LIMIT_TOKENS: return "tokens";
  case LC_LIMIT_COST: return "cost";
  case LC_LIMIT_WALL: return "wall_time";
  case LC_LIMIT_INVALID: return "invalid_output";
  case LC_LIMIT_REPEAT: return "repeated_action";
  case LC_LIMIT_TOOL_CALLS: return "tool_calls";
  }
  return "unknown";
}

/* ---- prices ---- */

/* USD per 1M tokens: input, output, cached input. Standard (non-batch,
 * short-context) list prices from the OpenAI and Anthropic pricing pages as
 * of 2025-08; they change, so callers that enforce cost limits should set
 * their own with lc_price_set. Anthropic's "cached" is the cache-read price
 * (cache writes are billed as input here). */
static const struct lc_price builtin[] = {
    /* OpenAI */
    {"gpt-5", 1.25, 10.00, 0.125},
    {"gpt-5-mini", 0.25, 2.00, 0.025},
    {"gpt-5-nano", 0.05, 0.40, 0.005},
    {"gpt-4.1", 2.00, 8.00, 0.50},
    {"gpt-4.1-mini", 0.40, 1.60, 0.10},
    {"gpt-4.1-nano", 0.10, 0.40, 0.025},
    {"gpt-4o", 2.50, 10.00, 1.25},
    {"gpt-4o-mini", 0.15, 0.60, 0.075},
    {"gpt-4-turbo", 10.00, 30.00, 10.00},
    {"gpt-3.5-turbo", 0.50, 1.50, 0.50},
    {"o1", 15.00, 60.00, 7.50},
    {"o1-mini", 1.10, 4.40, 0.55},
    {"o3", 2.00, 8.00, 0.50},
    {"o3-mini", 1.10, 4.40, 0.55},
    {"o4-mini", 1.10, 4.40, 0.275},
    /* Anthropic */
    {"claude-opus-4-1", 15.00, 75.00, 1.50},
    {"claude-opus-4", 15.00, 75.00, 1.50},
    {"claude-sonnet-4", 3.00, 15.00, 0.30},
    {"claude-3-7-sonnet", 3.00, 15.00, 0.30},
    {"claude-3-5-sonnet", 3.00, 15.00, 0.30},
    {"claude-3-5-haiku", 0.80, 4.00, 0.08},
    {"claude-3-opus", 15.00, 75.00, 1.50},
    {"claude-3-haiku", 0.25, 1.25, 0.03},
};

/* The built-in entries are not copied: an engine per agent would pay two
 * dozen allocations for them. The table holds what the caller set, and
 * lookups fall back to the built-ins. */
int lc_price_table_init(struct lc_price_table *t) {
  memset(t, 0, sizeof *t);
  return 0;
}

void lc_price_table_free(struct lc_price_table *t) {
  for (size_t i = 0; i < t->n; i++) lc_free((char *)t->v[i].model);
  lc_free(t->v);
  memset(t, 0, sizeof *t);
}

int lc_price_set(struct lc_price_table *t, const char *model, double in,
                 double out, double cached) {
  if (!model || !*model || !(in >= 0) || !(out >= 0) || !(cached >= 0))
    return LC_EINVAL;
  for (size_t i = 0; i < t->n; i++)
    if (strcmp(t->v[i].model, model) == 0) {
      t->v[i].in = in;
      t->v[i].out = out;
      t->v[i].cached = cached;
      return 0;
    }
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 32;
    struct lc_price *v = lc_realloc(t->v, cap * sizeof *v);
    if (!v) return LC_ENOMEM;
    t->v = v;
    t->cap = cap;
  }
  char *m = lc_strdup(model);
  if (!m) return LC_ENOMEM;
  t->v[t->n++] = (struct lc_price){m, in, out, cached};
  return 0;
}

/* A prefix counts only when it ends at a separator, so "o1" does not price
 * "o1x" and a dated snapshot finds its family. '.' is not a separator:
 * "gpt-4" must not price "gpt-4.1". */
static const struct lc_price *find_in(const struct lc_price *v, size_t nv,
                                      const char *model, int exact,
                                      const struct lc_price *best, size_t *best_len) {
  for (size_t i = 0; i < nv; i++) {
    const char *m = v[i].model;
    if (exact) {
      if (strcmp(m, model) == 0) return &v[i];
      continue;
    }
    size_t n = strlen(m);
    if (n > *best_len && strncmp(m, model, n) == 0 &&
        strchr("-@:_", model[n]) && model[n]) {
      best = &v[i];
      *best_len = n;
    }
  }
  return best;
}

/* The caller's entries first, so one of theirs shadows a built-in of the
 * same name (and wins a prefix tie). */
static const struct lc_price *find_one(const struct lc_price_table *t,
                                       const char *model) {
  size_t len = 0;
  const struct lc_price *p = find_in(t->v, t->n, model, 1, NULL, &len);
  if (!p) p = find_in(builtin, LC_ARRAY_LEN(builtin), model, 1, NULL, &len);
  if (p) return p;
  p = find_in(t->v, t->n, model, 0, NULL, &len);
  return find_in(builtin, LC_ARRAY_LEN(builtin), model, 0, p, &len);
}

const struct lc_price *lc_price_find(const struct lc_price_table *t,
                                     const char *model) {
  if (!t || !model || !*model) return NULL;
  const struct lc_price *p = find_one(t, model);
  const char *colon = strchr(model, ':');
  if (!p && colon && colon[1]) p = find_one(t, colon + 1);
  return p;
}

double lc_price_cost(const struct lc_price *p, const struct lc_llm_usage *u) {
  long cached = u->cached > 0 ? u->cached : 0;
  long fresh = u->input - cached;
  if (fresh < 0) fresh = 0;
  return ((double)fresh * p->in + (double)cached * p->cached +
          (double)(u->output > 0 ? u->output : 0) * p->out) /
         1e6;
}

/* ---- budget ---- */

void lc_budget_init(struct lc_budget *b, const struct lc_budget_limits *lim,
                    const struct lc_price_table *prices, double now_ms) {
  memset(b, 0, sizeof *b);
  if (lim) b->lim = *lim;
  else lc_budget_limits_default(&b->lim);
  b->prices = prices;
  b->start_ms = now_ms;
}

void lc_budget_free(struct lc_budget *b) {
  lc_free(b->guard);
  b->guard = NULL;
  b->n_guard = b->cap_guard = 0;
}

double lc_budget_charge(struct lc_budget *b, const struct lc_llm_usage *usage,
                        const char *model) {
  b->tokens_in += usage->input > 0 ? usage->input : 0;
  b->tokens_out += usage->output > 0 ? usage->output : 0;
  b->tokens_cached += usage->cached > 0 ? usage->cached : 0;
  double c = 0;
  if (usage->has_cost) {
    c = usage->cost > 0 ? usage->cost : 0;
  } else {
    const struct lc_price *p = lc_price_find(b->prices, model);
    if (p) c = lc_price_cost(p, usage);
    else b->cost_unknown = 1;
  }
  b->cost_usd += c;
  return c;
}

void lc_budget_note_step(struct lc_budget *b) { b->steps++; }
void lc_budget_note_invalid(struct lc_budget *b) { b->invalid++; }
void lc_budget_note_tool_calls(struct lc_budget *b, long n) { b->tool_calls += n; }

long lc_budget_steps_left(const struct lc_budget *b) {
  if (b->lim.steps <= 0) return LONG_MAX;
  return b->steps >= b->lim.steps ? 0 : b->lim.steps - b->steps;
}

enum lc_limit lc_budget_admit(const struct lc_budget *b, long pending) {
  const struct lc_budget_limits *l = &b->lim;
  if (l->tool_calls > 0 && b->tool_calls + pending >= l->tool_calls)
    return LC_LIMIT_TOOL_CALLS;
  if (l->tokens > 0 && b->tokens_in + b->tokens_out >= l->tokens)
    return LC_LIMIT_TOKENS;
  if (l->cost_usd > 0 && b->cost_usd >= l->cost_usd) return LC_LIMIT_COST;
  return LC_LIMIT_NONE;
}

/* FNV-1a over a typed walk of the tree: each value is fed with a type tag,
 * strings and keys with their length, object members sorted by key. So
 * {"a":1,"b":2} and {"b":2,"a":1} hash alike, "ab"+"c" and "a"+"bc" do not. */
static void feed(uint64_t *h, const void *p, size_t n) {
  const unsigned char *s = p;
  for (size_t i = 0; i < n; i++) {
    *h ^= s[i];
    *h *= 0x100000001b3ull;
  }
}

static void feed_str(uint64_t *h, const char *s) {
  size_t n = s ? strlen(s) : 0;
  feed(h, &n, sizeof n);
  feed(h, s ? s : "", n);
}

static int cmp_key(const void *a, const void *b) {
  const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
  return strcmp(x->string ? x->string : "", y->string ? y->string : "");
}

static int feed_json(uint64_t *h, const cJSON *j) {
  char tag;
  if (!j || cJSON_IsNull(j)) {
    tag = 'n';
    feed(h, &tag, 1);
  } else if (cJSON_IsFalse(j) || cJSON_IsTrue(j)) {
    tag = cJSON_IsTrue(j) ? 't' : 'f';
    feed(h, &tag, 1);
  } else if (cJSON_IsNumber(j)) {
    tag = '#';
    double d = j->valuedouble == 0 ? 0.0 : j->valuedouble; /* -0 == 0 */
    feed(h, &tag, 1);
    feed(h, &d, sizeof d);
  } else if (cJSON_IsString(j) || cJSON_IsRaw(j)) {
    tag = '"';
    feed(h, &tag, 1);
    feed_str(h, j->valuestring);
  } else if (cJSON_IsArray(j)) {
    tag = '[';
    feed(h, &tag, 1);
    size_t n = 0;
    for (const cJSON *c = j->child; c; c = c->next, n++)
      if (feed_json(h, c)) return LC_ENOMEM;
    feed(h, &n, sizeof n);
  } else if (cJSON_IsObject(j)) {
    size_t n = 0;
    for (const cJSON *c = j->child; c; c = c->next) n++;
    const cJSON **v = lc_malloc((n ? n : 1) * sizeof *v);
    if (!v) return LC_ENOMEM;
    n = 0;
    for (const cJSON *c = j->child; c; c = c->next) v[n++] = c;
    qsort(v, n, sizeof *v, cmp_key);
    tag = '{';
    feed(h, &tag, 1);
    feed(h, &n, sizeof n);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
      feed_str(h, v[i]->string);
      rc = feed_json(h, v[i]);
    }
    lc_free(v);
    return rc;
  }
  return 0;
}

int lc_action_hash(const char *action, const cJSON *args, uint64_t *out) {
  uint64_t h = 0xcbf29ce484222325ull;
  feed_str(&h, action);
  /* No args and {} are the same call. */
  int rc = args && !(cJSON_IsObject(args) && !args->child) ? feed_json(&h, args)
                                                           : 0;
  *out = h;
  return rc;
}

int lc_budget_note_action(struct lc_budget *b, const char *action,
                          const cJSON *args, struct lc_buf *warn) {
  uint64_t h;
  if (lc_action_hash(action, args, &h)) return LC_ENOMEM;
  struct lc_guard_entry *e = NULL;
  for (size_t i = 0; i < b->n_guard; i++)
    if (b->guard[i].hash == h) e = &b->guard[i];
  if (!e) {
    if (b->n_guard == b->cap_guard) {
      size_t cap = b->cap_guard ? b->cap_guard * 2 : 16;
      struct lc_guard_entry *v = lc_realloc(b->guard, cap * sizeof *v);
      if (!v) return LC_ENOMEM;
      b->guard = v;
      b->cap_guard = cap;
    }
    e = &b->guard[b->n_guard++];
    *e = (struct lc_guard_entry){h, 0};
  }
  e->count++;
  if (e->count > b->repeat_max) b->repeat_max = e->count;
  if (e->count == 1) return 0;
  if (b->lim.repeat > 0 && e->count >= b->lim.repeat) return 2;
  if (warn) {
    int rc = lc_buf_printf(
        warn,
        "Warning: you already ran %s with exactly this input %ld time%s and "
        "got the result above. Repeating it gives the same result. Try a "
        "different action or input, or finish with your answer.",
        action ? action : "this action", e->count - 1, e->count == 2 ? "" : "s");
    if (rc) return rc;
  }
  return 1;
}

enum lc_limit lc_budget_check(const struct lc_budget *b, double now_ms) {
  const struct lc_budget_limits *l = &b->lim;
  if (l->steps > 0 && b->steps >= l->steps) return LC_LIMIT_STEPS;
  if (l->tokens > 0 && b->tokens_in + b->tokens_out >= l->tokens)
    return LC_LIMIT_TOKENS;
  if (l->cost_usd > 0 && b->cost_usd >= l->cost_usd) return LC_LIMIT_COST;
  if (l->wall_s > 0 && now_ms - b->start_ms >= l->wall_s * 1000.0)
    return LC_LIMIT_WALL;
  if (l->max_invalid > 0 && b->invalid >= l->max_invalid)
    return LC_LIMIT_INVALID;
  if (l->repeat > 0 && b->repeat_max >= l->repeat) return LC_LIMIT_REPEAT;
  if (l->tool_calls > 0 && b->tool_calls >= l->tool_calls)
    return LC_LIMIT_TOOL_CALLS;
  return LC_LIMIT_NONE;
}

int lc_budget_reason(const struct lc_budget *b, enum lc_limit l, double now_ms,
                     struct lc_buf *out) {
  const struct lc_budget_limits *m = &b->lim;
  switch (l) {
  case LC_LIMIT_STEPS:
    return lc_buf_printf(out, "step limit reached: %ld of %ld steps", b->steps,
                         m->steps);
  case LC_LIMIT_TOKENS:
    return lc_buf_printf(out, "token limit reached: %ld of %ld tokens",
                         b->tokens_in + b->tokens_out, m->tokens);
  case LC_LIMIT_COST:
  {
    /* The reason lands in results and JSON: the same text in any locale. */
    char tmp[96];
    lc_cnum_fmt(tmp, sizeof tmp, "cost limit reached: $%.4f of $%.4f", b->cost_usd,
                m->cost_usd);
    return lc_buf_puts(out, tmp);
  }
  case LC_LIMIT_WALL:
  {
    char tmp[96];
    lc_cnum_fmt(tmp, sizeof tmp, "wall-time limit reached: %.1f s of %.1f s",
                (now_ms - b->start_ms) / 1000.0, m->wall_s);
    return lc_buf_puts(out, tmp);
  }
  case LC_LIMIT_INVALID:
    return lc_buf_printf(out, "too many invalid replies: %ld of %ld allowed",
                         b->invalid, m->max_invalid);
  case LC_LIMIT_REPEAT:
    return lc_buf_printf(out,
                         "the same action with the same input was called %ld "
                         "times (limit %ld)",
                         b->repeat_max, m->repeat);
  case LC_LIMIT_TOOL_CALLS:
    return lc_buf_printf(out, "tool-call limit reached: %ld of %ld tool calls",
                         b->tool_calls, m->tool_calls);
  case LC_LIMIT_NONE: break;
  }
  return lc_buf_puts(out, "no limit reached");
}
