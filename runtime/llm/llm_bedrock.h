/* llm_bedrock.h: what the Bedrock adapter offers beyond its lc_llm_adapter
 * (lc_llm_bedrock in llm.h): AWS names an error's type only in the
 * x-amzn-ErrorType response header ("ThrottlingException:http://..."),
 * which adapters' parse_error never sees, so the call path hands it here. */
#ifndef LC_LLM_BEDROCK_H
#define LC_LLM_BEDROCK_H

#include "llm.h"

/* Sets out->err_type to the name before the first ':' of the header's
 * value and refines out->err from it (ThrottlingException -> rate_limit,
 * AccessDeniedException -> auth, ...). An unknown name keeps the kind the
 * status gave. */
void lc_llm_bedrock_error_type(const char *value, struct lc_llm_response *out);

#endif
