/* fuzz_rerank.c: the rerank response parser on hostile bodies. Either it
 * takes one batch whole (each index within the batch and seen once, each
 * score finite, no more results than documents, at least those asked
 * for) on top of the hits already there, or it refuses with a message
 * and leaves those hits as they were. */
#include <math.h>

#include "fuzz_common.h"
#include "rerank.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  static char *docs[8] = {"a", "b", "c", "d", "e", "f", "g", "h"};
  static size_t lens[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  struct lc_rerank_request q = {.provider = (enum lc_rerank_provider)(data[0] % LC_RERANK__COUNT),
                                .query = "q", .docs = docs, .doc_len = lens};
  q.n_docs = (size_t)data[1] % 8 + 1;
  q.top_n = (data[0] >> 4) % 4; /* 0: all */
  size_t from = (data[0] >> 3) & 1 ? q.n_docs / 2 : 0, n = q.n_docs - from;
  struct lc_rerank_result r;
  lc_rerank_result_init(&r);
  /* One earlier hit, as a first batch would leave. */
  r.hits = malloc(sizeof *r.hits);
  if (!r.hits) return 0;
  r.hits[0] = (struct lc_rerank_hit){0, 0.5};
  r.n = 1;
  int rc = lc_rerank_parse(&q, (const char *)data + 2, size - 2, from, n, &r);
  if (rc == 0) {
    if (r.err || r.n < 1 || r.n - 1 > n) abort();
    unsigned char seen[8] = {0};
    for (size_t i = 1; i < r.n; i++) {
      if (r.hits[i].index < from || r.hits[i].index >= from + n) abort();
      if (seen[r.hits[i].index]++) abort();
      if (!isfinite(r.hits[i].score)) abort();
    }
  } else {
    if (r.n != 1 || r.hits[0].index != 0 || !r.err || !r.err_message) abort();
  }
  lc_rerank_result_free(&r);
  return 0;
}
