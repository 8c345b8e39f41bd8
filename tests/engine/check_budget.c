/* check_budget.c: limits, prices, and the repeated-action guard. */
#include <check.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "budget.h"
#include "lc.h"

static struct lc_llm_usage usage(long in, long out, long cached) {
  struct lc_llm_usage u;
  memset(&u, 0, sizeof u);
  u.input = in;
  u.output = out;
  u.cached = cached;
  return u;
}

static void all_off(struct lc_budget_limits *l) { memset(l, 0, sizeof *l); }

START_TEST(defaults) {
  struct lc_budget_limits l;
  lc_budget_limits_default(&l);
  ck_assert_int_eq(l.steps, 20);
  ck_assert_int_eq(l.tokens, 100000);
  ck_assert(l.cost_usd == 1.0);
  ck_assert(l.wall_s == 300.0);
  ck_assert_int_eq(l.max_invalid, 5);
  ck_assert_int_eq(l.repeat, 3);
  struct lc_budget b;
  lc_budget_init(&b, NULL, NULL, 0); /* NULL limits = defaults */
  ck_assert_int_eq(b.lim.steps, 20);
  ck_assert_int_eq(lc_budget_check(&b, 0), LC_LIMIT_NONE);
  lc_budget_free(&b);
}
END_TEST

START_TEST(names) {
  ck_assert_str_eq(lc_limit_name(LC_LIMIT_STEPS), "steps");
  ck_assert_str_eq(lc_limit_name(LC_LIMIT_TOKENS), "tokens");
  ck_assert_str_eq(lc_limit_name(LC_LIMIT_COST), "cost");
  ck_assert_str_eq(lc_limit_name(LC_LIMIT_WALL), "wall_time");
  ck_assert_str_eq(lc_limit_name(LC_LIMIT_INVALID), "invalid_output");
  ck_assert_str_eq(lc_limit_name(LC_LIMIT_REPEAT), "repeated_action");
  ck_assert_str_eq(lc_limit_name(LC_LIMIT_NONE), "none");
}
END_TEST

START_TEST(limit_steps) {
  struct lc_budget_limits l;
  all_off(&l);
  l.steps = 3;
  struct lc_budget b;
  lc_budget_init(&b, &l, NULL, 0);
  for (int i = 0; i < 2; i++) lc_budget_note_step(&b);
  ck_assert_int_eq(lc_budget_check(&b, 0), LC_LIMIT_NONE);
  lc_budget_note_step(&b);
  ck_assert_int_eq(lc_budget_check(&b, 0), LC_LIMIT_STEPS);
  struct lc_buf r;
  lc_buf_init(&r, 0);
  ck_assert_int_eq(lc_budget_reason(&b, LC_LIMIT_STEPS, 0, &r), 0);
  ck_assert_str_eq(r.data, "step limit reached: 3 of 3 steps");
  lc_buf_free(&r);
  lc_budget_free(&b);
}
END_TEST

START_TEST(limit_tokens) {
  struct lc_budget_limits l;
  all_off(&l);
  l.tokens = 1000;
  struct lc_budget b;
  lc_budget_init(&b, &l, NULL, 0);
  struct lc_llm_usage u = usage(600, 399, 0);
  lc_budget_charge(&b, &u, "x");
  ck_assert_int_eq(lc_budget_check(&b, 0), LC_LIMIT_NONE);
  u = usage(0, 1, 0);
  lc_budget_charge(&b, &u, "x");
  ck_assert_int_eq(lc_budget_check(&b, 0), LC_LIMIT_TOKENS);
  lc_budget_free(&b);
}
END_TEST

START_TEST(limit_cost) {
  struct lc_price_table t;
  ck_assert_int_eq(lc_price_table_init(&t), 0);
  struct lc_budget_limits l;
  all_off(&l);
  l.cost_usd = 0.01;
  struct lc_budget b;
  lc_budget_init(&b, &l, &t, 0);
  /* gpt-4o: $2.50 in, $10 out per 1M -> 1000 in + 500 out = $0.0075 */
  struct lc_llm_usage u = usage(1000, 500, 0);
  double c = lc_budget_charge(&b, &u, "gpt-4o-2024-08-06");
  ck_assert_double_eq_tol(c, 0.0075, 1e-12);
  ck_assert_int_eq(lc_budget_check(&b, 0), LC_LIMIT_NONE);
  lc_budget_charge(&b, &u, "gpt-4o");
  ck_assert_double_eq_tol(b.cost_usd, 0.015, 1e-12);
  ck_assert_int_eq(lc_budget_check(&b, 0), LC_LIMIT_COST);
  ck_assert_int_eq(b.cost_unknown, 0);
  lc_budget_free(&b);
  lc_price_table_free(&t);
}
END_TEST

START_TEST(limit_wall) {
  struct lc_budget_limits l;
  all_off(&l);
  l.wall_s = 2.5;
  struct lc_budget b;
  lc_budget_init(&b, &l, NULL, 1000.0);
  ck_assert_int_eq(lc_budget_check(&b, 3499.0), LC_LIMIT_NONE);
  ck_assert_int_eq(lc_budget_check(&b, 3500.0), LC_LIMIT_WALL);
  struct lc_buf r;
  lc_buf_init(&r, 0);
  lc_budget_reason(&b, LC_LIMIT_WALL, 3500.0, &r);
  ck_assert_str_eq(r.data, "wall-time limit reached: 2.5 s of 2.5 s");
  lc_buf_free(&r);
  lc_budget_free(&b);
}
END_TEST

START_TEST(limit_invalid) {
  struct lc_budget_limits l;
  all_off(&l);
  l.max_invalid = 2;
  struct lc_budget b;
  lc_budget_init(&b, &l, NULL, 0);
  lc_budget_note_invalid(&b);
  ck_assert_int_eq(lc_budget_check(&b, 0), LC_LIMIT_NONE);
  lc_budget_note_invalid(&b);
  ck_assert_int_eq(lc_budget_check(&b, 0), LC_LIMIT_INVALID);
  lc_budget_free(&b);
}
END_TEST

/* 0 and negative turn a limit off. */
START_TEST(limits_off) {
  struct lc_budget_limits l = {0, -1, 0, -5, 0, -1, -1};
  struct lc_budget b;
  lc_budget_init(&b, &l, NULL, 0);
  for (int i = 0; i < 1000; i++) {
    lc_budget_note_step(&b);
    lc_budget_note_invalid(&b);
    lc_budget_note_tool_calls(&b, 1);
  }
  ck_assert(lc_budget_steps_left(&b) == LONG_MAX);
  ck_assert_int_eq(lc_budget_admit(&b, 1000000), LC_LIMIT_NONE);
  struct lc_llm_usage u = usage(10000000, 10000000, 0);
  u.has_cost = 1;
  u.cost = 500;
  lc_budget_charge(&b, &u, "gpt-4o");
  cJSON *args = cJSON_Parse("{\"k\":1}");
  for (int i = 0; i < 10; i++) ck_assert_int_le(lc_budget_note_action(&b, "f", args, NULL), 1);
  cJSON_Delete(args);
  ck_assert_int_eq(lc_budget_check(&b, 1e12), LC_LIMIT_NONE);
  lc_budget_free(&b);
}
END_TEST

/* A reply's calls are admitted one by one before any runs: the pending
 * ones count, and a reply whose own usage reached the tokens or cost
 * limit runs none. */
START_TEST(admit_counts_pending_calls) {
  struct lc_budget_limits l;
  all_off(&l);
  l.tool_calls = 3;
  l.steps = 4;
  struct lc_budget b;
  lc_budget_init(&b, &l, NULL, 0);
  ck_assert_int_eq(lc_budget_steps_left(&b), 4);
  ck_assert_int_eq(lc_budget_admit(&b, 0), LC_LIMIT_NONE);
  ck_assert_int_eq(lc_budget_admit(&b, 2), LC_LIMIT_NONE);
  ck_assert_int_eq(lc_budget_admit(&b, 3), LC_LIMIT_TOOL_CALLS);
  lc_budget_note_tool_calls(&b, 2);
  lc_budget_note_step(&b);
  lc_budget_note_step(&b);
  ck_assert_int_eq(lc_budget_steps_left(&b), 2);
  ck_assert_int_eq(lc_budget_admit(&b, 0), LC_LIMIT_NONE);
  ck_assert_int_eq(lc_budget_admit(&b, 1), LC_LIMIT_TOOL_CALLS);
  ck_assert_int_eq(lc_budget_check(&b, 0), LC_LIMIT_NONE);
  lc_budget_note_tool_calls(&b, 1);
  ck_assert_int_eq(lc_budget_check(&b, 0), LC_LIMIT_TOOL_CALLS);
  struct lc_buf why;
  lc_buf_init(&why, 0);
  ck_assert_int_eq(lc_budget_reason(&b, LC_LIMIT_TOOL_CALLS, 0, &why), 0);
  ck_assert_str_eq(why.data, "tool-call limit reached: 3 of 3 tool calls");
  lc_buf_free(&why);
  ck_assert_str_eq(lc_limit_name(LC_LIMIT_TOOL_CALLS), "tool_calls");
  lc_budget_note_step(&b);
  lc_budget_note_step(&b);
  ck_assert_int_eq(lc_budget_steps_left(&b), 0);
  lc_budget_free(&b);

  all_off(&l);
  l.tokens = 100;
  l.cost_usd = 1;
  lc_budget_init(&b, &l, NULL, 0);
  struct lc_llm_usage u = usage(60, 40, 0);
  lc_budget_charge(&b, &u, "unpriced");
  ck_assert_int_eq(lc_budget_admit(&b, 0), LC_LIMIT_TOKENS);
  lc_budget_free(&b);
  all_off(&l);
  l.cost_usd = 1;
  lc_budget_init(&b, &l, NULL, 0);
  u.has_cost = 1;
  u.cost = 1.5;
  lc_budget_charge(&b, &u, "unpriced");
  ck_assert_int_eq(lc_budget_admit(&b, 0), LC_LIMIT_COST);
  lc_budget_free(&b);
}
END_TEST

/* Limits are reported in enum order when several are hit at once. */
START_TEST(first_limit_wins) {
  struct lc_budget_limits l;
  lc_budget_limits_default(&l);
  struct lc_budget b;
  lc_budget_init(&b, &l, NULL, 0);
  for (int i = 0; i < 5; i++) lc_budget_note_invalid(&b);
  ck_assert_int_eq(lc_budget_check(&b, 400000.0), LC_LIMIT_WALL);
  ck_assert_int_eq(lc_budget_check(&b, 0), LC_LIMIT_INVALID);
  lc_budget_free(&b);
}
END_TEST

START_TEST(price_math) {
  struct lc_price_table t;
  ck_assert_int_eq(lc_price_table_init(&t), 0);
  const struct lc_price *p = lc_price_find(&t, "gpt-4o-mini");
  ck_assert_ptr_nonnull(p);
  struct lc_llm_usage u = usage(1000000, 1000000, 0);
  ck_assert_double_eq_tol(lc_price_cost(p, &u), 0.15 + 0.60, 1e-12);
  /* cached input at the cached price, the rest at the input price */
  u = usage(1000000, 0, 400000);
  ck_assert_double_eq_tol(lc_price_cost(p, &u), 0.6 * 0.15 + 0.4 * 0.075, 1e-12);
  /* nonsense usage never yields a negative cost */
  u = usage(10, -5, 50);
  ck_assert(lc_price_cost(p, &u) >= 0);
  p = lc_price_find(&t, "claude-3-5-haiku-latest");
  ck_assert_ptr_nonnull(p);
  u = usage(2000, 1000, 0);
  ck_assert_double_eq_tol(lc_price_cost(p, &u), (2000 * 0.80 + 1000 * 4.00) / 1e6, 1e-12);
  lc_price_table_free(&t);
}
END_TEST

START_TEST(price_lookup) {
  struct lc_price_table t;
  ck_assert_int_eq(lc_price_table_init(&t), 0);
  struct {
    const char *model, *want;
  } cases[] = {
      {"gpt-4o-mini", "gpt-4o-mini"},
      {"gpt-4o-mini-2024-07-18", "gpt-4o-mini"}, /* longest prefix */
      {"gpt-4o-2024-08-06", "gpt-4o"},
      {"gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"},
      {"o1-mini", "o1-mini"},
      {"o1-2024-12-17", "o1"},
      {"claude-3-5-haiku-20241022", "claude-3-5-haiku"},
      {"claude-sonnet-4-20250514", "claude-sonnet-4"},
      {"claude-opus-4-1-20250805", "claude-opus-4-1"},
      {"openai:gpt-4o", "gpt-4o"},          /* provider prefix */
      {"anthropic:claude-3-haiku-20240307", "claude-3-haiku"},
      {"o1x", NULL},                        /* no separator after prefix */
      {"gpt-4.5-preview", NULL},            /* '.' is no separator */
      {"llama3.1", NULL},
      {"", NULL},
  };
  for (size_t i = 0; i < LC_ARRAY_LEN(cases); i++) {
    const struct lc_price *p = lc_price_find(&t, cases[i].model);
    if (cases[i].want)
      ck_assert_msg(p && strcmp(p->model, cases[i].want) == 0, "%s -> %s", cases[i].model,
                    p ? p->model : "(none)");
    else
      ck_assert_msg(!p, "%s -> %s", cases[i].model, p ? p->model : "");
  }
  ck_assert_ptr_null(lc_price_find(NULL, "gpt-4o"));
  lc_price_table_free(&t);
}
END_TEST

START_TEST(price_override) {
  struct lc_price_table t;
  ck_assert_int_eq(lc_price_table_init(&t), 0);
  /* the built-ins are looked up, not copied into each table */
  ck_assert_uint_eq(t.n, 0);
  ck_assert(lc_price_find(&t, "gpt-4o")->in == 2.50);
  ck_assert_int_eq(lc_price_set(&t, "gpt-4o", 1, 2, 0.5), 0);
  ck_assert(lc_price_find(&t, "gpt-4o-2024-08-06")->in == 1);
  /* setting the same model again replaces the entry */
  ck_assert_int_eq(lc_price_set(&t, "gpt-4o", 1.5, 2, 0.5), 0);
  ck_assert_uint_eq(t.n, 1);
  ck_assert(lc_price_find(&t, "gpt-4o")->in == 1.5);
  ck_assert_int_eq(lc_price_set(&t, "gpt-4o", 1, 2, 0.5), 0);
  /* a more specific entry added at run time wins over the family */
  ck_assert_int_eq(lc_price_set(&t, "gpt-4o-2024-08-06", 7, 8, 0), 0);
  ck_assert(lc_price_find(&t, "gpt-4o-2024-08-06")->in == 7);
  ck_assert(lc_price_find(&t, "gpt-4o-2024-05-13")->in == 1);
  ck_assert_int_eq(lc_price_set(&t, "my-local", 0, 0, 0), 0);
  ck_assert_ptr_nonnull(lc_price_find(&t, "ollama:my-local"));
  ck_assert_int_eq(lc_price_set(&t, "x", -1, 0, 0), LC_EINVAL);
  ck_assert_int_eq(lc_price_set(&t, "x", NAN, 0, 0), LC_EINVAL);
  ck_assert_int_eq(lc_price_set(&t, "", 1, 1, 1), LC_EINVAL);
  lc_price_table_free(&t);
}
END_TEST

START_TEST(cost_unknown_and_reported) {
  struct lc_price_table t;
  ck_assert_int_eq(lc_price_table_init(&t), 0);
  struct lc_budget b;
  lc_budget_init(&b, NULL, &t, 0);
  struct lc_llm_usage u = usage(1000, 1000, 0);
  ck_assert(lc_budget_charge(&b, &u, "mock-gpt") == 0);
  ck_assert_int_eq(b.cost_unknown, 1);
  ck_assert_int_eq(b.tokens_in, 1000);
  /* a provider-reported cost wins over the table, even for a known model */
  u.has_cost = 1;
  u.cost = 0.25;
  ck_assert(lc_budget_charge(&b, &u, "gpt-4o") == 0.25);
  ck_assert_double_eq_tol(b.cost_usd, 0.25, 1e-12);
  lc_budget_free(&b);
  lc_price_table_free(&t);
}
END_TEST

START_TEST(guard_hash_order_independent) {
  cJSON *a = cJSON_Parse("{\"a\":1,\"b\":{\"x\":[1,2],\"y\":\"s\"}}");
  cJSON *b = cJSON_Parse("{\"b\":{\"y\":\"s\",\"x\":[1,2]},\"a\":1}");
  cJSON *c = cJSON_Parse("{\"a\":1,\"b\":{\"x\":[2,1],\"y\":\"s\"}}"); /* array order counts */
  cJSON *d = cJSON_Parse("{\"a\":1.0,\"b\":{\"x\":[1,2],\"y\":\"s\"}}");
  cJSON *e = cJSON_Parse("{\"ab\":\"c\"}");
  cJSON *f = cJSON_Parse("{\"a\":\"bc\"}");
  cJSON *empty = cJSON_Parse("{}");
  uint64_t ha, hb, hc, hd, he, hf, h0, hn, hx;
  lc_action_hash("f", a, &ha);
  lc_action_hash("f", b, &hb);
  lc_action_hash("f", c, &hc);
  lc_action_hash("f", d, &hd);
  lc_action_hash("f", e, &he);
  lc_action_hash("f", f, &hf);
  lc_action_hash("f", empty, &h0);
  lc_action_hash("f", NULL, &hn);
  lc_action_hash("g", a, &hx);
  ck_assert(ha == hb);
  ck_assert(ha != hc);
  ck_assert(ha == hd);
  ck_assert(he != hf);
  ck_assert(h0 == hn);
  ck_assert(ha != hx);
  cJSON_Delete(a);
  cJSON_Delete(b);
  cJSON_Delete(c);
  cJSON_Delete(d);
  cJSON_Delete(e);
  cJSON_Delete(f);
  cJSON_Delete(empty);
}
END_TEST

START_TEST(guard_warn_then_stop) {
  struct lc_budget b;
  lc_budget_init(&b, NULL, NULL, 0); /* repeat = 3 */
  cJSON *x = cJSON_Parse("{\"q\":\"Colorado\",\"n\":1}");
  cJSON *y = cJSON_Parse("{\"n\":1,\"q\":\"Colorado\"}");
  cJSON *z = cJSON_Parse("{\"q\":\"Nebraska\",\"n\":1}");
  struct lc_buf w;
  lc_buf_init(&w, 0);
  ck_assert_int_eq(lc_budget_note_action(&b, "search", x, &w), 0);
  ck_assert_uint_eq(w.len, 0);
  ck_assert_int_eq(lc_budget_note_action(&b, "search", z, &w), 0);
  ck_assert_int_eq(lc_budget_note_action(&b, "lookup", x, &w), 0);
  ck_assert_int_eq(lc_budget_note_action(&b, "search", y, &w), 1); /* same, keys swapped */
  ck_assert_ptr_nonnull(strstr(w.data, "already ran search with exactly this input 1 time"));
  ck_assert_int_eq(lc_budget_check(&b, 0), LC_LIMIT_NONE);
  ck_assert_int_eq(lc_budget_note_action(&b, "search", x, &w), 2);
  ck_assert_int_eq(lc_budget_check(&b, 0), LC_LIMIT_REPEAT);
  struct lc_buf r;
  lc_buf_init(&r, 0);
  lc_budget_reason(&b, LC_LIMIT_REPEAT, 0, &r);
  ck_assert_str_eq(r.data, "the same action with the same input was called 3 times (limit 3)");
  lc_buf_free(&r);
  lc_buf_free(&w);
  cJSON_Delete(x);
  cJSON_Delete(y);
  cJSON_Delete(z);
  lc_budget_free(&b);
}
END_TEST

START_TEST(oom) {
  long live = lc_alloc_live();
  for (long n = 1; n < 40; n++) {
    struct lc_price_table t;
    lc_alloc_fail_after(n);
    int rc = lc_price_table_init(&t);
    ck_assert(rc == 0 || rc == LC_ENOMEM);
    struct lc_budget b;
    lc_budget_init(&b, NULL, &t, 0);
    cJSON *args = cJSON_Parse("{\"a\":{\"b\":1}}");
    rc = lc_budget_note_action(&b, "f", args, NULL);
    ck_assert(rc == 0 || rc == LC_ENOMEM);
    lc_alloc_fail_after(0);
    cJSON_Delete(args);
    lc_budget_free(&b);
    lc_price_table_free(&t);
    ck_assert_int_eq(lc_alloc_live(), live);
  }
}
END_TEST

Suite *budget_suite(void) {
  Suite *s = suite_create("budget");
  TCase *tc = tcase_create("limits");
  tcase_add_test(tc, defaults);
  tcase_add_test(tc, names);
  tcase_add_test(tc, limit_steps);
  tcase_add_test(tc, limit_tokens);
  tcase_add_test(tc, limit_cost);
  tcase_add_test(tc, limit_wall);
  tcase_add_test(tc, limit_invalid);
  tcase_add_test(tc, limits_off);
  tcase_add_test(tc, admit_counts_pending_calls);
  tcase_add_test(tc, first_limit_wins);
  suite_add_tcase(s, tc);
  tc = tcase_create("prices");
  tcase_add_test(tc, price_math);
  tcase_add_test(tc, price_lookup);
  tcase_add_test(tc, price_override);
  tcase_add_test(tc, cost_unknown_and_reported);
  suite_add_tcase(s, tc);
  tc = tcase_create("guard");
  tcase_add_test(tc, guard_hash_order_independent);
  tcase_add_test(tc, guard_warn_then_stop);
  tcase_add_test(tc, oom);
  suite_add_tcase(s, tc);
  return s;
}
