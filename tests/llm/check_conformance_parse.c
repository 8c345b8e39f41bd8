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

/* One line per field: responses from different feeds must be identical. */
static char *summary(const struct lc_llm_response *r) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  lc_buf_printf(&b, "err=%s msg=%s\n", lc_llm_err_name(r->err),
                r->err_message ? r->err_message : "-");
  lc_buf_puts(&b, "text=");
  if (r->text) lc_buf_append(&b, r->text, r->text_len);
  lc_buf_printf(&b, "\nreasoning=%s\n", r->reasoning ? r->reasoning : "-");
  for (size_t i = 0; i < r->n_tool_calls; i++)
    lc_buf_printf(&b, "call %s %s %s\n", r->tool_calls[i].id, r->tool_calls[i].name,
                  r->tool_calls[i].args_json);
  lc_buf_printf(&b, "finish=%d %s usage=%ld/%ld/%ld/%ld/%ld %g %s %s\n", r->finish,
                r->finish_raw ? r->finish_raw : "-", r->usage.input, r->usage.output,
                r->usage.cached, r->usage.cache_write, r->usage.reasoning,
                r->usage.cost, r->model ? r->model : "-", r->id ? r->id : "-");
  return lc_buf_steal(&b, NULL);
}

struct deltas {
  struct lc_buf text, reasoning, args[8];
  int starts, bad;
};

static void on_delta(void *ud, const struct lc_llm_delta *d) {
  struct deltas *x = ud;
  switch (d->kind) {
  case LC_DELTA_TEXT: lc_buf_append(&x->text, d->text, d->len); break;
  case LC_DELTA_REASONING: lc_buf_append(&x->reasoning, d->text, d->len); break;
  case LC_DELTA_TOOL_START:
    if (d->index != x->starts) x->bad = 1; /* ordinals, in order */
    x->starts++;
    break;
  case LC_DELTA_TOOL_ARGS:
    if (d->index < 0 || d->index >= 8 || d->index >= x->starts) x->bad = 1;
    else lc_buf_append(&x->args[d->index], d->text, d->len);
    break;
  }
}

static void deltas_free(struct deltas *x) {
  lc_buf_free(&x->text);
  lc_buf_free(&x->reasoning);
  for (int i = 0; i < 8; i++) lc_buf_free(&x->args[i]);
}

/* Feeds body[0,len) in pieces: [0,cut) + [cut,len), or bytewise when
 * cut > len. Returns stream_end's code; fills r and checks the deltas. */
static int run_stream(const struct lc_llm_adapter *ad, const char *body,
                      size_t len, size_t cut, struct lc_llm_response *r) {
  struct deltas x;
  memset(&x, 0, sizeof x);
  struct lc_llm_stream *st = ad->stream_new();
  ck_assert_ptr_nonnull(st);
  lc_llm_response_init(r);
  int frc = 0;
  if (cut > len) {
    for (size_t i = 0; i < len && !frc; i++) frc = ad->stream_feed(st, body + i, 1, on_delta, &x);
  } else {
    frc = ad->stream_feed(st, body, cut, on_delta, &x);
    if (!frc) frc = ad->stream_feed(st, body + cut, len - cut, on_delta, &x);
  }
  int rc = ad->stream_end(st, r);
  ad->stream_free(st);
  if (frc) ck_assert_int_eq(rc, LC_EINVAL); /* a feed error is kept for end */
  if (rc == 0) {
    ck_assert(!x.bad);
    ck_assert_int_eq(x.starts, (int)r->n_tool_calls);
    ck_assert_uint_eq(x.text.len, r->text_len);
    if (r->text) ck_assert(memcmp(x.text.data, r->text, r->text_len) == 0);
    for (size_t i = 0; i < r->n_tool_calls && i < 8; i++)
      if (x.args[i].len) ck_assert_str_eq(x.args[i].data, r->tool_calls[i].args_json);
      else ck_assert_str_eq(r->tool_calls[i].args_json, "{}");
  }
  deltas_free(&x);
  return rc;
}

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
    /* the same body cut in half is malformed, never a short answer */
    struct lc_llm_response cut;
    lc_llm_response_init(&cut);
    ck_assert_int_eq(ad->parse(body, len / 2, &cut), LC_EINVAL);
    ck_assert_int_eq(cut.err, LC_LLM_EBADRESP);
    ck_assert_ptr_nonnull(cut.err_message);
    lc_llm_response_free(&cut);
  } else {
    ck_assert_int_eq(run_stream(ad, body, len, len, &r), 0);
    lc_conf_check_answer(id, &r, exp);
    char *want = summary(&r);
    for (size_t cut = 0; cut <= len + 1; cut++) { /* len + 1: bytewise */
      struct lc_llm_response o;
      ck_assert_int_eq(run_stream(ad, body, len, cut, &o), 0);
      char *got = summary(&o);
      ck_assert_msg(strcmp(want, got) == 0, "%s: split at %zu:\n%s\nvs\n%s", id, cut,
                    got, want);
      lc_free(got);
      lc_llm_response_free(&o);
    }
    lc_free(want);
    /* cut short before the end marker is complete: always an error */
    const char *mk = end_marker(ad);
    const char *m = strstr(body, mk);
    ck_assert_msg(m != NULL, "%s: no end marker", id);
    size_t mpos = (size_t)(m - body);
    size_t cuts[] = {0, 1, len / 4, len / 2, mpos, mpos + 3, mpos + strlen(mk) + 1};
    for (size_t k = 0; k < LC_ARRAY_LEN(cuts); k++) {
      struct lc_llm_response o;
      ck_assert_int_eq(run_stream(ad, body, cuts[k], cuts[k], &o), LC_EINVAL);
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
