/* fuzz_stream_gemini.c: Gemini stream parsing in every framing (SSE, the
 * streamed JSON array, a bare object), split vs whole. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_stream_diff(&lc_llm_gemini, data, size);
  return 0;
}
