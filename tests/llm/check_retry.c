/* check_retry.c: backoff, jitter, Retry-After, attempt and time caps. */
#include <check.h>
#include <math.h>
#include <stdint.h>

#include <curl/curl.h>
#include <stdio.h>

#include "http.h"
#include "lc.h"
#include "llm.h"
#include "retry.h"
#include "util_lua.h"
#include "util_mock.h"

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

/* Retry-After: 0 means "now", not "absent": a mutant that falls back to
 * backoff for 0 would wait base/2 at least. Asserted on the computed delay,
 * from the header's text through to retry.c. */
START_TEST(retry_after_zero_is_now_not_absent) {
  struct lc_retry_policy p = pol();
  double ra = lc_llm_retry_after_s("retry-after", "0", lc_wall_s());
  ck_assert_double_eq_tol(ra, 0, 1e-12);
  ck_assert_double_eq_tol(lc_llm_retry_after_s("retry-after-ms", "0", lc_wall_s()), 0, 1e-12);
  /* Whatever the jitter, 0 stays 0 (the spread is 10% of the wait). */
  ck_assert_double_eq_tol(lc_retry_delay(&p, 1, ra * 1000, 0, RND_MIN, NULL), 0, 1e-12);
  ck_assert_double_eq_tol(lc_retry_delay(&p, 3, ra * 1000, 0, RND_MAX, NULL), 0, 1e-12);
  /* Absent is the backoff: never 0. */
  ck_assert(lc_retry_delay(&p, 1, -1, 0, RND_MIN, NULL) >= 50);
}
END_TEST

/* The HTTP-date form gives the seconds until that instant, and the delay
 * follows it exactly (a fixed "now", so no wall time is involved). */
START_TEST(retry_after_http_date_gives_that_delay) {
  struct lc_retry_policy p = pol();
  double now = (double)curl_getdate("Wed, 21 Oct 2026 07:28:00 GMT", NULL);
  ck_assert(now > 0);
  double ra = lc_llm_retry_after_s("Retry-After", "Wed, 21 Oct 2026 07:28:03 GMT", now);
  ck_assert_double_eq_tol(ra, 3, 1e-9);
  ck_assert_double_eq_tol(lc_retry_delay(&p, 1, ra * 1000, 0, RND_MIN, NULL), 3000, 1e-9);
  /* Another date format curl reads (RFC 850). */
  ra = lc_llm_retry_after_s("retry-after", "Wednesday, 21-Oct-26 07:28:02 GMT", now);
  ck_assert_double_eq_tol(ra, 2, 1e-9);
  /* Past: now. */
  ra = lc_llm_retry_after_s("retry-after", "Wed, 21 Oct 2026 07:27:00 GMT", now);
  ck_assert_double_eq_tol(ra, 0, 1e-9);
  ck_assert_double_eq_tol(lc_retry_delay(&p, 1, ra * 1000, 0, RND_MAX, NULL), 0, 1e-12);
}
END_TEST

/* Above max_retry_after the call stops instead of waiting (as a date too);
 * at the cap exactly it is still honoured. */
START_TEST(retry_after_above_the_cap_stops) {
  struct lc_retry_policy p = pol(); /* max_retry_after_ms = 5000 */
  const char *why = NULL;
  ck_assert(lc_retry_delay(&p, 1, 5001, 0, RND_MIN, &why) < 0);
  ck_assert_str_eq(why, "server asked to wait longer than max_retry_after");
  ck_assert_double_eq_tol(lc_retry_delay(&p, 1, 5000, 0, RND_MIN, NULL), 5000, 1e-9);
  double now = (double)curl_getdate("Wed, 21 Oct 2026 07:28:00 GMT", NULL);
  double ra = lc_llm_retry_after_s("retry-after", "Wed, 21 Oct 2026 07:29:00 GMT", now);
  ck_assert_double_eq_tol(ra, 60, 1e-9);
  why = NULL;
  ck_assert(lc_retry_delay(&p, 1, ra * 1000, 0, RND_MIN, &why) < 0);
  ck_assert_str_eq(why, "server asked to wait longer than max_retry_after");
}
END_TEST

/* End to end through the call: a 429 with Retry-After: 0, then an answer.
 * The backoff alone (retry_base 1000 s) would exceed the retry budget
 * (100 s) and the call would give up, so success proves 0 was taken as
 * "now" all the way from the header to the timer. No wall time is read. */
START_TEST(retry_after_zero_through_the_call) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m,
      "[{\"times\": 1, \"reply\": {\"status\": 429, \"retry_after\": 0,"
      "   \"body\": \"{\\\"error\\\":{\\\"message\\\":\\\"slow down\\\"}}\"}},"
      " {\"reply\": {\"openai\": {\"text\": \"ok\"}}}]"), 0);
  char out[256] = "", err[512] = "";
  int rc = lc_test_lua_run_once(m.base_url, NULL,
      "local r, msg, code = luact.llm.chat{model = 'openai:mock', base_url = BASE .. '/v1',\n"
      "  api_key = 'none', prompt = 'hi', retries = 1, retry_base = 1000,\n"
      "  retry_max_delay = 1000, retry_budget = 100}\n"
      "if not r then return 'failed: ' .. tostring(msg) end\n"
      "return r.text .. ' after ' .. r.attempts\n",
      out, sizeof out, err, sizeof err);
  int n = lc_mock_count_requests(&m, "/v1/chat/completions");
  ck_assert_int_eq(lc_mock_stop(&m), 0);
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_str_eq(out, "ok after 2");
  ck_assert_int_eq(n, 2);
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
  tcase_add_test(tc, retry_after_zero_is_now_not_absent);
  tcase_add_test(tc, retry_after_http_date_gives_that_delay);
  tcase_add_test(tc, retry_after_above_the_cap_stops);
  suite_add_tcase(s, tc);
  TCase *call = tcase_create("call");
  tcase_set_timeout(call, 30);
  tcase_add_test(call, retry_after_zero_through_the_call);
  suite_add_tcase(s, call);
  return s;
}
