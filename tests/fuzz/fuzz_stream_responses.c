/* fuzz_stream_responses.c: OpenAI Responses SSE stream parsing (typed
 * events, items by output_index, argument deltas by item_id, the end at
 * response.completed), split vs whole, plus the same bytes as a whole
 * Responses body. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_stream_diff(&lc_llm_openai_responses, data, size);
  struct lc_llm_response r;
  lc_llm_response_init(&r);
  int rc = lc_llm_openai_responses.parse((const char *)data, size, &r);
  if ((rc == 0) != (r.err == LC_LLM_OK))
    abort();
  if (rc && !r.err_message)
    abort();
  lc_llm_response_free(&r);
  return 0;
}
