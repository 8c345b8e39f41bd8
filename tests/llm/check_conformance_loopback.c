/* check_conformance_loopback.c: every recorded exchange in
 * shared/fixtures/llm served from loopback by lc-mockllm (status, headers
 * and body byte for byte) and read by the real client (libcurl on the
 * loop, the provider adapter, streaming when the recorded request
 * streamed), checked against tests/conformance/expected.json. One test per
 * fixture; none is skipped. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "lc.h"
#include "llm_call.h"
#include "loop.h"
#include "util_common.h"
#include "util_conformance.h"
#include "util_mock.h"

static void on_done(struct lc_llm_call *c, void *ud) { *(int *)ud = 1; }

START_TEST(fixture_over_loopback) {
  lc_conf_list_fixtures();
  ck_assert_int_ge(lc_conf_n_fixtures, 40);
  ck_assert_int_lt(_i, lc_conf_n_fixtures);
  const char *id = lc_conf_fixtures[_i];
  cJSON *fx = lc_conf_load_fixture(id);
  cJSON *all = lc_conf_load_expected();
  const cJSON *exp = cJSON_GetObjectItemCaseSensitive(all, id);
  ck_assert_msg(exp != NULL, "no expectation for %s", id);

  char script[4096];
  snprintf(script, sizeof script, "[{\"reply\":{\"fixture\":\"%s/%s.json\"}}]",
           lc_test_fixtures_dir(), id);
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, script), 0);

  const struct lc_llm_adapter *ad = lc_conf_adapter_of(fx);
  const cJSON *body = cJSON_GetObjectItem(cJSON_GetObjectItem(fx, "request"), "body");
  const cJSON *stream = cJSON_GetObjectItem(body, "stream");
  const char *model = lc_conf_jstr(body, "model");

  struct lc_llm_request *req = lc_calloc(1, sizeof *req);
  ck_assert_ptr_nonnull(req);
  req->provider = ad == &lc_llm_openai      ? LC_PROV_OPENAI
                  : ad == &lc_llm_anthropic ? LC_PROV_ANTHROPIC
                                            : LC_PROV_OLLAMA;
  req->model = lc_strdup(model ? model : "model");
  char base[128];
  snprintf(base, sizeof base, "%s%s", m.base_url, req->provider == LC_PROV_OPENAI ? "/v1" : "");
  req->base_url = lc_strdup(base);
  req->api_key = lc_strdup("test-key");
  /* Ollama's native API streams unless told otherwise. */
  req->stream = cJSON_IsTrue(stream) || (req->provider == LC_PROV_OLLAMA && !stream);
  req->msgs = lc_calloc(1, sizeof *req->msgs);
  req->n_msgs = 1;
  req->msgs[0].role = LC_ROLE_USER;
  req->msgs[0].content = lc_strdup("hi");
  req->msgs[0].content_len = 2;

  struct lc_llm_opts o;
  lc_llm_opts_default(&o);
  o.retry.max_attempts = 1; /* the recorded answer itself, not a retry's */
  struct lc_loop *loop;
  ck_assert_int_eq(lc_loop_new(&loop), 0);
  int done = 0;
  struct lc_llm_call *call;
  ck_assert_int_eq(lc_llm_call_start(loop, req, &o, NULL, NULL, on_done, &done, &call), 0);
  while (!done) lc_loop_run_once(loop, -1);
  const struct lc_llm_response *r = lc_llm_call_response(call);
  if (lc_conf_jstr(exp, "err")) lc_conf_check_error(id, r, exp);
  else lc_conf_check_answer(id, r, exp);
  ck_assert_int_eq(r->attempts, 1);
  lc_llm_call_free(call);
  ck_assert_int_eq(lc_loop_pending(loop), 0);
  lc_loop_free(loop);
  /* Exactly one exchange reached the server. */
  char *stats = lc_mock_stats(&m);
  ck_assert_ptr_nonnull(stats);
  ck_assert_msg(strstr(stats, "\"requests\":1,") != NULL, "%s", stats);
  free(stats);
  ck_assert_int_eq(lc_mock_stop(&m), 0);
  cJSON_Delete(all);
  cJSON_Delete(fx);
}
END_TEST

Suite *conformance_loopback_suite(void) {
  Suite *s = suite_create("conformance_loopback");
  TCase *tc = tcase_create("fixtures");
  tcase_set_timeout(tc, 30);
  lc_conf_list_fixtures();
  /* Fixtures present decide the count; the case itself asserts >= 40. */
  tcase_add_loop_test(tc, fixture_over_loopback, 0, lc_conf_n_fixtures > 0 ? lc_conf_n_fixtures : 1);
  suite_add_tcase(s, tc);
  return s;
}
