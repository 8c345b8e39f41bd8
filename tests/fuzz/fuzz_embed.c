/* fuzz_embed.c: the embeddings response parser on hostile bodies. Either
 * it takes exactly the rows asked for, every value finite and every row
 * the same length, or it refuses with a message and takes none. */
#include <math.h>

#include "embed.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  struct lc_embed_request q = {.provider = LC_PROV_OPENAI};
  q.b64_type = (enum lc_embed_b64)(data[0] % 3);
  q.dimensions = (data[0] >> 2) % 4 == 0 ? 3 : 0;
  size_t want = (size_t)data[1] % 4 + 1;
  struct lc_embed_result r;
  lc_embed_result_init(&r);
  int rc = lc_embed_parse(&q, (const char *)data + 2, size - 2, want, &r);
  if (rc == 0) {
    if (r.n != want || !r.dims || r.err) abort();
    if (q.dimensions && r.dims != 3) abort();
    for (size_t i = 0; i < r.n * r.dims; i++)
      if (!isfinite(r.rows[i])) abort();
  } else {
    if (r.n != 0 || !r.err || !r.err_message) abort();
  }
  lc_embed_result_free(&r);
  return 0;
}
