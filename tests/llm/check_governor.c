/* check_governor.c: GCRA reservations for requests and tokens. */
#include <check.h>

#include "governor.h"

START_TEST(requests_are_spaced) {
  lc_governor_reset_all();
  struct lc_governor_limits l = {.rpm = 60}; /* one a second */
  ck_assert_int_eq(lc_governor_configure("openai", &l), 0);
  struct lc_governor *g = lc_governor_for("openai", "http://x", "k1");
  ck_assert_ptr_nonnull(g);
  ck_assert_double_eq_tol(lc_governor_reserve(g, 0, 0), 0, 1e-9);
  ck_assert_double_eq_tol(lc_governor_reserve(g, 0, 0), 1000, 1e-9);
  ck_assert_double_eq_tol(lc_governor_reserve(g, 0, 0), 2000, 1e-9);
  /* Time passing frees the schedule. */
  ck_assert_double_eq_tol(lc_governor_reserve(g, 0, 10000), 0, 1e-9);
  lc_governor_reset_all();
}
END_TEST

START_TEST(burst_runs_ahead) {
  lc_governor_reset_all();
  struct lc_governor_limits l = {.rpm = 60, .burst_req = 3};
  lc_governor_configure("anthropic", &l);
  struct lc_governor *g = lc_governor_for("anthropic", "u", "k");
  for (int i = 0; i < 3; i++) ck_assert_double_eq_tol(lc_governor_reserve(g, 0, 0), 0, 1e-9);
  ck_assert_double_eq_tol(lc_governor_reserve(g, 0, 0), 1000, 1e-9);
  lc_governor_reset_all();
}
END_TEST

START_TEST(tokens_limit_and_settle) {
  lc_governor_reset_all();
  struct lc_governor_limits l = {.tpm = 6000, .burst_tok = 1}; /* 10 ms a token */
  lc_governor_configure("openai", &l);
  struct lc_governor *g = lc_governor_for("openai", "u", "k");
  ck_assert_double_eq_tol(lc_governor_reserve(g, 100, 0), 0, 1e-9);
  ck_assert_double_eq_tol(lc_governor_reserve(g, 100, 0), 1000, 1e-6);
  /* The first call really used 300 tokens: the schedule moves back. */
  lc_governor_settle(g, 100, 300);
  ck_assert_double_eq_tol(lc_governor_reserve(g, 100, 0), 4000, 1e-6);
  lc_governor_reset_all();
}
END_TEST

START_TEST(keys_are_separate_and_unlimited_is_null) {
  lc_governor_reset_all();
  ck_assert_ptr_null(lc_governor_for("openai", "u", "k"));
  struct lc_governor_limits l = {.rpm = 60};
  lc_governor_configure("openai", &l);
  struct lc_governor *a = lc_governor_for("openai", "u", "k1");
  struct lc_governor *b = lc_governor_for("openai", "u", "k2");
  ck_assert_ptr_ne(a, b);
  ck_assert_ptr_eq(a, lc_governor_for("openai", "u", "k1"));
  ck_assert_double_eq_tol(lc_governor_reserve(a, 0, 0), 0, 1e-9);
  ck_assert_double_eq_tol(lc_governor_reserve(b, 0, 0), 0, 1e-9);
  ck_assert_ptr_null(lc_governor_for("ollama", "u", "k1"));
  lc_governor_reset_all();
}
END_TEST

Suite *governor_suite(void) {
  Suite *s = suite_create("governor");
  TCase *tc = tcase_create("gcra");
  tcase_add_test(tc, requests_are_spaced);
  tcase_add_test(tc, burst_runs_ahead);
  tcase_add_test(tc, tokens_limit_and_settle);
  tcase_add_test(tc, keys_are_separate_and_unlimited_is_null);
  suite_add_tcase(s, tc);
  return s;
}
