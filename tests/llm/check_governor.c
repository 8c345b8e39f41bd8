/* check_governor.c: GCRA reservations for requests and tokens. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "governor.h"
#include "http.h"
#include "lc.h"
#include "llm.h"
#include "llm_call.h"
#include "loop.h"

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

/* A reservation given back leaves the schedule as it was before it: the
 * next caller gets the delay the cancelled one had, not one slot later. */
START_TEST(refund_undoes_a_reservation) {
  lc_governor_reset_all();
  struct lc_governor_limits l = {.rpm = 60, .tpm = 6000, .burst_tok = 1};
  lc_governor_configure("openai", &l);
  struct lc_governor *g = lc_governor_for("openai", "u", "k");
  ck_assert_double_eq_tol(lc_governor_reserve(g, 100, 0), 0, 1e-9);
  double r0, t0, r1, t1;
  lc_governor_state(g, &r0, &t0);
  struct lc_governor_ticket tk;
  ck_assert_double_eq_tol(lc_governor_reserve_ticket(g, 100, 0, &tk), 1000, 1e-6);
  lc_governor_state(g, &r1, &t1);
  ck_assert(r1 > r0 && t1 > t0);
  lc_governor_refund(g, &tk);
  lc_governor_state(g, &r1, &t1);
  ck_assert_double_eq_tol(r1, r0, 1e-9);
  ck_assert_double_eq_tol(t1, t0, 1e-9);
  ck_assert_double_eq_tol(lc_governor_reserve(g, 100, 0), 1000, 1e-6);
  /* Limits changed in between: the ticket gives back what it took. */
  lc_governor_state(g, &r0, &t0);
  ck_assert_double_eq_tol(lc_governor_reserve_ticket(g, 100, 0, &tk), 2000, 1e-6);
  struct lc_governor_limits l2 = {.rpm = 30, .tpm = 3000, .burst_tok = 1};
  lc_governor_configure("openai", &l2);
  lc_governor_refund(g, &tk);
  lc_governor_state(g, &r1, &t1);
  ck_assert_double_eq_tol(r1, r0, 1e-9);
  ck_assert_double_eq_tol(t1, t0, 1e-9);
  lc_governor_refund(NULL, &tk); /* unlimited: nothing to give back */
  lc_governor_reset_all();
}
END_TEST

static void never_done(struct lc_llm_call *c, void *ud) {
  (void)c;
  *(int *)ud = 1;
}

/* A call cancelled while it waits for its turn gives its reservation back:
 * the governor's schedule is where it was before the call, so the next
 * call is not held back by a request that was never sent. Nothing listens
 * at the base URL: the call never gets to send. */
START_TEST(cancelled_while_waiting_refunds) {
  lc_governor_reset_all();
  lc_http_global_init();
  struct lc_governor_limits l = {.rpm = 60, .tpm = 60000, .burst_tok = 1};
  lc_governor_configure("openai", &l);
  const char *base = "http://127.0.0.1:9/v1", *key = "k-governor-refund";
  struct lc_governor *g = lc_governor_for("openai", base, key);
  ck_assert_ptr_nonnull(g);
  /* Someone else holds the current slot: the call must wait ~1 s (and
   * the token schedule 10 s ahead, so that it is still ahead of now when
   * the call reserves: a schedule in the past is brought up to now, and
   * that part is not refunded. 10 tokens, 10 ms, were passed under ASan
   * on a loaded machine). */
  lc_governor_reserve(g, 10000, lc_now_ms());
  double r0, t0, r1, t1;
  lc_governor_state(g, &r0, &t0);

  struct lc_llm_request *q = lc_calloc(1, sizeof *q);
  q->provider = LC_PROV_OPENAI;
  q->model = lc_strdup("mock-gpt");
  q->base_url = lc_strdup(base);
  q->api_key = lc_strdup(key);
  q->msgs = lc_calloc(1, sizeof *q->msgs);
  q->msgs[0].role = LC_ROLE_USER;
  q->msgs[0].content = lc_strdup("hi");
  q->msgs[0].content_len = 2;
  q->n_msgs = 1;
  struct lc_loop *loop;
  ck_assert_int_eq(lc_loop_new(&loop), 0);
  int done = 0;
  struct lc_llm_call *call;
  ck_assert_int_eq(lc_llm_call_start(loop, q, NULL, NULL, NULL, never_done, &done, &call), 0);
  lc_governor_state(g, &r1, &t1);
  ck_assert_msg(r1 >= r0 + 999, "the call did not reserve its slot (%f -> %f)", r0, r1);
  ck_assert(t1 > t0);
  lc_llm_call_free(call); /* cancelled before its turn came */
  ck_assert_int_eq(done, 0);
  lc_governor_state(g, &r1, &t1);
  ck_assert_double_eq_tol(r1, r0, 1e-6);
  ck_assert_double_eq_tol(t1, t0, 1e-6);
  lc_loop_free(loop);
  lc_governor_reset_all();
}
END_TEST

/* settle reads the limit while configure changes it from another worker.
 * Before the fix, settle checked tpm outside the lock: a data race (the
 * ThreadSanitizer build reports it), and a tpm set to 0 between that check
 * and the division put the schedule at infinity. Here: the schedule stays
 * finite, and under TSan no race is reported. */
struct churn {
  struct lc_governor *g;
  int n;
};

static void *configure_churn(void *ud) {
  struct churn *c = ud;
  for (int i = 0; i < c->n; i++) {
    struct lc_governor_limits l = {.rpm = 60, .tpm = (i & 1) ? 6000 : 0};
    lc_governor_configure("openai", &l);
  }
  return NULL;
}

static void *settle_churn(void *ud) {
  struct churn *c = ud;
  for (int i = 0; i < c->n; i++) lc_governor_settle(c->g, 100, 50);
  return NULL;
}

START_TEST(settle_races_configure) {
  lc_governor_reset_all();
  struct lc_governor_limits l = {.rpm = 60, .tpm = 6000};
  lc_governor_configure("openai", &l);
  struct churn c = {lc_governor_for("openai", "u", "k"), 20000};
  ck_assert_ptr_nonnull(c.g);
  pthread_t a, b;
  ck_assert_int_eq(pthread_create(&a, NULL, configure_churn, &c), 0);
  ck_assert_int_eq(pthread_create(&b, NULL, settle_churn, &c), 0);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  double r, t;
  lc_governor_state(c.g, &r, &t);
  ck_assert(isfinite(r) && isfinite(t));
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
  tcase_add_test(tc, refund_undoes_a_reservation);
  tcase_add_test(tc, settle_races_configure);
  suite_add_tcase(s, tc);
  TCase *call = tcase_create("call");
  tcase_set_timeout(call, 30);
  tcase_add_test(call, cancelled_while_waiting_refunds);
  suite_add_tcase(s, call);
  return s;
}
