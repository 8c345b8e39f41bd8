/* check_conformance_parse.c: every recorded exchange in shared/fixtures/llm
 * through the matching adapter's parse / parse_error / stream, against the
 * expectations in tests/conformance/expected.json. Streams are also fed
 * split at every byte offset and one byte at a time (same response), and
 * cut short at several offsets (always an error, never a short answer). */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "lc.h"
#include "llm.h"
#include "util_common.h"
#include "util_conformance.h"

/* ---- coverage: fixtures <-> expectations ---- */

START_TEST(every_fixture_has_an_expectation) {
  lc_conf_list_fixtures();
  ck_assert_int_ge(lc_conf_n_fixtures, 40);
  cJSON *exp = lc_conf_load_expected();
  for (int i = 0; i < lc_conf_n_fixtures; i++)
    ck_assert_msg(cJSON_GetObjectItemCaseSensitive(exp, lc_conf_fixtures[i]) != NULL,
                  "fixture %s has no expectation", lc_conf_fixtures[i]);
  const cJSON *e;
  cJSON_ArrayForEach(e, exp) {
    if (e->string[0] == '_') continue;
    int found = 0;
    for (int i = 0; i < lc_conf_n_fixtures && !found; i++)
      found = strcmp(lc_conf_fixtures[i], e->string) == 0;
    ck_assert_msg(found, "expectation %s has no fixture", e->string);
  }
  cJSON_Delete(exp);
}
END_TEST

static const char *end_marker(const struct lc_llm_adapter *ad) {
  if (ad == &lc_llm_openai) return "data: [DONE]";
  if (ad == &lc_llm_anthropic) return "event: message_stop";
  return "\"done\":true";
}

START_TEST(fixture) {
  lc_conf_list_fixtures();
  ck_assert_int_lt(_i, lc_conf_n_fixtures);
  const char *id = lc_conf_fixtures[_i];
  long live = lc_alloc_live();
  cJSON *all = lc_conf_load_expected();
  cJSON *fx = lc_conf_load_fixture(id);
  const cJSON *exp = cJSON_GetObjectItemCaseSensitive(all, id);
  ck_assert_msg(exp != NULL, "no expectation for %s", id);
  const struct lc_llm_adapter *ad = lc_conf_adapter_of(fx);
  const cJSON *resp = cJSON_GetObjectItem(fx, "response");
  int status = cJSON_GetObjectItem(resp, "status")->valueint;
  const char *body = cJSON_GetObjectItem(resp, "body_text")->valuestring;
  size_t len = strlen(body);
  const cJSON *rq = cJSON_GetObjectItem(cJSON_GetObjectItem(fx, "request"), "body");
  int stream = cJSON_IsTrue(cJSON_GetObjectItem(rq, "stream"));
  struct lc_llm_response r;
  lc_llm_response_init(&r);

  if (status >= 300) {
    ad->parse_error(status, body, len, &r);
    ck_assert_int_eq(r.http_status, status);
    const cJSON *h;
    cJSON_ArrayForEach(h, cJSON_GetObjectItem(resp, "headers")) {
      double v = lc_llm_retry_after_s(h->string, h->valuestring, lc_wall_s());
      if (v >= 0) r.retry_after_s = v;
    }
    lc_conf_check_error(id, &r, exp);
  } else if (!stream) {
    ck_assert_int_eq(ad->parse(body, len, &r), 0);
    lc_conf_check_answer(id, &r, exp);
    lc_conf_check_half_body(ad, body, len);
  } else {
    ck_assert_int_eq(lc_conf_run_stream(ad, body, len, len, &r), 0);
    lc_conf_check_answer(id, &r, exp);
    lc_conf_check_splits(id, ad, body, len, &r, 0, len + 1); /* len + 1: bytewise */
    /* cut short before the end marker is complete: always an error */
    const char *mk = end_marker(ad);
    const char *m = strstr(body, mk);
    ck_assert_msg(m != NULL, "%s: no end marker", id);
    size_t mpos = (size_t)(m - body);
    size_t cuts[] = {0, 1, len / 4, len / 2, mpos, mpos + 3, mpos + strlen(mk) + 1};
    for (size_t k = 0; k < LC_ARRAY_LEN(cuts); k++) {
      struct lc_llm_response o;
      ck_assert_int_eq(lc_conf_run_stream(ad, body, cuts[k], cuts[k], &o), LC_EINVAL);
      ck_assert_msg(o.err == LC_LLM_EBADRESP, "%s: cut at %zu: %s", id, cuts[k],
                    lc_llm_err_name(o.err));
      ck_assert_ptr_nonnull(o.err_message);
      ck_assert_ptr_null(o.text);
      lc_llm_response_free(&o);
    }
  }
  lc_llm_response_free(&r);
  cJSON_Delete(fx);
  cJSON_Delete(all);
  ck_assert_int_eq(lc_alloc_live(), live);
}
END_TEST

Suite *conformance_parse_suite(void) {
  Suite *s = suite_create("conformance_parse");
  lc_conf_list_fixtures();
  TCase *tc = tcase_create("coverage");
  tcase_add_test(tc, every_fixture_has_an_expectation);
  suite_add_tcase(s, tc);
  tc = tcase_create("fixtures");
  tcase_set_timeout(tc, 300);
  tcase_add_loop_test(tc, fixture, 0, lc_conf_n_fixtures ? lc_conf_n_fixtures : 1);
  suite_add_tcase(s, tc);
  return s;
}
