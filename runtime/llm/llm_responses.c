/* llm_responses.c: adapter for the OpenAI Responses API (stub, filled in
 * by the next commit). */
#include <stdio.h>

#include "lc.h"
#include "llm.h"
#include "llm_accum.h"

static int build(const struct lc_llm_request *req, struct lc_llm_http *out,
                 char *err, size_t errlen) {
  (void)req, (void)out;
  snprintf(err, errlen, "openai-responses: not implemented yet");
  return LC_EINVAL;
}

const struct lc_llm_adapter lc_llm_openai_responses = {
    .name = "openai-responses",
    .default_base_url = "https://api.openai.com/v1",
    .base_url_env = "OPENAI_BASE_URL",
    .api_key_env = "OPENAI_API_KEY",
    .build = build,
};
