/* util_llm2.h: helpers of the conformance_llm2 suites (util_llm2.c). */
#ifndef LC_TEST_UTIL_LLM2_H
#define LC_TEST_UTIL_LLM2_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "llm.h"

extern char *l2_ids[64]; /* covered fixture ids, sorted */
extern int l2_n_ids;
const char *l2_fx_dir(void); /* LUACT_FIXTURES2 or ../shared/fixtures/llm2 */
void l2_list_ids(void);
cJSON *l2_load_fx(const char *id);
cJSON *l2_load_exp(void); /* tests/conformance/expected_llm2.json */
enum lc_llm_provider l2_prov_of(const cJSON *fx);
/* The recorded request body as a normalised request (heap; delete it). */
struct lc_llm_request *l2_request_of(const cJSON *fx, enum lc_llm_provider prov);
/* Asserts that a built body has the recorded request's shape. */
void l2_check_shape(const char *id, const cJSON *fx, enum lc_llm_provider prov,
                    const char *built, size_t len);
void l2_check_answer(const char *id, const struct lc_llm_response *r, const cJSON *exp);
/* (The parse-level feeds and summaries: lc_conf_run_stream and
 * lc_conf_summary, util_conformance.h.) */

#endif
