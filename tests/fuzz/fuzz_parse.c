/* fuzz_parse.c: whole-body parsing and error classification of all three
 * adapters, and Ollama's NDJSON stream (split vs whole). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const struct lc_llm_adapter *ads[] = {&lc_llm_openai, &lc_llm_anthropic,
                                        &lc_llm_ollama};
  for (size_t i = 0; i < 3; i++) {
    struct lc_llm_response r;
    lc_llm_response_init(&r);
    int rc = ads[i]->parse((const char *)data, size, &r);
    if ((rc == 0) != (r.err == LC_LLM_OK))
      abort();
    if (rc && !r.err_message)
      abort();
    lc_llm_response_free(&r);
    ads[i]->parse_error(size ? 400 + data[0] % 200 : 500, (const char *)data,
                        size, &r);
    if (r.err == LC_LLM_OK || !r.err_message)
      abort();
    lc_llm_response_free(&r);
  }
  fz_stream_diff(&lc_llm_ollama, data, size);
  return 0;
}
