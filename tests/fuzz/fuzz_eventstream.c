/* fuzz_eventstream.c: the AWS event-stream decoder (split feeds must give
 * the same messages and the same verdict as the whole feed), then the
 * Bedrock ConverseStream adapter over the same bytes, split vs whole. */
#include "eventstream.h"
#include "fuzz_common.h"

static int on_msg(void *ud, const struct lc_es_msg *m) {
  struct lc_buf *b = ud;
  for (size_t i = 0; i < m->n_headers; i++) {
    const struct lc_es_header *h = &m->headers[i];
    lc_buf_append(b, h->name, h->name_len);
    lc_buf_printf(b, "\x01%d\x01", h->type);
    lc_buf_append(b, h->value, h->value_len);
    lc_buf_append(b, "\x02", 1);
  }
  lc_buf_append(b, m->payload, m->payload_len);
  lc_buf_append(b, "\x03", 1);
  return 0;
}

static void run(const uint8_t *d, size_t n, uint32_t seed, struct lc_buf *log) {
  struct lc_es p;
  lc_es_init(&p, 4096); /* small, so the limit is reached often */
  size_t off = 0;
  int rc = 0;
  while (off < n && !rc) {
    size_t k = seed ? fz_next(&seed, n - off) : n - off;
    rc = lc_es_feed(&p, d + off, k, on_msg, log);
    off += k;
  }
  lc_buf_printf(log, "rc=%d end=%d", rc, rc ? -1 : lc_es_end(&p));
  lc_es_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_split_diff(run, data, size);
  fz_stream_diff(&lc_llm_bedrock, data, size);
  return 0;
}
