/* tstate.c: updateState and patchState on a thread (tstate.h). */
#include "tstate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crons.h"
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

static void iso(double t, char *buf, size_t n) {
  time_t sec = (time_t)t;
  struct tm tm;
  gmtime_r(&sec, &tm);
  char b[32];
  strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, n, "%s.%03dZ", b, (int)((t - (double)sec) * 1000) % 1000);
}

static cJSON *err_out(const char **code, const char *c, char *msg, size_t n, const char *m) {
  *code = c;
  snprintf(msg, n, "%s", m);
  return NULL;
}

/* The finished runs of a thread, oldest first: id, agent, result,
 * updated. */
static cJSON *checkpoints(struct lc_serve *s, const char *thread) {
  char err[256];
  cJSON *rows = NULL;
  lc_dstore_exec(s->ds, &rows, err, sizeof err,
                 "SELECT d.id AS id, d.agent AS agent, r.result AS result, r.updated AS updated "
                 "FROM d_runs d JOIN runs r ON r.id=d.id WHERE d.thread_id=? AND d.deleted=0 AND "
                 "r.status='finished' ORDER BY r.updated, d.rowid",
                 "s", thread);
  return rows ? rows : cJSON_CreateArray();
}

static const char *agent_status(const char *st) {
  if (!strcmp(st, "pending")) return "started";
  if (!strcmp(st, "running")) return "running";
  if (!strcmp(st, "finished")) return "completed";
  if (!strcmp(st, "waiting_input")) return "interrupted";
  return "failed"; /* failed, cancelled, in_doubt */
}

cJSON *lc_tstate_command(struct lc_serve *s, const char *tenant, const char *thread,
                         const char *method, const cJSON *params, const char **code, char *msg,
                         size_t n) {
  *code = NULL;
  char err[512];
  if (!strcmp(method, "state.listCheckpoints")) {
    if (cJSON_GetArraySize(cJSON_GetObjectItem(params, "namespace")) > 0)
      return err_out(code, "no_such_namespace", msg, n, "a luact run has only the root namespace");
    const cJSON *lv = cJSON_GetObjectItem(params, "limit");
    /* clamped before the cast: a client's 1e300 is no long */
    long limit = !cJSON_IsNumber(lv) || !(lv->valuedouble >= 0) ? 10
                 : lv->valuedouble > 1e15                        ? 1000000000000000L
                                                                 : (long)lv->valuedouble;
    const char *before = jstr(params, "before");
    cJSON *rows = checkpoints(s, thread);
    cJSON *res = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(res, "checkpoints");
    int past = !before, i = cJSON_GetArraySize(rows) - 1;
    struct lc_serve_page pg = {limit, 0, 0, 0};
    /* newest first: from the tail back (a child's prev is the one before
     * it; the first's is the tail), counted, never indexed nor measured
     * per row (each a walk of the list) */
    const cJSON *r = rows && rows->child ? rows->child->prev : NULL;
    for (; r; r = r == rows->child ? NULL : r->prev, i--) {
      const char *id = jstr(r, "id");
      int keep = past && lc_serve_page_take(&pg);
      past |= before && id && !strcmp(id, before);
      if (!keep) continue;
      cJSON *c = cJSON_CreateObject();
      char ts[40];
      const cJSON *u = cJSON_GetObjectItem(r, "updated");
      iso(cJSON_IsNumber(u) ? u->valuedouble : 0, ts, sizeof ts);
      cJSON_AddStringToObject(c, "id", id);
      cJSON_AddStringToObject(c, "timestamp", ts);
      cJSON_AddNumberToObject(c, "step", i + 1);
      cJSON_AddStringToObject(c, "node_name", "run");
      cJSON_AddItemToObject(c, "metadata", cJSON_CreateObject());
      cJSON_AddItemToArray(list, c);
    }
    cJSON_Delete(rows);
    return res;
  }
  if (!strcmp(method, "state.fork")) {
    const char *cp = jstr(params, "checkpoint_id");
    if (!cp) return err_out(code, "invalid_argument", msg, n, "checkpoint_id is required");
    cJSON *rows = checkpoints(s, thread);
    const cJSON *r, *at = NULL;
    cJSON_ArrayForEach(r, rows) if (jstr(r, "id") && !strcmp(jstr(r, "id"), cp)) at = r;
    if (!at) {
      cJSON_Delete(rows);
      return err_out(code, "no_such_checkpoint", msg, n,
                     "no finished run of this thread has that id");
    }
    /* The checkpoint's values, as the state after that run shows them. */
    const char *rt = jstr(at, "result");
    cJSON *v = rt ? cJSON_Parse(rt) : NULL;
    if (!cJSON_IsObject(v)) {
      cJSON *w = cJSON_CreateObject();
      cJSON_AddItemToObject(w, "output", v ? v : cJSON_CreateNull());
      v = w;
    }
    char *vt = cJSON_PrintUnformatted(v);
    cJSON_Delete(v);
    char tid[37], run[33];
    lc_serve_uuid(tid);
    double now = lc_serve_now();
    int rc = !vt ? LC_ENOMEM
                 : lc_dstore_exec(s->ds, NULL, err, sizeof err,
                                  "INSERT INTO d_threads(id, tenant, created, updated, metadata, "
                                  "vals) SELECT ?, tenant, ?, ?, metadata, ? FROM d_threads WHERE "
                                  "id=? AND tenant=?",
                                  "sddsss", tid, now, now, vt, thread, tenant);
    cJSON_free(vt);
    const cJSON *in = cJSON_GetObjectItem(params, "input");
    char *it = in ? cJSON_PrintUnformatted(in) : strdup("null");
    if (!rc)
      rc = !it ? LC_ENOMEM
               : lc_crons_make_run(s, tenant, tid, jstr(at, "agent"), it, "{}", NULL, "reject",
                                   NULL, run, err, sizeof err);
    cJSON_free(it);
    cJSON_Delete(rows);
    if (rc) return err_out(code, rc == LC_ENOTFOUND ? "no_such_run" : "unknown_error", msg, n, err);
    cJSON *res = cJSON_CreateObject();
    cJSON_AddStringToObject(res, "run_id", run);
    cJSON_AddStringToObject(res, "thread_id", tid);
    return res;
  }
  if (!strcmp(method, "agent.getTree")) {
    const char *want = jstr(params, "run_id");
    cJSON *rows = NULL;
    lc_dstore_exec(s->ds, &rows, err, sizeof err,
                   "SELECT id, agent FROM d_runs WHERE thread_id=? AND tenant=? AND deleted=0 "
                   "AND (? IS NULL OR id=?) ORDER BY created DESC, rowid DESC LIMIT 1",
                   "ssss", thread, tenant, want, want);
    const cJSON *r = cJSON_GetArrayItem(rows, 0);
    if (!r) {
      cJSON_Delete(rows);
      return err_out(code, "no_such_run", msg, n, "no such run of this thread");
    }
    char st[32] = "";
    lc_serve_run_status(s, jstr(r, "id"), st, sizeof st);
    cJSON *res = cJSON_CreateObject(), *tree = cJSON_AddObjectToObject(res, "tree");
    cJSON_AddItemToObject(tree, "namespace", cJSON_CreateArray());
    cJSON_AddStringToObject(tree, "status", agent_status(st));
    cJSON_AddStringToObject(tree, "graph_name", jstr(r, "agent"));
    cJSON *md = cJSON_AddObjectToObject(tree, "metadata");
    cJSON_AddStringToObject(md, "run_id", jstr(r, "id"));
    cJSON_Delete(rows);
    return res;
  }
  return NULL;
}
