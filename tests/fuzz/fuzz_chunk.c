/* fuzz_chunk.c: the splitter on any bytes and sizes. Valid text splits
 * into exact, trimmed spans of at most size code points whose starts grow
 * and whose neighbours share at most overlap; anything else is refused. */
#include "chunk.h"
#include "fuzz_common.h"

static size_t cps(const char *d, size_t a, size_t b) {
  size_t n = 0;
  for (size_t i = a; i < b; i++) n += ((unsigned char)d[i] & 0xC0) != 0x80;
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  struct lc_chunk_opts o = {(size_t)data[0] % 64 + 1, 0, data[2] & 1};
  o.overlap = (size_t)data[1] % o.size;
  const char *d = (const char *)data + 3;
  size_t len = size - 3;
  struct lc_chunks c;
  char err[256];
  int rc = lc_chunk_split(d, len, &o, &c, err, sizeof err);
  if (rc) {
    if (rc != LC_EINVAL || !err[0]) abort();
    return 0;
  }
  for (size_t i = 0; i < c.n; i++) {
    const struct lc_chunk *k = &c.v[i];
    if (!k->len || k->start + k->len > len) abort();
    if (k->len_cp > o.size || k->len_cp != cps(d, k->start, k->start + k->len)) abort();
    if (k->start_cp != cps(d, 0, k->start)) abort();
    if (i && k->start <= c.v[i - 1].start) abort();
    if (i && c.v[i - 1].start + c.v[i - 1].len > k->start &&
        cps(d, k->start, c.v[i - 1].start + c.v[i - 1].len) > o.overlap)
      abort();
  }
  lc_chunks_free(&c);
  return 0;
}
