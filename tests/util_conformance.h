/* util_conformance.h: fixture listing, loading and the checks of a
 * normalised response against tests/conformance/expected.json. Checks use
 * ck_assert, so call them from a Check case. */
#ifndef LC_TEST_UTIL_CONFORMANCE_H
#define LC_TEST_UTIL_CONFORMANCE_H

#include <cjson/cJSON.h>

#include "llm.h"

#define LC_CONF_MAX_FIXTURES 256
extern char *lc_conf_fixtures[LC_CONF_MAX_FIXTURES]; /* ids, sorted */
extern int lc_conf_n_fixtures;

void lc_conf_list_fixtures(void);
cJSON *lc_conf_load_json(const char *path);
cJSON *lc_conf_load_expected(void);
cJSON *lc_conf_load_fixture(const char *id);
const struct lc_llm_adapter *lc_conf_adapter_of(const cJSON *fx);
const char *lc_conf_jstr(const cJSON *o, const char *k);
void lc_conf_check_error(const char *id, const struct lc_llm_response *r, const cJSON *exp);
void lc_conf_check_answer(const char *id, const struct lc_llm_response *r, const cJSON *exp);
int lc_conf_has_prefix(const char *s, const char *p);
int lc_conf_has_suffix(const char *s, const char *p);

#endif
