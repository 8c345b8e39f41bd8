/* fuzz_stream_openai.c: OpenAI SSE stream parsing, split vs whole. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_stream_diff(&lc_llm_openai, data, size);
  return 0;
}
