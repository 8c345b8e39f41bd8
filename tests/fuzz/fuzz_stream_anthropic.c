/* fuzz_stream_anthropic.c: Anthropic SSE stream parsing, split vs whole. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_stream_diff(&lc_llm_anthropic, data, size);
  return 0;
}
