/* check_conformance_llm2_splits.c: every streamed recording of the
 * conformance_llm2 set (Responses, DeepSeek) fed split at every byte
 * offset: the same normalised result (text, reasoning, reasoning state,
 * calls with their item ids, finish, usage) as the whole feed. Its own
 * suite (and CTest entry) because the largest stream is 99 KB: every
 * offset is a full parse, quadratic in the length. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc.h"
#include "llm.h"
#include "util_common.h"
#include "util_conformance.h"
#include "util_llm2.h"

/* odd and not a divisor of any event length of interest */
#define SPLIT_PERIOD 509

static const char *streams[64];
static int n_streams;

static void list_streams(void) {
  if (n_streams) return;
  l2_list_ids();
  for (int i = 0; i < l2_n_ids; i++) {
    /* read without Check's asserts: this runs while the suite is made */
    char path[8192];
    snprintf(path, sizeof path, "%s/%s.json", l2_fx_dir(), l2_ids[i]);
    size_t n;
    char *text = lc_test_read_file(path, &n);
    cJSON *fx = text ? cJSON_ParseWithLength(text, n) : NULL;
    free(text);
    if (!fx) continue; /* every_split's count then fails */
    const cJSON *rq = cJSON_GetObjectItem(cJSON_GetObjectItem(fx, "request"), "body");
    const cJSON *resp = cJSON_GetObjectItem(fx, "response");
    if (cJSON_IsTrue(cJSON_GetObjectItem(rq, "stream")) &&
        cJSON_GetObjectItem(resp, "status")->valueint < 300)
      streams[n_streams++] = l2_ids[i];
    cJSON_Delete(fx);
  }
}

START_TEST(every_split) {
  list_streams();
  ck_assert_int_eq(n_streams, 6); /* the recorded 200 streams */
  const char *id = streams[_i];
  long live = lc_alloc_live();
  cJSON *fx = l2_load_fx(id);
  const struct lc_llm_adapter *ad = lc_llm_adapter_for(l2_prov_of(fx));
  const char *body = cJSON_GetObjectItem(cJSON_GetObjectItem(fx, "response"), "body_text")->valuestring;
  size_t len = strlen(body);
  struct lc_llm_response r;
  ck_assert_int_eq(lc_conf_run_stream(ad, body, len, len, &r), 0);
  char *want = lc_conf_summary(&r);
  /* Every offset is a split point. Up to 32 KB, each is the only one of
   * its parse (a parse per offset: quadratic). Past that, offset k is cut
   * in the pass that cuts at every offset = k (mod SPLIT_PERIOD): every
   * offset still is a split point, in exactly one pass, and each pass cuts
   * every event longer than the period several times; SPLIT_PERIOD passes
   * instead of one per byte of the 99 KB stream (whose every-offset run
   * took over 20 minutes of a loaded machine in the Debug ASan build and
   * hit its timeout). */
  size_t period = len > 32768 ? SPLIT_PERIOD : 0;
  for (size_t cut = 0; cut <= (period ? period - 1 : len); cut++) {
    struct lc_llm_response o;
    ck_assert_int_eq(lc_conf_run_stream_every(ad, body, len, cut, period, &o), 0);
    char *got = lc_conf_summary(&o);
    ck_assert_msg(strcmp(want, got) == 0, "%s: split at %zu:\n%s\nvs\n%s", id, cut, got, want);
    lc_free(got);
    lc_llm_response_free(&o);
  }
  lc_free(want);
  lc_llm_response_free(&r);
  cJSON_Delete(fx);
  ck_assert_int_eq(lc_alloc_live(), live);
}
END_TEST

Suite *conformance_llm2_splits_suite(void) {
  Suite *s = suite_create("conformance_llm2_splits");
  list_streams();
  TCase *tc = tcase_create("splits");
  tcase_set_timeout(tc, 1200);
  tcase_add_loop_test(tc, every_split, 0, n_streams ? n_streams : 1);
  suite_add_tcase(s, tc);
  return s;
}
