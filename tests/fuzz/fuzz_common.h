/* fuzz_common.h: helpers shared by the libFuzzer targets. The first input
 * byte chooses how the rest is cut into fragments, so the fuzzer explores
 * splits as well as contents; each target compares the split feed with a
 * whole feed and aborts on any difference. */
#ifndef LC_FUZZ_COMMON_H
#define LC_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "lc.h"
#include "llm.h"

/* Next fragment length from a small xorshift seeded by the input. */
static inline size_t fz_next(uint32_t *st, size_t left) {
  *st ^= *st << 13;
  *st ^= *st >> 17;
  *st ^= *st << 5;
  size_t n = (*st % 17) + 1;
  return n < left ? n : left;
}

/* A parser's log of one feed of d[0,n): whole (seed 0) or in fragments
 * chosen by seed (fz_next). */
typedef void (*fz_run_fn)(const uint8_t *d, size_t n, uint32_t seed, struct lc_buf *log);

/* Feeds data[1..] whole and cut as data[0] says; aborts when the two logs
 * differ (a split changed what the parser saw). */
static inline void fz_split_diff(fz_run_fn run, const uint8_t *data, size_t size) {
  if (size < 1)
    return;
  struct lc_buf a, b;
  lc_buf_init(&a, 0);
  lc_buf_init(&b, 0);
  run(data + 1, size - 1, 0, &a);
  run(data + 1, size - 1, data[0] * 2654435761u + 1, &b);
  if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
    abort();
  lc_buf_free(&a);
  lc_buf_free(&b);
}

static inline char *fz_summary(const struct lc_llm_response *r) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  lc_buf_printf(&b, "%d|%s|", r->err, r->err_message ? r->err_message : "");
  if (r->text)
    lc_buf_append(&b, r->text, r->text_len);
  lc_buf_printf(&b, "|%s|", r->reasoning ? r->reasoning : "");
  for (size_t i = 0; i < r->n_tool_calls; i++)
    lc_buf_printf(&b, "%s %s %s %s;", r->tool_calls[i].id, r->tool_calls[i].name,
                  r->tool_calls[i].args_json,
                  r->tool_calls[i].signature ? r->tool_calls[i].signature : "");
  lc_buf_printf(&b, "|%s|", r->reasoning_state ? r->reasoning_state : "");
  lc_buf_printf(&b, "%d %s %ld %ld %ld %s %s", r->finish,
                r->finish_raw ? r->finish_raw : "", r->usage.input,
                r->usage.output, r->usage.cached, r->model ? r->model : "",
                r->id ? r->id : "");
  return lc_buf_steal(&b, NULL);
}

static void fz_noop(void *ud, const struct lc_llm_delta *d) {
  (void)ud;
  /* touch the borrowed bytes so ASan checks them */
  volatile char c = 0;
  for (size_t i = 0; i < d->len; i++)
    c ^= d->text[i];
  if (d->id)
    c ^= d->id[0];
  if (d->name)
    c ^= d->name[0];
  (void)c;
}

/* Runs one adapter stream over data, whole (seed 0) or in fragments. */
static inline char *fz_stream(const struct lc_llm_adapter *ad,
                              const uint8_t *data, size_t size, uint32_t seed) {
  struct lc_llm_stream *st = ad->stream_new();
  struct lc_llm_response r;
  lc_llm_response_init(&r);
  size_t off = 0;
  while (off < size) {
    size_t n = seed ? fz_next(&seed, size - off) : size - off;
    if (ad->stream_feed(st, (const char *)data + off, n, fz_noop, NULL))
      break;
    off += n;
  }
  int rc = ad->stream_end(st, &r);
  ad->stream_free(st);
  if ((rc == 0) != (r.err == LC_LLM_OK))
    abort();
  if (rc == 0 && r.text && strlen(r.text) > r.text_len)
    abort();
  char *s = fz_summary(&r);
  lc_llm_response_free(&r);
  return s;
}

static inline void fz_stream_diff(const struct lc_llm_adapter *ad,
                                  const uint8_t *data, size_t size) {
  if (size < 1)
    return;
  uint32_t seed = data[0] * 2654435761u + 1;
  char *a = fz_stream(ad, data + 1, size - 1, 0);
  char *b = fz_stream(ad, data + 1, size - 1, seed);
  if (strcmp(a, b) != 0)
    abort(); /* a split changed the answer */
  lc_free(a);
  lc_free(b);
}

#endif
