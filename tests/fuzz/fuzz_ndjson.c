/* fuzz_ndjson.c: the NDJSON splitter; split feeds must equal the whole. */
#include "fuzz_common.h"
#include "ndjson.h"

static int on_line(void *ud, const char *line, size_t len) {
  struct lc_buf *b = ud;
  if (memchr(line, '\n', len))
    abort(); /* a line never holds its newline */
  lc_buf_append(b, line, len);
  lc_buf_append(b, "\x01", 1);
  return 0;
}

static void run(const uint8_t *d, size_t n, uint32_t seed, struct lc_buf *log) {
  struct lc_ndjson p;
  lc_ndjson_init(&p, 64);
  size_t off = 0;
  int rc = 0;
  while (off < n && !rc) {
    size_t k = seed ? fz_next(&seed, n - off) : n - off;
    rc = lc_ndjson_feed(&p, (const char *)d + off, k, on_line, log);
    off += k;
  }
  int erc = rc ? rc : lc_ndjson_end(&p, on_line, log);
  lc_buf_printf(log, "rc=%d end=%d", rc, erc);
  lc_ndjson_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_split_diff(run, data, size);
  return 0;
}
