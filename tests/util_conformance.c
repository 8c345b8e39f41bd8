/* util_conformance.c: the recorded fixtures and their expectations
 * (tests/conformance/expected.json), shared by the parse-level and the
 * loopback conformance suites. */
#include "util_conformance.h"

#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "lc.h"
#include "util_common.h"


char *lc_conf_fixtures[LC_CONF_MAX_FIXTURES];
int lc_conf_n_fixtures;

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

void lc_conf_list_fixtures(void) {
  if (lc_conf_n_fixtures) return;
  DIR *d = opendir(lc_test_fixtures_dir());
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) && lc_conf_n_fixtures < LC_CONF_MAX_FIXTURES) {
    size_t n = strlen(e->d_name);
    if (n > 5 && strcmp(e->d_name + n - 5, ".json") == 0)
      lc_conf_fixtures[lc_conf_n_fixtures++] = strndup(e->d_name, n - 5);
  }
  closedir(d);
  qsort(lc_conf_fixtures, (size_t)lc_conf_n_fixtures, sizeof *lc_conf_fixtures, cmp_str);
}

cJSON *lc_conf_load_json(const char *path) {
  size_t n;
  char *s = lc_test_read_file(path, &n);
  ck_assert_msg(s != NULL, "cannot read %s", path);
  cJSON *j = cJSON_ParseWithLength(s, n);
  free(s);
  ck_assert_msg(j != NULL, "bad JSON in %s", path);
  return j;
}

cJSON *lc_conf_load_expected(void) {
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/conformance/expected.json",
           lc_test_source_dir());
  return lc_conf_load_json(path);
}

cJSON *lc_conf_load_fixture(const char *id) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.json", lc_test_fixtures_dir(), id);
  return lc_conf_load_json(path);
}

const struct lc_llm_adapter *lc_conf_adapter_of(const cJSON *fx) {
  const char *p = cJSON_GetObjectItem(fx, "provider")->valuestring;
  if (strcmp(p, "openai") == 0 || strcmp(p, "openai-compatible") == 0)
    return &lc_llm_openai;
  if (strcmp(p, "anthropic") == 0) return &lc_llm_anthropic;
  if (strcmp(p, "ollama") == 0) return &lc_llm_ollama;
  ck_abort_msg("unknown provider %s", p);
  return NULL;
}

/* ---- checks ---- */

const char *lc_conf_jstr(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

void lc_conf_check_error(const char *id, const struct lc_llm_response *r,
                        const cJSON *exp) {
  ck_assert_msg(strcmp(lc_llm_err_name(r->err), lc_conf_jstr(exp, "err")) == 0,
                "%s: err %s, want %s (%s)", id, lc_llm_err_name(r->err),
                lc_conf_jstr(exp, "err"), r->err_message);
  ck_assert_ptr_nonnull(r->err_message);
  const char *m = lc_conf_jstr(exp, "message"), *mx = lc_conf_jstr(exp, "message_exact");
  if (m) ck_assert_msg(strstr(r->err_message, m), "%s: message %s", id, r->err_message);
  if (mx) ck_assert_str_eq(r->err_message, mx);
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(exp, "err_type");
  if (cJSON_IsNull(t)) ck_assert_ptr_null(r->err_type);
  else ck_assert_str_eq(r->err_type ? r->err_type : "(null)", t->valuestring);
  double ra = cJSON_GetObjectItem(exp, "retry_after")->valuedouble;
  ck_assert_msg(fabs(r->retry_after_s - ra) < 1e-9, "%s: retry_after %g, want %g",
                id, r->retry_after_s, ra);
  if (lc_conf_jstr(exp, "request_id")) ck_assert_str_eq(r->request_id, lc_conf_jstr(exp, "request_id"));
}

int lc_conf_has_prefix(const char *s, const char *p) {
  return s && strncmp(s, p, strlen(p)) == 0;
}

int lc_conf_has_suffix(const char *s, const char *p) {
  size_t n = s ? strlen(s) : 0, k = strlen(p);
  return s && n >= k && strcmp(s + n - k, p) == 0;
}

void lc_conf_check_answer(const char *id, const struct lc_llm_response *r,
                         const cJSON *exp) {
  ck_assert_msg(r->err == LC_LLM_OK, "%s: err %s: %s", id, lc_llm_err_name(r->err),
                r->err_message);
  const char *s;
  if ((s = lc_conf_jstr(exp, "text"))) {
    ck_assert_msg(r->text && strcmp(r->text, s) == 0, "%s: text [%s]", id, r->text);
    ck_assert_uint_eq(r->text_len, strlen(s));
  }
  if ((s = lc_conf_jstr(exp, "text_prefix")))
    ck_assert_msg(lc_conf_has_prefix(r->text, s), "%s: text [%s]", id, r->text);
  if ((s = lc_conf_jstr(exp, "text_contains")))
    ck_assert_msg(r->text && strstr(r->text, s), "%s: text [%s]", id, r->text);
  if (cJSON_IsTrue(cJSON_GetObjectItem(exp, "text_null")))
    ck_assert_msg(r->text == NULL, "%s: text [%s]", id, r->text);
  const char *rp = lc_conf_jstr(exp, "reasoning_prefix"), *rs = lc_conf_jstr(exp, "reasoning_suffix");
  if (rp) ck_assert_msg(lc_conf_has_prefix(r->reasoning, rp), "%s: reasoning [%s]", id, r->reasoning);
  if (rs) ck_assert_msg(lc_conf_has_suffix(r->reasoning, rs), "%s: reasoning [%s]", id, r->reasoning);
  if (!rp && !rs) ck_assert_msg(r->reasoning == NULL, "%s: reasoning [%s]", id, r->reasoning);

  const cJSON *calls = cJSON_GetObjectItem(exp, "tool_calls");
  ck_assert_int_eq((int)r->n_tool_calls, cJSON_GetArraySize(calls));
  for (size_t i = 0; i < r->n_tool_calls; i++) {
    const cJSON *c = cJSON_GetArrayItem(calls, (int)i);
    const struct lc_llm_tool_call *t = &r->tool_calls[i];
    ck_assert_str_eq(t->name, lc_conf_jstr(c, "name"));
    ck_assert_str_eq(t->id, lc_conf_jstr(c, "id"));
    ck_assert_msg(t->args && cJSON_Compare(t->args, cJSON_GetObjectItem(c, "args"), 1),
                  "%s: call %zu args %s", id, i, t->args_json);
    if (lc_conf_jstr(c, "args_json")) ck_assert_str_eq(t->args_json, lc_conf_jstr(c, "args_json"));
  }
  ck_assert_str_eq(lc_llm_finish_name(r->finish), lc_conf_jstr(exp, "finish"));
  const cJSON *fr = cJSON_GetObjectItem(exp, "finish_raw");
  if (cJSON_IsNull(fr)) ck_assert_ptr_null(r->finish_raw);
  else ck_assert_str_eq(r->finish_raw ? r->finish_raw : "(null)", fr->valuestring);
  const cJSON *u = cJSON_GetObjectItem(exp, "usage");
  ck_assert_int_eq(r->usage.input, cJSON_GetObjectItem(u, "input")->valueint);
  ck_assert_int_eq(r->usage.output, cJSON_GetObjectItem(u, "output")->valueint);
  ck_assert_int_eq(r->usage.cached, cJSON_GetObjectItem(u, "cached")->valueint);
  const cJSON *cost = cJSON_GetObjectItem(u, "cost");
  ck_assert_int_eq(r->usage.has_cost, cost != NULL);
  if (cost) ck_assert(fabs(r->usage.cost - cost->valuedouble) < 1e-12);
  if ((s = lc_conf_jstr(exp, "model"))) ck_assert_str_eq(r->model ? r->model : "(null)", s);
  if ((s = lc_conf_jstr(exp, "id"))) ck_assert_str_eq(r->id ? r->id : "(null)", s);
}

/* ---- parse level: the same bytes in any pieces ---- */

char *lc_conf_summary(const struct lc_llm_response *r) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  lc_buf_printf(&b, "err=%s msg=%s\ntext=", lc_llm_err_name(r->err),
                r->err_message ? r->err_message : "-");
  if (r->text) lc_buf_append(&b, r->text, r->text_len);
  lc_buf_printf(&b, "\nreasoning=%s\nstate=%s\n", r->reasoning ? r->reasoning : "-",
                r->reasoning_state ? r->reasoning_state : "-");
  for (size_t i = 0; i < r->n_tool_calls; i++)
    lc_buf_printf(&b, "call %s %s %s %s\n", r->tool_calls[i].id, r->tool_calls[i].name,
                  r->tool_calls[i].args_json,
                  r->tool_calls[i].signature ? r->tool_calls[i].signature : "-");
  lc_buf_printf(&b, "finish=%d %s usage=%ld/%ld/%ld/%ld/%ld %g %s %s\n", r->finish,
                r->finish_raw ? r->finish_raw : "-", r->usage.input, r->usage.output,
                r->usage.cached, r->usage.cache_write, r->usage.reasoning, r->usage.cost,
                r->model ? r->model : "-", r->id ? r->id : "-");
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

int lc_conf_run_stream(const struct lc_llm_adapter *ad, const char *body, size_t len,
                       size_t cut, struct lc_llm_response *r) {
  return lc_conf_run_stream_every(ad, body, len, cut, 0, r);
}

int lc_conf_run_stream_every(const struct lc_llm_adapter *ad, const char *body, size_t len,
                             size_t cut, size_t period, struct lc_llm_response *r) {
  struct deltas x;
  memset(&x, 0, sizeof x);
  struct lc_llm_stream *st = ad->stream_new();
  ck_assert_ptr_nonnull(st);
  lc_llm_response_init(r);
  int frc = 0;
  if (cut > len) {
    for (size_t i = 0; i < len && !frc; i++) frc = ad->stream_feed(st, body + i, 1, on_delta, &x);
  } else if (period) { /* cut, cut + period, cut + 2 period, ... */
    frc = ad->stream_feed(st, body, cut, on_delta, &x);
    for (size_t at = cut; at < len && !frc; at += period)
      frc = ad->stream_feed(st, body + at, len - at < period ? len - at : period, on_delta, &x);
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
    ck_assert_str_eq(x.reasoning.data ? x.reasoning.data : "", r->reasoning ? r->reasoning : "");
    for (size_t i = 0; i < r->n_tool_calls && i < 8; i++)
      if (x.args[i].len) ck_assert_str_eq(x.args[i].data, r->tool_calls[i].args_json);
      else ck_assert_str_eq(r->tool_calls[i].args_json, "{}"); /* no arguments streamed */
  }
  lc_buf_free(&x.text);
  lc_buf_free(&x.reasoning);
  for (int i = 0; i < 8; i++) lc_buf_free(&x.args[i]);
  return rc;
}

void lc_conf_check_splits(const char *id, const struct lc_llm_adapter *ad, const char *body,
                          size_t len, const struct lc_llm_response *whole, size_t first,
                          size_t last) {
  char *want = lc_conf_summary(whole);
  for (size_t cut = first; cut <= last; cut++) {
    struct lc_llm_response o;
    ck_assert_int_eq(lc_conf_run_stream(ad, body, len, cut, &o), 0);
    char *got = lc_conf_summary(&o);
    ck_assert_msg(strcmp(want, got) == 0, "%s: split at %zu%s:\n%s\nvs\n%s", id, cut,
                  cut > len ? " (bytewise)" : "", got, want);
    lc_free(got);
    lc_llm_response_free(&o);
  }
  lc_free(want);
}

void lc_conf_check_half_body(const struct lc_llm_adapter *ad, const char *body, size_t len) {
  struct lc_llm_response cut;
  lc_llm_response_init(&cut);
  ck_assert_int_eq(ad->parse(body, len / 2, &cut), LC_EINVAL);
  ck_assert_int_eq(cut.err, LC_LLM_EBADRESP);
  ck_assert_ptr_nonnull(cut.err_message);
  lc_llm_response_free(&cut);
}
