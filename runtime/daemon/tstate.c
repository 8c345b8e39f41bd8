/* tstate.c: updateState and patchState on a thread (tstate.h). */
#include "tstate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc.h"
#include "serve.h"

static const char *jstr(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static unsigned fail(cJSON **out, unsigned code, const char *m) {
  *out = cJSON_CreateObject();
  cJSON_AddStringToObject(*out, "detail", m);
  return code;
}

/* Shallow merge of the object add into the JSON text column col of the
 * thread (LangGraph's default channels: the last value of a key wins). */
static int merge(struct lc_serve *s, const char *tenant, const char *thread, const char *col,
                 const cJSON *add, char *err, size_t n) {
  char sql[160];
  snprintf(sql, sizeof sql, "SELECT %s AS v FROM d_threads WHERE id=? AND tenant=?", col);
  cJSON *rows = NULL;
  int rc = lc_dstore_exec(s->ds, &rows, err, n, sql, "ss", thread, tenant);
  if (rc) return rc;
  const char *t = jstr(cJSON_GetArrayItem(rows, 0), "v");
  cJSON *cur = t ? cJSON_Parse(t) : NULL;
  cJSON_Delete(rows);
  if (!cJSON_IsObject(cur)) {
    cJSON_Delete(cur);
    cur = cJSON_CreateObject();
  }
  const cJSON *x;
  cJSON_ArrayForEach(x, add) {
    cJSON_DeleteItemFromObjectCaseSensitive(cur, x->string);
    cJSON_AddItemToObject(cur, x->string, cJSON_Duplicate(x, 1));
  }
  char *text = cJSON_PrintUnformatted(cur);
  cJSON_Delete(cur);
  if (!text) return LC_ENOMEM;
  snprintf(sql, sizeof sql, "UPDATE d_threads SET %s=?, updated=? WHERE id=? AND tenant=?", col);
  rc = lc_dstore_exec(s->ds, NULL, err, n, sql, "sdss", text, lc_serve_now(), thread, tenant);
  cJSON_free(text);
  return rc;
}

unsigned lc_tstate_route(struct lc_serve *s, const char *method, const char *tenant,
                         const char *thread, const cJSON *body, int body_ok, cJSON **out) {
  *out = NULL;
  char err[256];
  if (!body_ok) return fail(out, 400, "the body is not valid JSON");
  if (!strcmp(method, "PATCH")) {
    const cJSON *md = cJSON_GetObjectItem(body, "metadata");
    if (!cJSON_IsObject(md)) return fail(out, 422, "metadata (an object) is required");
    if (merge(s, tenant, thread, "metadata", md, err, sizeof err)) return fail(out, 500, err);
    return 204;
  }
  const cJSON *v = cJSON_GetObjectItem(body, "values");
  if (!cJSON_IsObject(v))
    return fail(out, 422, "values must be an object (a luact thread's values are one)");
  /* Not under a run: the run would write its output over the update. */
  cJSON *rows = NULL;
  lc_dstore_exec(s->ds, &rows, err, sizeof err,
                 "SELECT id FROM d_runs WHERE thread_id=? AND deleted=0", "s", thread);
  int busy = 0;
  const cJSON *r;
  cJSON_ArrayForEach(r, rows) {
    char st[32] = "";
    lc_serve_run_status(s, jstr(r, "id"), st, sizeof st);
    busy |= !strcmp(st, "pending") || !strcmp(st, "running") || !strcmp(st, "waiting_input");
  }
  cJSON_Delete(rows);
  if (busy) return fail(out, 409, "the thread has an active run: update its state after it");
  if (merge(s, tenant, thread, "vals", v, err, sizeof err)) return fail(out, 500, err);
  *out = cJSON_CreateObject();
  cJSON *cp = cJSON_AddObjectToObject(*out, "checkpoint");
  cJSON_AddStringToObject(cp, "thread_id", thread);
  cJSON_AddStringToObject(cp, "checkpoint_ns", "");
  cJSON_AddNullToObject(cp, "checkpoint_id"); /* the current state's, as GET .../state says */
  cJSON_AddItemToObject(*out, "configurable", cJSON_Duplicate(cp, 1));
  return 200;
}
