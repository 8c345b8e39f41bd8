/* check_conformance_llm2.c: the recorded exchanges of shared/fixtures/llm2
 * that luact's Responses, OpenAI chat, Anthropic and DeepSeek paths cover
 * (every responses-*, deepseek-*, openai-chat-image-* and
 * anthropic-image-* file; none skipped: a missing expectation fails).
 *
 * For each: the recorded request body is turned into a normalised request
 * (images included), the adapter builds it, and the body's shape is
 * checked against the recorded one (item kinds, roles, content part types,
 * image form, tools, text.format, reasoning); the recorded answer goes
 * through parse / parse_error / the stream parser (one byte at a time,
 * same result; cut short: always an error; every split offset is
 * check_conformance_llm2_splits.c); and the
 * exchange is served from loopback by lc-mockllm and read by the real
 * client, whose request as received is shape-checked the same way. */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "lc.h"
#include "llm.h"
#include "llm_call.h"
#include "loop.h"
#include "util_common.h"
#include "util_conformance.h"
#include "util_llm2.h"
#include "util_mock.h"

/* ---- coverage ---- */

START_TEST(every_fixture_has_an_expectation) {
  l2_list_ids();
  ck_assert_int_eq(l2_n_ids, 21); /* 16 Responses, 1 DeepSeek, 2 + 2 image */
  cJSON *exp = l2_load_exp();
  for (int i = 0; i < l2_n_ids; i++)
    ck_assert_msg(cJSON_GetObjectItemCaseSensitive(exp, l2_ids[i]) != NULL,
                  "fixture %s has no expectation", l2_ids[i]);
  ck_assert_int_eq(cJSON_GetArraySize(exp) - 1, l2_n_ids);
  cJSON_Delete(exp);
}
END_TEST

START_TEST(fixture_parse) {
  l2_list_ids();
  ck_assert_int_lt(_i, l2_n_ids);
  const char *id = l2_ids[_i];
  long live = lc_alloc_live();
  cJSON *all = l2_load_exp(), *fx = l2_load_fx(id);
  const cJSON *exp = cJSON_GetObjectItemCaseSensitive(all, id);
  ck_assert_msg(exp != NULL, "no expectation for %s", id);
  enum lc_llm_provider prov = l2_prov_of(fx);
  const struct lc_llm_adapter *ad = lc_llm_adapter_for(prov);
  const cJSON *resp = cJSON_GetObjectItem(fx, "response");
  int status = cJSON_GetObjectItem(resp, "status")->valueint;
  const char *body = cJSON_GetObjectItem(resp, "body_text")->valuestring;
  size_t len = strlen(body);
  const cJSON *rq = cJSON_GetObjectItem(cJSON_GetObjectItem(fx, "request"), "body");
  int stream = cJSON_IsTrue(cJSON_GetObjectItem(rq, "stream"));

  /* the request luact builds for the recorded one */
  struct lc_llm_request *q = l2_request_of(fx, prov);
  struct lc_llm_http h;
  char err[256] = "";
  ck_assert_msg(ad->build(q, &h, err, sizeof err) == 0, "%s: build: %s", id, err);
  l2_check_shape(id, fx, prov, h.body, h.body_len);
  lc_llm_http_free(&h);
  lc_llm_request_delete(q);

  struct lc_llm_response r;
  lc_llm_response_init(&r);
  if (status >= 300) {
    ad->parse_error(status, body, len, &r);
    ck_assert_int_eq(r.http_status, status);
    lc_conf_check_error(id, &r, exp);
  } else if (!stream) {
    ck_assert_int_eq(ad->parse(body, len, &r), 0);
    l2_check_answer(id, &r, exp);
    lc_conf_check_half_body(ad, body, len);
  } else {
    ck_assert_int_eq(lc_conf_run_stream(ad, body, len, len, &r), 0);
    l2_check_answer(id, &r, exp);
    /* one byte at a time (the every-offset splits are the suite
     * conformance_llm2_splits: this one stays within its time) */
    lc_conf_check_splits(id, ad, body, len, &r, len + 1, len + 1);
    /* no [DONE]: the end is response.completed; cut before it (or inside
     * its event) is always an error, never a short answer */
    const char *m = strstr(body, "event: response.completed");
    ck_assert_msg(m != NULL, "%s: no response.completed", id);
    size_t mpos = (size_t)(m - body);
    const char *ln = strstr(m, "\ndata: ");
    size_t dpos = (size_t)(ln - body) + 20;
    size_t cuts[] = {0, 1, len / 4, len / 2, mpos, mpos + 3, dpos};
    for (size_t k = 0; k < LC_ARRAY_LEN(cuts); k++) {
      struct lc_llm_response c;
      ck_assert_int_eq(lc_conf_run_stream(ad, body, cuts[k], cuts[k], &c), LC_EINVAL);
      ck_assert_msg(c.err == LC_LLM_EBADRESP, "%s: cut at %zu: %s", id, cuts[k], lc_llm_err_name(c.err));
      ck_assert_ptr_null(c.text);
      lc_llm_response_free(&c);
    }
  }
  lc_llm_response_free(&r);
  cJSON_Delete(fx);
  cJSON_Delete(all);
  ck_assert_int_eq(lc_alloc_live(), live);
}
END_TEST

/* ---- loopback ---- */

static void on_done(struct lc_llm_call *c, void *ud) {
  (void)c;
  *(int *)ud = 1;
}

START_TEST(fixture_loopback) {
  l2_list_ids();
  ck_assert_int_lt(_i, l2_n_ids);
  const char *id = l2_ids[_i];
  cJSON *all = l2_load_exp(), *fx = l2_load_fx(id);
  const cJSON *exp = cJSON_GetObjectItemCaseSensitive(all, id);
  ck_assert_ptr_nonnull(exp);
  char script[8400];
  snprintf(script, sizeof script, "[{\"reply\":{\"fixture\":\"%s/%s.json\"}}]", l2_fx_dir(), id);
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m, script), 0);
  enum lc_llm_provider prov = l2_prov_of(fx);
  struct lc_llm_request *q = l2_request_of(fx, prov);
  const char *path = lc_conf_jstr(cJSON_GetObjectItem(fx, "request"), "path");
  char base[160];
  /* the recorded path minus the l2_adapter's own endpoint is the base */
  snprintf(base, sizeof base, "%s%s", m.base_url,
           prov == LC_PROV_ANTHROPIC ? "" : (strncmp(path, "/v1/", 4) == 0 ? "/v1" : ""));
  q->base_url = lc_strdup(base);
  struct lc_llm_opts o;
  lc_llm_opts_default(&o);
  o.retry.max_attempts = 1;
  struct lc_loop *loop;
  ck_assert_int_eq(lc_loop_new(&loop), 0);
  int done = 0;
  struct lc_llm_call *call;
  ck_assert_int_eq(lc_llm_call_start(loop, q, &o, NULL, NULL, on_done, &done, &call), 0);
  while (!done) lc_loop_run_once(loop, -1);
  const struct lc_llm_response *r = lc_llm_call_response(call);
  if (lc_conf_jstr(exp, "err")) lc_conf_check_error(id, r, exp);
  else l2_check_answer(id, r, exp);
  ck_assert_int_eq(r->attempts, 1);
  lc_llm_call_free(call);
  lc_loop_free(loop);
  /* the request as the server received it: the recorded path and shape */
  ck_assert_int_eq(lc_mock_count_requests(&m, path), 1);
  char *sent = lc_mock_request_body(&m, 0);
  ck_assert_ptr_nonnull(sent);
  l2_check_shape(id, fx, prov, sent, strlen(sent));
  cJSON_free(sent);
  ck_assert_int_eq(lc_mock_stop(&m), 0);
  cJSON_Delete(all);
  cJSON_Delete(fx);
}
END_TEST

/* Out of memory at every allocation of parsing a Responses answer with
 * encrypted reasoning, whole and streamed: the parser succeeds, or refuses
 * with an error kind (the reasoning state it could not keep is
 * bad_response "out of memory"), and nothing leaks. */
START_TEST(reasoning_parse_out_of_memory) {
  static const char *const ids[] = {"responses-reasoning-encrypted-nonstream-01",
                                    "deepseek-responses-reasoning-stream-01"};
  const struct lc_llm_adapter *ad = &lc_llm_openai_responses;
  for (int k = 0; k < 2; k++) {
    cJSON *fx = l2_load_fx(ids[k]);
    const char *body =
        cJSON_GetObjectItem(cJSON_GetObjectItem(fx, "response"), "body_text")->valuestring;
    size_t len = strlen(body);
    int finished = 0, nomem = 0;
    /* every n to a bound past the parse's allocations: an optional field
     * may go missing quietly, so a success does not end the sweep */
    for (long n = 1; n < 3000; n++) {
      long live = lc_alloc_live();
      struct lc_llm_response r;
      lc_llm_response_init(&r);
      lc_alloc_fail_after(n);
      int rc;
      if (k == 0) {
        rc = ad->parse(body, len, &r);
      } else {
        struct lc_llm_stream *st = ad->stream_new();
        rc = st ? ad->stream_feed(st, body, len, NULL, NULL) : LC_ENOMEM;
        if (st) {
          int erc = ad->stream_end(st, &r);
          if (!rc) rc = erc;
          ad->stream_free(st);
        }
      }
      lc_alloc_fail_after(0);
      if (rc == 0) finished |= r.err == LC_LLM_OK;
      else ck_assert_msg(rc == LC_EINVAL || rc == LC_ENOMEM, "%s n=%ld rc=%d", ids[k], n, rc);
      if (rc == LC_EINVAL) ck_assert_int_ne(r.err, LC_LLM_OK);
      nomem += r.err_message && !strcmp(r.err_message, "out of memory");
      lc_llm_response_free(&r);
      ck_assert_msg(lc_alloc_live() == live, "%s n=%ld: leaked", ids[k], n);
    }
    ck_assert_msg(finished, "%s never parsed", ids[k]);
    ck_assert_msg(nomem > 0, "%s: no allocation failure reached the reasoning state", ids[k]);
    cJSON_Delete(fx);
  }
}
END_TEST

Suite *conformance_llm2_suite(void) {
  Suite *s = suite_create("conformance_llm2");
  l2_list_ids();
  TCase *tc = tcase_create("coverage");
  tcase_add_test(tc, every_fixture_has_an_expectation);
  suite_add_tcase(s, tc);
  tc = tcase_create("parse");
  tcase_set_timeout(tc, 600);
  tcase_add_loop_test(tc, fixture_parse, 0, l2_n_ids ? l2_n_ids : 1);
  tcase_add_test(tc, reasoning_parse_out_of_memory);
  suite_add_tcase(s, tc);
  tc = tcase_create("loopback");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, fixture_loopback, 0, l2_n_ids ? l2_n_ids : 1);
  suite_add_tcase(s, tc);
  return s;
}
