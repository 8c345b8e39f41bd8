/* apithreads.c: the thread routes (apithreads.h). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "apicmds.h"
#include "apireq.h"
#include "apiruns.h"
#include "apisse.h"
#include "apithreads.h"
#include "apiview.h"
#include "dstore.h"
#include "lc.h"
#include "serve.h"
#include "tstate.h"
#include "wsconn.h"

/* A thread state in LangGraph's shape from a finished run's row (id,
 * result, updated): values (a non-object result as {output}), no next
 * tasks, the run's id as the checkpoint's. */
static cJSON *state_of_run(const cJSON *r, const char *thread) {
  cJSON *o = cJSON_CreateObject();
  cJSON *v = lc_api_jcol(r, "result");
  if (!cJSON_IsObject(v)) {
    cJSON *w = cJSON_CreateObject();
    cJSON_AddItemToObject(w, "output", v);
    v = w;
  }
  cJSON_AddItemToObject(o, "values", v);
  cJSON_AddItemToObject(o, "next", cJSON_CreateArray());
  cJSON_AddItemToObject(o, "tasks", cJSON_CreateArray());
  cJSON_AddItemToObject(o, "metadata", cJSON_CreateObject());
  lc_api_add_time(o, "created_at", r, "updated");
  cJSON *cp = cJSON_AddObjectToObject(o, "checkpoint");
  cJSON_AddStringToObject(cp, "thread_id", thread);
  cJSON_AddStringToObject(cp, "checkpoint_ns", "");
  cJSON_AddStringToObject(cp, "checkpoint_id", jstr(r, "id"));
  return o;
}

/* The thread's state after its finished run `run` (a checkpoint, as
 * history lists it), or NULL. */
static cJSON *state_at(struct lc_serve *s, const char *thread, const char *run) {
  cJSON *rows = lc_api_query(s,
                      "SELECT d.id AS id, r.result AS result, r.updated AS updated FROM d_runs d "
                      "JOIN runs r ON r.id=d.id WHERE d.thread_id=? AND d.id=? AND d.deleted=0 "
                      "AND r.status='finished'",
                      "ss", thread, run);
  const cJSON *r = cJSON_GetArrayItem(rows, 0);
  cJSON *o = NULL;
  if (r) o = state_of_run(r, thread);
  cJSON_Delete(rows);
  return o;
}

enum MHD_Result lc_api_thread_routes(struct lc_serve *s, struct MHD_Connection *c,
                                     const char *method, char **seg, int nseg, const char *tenant,
                                     const cJSON *body, int body_ok) {
  char err[256];
  if (nseg == 3 && !strcmp(seg[2], "stream") && !strcmp(method, "GET") && lc_wsconn_is_upgrade(c))
    return lc_wsconn_upgrade(s, c, tenant, seg[1]); /* the Agent Protocol's WebSocket */
  if (nseg == 1 && !strcmp(method, "POST")) { /* create */
    if (!body_ok) return lc_api_reply_err(s, c, 400, "the body is not valid JSON");
    if (body && !cJSON_IsObject(body)) return lc_api_reply_err(s, c, 422, "the body must be an object");
    const cJSON *md = cJSON_GetObjectItem(body, "metadata");
    if (md && !cJSON_IsObject(md) && !cJSON_IsNull(md))
      return lc_api_reply_err(s, c, 422, "metadata must be an object");
    char id[65];
    const char *want = jstr(body, "thread_id");
    if (want && (strlen(want) > 64 || !*want)) return lc_api_reply_err(s, c, 422, "thread_id too long");
    if (want) snprintf(id, sizeof id, "%s", want);
    else lc_serve_uuid(id);
    cJSON *ex = lc_api_query(s, "SELECT tenant FROM d_threads WHERE id=?", "s", id);
    const cJSON *exr = cJSON_GetArrayItem(ex, 0);
    if (exr) {
      int mine = !strcmp(jstr(exr, "tenant"), tenant);
      cJSON_Delete(ex);
      const char *ie = jstr(body, "if_exists");
      if (mine && ie && !strcmp(ie, "do_nothing")) {
        cJSON *t = lc_api_thread_row(s, tenant, id);
        enum MHD_Result r = lc_api_reply_json(c, 200, lc_api_thread_json(s, t));
        cJSON_Delete(t);
        return r;
      }
      return lc_api_reply_err(s, c, 409, "a thread with this id exists");
    }
    cJSON_Delete(ex);
    /* LangGraph's supersteps: updates to apply in order; luact's are
     * values (merged, as updateState); a command has no graph to steer. */
    const cJSON *ss = cJSON_GetObjectItem(body, "supersteps"), *step, *u;
    if (ss && !cJSON_IsNull(ss) && !cJSON_IsArray(ss))
      return lc_api_reply_err(s, c, 422, "supersteps must be a list");
    cJSON_ArrayForEach(step, ss) cJSON_ArrayForEach(u, cJSON_GetObjectItem(step, "updates")) {
      const cJSON *uv = cJSON_GetObjectItem(u, "values"), *uc = cJSON_GetObjectItem(u, "command");
      if ((uc && !cJSON_IsNull(uc)) || (uv && !cJSON_IsNull(uv) && !cJSON_IsObject(uv)))
        return lc_api_reply_err(s, c, 422, "a superstep's update is {\"values\": {...}} here");
    }
    char *mt = md && cJSON_IsObject(md) ? cJSON_PrintUnformatted(md) : strdup("{}");
    double now = lc_serve_now();
    int rc = lc_dstore_exec(s->ds, NULL, err, sizeof err,
                            "INSERT INTO d_threads(id, tenant, created, updated, metadata) "
                            "VALUES(?,?,?,?,?)",
                            "ssdds", id, tenant, now, now, mt);
    cJSON_free(mt);
    if (rc) return lc_api_reply_err(s, c, rc == LC_ESTATE ? 409 : 500, err);
    cJSON_ArrayForEach(step, ss) cJSON_ArrayForEach(u, cJSON_GetObjectItem(step, "updates")) {
      cJSON *uo = NULL;
      if (!cJSON_IsObject(cJSON_GetObjectItem(u, "values"))) continue;
      unsigned uc = lc_tstate_route(s, "POST", tenant, id, u, 1, &uo);
      cJSON_Delete(uo);
      if (uc >= 400) return lc_api_reply_err(s, c, 500, "cannot apply the supersteps");
    }
    cJSON *t = lc_api_thread_row(s, tenant, id);
    enum MHD_Result r = lc_api_reply_json(c, 200, lc_api_thread_json(s, t));
    cJSON_Delete(t);
    return r;
  }
  if (nseg == 2 && (!strcmp(seg[1], "search") || !strcmp(seg[1], "count")) &&
      !strcmp(method, "POST")) {
    if (!body_ok) return lc_api_reply_err(s, c, 400, "the body is not valid JSON");
    if (body && !cJSON_IsObject(body)) return lc_api_reply_err(s, c, 422, "the body must be an object");
    int count = !strcmp(seg[1], "count"); /* LangGraph's threads.count: how many match */
    struct lc_serve_page pg = {count ? LONG_MAX : lc_api_qnum(c, body, "limit", 10),
                               count ? 0 : lc_api_qnum(c, body, "offset", 0), 0, 0};
    const cJSON *md = cJSON_GetObjectItem(body, "metadata");
    const cJSON *vf = cJSON_GetObjectItem(body, "values"); /* LangGraph's: on the state */
    const char *stf = jstr(body, "status");
    /* LangGraph's sort_by and sort_order (status is no column: refused) */
    const char *sb = jstr(body, "sort_by"), *so = jstr(body, "sort_order");
    const char *col = !sb || !strcmp(sb, "created_at") ? "created"
                      : !strcmp(sb, "updated_at")      ? "updated"
                      : !strcmp(sb, "thread_id")       ? "id"
                                                       : NULL;
    if (!col) return lc_api_reply_err(s, c, 422, "sort_by is one of thread_id, created_at, updated_at");
    if (so && strcasecmp(so, "asc") && strcasecmp(so, "desc"))
      return lc_api_reply_err(s, c, 422, "sort_order is asc or desc");
    char tsql[160];
    snprintf(tsql, sizeof tsql, "SELECT * FROM d_threads WHERE tenant=? ORDER BY %s %s, id", col,
             so && !strcasecmp(so, "asc") ? "ASC" : "DESC");
    int filtered = md || cJSON_IsObject(vf) || stf;
    if (!filtered && count) { /* nothing to compute per thread: the database counts */
      cJSON *n = lc_api_query(s, "SELECT count(*) AS n FROM d_threads WHERE tenant=?", "s", tenant);
      const cJSON *v = cJSON_GetObjectItem(cJSON_GetArrayItem(n, 0), "n");
      double k = cJSON_IsNumber(v) ? v->valuedouble : cJSON_IsString(v) ? atof(v->valuestring) : 0;
      cJSON_Delete(n);
      return lc_api_reply_json(c, 200, cJSON_CreateNumber(k));
    }
    cJSON *rows;
    if (filtered) {
      rows = lc_api_query(s, tsql, "s", tenant);
    } else { /* the database pages (the filters are on each thread's JSON) */
      strcat(tsql, " LIMIT ? OFFSET ?");
      rows = NULL;
      if (lc_dstore_exec(s->ds, &rows, err, sizeof err, tsql, "sii", tenant,
                         pg.limit < 0 ? 0L : pg.limit, pg.offset < 0 ? 0L : pg.offset))
        lc_serve_log(s, "error", "store_query", NULL, err);
      if (!rows) rows = cJSON_CreateArray();
      pg.offset = 0; /* applied */
    }
    cJSON *arr = cJSON_CreateArray();
    const cJSON *r;
    cJSON_ArrayForEach(r, rows) {
      cJSON *j = lc_api_thread_json(s, r);
      if ((md && !lc_api_md_match(cJSON_GetObjectItem(j, "metadata"), md)) ||
          (cJSON_IsObject(vf) && !lc_api_md_match(cJSON_GetObjectItem(j, "values"), vf)) ||
          (stf && strcmp(jstr(j, "status"), stf)) || !lc_serve_page_take(&pg) ||
          count) { /* a count keeps the number only */
        cJSON_Delete(j);
        continue;
      }
      cJSON_AddItemToArray(arr, j);
    }
    cJSON_Delete(rows);
    if (count) {
      cJSON *n = cJSON_CreateNumber((double)pg.kept);
      cJSON_Delete(arr);
      return lc_api_reply_json(c, 200, n);
    }
    return lc_api_reply_json(c, 200, arr);
  }
  if (nseg == 3 && !strcmp(seg[2], "commands") && !strcmp(method, "POST"))
    return lc_api_command_route(s, c, tenant, seg[1], body, body_ok);
  if (nseg < 2) return lc_api_reply_err(s, c, 404, "no such route");
  cJSON *trow = lc_api_thread_row(s, tenant, seg[1]);
  if (!trow) return lc_api_reply_err(s, c, 404, "thread not found");
  const char *tid = jstr(trow, "id");
  enum MHD_Result res;
  if (nseg == 2 && !strcmp(method, "GET")) {
    res = lc_api_reply_json(c, 200, lc_api_thread_json(s, trow));
  } else if (nseg == 2 && !strcmp(method, "PATCH")) {
    const cJSON *md = cJSON_GetObjectItem(body, "metadata");
    if (!body_ok) res = lc_api_reply_err(s, c, 400, "the body is not valid JSON");
    else if (!cJSON_IsObject(md)) res = lc_api_reply_err(s, c, 422, "metadata (an object) is required");
    else {
      cJSON *cur = lc_api_jcol(trow, "metadata");
      if (!cJSON_IsObject(cur)) {
        cJSON_Delete(cur);
        cur = cJSON_CreateObject();
      }
      const cJSON *x;
      cJSON_ArrayForEach(x, md) {
        cJSON_DeleteItemFromObjectCaseSensitive(cur, x->string);
        cJSON_AddItemToObject(cur, x->string, cJSON_Duplicate(x, 1));
      }
      char *mt = cJSON_PrintUnformatted(cur);
      cJSON_Delete(cur);
      lc_dstore_exec(s->ds, NULL, err, sizeof err,
                     "UPDATE d_threads SET metadata=?, updated=? WHERE id=?", "sds", mt,
                     lc_serve_now(), tid);
      cJSON_free(mt);
      cJSON *t = lc_api_thread_row(s, tenant, tid);
      res = lc_api_reply_json(c, 200, lc_api_thread_json(s, t));
      cJSON_Delete(t);
    }
  } else if (nseg == 2 && !strcmp(method, "DELETE")) {
    cJSON *rows = lc_api_query(s, "SELECT id FROM d_runs WHERE thread_id=? AND deleted=0", "s", tid);
    const cJSON *r;
    cJSON_ArrayForEach(r, rows) lc_serve_cancel(s, jstr(r, "id"), 1);
    cJSON_Delete(rows);
    lc_dstore_exec(s->ds, NULL, err, sizeof err, "UPDATE d_runs SET deleted=1 WHERE thread_id=?",
                   "s", tid);
    lc_dstore_exec(s->ds, NULL, err, sizeof err, "DELETE FROM d_threads WHERE id=?", "s", tid);
    res = lc_api_reply_json(c, 204, NULL);
  } else if (nseg == 3 && !strcmp(seg[2], "state") && !strcmp(method, "GET")) {
    res = lc_api_reply_json(c, 200, lc_api_state_of(s, trow));
  } else if (nseg == 3 && !strcmp(seg[2], "history") &&
             (!strcmp(method, "GET") || !strcmp(method, "POST"))) {
    long limit = lc_api_qnum(c, body, "limit", 10);
    cJSON *arr = cJSON_CreateArray();
    cJSON_AddItemToArray(arr, lc_api_state_of(s, trow));
    cJSON *rows = lc_api_query(s,
                        "SELECT d.id AS id, r.result AS result, r.updated AS updated FROM d_runs d "
                        "JOIN runs r ON r.id=d.id WHERE d.thread_id=? AND r.status='finished' "
                        "ORDER BY r.updated DESC",
                        "s", tid);
    const cJSON *r;
    int first = 1;
    cJSON_ArrayForEach(r, rows) {
      if (first) { /* the current state is the newest run's */
        first = 0;
        continue;
      }
      cJSON_AddItemToArray(arr, state_of_run(r, tid));
    }
    cJSON_Delete(rows);
    /* LangGraph's paging (before: a checkpoint's config; the states older
     * than it) and metadata filter, then the limit. */
    const char *bf = jstr(cJSON_GetObjectItem(cJSON_GetObjectItem(body, "before"), "configurable"),
                          "checkpoint_id");
    const cJSON *hmd = cJSON_GetObjectItem(body, "metadata");
    cJSON *page = cJSON_CreateArray();
    struct lc_serve_page pg = {limit, 0, 0, 0}; /* counted: no walk per state */
    for (int past = !bf; arr->child;) {
      cJSON *e = cJSON_DetachItemViaPointer(arr, arr->child);
      const char *eid = jstr(cJSON_GetObjectItem(e, "checkpoint"), "checkpoint_id");
      int keep = past &&
                 (!cJSON_IsObject(hmd) || lc_api_md_match(cJSON_GetObjectItem(e, "metadata"), hmd)) &&
                 lc_serve_page_take(&pg);
      past |= eid && bf && !strcmp(eid, bf);
      if (keep) cJSON_AddItemToArray(page, e);
      else cJSON_Delete(e);
    }
    cJSON_Delete(arr);
    res = lc_api_reply_json(c, 200, page);
  } else if (nseg == 3 && !strcmp(seg[2], "copy") && !strcmp(method, "POST")) {
    char id[37];
    lc_serve_uuid(id);
    double now = lc_serve_now();
    lc_dstore_exec(s->ds, NULL, err, sizeof err,
                   "INSERT INTO d_threads(id, tenant, created, updated, metadata, vals) SELECT ?, "
                   "tenant, ?, ?, metadata, vals FROM d_threads WHERE id=?",
                   "sdds", id, now, now, tid);
    cJSON *t = lc_api_thread_row(s, tenant, id);
    res = t ? lc_api_reply_json(c, 200, lc_api_thread_json(s, t)) : lc_api_reply_err(s, c, 500, err);
    cJSON_Delete(t);
  } else if (nseg == 3 && !strcmp(seg[2], "stream") && !strcmp(method, "GET")) {
    res = lc_stream_stream_thread(s, c, tenant, tid, NULL);
  } else if (nseg == 3 && !strcmp(seg[2], "stream") && !strcmp(method, "POST")) {
    if (!body_ok) res = lc_api_reply_err(s, c, 400, "the body is not valid JSON");
    else if (!body) res = lc_api_reply_err(s, c, 422, "channels (a non-empty list) is required");
    else res = lc_stream_stream_thread(s, c, tenant, tid, body);
  } else if (nseg == 3 && !strcmp(seg[2], "state") &&
             (!strcmp(method, "PATCH") ||
              (!strcmp(method, "POST") && cJSON_GetObjectItem(body, "values")))) {
    cJSON *out = NULL; /* LangGraph's patchState, updateState (tstate.c) */
    unsigned code = lc_tstate_route(s, method, tenant, tid, body, body_ok, &out);
    res = code < 400 ? lc_api_reply_json(c, code, out) : lc_api_reply_err(s, c, code, jstr(out, "detail"));
    if (code >= 400) cJSON_Delete(out);
  } else if (((nseg == 3 && !strcmp(seg[2], "state")) ||
              (nseg == 4 && !strcmp(seg[2], "state") && !strcmp(seg[3], "checkpoint"))) &&
             !strcmp(method, "POST")) {
    /* LangGraph's getState at a checkpoint: a checkpoint is a finished
     * run of the thread (its id, as history lists them). */
    const char *cp = jstr(cJSON_GetObjectItem(body, "checkpoint"), "checkpoint_id");
    cJSON *at = cp && *cp ? state_at(s, tid, cp) : NULL;
    if (!body_ok) res = lc_api_reply_err(s, c, 400, "the body is not valid JSON");
    else if (cp && *cp && !at) res = lc_api_reply_err(s, c, 404, "no such checkpoint of this thread");
    else res = lc_api_reply_json(c, 200, at ? at : lc_api_state_of(s, trow));
    if (!body_ok || !at) cJSON_Delete(at);
  } else if (nseg == 4 && !strcmp(seg[2], "state") && !strcmp(method, "GET")) {
    cJSON *at = state_at(s, tid, seg[3]);
    res = at ? lc_api_reply_json(c, 200, at) : lc_api_reply_err(s, c, 404, "no such checkpoint of this thread");
  } else if (nseg >= 3 && !strcmp(seg[2], "runs")) {
    res = lc_api_run_routes(s, c, method, seg + 3, nseg - 3, tenant, tid, body, body_ok);
  } else {
    res = lc_api_reply_err(s, c, 404, "no such route");
  }
  cJSON_Delete(trow);
  return res;
}
