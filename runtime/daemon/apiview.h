/* apiview.h: runs and threads as the HTTP side of `luact serve` shows them
 * (apiview.c): the Agent Protocol's and LangGraph's JSON for a d_runs or
 * d_threads row, a thread's status and state, what a wait answers, and the
 * small helpers the routes share (the store query, paging and filters).
 *
 * Every function here may read the store (lc_dstore_exec, the run
 * store): they run on apiwork.c's workers, never on libmicrohttpd's
 * threads. Ownership: a returned cJSON belongs to the caller; rows passed
 * in are borrowed. A read that fails reads as nothing (NULL, an empty
 * array), logged by lc_api_query. */
#ifndef LC_APIVIEW_H
#define LC_APIVIEW_H

#include <cjson/cJSON.h>
#include <stddef.h>

struct lc_serve;
struct MHD_Connection;

/* A string member of o, or NULL (borrowed). */
static inline const char *jstr(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* o[k] = the ISO 8601 time of row's number column col. */
void lc_api_add_time(cJSON *o, const char *k, const cJSON *row, const char *col);
/* A JSON text column parsed (NULL text: null). */
cJSON *lc_api_jcol(const cJSON *row, const char *col);
/* Rows of sql with up to 3 text parameters (spec: one 's' each); an empty
 * array when it fails (logged). */
cJSON *lc_api_query(struct lc_serve *s, const char *sql, const char *spec, ...);
/* The protocol's status for a luact status. */
const char *lc_api_proto_status(const char *st);
/* Is st an end or a wait (not pending, not running)? */
int lc_api_waits_or_ends(const char *st);
/* The d_runs row of a run of tenant (NULL: none). */
cJSON *lc_api_run_row(struct lc_serve *s, const char *tenant, const char *id);
/* A run as the protocol shows it. */
cJSON *lc_api_run_json(struct lc_serve *s, const cJSON *row);
/* The d_threads row of a thread of tenant (NULL: none). */
cJSON *lc_api_thread_row(struct lc_serve *s, const char *tenant, const char *id);
/* idle, busy, interrupted or error (a static string). */
const char *lc_api_thread_status(struct lc_serve *s, const char *thread);
/* The question a thread's waiting run asked, as LangGraph's interrupts. */
cJSON *lc_api_thread_interrupts(struct lc_serve *s, const char *thread);
/* A thread as the protocol shows it. */
cJSON *lc_api_thread_json(struct lc_serve *s, const cJSON *row);
/* A thread's current state (LangGraph's ThreadState). */
cJSON *lc_api_state_of(struct lc_serve *s, const cJSON *trow);
/* What a wait returns: the thread's values (or the run's output) with the
 * question as __interrupt__, or __error__. st: the run's status. */
cJSON *lc_api_run_outcome(struct lc_serve *s, const cJSON *row, const char *st);
/* The Agent Protocol's RunWaitResponse: {run, values, messages}. */
cJSON *lc_api_ap_wait(struct lc_serve *s, const cJSON *row, const char *st);
/* The answer text for luact.ask: a string as it is, anything else as JSON
 * (malloc'd; NULL when out of memory). */
char *lc_api_answer_text(const cJSON *v);
/* A number from the body, else the query string, else def. */
long lc_api_qnum(struct MHD_Connection *c, const cJSON *body, const char *k, long def);
/* Does o hold every key of filter with the same value? */
int lc_api_md_match(const cJSON *o, const cJSON *filter);
/* Monotonic seconds. */
double lc_api_mono(void);

#endif
