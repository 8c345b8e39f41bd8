/* check_retry.c: backoff, jitter, Retry-After, attempt and time caps. */
#include <check.h>
#include <math.h>
#include <stdint.h>

#include "http.h"
#include "lc.h"
#include "retry.h"

static struct lc_retry_policy pol(void) {
  struct lc_retry_policy p;
  lc_retry_policy_default(&p);
  p.max_attempts = 10;
  p.base_delay_ms = 100;
  p.max_delay_ms = 1000;
  p.max_retry_after_ms = 5000;
  p.total_ms = 60000;
  return p;
}

#define RND_MIN 0ull
#define RND_MAX UINT64_MAX

START_TEST(backoff_doubles_with_equal_jitter) {
  struct lc_retry_policy p = pol();
  /* attempt n: cap = 100 * 2^(n-1); delay in [cap/2, cap). */
  double cap = 100;
  for (int n = 1; n <= 4; n++, cap *= 2) {
    double lo = lc_retry_delay(&p, n, -1, 0, RND_MIN, NULL);
    double hi = lc_retry_delay(&p, n, -1, 0, RND_MAX, NULL);
    ck_assert_double_eq_tol(lo, cap / 2, 1e-9);
    ck_assert(hi <= cap && hi > cap * 0.99);
  }
}
END_TEST

START_TEST(backoff_is_capped) {
  struct lc_retry_policy p = pol();
  double d = lc_retry_delay(&p, 9, -1, 0, RND_MAX, NULL);
  ck_assert(d <= 1000 && d >= 500);
}
END_TEST

START_TEST(jitter_spreads_clients) {
  struct lc_retry_policy p = pol();
  double a = lc_retry_delay(&p, 3, -1, 0, 0x1234567890abcdefull, NULL);
  double b = lc_retry_delay(&p, 3, -1, 0, 0xfedcba0987654321ull, NULL);
  ck_assert(a != b);
  ck_assert(a >= 200 && a < 400 && b >= 200 && b < 400);
}
END_TEST

START_TEST(retry_after_wins_and_is_never_shortened) {
  struct lc_retry_policy p = pol();
  double d = lc_retry_delay(&p, 1, 3000, 0, RND_MIN, NULL);
  ck_assert_double_eq_tol(d, 3000, 1e-9);
  d = lc_retry_delay(&p, 1, 3000, 0, RND_MAX, NULL);
  ck_assert(d >= 3000 && d <= 3300);
  /* Larger than the base backoff would be: still honoured. */
  d = lc_retry_delay(&p, 1, 4000, 0, RND_MIN, NULL);
  ck_assert_double_eq_tol(d, 4000, 1e-9);
}
END_TEST

START_TEST(limits_stop_retrying) {
  struct lc_retry_policy p = pol();
  const char *why = NULL;
  ck_assert(lc_retry_delay(&p, 10, -1, 0, 0, &why) < 0);
  ck_assert_str_eq(why, "attempt limit reached");
  ck_assert(lc_retry_delay(&p, 1, 6000, 0, 0, &why) < 0);
  ck_assert_ptr_nonnull(why);
  ck_assert(lc_retry_delay(&p, 1, -1, 59990, 0, &why) < 0);
  ck_assert_str_eq(why, "retry budget (total time) exhausted");
  p.max_attempts = 1;
  ck_assert(lc_retry_delay(&p, 1, -1, 0, 0, NULL) < 0);
}
END_TEST

START_TEST(retry_after_header_forms) {
  ck_assert_double_eq_tol(lc_http_parse_retry_after("4", lc_wall_s()), 4, 1e-9);
  ck_assert_double_eq_tol(lc_http_parse_retry_after(" 1.5 ", lc_wall_s()), 1.5, 1e-9);
  ck_assert(lc_http_parse_retry_after("", lc_wall_s()) < 0);
  ck_assert(lc_http_parse_retry_after("soon", lc_wall_s()) < 0);
  ck_assert(lc_http_parse_retry_after("-3", lc_wall_s()) < 0);
  /* An HTTP-date in the past means "now". */
  ck_assert_double_eq_tol(lc_http_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", lc_wall_s()), 0, 1e-9);
  double future = lc_http_parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT", lc_wall_s());
  ck_assert(future > 1e9);
}
END_TEST

Suite *retry_suite(void) {
  Suite *s = suite_create("retry");
  TCase *tc = tcase_create("policy");
  tcase_add_test(tc, backoff_doubles_with_equal_jitter);
  tcase_add_test(tc, backoff_is_capped);
  tcase_add_test(tc, jitter_spreads_clients);
  tcase_add_test(tc, retry_after_wins_and_is_never_shortened);
  tcase_add_test(tc, limits_stop_retrying);
  tcase_add_test(tc, retry_after_header_forms);
  suite_add_tcase(s, tc);
  return s;
}
