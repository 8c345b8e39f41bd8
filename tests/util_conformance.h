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

/* Every normalised field of r on lines (lc_free it): responses to the same
 * bytes fed in other pieces must have the same. */
char *lc_conf_summary(const struct lc_llm_response *r);
/* Feeds body[0,len) to ad's stream parser as [0,cut) + [cut,len), or a
 * byte at a time when cut > len, into r; returns stream_end's code. When
 * it is 0, asserts that the deltas said what r holds: tool calls started
 * in order, the text, the reasoning, each call's arguments. */
int lc_conf_run_stream(const struct lc_llm_adapter *ad, const char *body, size_t len,
                       size_t cut, struct lc_llm_response *r);
/* The same, fed in pieces cut at cut, cut + period, cut + 2 period, ...
 * (period 0: at cut only). */
int lc_conf_run_stream_every(const struct lc_llm_adapter *ad, const char *body, size_t len,
                             size_t cut, size_t period, struct lc_llm_response *r);
/* Feeds body cut at every offset from first to last (len + 1: a byte at
 * a time) and asserts each gives what whole gives (lc_conf_summary). */
void lc_conf_check_splits(const char *id, const struct lc_llm_adapter *ad, const char *body,
                          size_t len, const struct lc_llm_response *whole, size_t first,
                          size_t last);
/* A non-streamed body cut in half is malformed (LC_EINVAL, bad_response
 * with a message), never a short answer. */
void lc_conf_check_half_body(const struct lc_llm_adapter *ad, const char *body, size_t len);

#endif
