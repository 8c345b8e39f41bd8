/* apiview.c: runs and threads as the protocol shows them, and the helpers
 * the routes share (apiview.h). */
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apiview.h"
#include "serve.h"
#include "store.h"

/* ---- helpers ---- */

static void iso(double t, char *buf, size_t n) {
  time_t s = (time_t)t;
  struct tm tm;
  gmtime_r(&s, &tm);
  char b[32];
  strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, n, "%s.%03dZ", b, (int)((t - (double)s) * 1000) % 1000);
}

void lc_api_add_time(cJSON *o, const char *k, const cJSON *row, const char *col) {
  const cJSON *v = cJSON_GetObjectItem(row, col);
  char b[40];
  iso(cJSON_IsNumber(v) ? v->valuedouble : 0, b, sizeof b);
  cJSON_AddStringToObject(o, k, b);
}

/* A JSON text column parsed (NULL text: null). */
cJSON *lc_api_jcol(const cJSON *row, const char *col) {
  const char *t = jstr(row, col);
  cJSON *v = t ? cJSON_Parse(t) : NULL;
  return v ? v : cJSON_CreateNull();
}

const char *lc_api_proto_status(const char *st) {
  if (!strcmp(st, "finished")) return "success";
  if (!strcmp(st, "failed") || !strcmp(st, "in_doubt")) return "error";
  if (!strcmp(st, "waiting_input") || !strcmp(st, "cancelled")) return "interrupted";
  return st; /* pending, running */
}

/* The d_runs row of a run of tenant (NULL: none). */
cJSON *lc_api_run_row(struct lc_serve *s, const char *tenant, const char *id) {
  char err[256];
  cJSON *rows = NULL;
  lc_dstore_exec(s->ds, &rows, err, sizeof err,
                 "SELECT * FROM d_runs WHERE id=? AND tenant=? AND deleted=0", "ss", id, tenant);
  cJSON *r = cJSON_DetachItemFromArray(rows, 0);
  cJSON_Delete(rows);
  return r;
}

cJSON *lc_api_run_json(struct lc_serve *s, const cJSON *row) {
  cJSON *o = cJSON_CreateObject();
  const char *id = jstr(row, "id");
  char st[32] = "pending";
  lc_serve_run_status(s, id, st, sizeof st);
  cJSON_AddStringToObject(o, "run_id", id);
  const char *th = jstr(row, "thread_id");
  if (th) cJSON_AddStringToObject(o, "thread_id", th);
  else cJSON_AddNullToObject(o, "thread_id");
  cJSON_AddStringToObject(o, "assistant_id", jstr(row, "agent"));
  cJSON_AddStringToObject(o, "agent_id", jstr(row, "agent"));
  lc_api_add_time(o, "created_at", row, "created");
  lc_api_add_time(o, "updated_at", row, "created");
  cJSON_AddStringToObject(o, "status", lc_api_proto_status(st));
  cJSON_AddStringToObject(o, "luact_status", st);
  cJSON_AddItemToObject(o, "metadata", lc_api_jcol(row, "metadata"));
  const char *mt = jstr(row, "multitask");
  cJSON_AddStringToObject(o, "multitask_strategy", mt ? mt : "reject");
  cJSON_AddItemToObject(o, "kwargs", cJSON_CreateObject());
  return o;
}

const char *lc_api_thread_status(struct lc_serve *s, const char *thread) {
  char err[256];
  cJSON *rows = NULL;
  lc_dstore_exec(s->ds, &rows, err, sizeof err,
                 "SELECT id FROM d_runs WHERE thread_id=? AND deleted=0 ORDER BY created DESC, "
                 "rowid DESC LIMIT 20",
                 "s", thread);
  const char *res = "idle";
  const cJSON *r;
  int first = 1;
  cJSON_ArrayForEach(r, rows) {
    char st[32] = "";
    lc_serve_run_status(s, jstr(r, "id"), st, sizeof st);
    if (!strcmp(st, "pending") || !strcmp(st, "running")) {
      res = "busy";
      break;
    }
    if (!strcmp(st, "waiting_input")) {
      res = "interrupted";
      break;
    }
    if (first && (!strcmp(st, "failed") || !strcmp(st, "in_doubt"))) res = "error";
    first = 0;
  }
  cJSON_Delete(rows);
  return res;
}

cJSON *lc_api_thread_row(struct lc_serve *s, const char *tenant, const char *id) {
  cJSON *rows = lc_api_query(s, "SELECT * FROM d_threads WHERE id=? AND tenant=?", "ss", id, tenant);
  cJSON *r = cJSON_DetachItemFromArray(rows, 0);
  cJSON_Delete(rows);
  return r;
}

/* The question a thread's waiting run asked, as LangGraph's interrupts. */
cJSON *lc_api_thread_interrupts(struct lc_serve *s, const char *thread) {
  cJSON *arr = cJSON_CreateArray();
  cJSON *rows = lc_api_query(s,
                      "SELECT d.id AS id, r.question AS q FROM d_runs d JOIN runs r ON r.id=d.id "
                      "WHERE d.thread_id=? AND d.deleted=0 AND r.status='waiting_input'",
                      "s", thread);
  const cJSON *r;
  cJSON_ArrayForEach(r, rows) {
    cJSON *i = cJSON_CreateObject();
    cJSON_AddStringToObject(i, "value", jstr(r, "q") ? jstr(r, "q") : "");
    cJSON_AddStringToObject(i, "id", jstr(r, "id"));
    cJSON_AddStringToObject(i, "run_id", jstr(r, "id"));
    cJSON_AddItemToArray(arr, i);
  }
  cJSON_Delete(rows);
  return arr;
}

cJSON *lc_api_thread_json(struct lc_serve *s, const cJSON *row) {
  cJSON *o = cJSON_CreateObject();
  const char *id = jstr(row, "id");
  cJSON_AddStringToObject(o, "thread_id", id);
  lc_api_add_time(o, "created_at", row, "created");
  lc_api_add_time(o, "updated_at", row, "updated");
  cJSON_AddItemToObject(o, "metadata", lc_api_jcol(row, "metadata"));
  cJSON_AddStringToObject(o, "status", lc_api_thread_status(s, id));
  cJSON *v = lc_api_jcol(row, "vals");
  if (cJSON_IsNull(v)) {
    cJSON_Delete(v);
    v = cJSON_CreateObject();
  }
  cJSON_AddItemToObject(o, "values", v);
  cJSON *ints = lc_api_thread_interrupts(s, id);
  cJSON *m = cJSON_CreateObject();
  if (cJSON_GetArraySize(ints)) cJSON_AddItemToObject(m, "__all__", ints);
  else cJSON_Delete(ints);
  cJSON_AddItemToObject(o, "interrupts", m);
  return o;
}

cJSON *lc_api_query(struct lc_serve *s, const char *sql, const char *spec, ...) {
  /* Text parameters only, up to 3. */
  va_list ap;
  va_start(ap, spec);
  const char *a[3] = {NULL, NULL, NULL};
  int n = (int)strlen(spec);
  for (int k = 0; k < n && k < 3; k++) a[k] = va_arg(ap, const char *);
  va_end(ap);
  char err[256];
  cJSON *rows = NULL;
  int rc = lc_dstore_exec(s->ds, &rows, err, sizeof err, sql, spec, a[0], a[1], a[2]);
  if (rc) lc_serve_log(s, "error", "store_query", NULL, err);
  return rows ? rows : cJSON_CreateArray();
}

/* The answer text for luact.ask: a string as it is, anything else as JSON. */
char *lc_api_answer_text(const cJSON *v) {
  if (cJSON_IsString(v)) return strdup(v->valuestring);
  char *t = cJSON_PrintUnformatted(v);
  char *r = t ? strdup(t) : NULL;
  cJSON_free(t);
  return r;
}

int lc_api_waits_or_ends(const char *st) {
  return strcmp(st, "pending") && strcmp(st, "running");
}

/* What a wait returns: the thread's values (or the run's output) with the
 * question as __interrupt__, or __error__. */
cJSON *lc_api_run_outcome(struct lc_serve *s, const cJSON *row, const char *st) {
  char err[256];
  struct lc_run_row r;
  memset(&r, 0, sizeof r);
  lc_store_run_get(s->store, jstr(row, "id"), &r, err, sizeof err);
  cJSON *v = NULL;
  const char *th = jstr(row, "thread_id");
  if (th) {
    cJSON *rows = lc_api_query(s, "SELECT vals FROM d_threads WHERE id=?", "s", th);
    v = lc_api_jcol(cJSON_GetArrayItem(rows, 0), "vals");
    cJSON_Delete(rows);
  } else if (r.result) {
    v = cJSON_Parse(r.result);
    if (v && !cJSON_IsObject(v)) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddItemToObject(o, "output", v);
      v = o;
    }
  }
  if (!cJSON_IsObject(v)) {
    cJSON_Delete(v);
    v = cJSON_CreateObject();
  }
  if (!strcmp(st, "waiting_input")) {
    cJSON *arr = cJSON_AddArrayToObject(v, "__interrupt__");
    cJSON *i = cJSON_CreateObject();
    cJSON_AddStringToObject(i, "value", r.question ? r.question : "");
    cJSON_AddStringToObject(i, "id", jstr(row, "id"));
    cJSON_AddItemToArray(arr, i);
  } else if (strcmp(st, "finished")) {
    cJSON *e = cJSON_AddObjectToObject(v, "__error__");
    cJSON_AddStringToObject(e, "error", st);
    cJSON_AddStringToObject(e, "message", r.error ? r.error : st);
  }
  lc_run_row_free(&r);
  return v;
}

/* The Agent Protocol's RunWaitResponse: {run, values, messages}. */
cJSON *lc_api_ap_wait(struct lc_serve *s, const cJSON *row, const char *st) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddItemToObject(o, "run", lc_api_run_json(s, row));
  cJSON_AddItemToObject(o, "values", lc_api_run_outcome(s, row, st));
  cJSON_AddItemToObject(o, "messages", cJSON_CreateArray());
  return o;
}

double lc_api_mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

long lc_api_qnum(struct MHD_Connection *c, const cJSON *body, const char *k, long def) {
  const cJSON *v = cJSON_GetObjectItem(body, k);
  if (cJSON_IsNumber(v)) {
    /* A client's double: out of long's range (1e300) the cast is
     * undefined (on x86 it became LONG_MIN, a limit that listed nothing);
     * clamp first, as crons' num() does. */
    double d = v->valuedouble;
    if (!(d > -1e15)) return d < 0 ? -1000000000000000L : def;
    return d > 1e15 ? 1000000000000000L : (long)d;
  }
  const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, k);
  return q ? atol(q) : def;
}

/* Does o hold every key of filter with the same value? */
int lc_api_md_match(const cJSON *o, const cJSON *filter) {
  const cJSON *f;
  cJSON_ArrayForEach(f, filter) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, f->string);
    if (!v || !cJSON_Compare(v, f, 1)) return 0;
  }
  return 1;
}

cJSON *lc_api_state_of(struct lc_serve *s, const cJSON *trow) {
  cJSON *t = lc_api_thread_json(s, trow);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddItemToObject(o, "values", cJSON_DetachItemFromObject(t, "values"));
  cJSON *ints = lc_api_thread_interrupts(s, jstr(trow, "id"));
  cJSON_AddItemToObject(o, "next", cJSON_CreateArray());
  cJSON *tasks = cJSON_AddArrayToObject(o, "tasks");
  if (cJSON_GetArraySize(ints)) {
    cJSON *task = cJSON_CreateObject();
    cJSON_AddStringToObject(task, "id", jstr(cJSON_GetArrayItem(ints, 0), "id"));
    cJSON_AddStringToObject(task, "name", "ask");
    cJSON_AddItemToObject(task, "interrupts", ints);
    cJSON_AddItemToArray(tasks, task);
    cJSON_AddItemToArray(cJSON_GetObjectItem(o, "next"), cJSON_CreateString("ask"));
  } else {
    cJSON_Delete(ints);
  }
  cJSON_AddItemToObject(o, "metadata", cJSON_DetachItemFromObject(t, "metadata"));
  cJSON_AddItemToObject(o, "created_at", cJSON_DetachItemFromObject(t, "updated_at"));
  cJSON *cp = cJSON_AddObjectToObject(o, "checkpoint");
  cJSON_AddStringToObject(cp, "thread_id", jstr(trow, "id"));
  cJSON_AddStringToObject(cp, "checkpoint_ns", "");
  cJSON_AddNullToObject(cp, "checkpoint_id");
  cJSON_AddNullToObject(o, "parent_checkpoint");
  cJSON_Delete(t);
  return o;
}
