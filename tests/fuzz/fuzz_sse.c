/* fuzz_sse.c: the SSE parser; split feeds must equal the whole feed. */
#include "fuzz_common.h"
#include "sse.h"

static int on_ev(void *ud, const struct lc_sse_event *ev) {
  struct lc_buf *b = ud;
  lc_buf_append(b, ev->event, ev->event_len);
  lc_buf_append(b, "\x01", 1);
  lc_buf_append(b, ev->data, ev->data_len);
  lc_buf_append(b, "\x01", 1);
  lc_buf_append(b, ev->id, ev->id_len);
  lc_buf_printf(b, "\x01%ld\x02", ev->retry);
  return 0;
}

static void run(const uint8_t *d, size_t n, uint32_t seed, struct lc_buf *log) {
  struct lc_sse p;
  lc_sse_init(&p, 64); /* small, so the limit is reached often */
  size_t off = 0;
  int rc = 0;
  while (off < n && !rc) {
    size_t k = seed ? fz_next(&seed, n - off) : n - off;
    rc = lc_sse_feed(&p, (const char *)d + off, k, on_ev, log);
    off += k;
  }
  lc_buf_printf(log, "rc=%d end=%d", rc, lc_sse_end(&p));
  lc_sse_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_split_diff(run, data, size);
  return 0;
}
