/* apiruns.c: creating runs, the run routes and waits (apiruns.h). */
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apireq.h"
#include "apiruns.h"
#include "apisse.h"
#include "apiview.h"
#include "apiwork.h"
#include "crons.h"
#include "lc.h"
#include "serve.h"

enum { WAIT_OUTCOME = 1, WAIT_AP, WAIT_CANCEL };

static pthread_mutex_t create_mu = PTHREAD_MUTEX_INITIALIZER; /* thread multitask checks */

/* ---- run lists, paged in SQL ---- */

/* A run's status as lc_serve_run_status reads it (its runs row, else its
 * queue row) and as lc_api_proto_status names it to clients: the same
 * rules in SQL, so a list filters and pages in the database. */
#define RUN_LSTATUS                                                                    \
  "(CASE WHEN r.id IS NOT NULL THEN coalesce(r.status, 'running') WHEN d.pstatus = " \
  "'claimed' THEN 'pending' ELSE d.pstatus END)"
#define RUN_PSTATUS                                                                      \
  "(CASE " RUN_LSTATUS " WHEN 'finished' THEN 'success' WHEN 'failed' THEN 'error' WHEN " \
  "'in_doubt' THEN 'error' WHEN 'waiting_input' THEN 'interrupted' WHEN 'cancelled' THEN " \
  "'interrupted' ELSE " RUN_LSTATUS " END)"

/* A tenant's runs, newest first, with the optional filters (NULL: any),
 * one page of them: the database reads the page, not every run. */
static cJSON *runs_page(struct lc_serve *s, const char *tenant, const char *thread,
                        const char *agent, const char *status, long limit, long offset) {
  char err[256];
  cJSON *rows = NULL;
  lc_dstore_exec(s->ds, &rows, err, sizeof err,
                 "SELECT d.* FROM d_runs d LEFT JOIN runs r ON r.id = d.id WHERE d.tenant = ? "
                 "AND d.deleted = 0 AND (CAST(? AS TEXT) IS NULL OR d.thread_id = ?) AND "
                 "(CAST(? AS TEXT) IS NULL OR d.agent = ?) AND (CAST(? AS TEXT) IS NULL OR "
                 RUN_PSTATUS " = ?) ORDER BY d.created DESC, d.rowid DESC LIMIT ? OFFSET ?",
                 "sssssssii", tenant, thread, thread, agent, agent, status, status,
                 limit < 0 ? 0L : limit, offset < 0 ? 0L : offset);
  cJSON *arr = cJSON_CreateArray();
  cJSON *r;
  while (arr && (r = cJSON_DetachItemFromArray(rows, 0))) {
    atomic_fetch_add_explicit(&lc_serve_page_steps, 1, memory_order_relaxed);
    cJSON_AddItemToArray(arr, lc_api_run_json(s, r));
    cJSON_Delete(r);
  }
  cJSON_Delete(rows);
  return arr;
}

/* ---- runs: create, wait ---- */

static const char *body_str(const cJSON *b, const char *k) { return jstr(b, k); }

/* Creates (or finds) a run. Returns the HTTP code; *out the run's d_runs
 * row; msg the reason on errors. thread may be NULL (stateless). */
unsigned lc_api_create_run(struct lc_serve *s, struct MHD_Connection *c, const char *tenant,
                           const char *thread, const cJSON *body, cJSON **out, char *msg,
                           size_t n) {
  *out = NULL;
  char err[512];
  const char *agent = body_str(body, "assistant_id");
  if (!agent) agent = body_str(body, "agent_id");
  const cJSON *command = cJSON_GetObjectItem(body, "command");
  const cJSON *resume = cJSON_GetObjectItem(command, "resume");
  if (!agent) {
    snprintf(msg, n, "assistant_id (agent_id) is required");
    return 422;
  }
  if (!lc_serve_agent(s, agent)) {
    snprintf(msg, n, "unknown agent '%.200s'", agent);
    return 404;
  }
  const char *mt = body_str(body, "multitask_strategy");
  if (mt && strcmp(mt, "reject") && strcmp(mt, "enqueue")) {
    snprintf(msg, n, "multitask_strategy %.40s is not supported (reject, enqueue)", mt);
    return 422;
  }
  const cJSON *md = cJSON_GetObjectItem(body, "metadata");
  if (md && !cJSON_IsObject(md) && !cJSON_IsNull(md)) {
    snprintf(msg, n, "metadata must be an object");
    return 422;
  }
  const char *idem = c ? MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key")
                      : NULL; /* a WebSocket's command has no headers */
  /* create_mu keeps a thread's checks and its new run together. A run
   * without a thread needs no check: creates run in parallel and their
   * inserts share group commits (dstore.h); a key taken meanwhile is
   * caught by d_runs' unique index. */
  int locked = thread != NULL;
  if (locked) pthread_mutex_lock(&create_mu);
  unsigned code = 200;
  if (idem) {
    cJSON *rows = lc_api_query(s, "SELECT * FROM d_runs WHERE tenant=? AND idem=?", "ss", tenant, idem);
    cJSON *r = cJSON_DetachItemFromArray(rows, 0);
    cJSON_Delete(rows);
    if (r) {
      *out = r; /* the same run again */
      goto done;
    }
  }
  if (thread) {
    cJSON *t = lc_api_thread_row(s, tenant, thread);
    if (!t) {
      const char *ine = body_str(body, "if_not_exists");
      if (ine && !strcmp(ine, "create")) {
        double now = lc_serve_now();
        lc_dstore_exec(s->ds, NULL, err, sizeof err,
                       "INSERT INTO d_threads(id, tenant, created, updated) VALUES(?,?,?,?)",
                       "ssdd", thread, tenant, now, now);
      } else {
        snprintf(msg, n, "thread %.80s not found", thread);
        code = 404;
        goto done;
      }
    }
    cJSON_Delete(t);
  }
  if (resume) {
    /* The protocol's resume command answers the thread's waiting run. */
    if (!thread) {
      snprintf(msg, n, "command.resume needs a thread");
      code = 422;
      goto done;
    }
    cJSON *rows = lc_api_query(s,
                        "SELECT d.* FROM d_runs d LEFT JOIN runs r ON r.id=d.id WHERE "
                        "d.thread_id=? AND d.tenant=? AND d.deleted=0 ORDER BY "
                        "(CASE WHEN r.status='waiting_input' THEN 1 ELSE 0 END) DESC, d.asked DESC, d.created DESC, d.rowid DESC "
                        "LIMIT 1",
                        "ss", thread, tenant);
    cJSON *r = cJSON_DetachItemFromArray(rows, 0);
    cJSON_Delete(rows);
    if (!r) {
      snprintf(msg, n, "no run of this thread waits for an answer");
      code = 409;
      goto done;
    }
    char *ans = lc_api_answer_text(resume);
    int again = 0;
    int rc = lc_serve_answer(s, jstr(r, "id"), ans ? ans : "", &again, msg, n);
    free(ans);
    if (rc) {
      cJSON_Delete(r);
      code = 409;
      goto done;
    }
    if (!again) {
      lc_serve_log(s, "info", "run_answered", jstr(r, "id"), NULL);
      lc_serve_enqueue(s, jstr(r, "id"), thread, jstr(r, "agent"), 1);
    }
    *out = r;
    goto done;
  }
  if (thread) {
    /* One run at a time per thread. */
    cJSON *rows = lc_api_query(s, "SELECT id FROM d_runs WHERE thread_id=? AND deleted=0", "s", thread);
    const cJSON *r;
    int busy = 0;
    cJSON_ArrayForEach(r, rows) {
      char st[32] = "";
      lc_serve_run_status(s, jstr(r, "id"), st, sizeof st);
      busy |= !strcmp(st, "pending") || !strcmp(st, "running") || !strcmp(st, "waiting_input");
    }
    cJSON_Delete(rows);
    if (busy && (!mt || !strcmp(mt, "reject"))) {
      snprintf(msg, n, "thread %.80s is busy (multitask_strategy reject)", thread);
      code = 409;
      goto done;
    }
  }
  const cJSON *input = cJSON_GetObjectItem(body, "input");
  char *itext = input ? cJSON_PrintUnformatted(input) : strdup("null");
  char *mtext = md && cJSON_IsObject(md) ? cJSON_PrintUnformatted(md) : strdup("{}");
  const cJSON *sm = cJSON_GetObjectItem(body, "stream_mode");
  char *smtext = sm ? cJSON_PrintUnformatted(sm) : NULL;
  char uu[37], id[33];
  lc_serve_uuid(uu);
  /* A run id is 32 hex digits (the journal's form): the uuid without dashes. */
  size_t j = 0;
  for (const char *p = uu; *p && j < 32; p++)
    if (*p != '-') id[j++] = *p;
  id[j] = 0;
  /* Committed (synchronous=FULL) before the reply: a SIGKILL after the 2xx
   * loses nothing; the next start runs it. */
  int rc = lc_dstore_exec(s->ds, NULL, err, sizeof err,
                          "INSERT INTO d_runs(id, thread_id, tenant, agent, input, metadata, idem, "
                          "multitask, stream_mode, created) VALUES(?,?,?,?,?,?,?,?,?,?)",
                          "sssssssssd", id, thread, tenant, agent, itext ? itext : "null",
                          mtext ? mtext : "{}", idem, mt ? mt : "reject", smtext, lc_serve_now());
  cJSON_free(itext);
  cJSON_free(mtext);
  cJSON_free(smtext);
  if (rc == LC_ESTATE && idem) {
    /* The same key, created by a request that ran at the same time. */
    cJSON *rows = lc_api_query(s, "SELECT * FROM d_runs WHERE tenant=? AND idem=?", "ss", tenant, idem);
    *out = cJSON_DetachItemFromArray(rows, 0);
    cJSON_Delete(rows);
    if (*out) goto done;
  }
  if (rc) {
    snprintf(msg, n, "cannot store the run: %.300s", err);
    code = 500;
    goto done;
  }
  atomic_fetch_add(&s->runs_created, 1);
  atomic_fetch_add(&((struct lc_agent *)lc_serve_agent(s, agent))->created, 1);
  lc_serve_log(s, "info", "run_created", id, agent);
  *out = lc_api_run_row(s, tenant, id);
  lc_serve_enqueue(s, id, thread, agent, 0);
done:
  if (locked) pthread_mutex_unlock(&create_mu);
  return code;
}

/* A parked wait (a worker): answers once the run ended or waits for
 * input, or the daemon stops. */
static int wait_job(struct lc_work *w) {
  struct lc_api_req *rq = (struct lc_api_req *)((char *)w - offsetof(struct lc_api_req, work));
  struct lc_serve *s = rq->s;
  char st[32] = "";
  int rc = lc_serve_run_status(s, rq->wait_run, st, sizeof st);
  int stopping = atomic_load(&s->stopping);
  /* The run was found when the wait began and runs are deleted only once
   * ended: a status that cannot be read now is a store error, never an
   * outcome. The wait goes on (logged once) rather than answer 200 with
   * an empty one. */
  if (rc && !stopping) {
    if (!rq->wait_misses++)
      lc_serve_log(s, "warn", "wait_status_unreadable", rq->wait_run, "looked at again");
    return LC_WORK_KEEP;
  }
  if (!rc && !lc_api_waits_or_ends(st) && !stopping) return LC_WORK_KEEP;
  lc_api_cur_rq = rq;
  if (rc) { /* stopping */
    if (rq->wait_kind != WAIT_CANCEL) atomic_fetch_sub(&s->sse_clients, 1);
    lc_api_reply_err(s, rq->c, 503, "the daemon is stopping: wait again after its restart");
  } else if (rq->wait_kind == WAIT_CANCEL) {
    lc_api_reply_json(rq->c, 202, lc_api_run_json(s, rq->wait_row));
  } else {
    atomic_fetch_sub(&s->sse_clients, 1);
    lc_api_reply_json(rq->c, 200, rq->wait_kind == WAIT_AP ? lc_api_ap_wait(s, rq->wait_row, st)
                                                    : lc_api_run_outcome(s, rq->wait_row, st));
  }
  lc_api_cur_rq = NULL;
  return lc_api_hand_back(rq);
}

/* From a route on a worker: the reply waits for run `row` (a copy is
 * kept); the request's item parks after this run (apiwork.c). */
static enum MHD_Result park_wait(struct MHD_Connection *c, const cJSON *row, int kind) {
  struct lc_api_req *rq = lc_api_cur_rq;
  (void)c;
  snprintf(rq->wait_run, sizeof rq->wait_run, "%s", jstr(row, "id"));
  rq->wait_kind = kind;
  rq->wait_row = cJSON_Duplicate(row, 1);
  rq->work.run = wait_job;
  rq->work.want_park = 1;
  return MHD_YES;
}

/* Run routes under a thread (thread set) or stateless (thread NULL):
 * seg are the parts after "runs". */
enum MHD_Result lc_api_run_routes(struct lc_serve *s, struct MHD_Connection *c,
                                  const char *method, char **seg, int nseg, const char *tenant,
                                  const char *thread, const cJSON *body, int body_ok) {
  char msg[512];
  if (nseg >= 1 && !strcmp(seg[0], "crons")) { /* LangGraph's crons (crons.c) */
    cJSON *out = NULL;
    unsigned code =
        lc_crons_route(s, method, seg + 1, nseg - 1, tenant, thread, body, body_ok, &out);
    if (code < 400) return lc_api_reply_json(c, code, out);
    enum MHD_Result r = lc_api_reply_err(s, c, code, out ? jstr(out, "detail") : "error");
    cJSON_Delete(out);
    return r;
  }
  /* create: POST runs, runs/wait, runs/stream */
  if (!strcmp(method, "POST") &&
      (nseg == 0 || (nseg == 1 && (!strcmp(seg[0], "wait") || !strcmp(seg[0], "stream"))))) {
    if (!body_ok) return lc_api_reply_err(s, c, 400, "the body is not valid JSON");
    if (!cJSON_IsObject(body)) return lc_api_reply_err(s, c, 422, "the body must be a JSON object");
    /* The Agent Protocol names the thread in the body of POST /runs. */
    if (!thread && jstr(body, "thread_id")) thread = jstr(body, "thread_id");
    /* An Agent Protocol request (agent_id, not LangGraph's assistant_id)
     * gets the protocol's wait answer: {run, values, messages}. */
    int ap = !jstr(body, "assistant_id") && jstr(body, "agent_id");
    cJSON *row = NULL;
    unsigned code = lc_api_create_run(s, c, tenant, thread, body, &row, msg, sizeof msg);
    if (code != 200) return lc_api_reply_err(s, c, code, msg);
    enum MHD_Result res;
    if (nseg == 1 && !strcmp(seg[0], "stream")) {
      res = lc_stream_stream_run(s, c, tenant, row, lc_stream_wants_tokens(cJSON_GetObjectItem(body, "stream_mode")));
    } else if (nseg == 1) {
      if (atomic_fetch_add(&s->sse_clients, 1) >= s->max_streams) {
        atomic_fetch_sub(&s->sse_clients, 1);
        cJSON_Delete(row);
        return lc_api_reply_err(s, c, 503, "too many waits open: retry later");
      }
      res = park_wait(c, row, ap ? WAIT_AP : WAIT_OUTCOME); /* sse_clients: until it answers */
    } else {
      res = lc_api_reply_json(c, 200, lc_api_run_json(s, row));
    }
    cJSON_Delete(row);
    return res;
  }
  if (nseg == 1 && !strcmp(seg[0], "batch") && !strcmp(method, "POST") && !thread) {
    /* LangGraph's runs.createBatch: background runs, each as POST /runs
     * would make it; the first refused one answers for the batch (those
     * before it are made). */
    if (!body_ok) return lc_api_reply_err(s, c, 400, "the body is not valid JSON");
    if (!cJSON_IsArray(body)) return lc_api_reply_err(s, c, 422, "the body must be a list of runs");
    if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key"))
      return lc_api_reply_err(s, c, 422, "an Idempotency-Key names one run, not a batch");
    cJSON *arr = cJSON_CreateArray();
    const cJSON *p;
    cJSON_ArrayForEach(p, body) {
      cJSON *row = NULL;
      unsigned code = cJSON_IsObject(p) ? lc_api_create_run(s, c, tenant, jstr(p, "thread_id"), p, &row,
                                                     msg, sizeof msg)
                                        : (snprintf(msg, sizeof msg, "each run is an object"), 422);
      if (code != 200) {
        cJSON_Delete(arr);
        return lc_api_reply_err(s, c, code, msg);
      }
      cJSON_AddItemToArray(arr, lc_api_run_json(s, row));
      cJSON_Delete(row);
    }
    return lc_api_reply_json(c, 200, arr);
  }
  if (nseg == 1 && !strcmp(seg[0], "search") && !strcmp(method, "POST") && !thread) {
    /* Agent Protocol: runs by thread, agent, status, metadata. */
    if (!body_ok) return lc_api_reply_err(s, c, 400, "the body is not valid JSON");
    struct lc_serve_page pg = {lc_api_qnum(c, body, "limit", 10), lc_api_qnum(c, body, "offset", 0), 0,
                               0};
    const char *tf = jstr(body, "thread_id"), *af = jstr(body, "agent_id"),
               *stf = jstr(body, "status");
    const cJSON *md = cJSON_GetObjectItem(body, "metadata");
    if (!md) return lc_api_reply_json(c, 200, runs_page(s, tenant, tf, af, stf, pg.limit, pg.offset));
    /* A metadata filter is JSON containment, which the two databases say
     * apart: matched here, every run of the tenant read. */
    cJSON *rows = lc_api_query(s,
                        "SELECT * FROM d_runs WHERE tenant=? AND deleted=0 ORDER BY created DESC, "
                        "rowid DESC",
                        "s", tenant);
    cJSON *arr = cJSON_CreateArray();
    const cJSON *r;
    cJSON_ArrayForEach(r, rows) {
      if ((tf && (!jstr(r, "thread_id") || strcmp(tf, jstr(r, "thread_id")))) ||
          (af && strcmp(af, jstr(r, "agent"))))
        continue;
      cJSON *j = lc_api_run_json(s, r);
      if ((stf && strcmp(jstr(j, "status"), stf)) ||
          (md && !lc_api_md_match(cJSON_GetObjectItem(j, "metadata"), md)) ||
          !lc_serve_page_take(&pg)) {
        cJSON_Delete(j);
        continue;
      }
      cJSON_AddItemToArray(arr, j);
    }
    cJSON_Delete(rows);
    return lc_api_reply_json(c, 200, arr);
  }
  if (nseg == 0 && !strcmp(method, "GET") && thread) {
    const char *stf = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "status");
    return lc_api_reply_json(c, 200,
                             runs_page(s, tenant, thread, NULL, stf, lc_api_qnum(c, NULL, "limit", 10),
                                       lc_api_qnum(c, NULL, "offset", 0)));
  }
  if (nseg < 1) return lc_api_reply_err(s, c, 404, "no such route");
  cJSON *row = lc_api_run_row(s, tenant, seg[0]);
  if (!row || (thread && (!jstr(row, "thread_id") || strcmp(jstr(row, "thread_id"), thread)))) {
    cJSON_Delete(row);
    return lc_api_reply_err(s, c, 404, "run not found");
  }
  enum MHD_Result res;
  const char *id = jstr(row, "id");
  char st[32] = "";
  if (nseg == 1 && !strcmp(method, "GET")) {
    res = lc_api_reply_json(c, 200, lc_api_run_json(s, row));
  } else if (nseg == 1 && !strcmp(method, "DELETE")) {
    lc_serve_run_status(s, id, st, sizeof st);
    if (!lc_api_waits_or_ends(st)) {
      res = lc_api_reply_err(s, c, 409, "the run is active: cancel it first");
    } else {
      char err[256];
      lc_dstore_exec(s->ds, NULL, err, sizeof err, "UPDATE d_runs SET deleted=1 WHERE id=?", "s",
                     id);
      res = lc_api_reply_json(c, 204, NULL);
    }
  } else if (nseg == 2 && !strcmp(seg[1], "cancel") && !strcmp(method, "POST")) {
    const char *action = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "action");
    const char *imm = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "immediate");
    int immediate = (action && (!strcmp(action, "interrupt") || !strcmp(action, "rollback"))) ||
                    (imm && !strcmp(imm, "true"));
    lc_serve_cancel(s, id, immediate);
    lc_serve_log(s, "info", "run_cancel", id, immediate ? "immediate" : "at the next effect");
    const char *w = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "wait");
    if (w && (!strcmp(w, "1") || !strcmp(w, "true"))) res = park_wait(c, row, WAIT_CANCEL);
    else res = lc_api_reply_json(c, 202, lc_api_run_json(s, row));
  } else if (nseg == 2 && (!strcmp(seg[1], "join") || !strcmp(seg[1], "wait")) &&
             !strcmp(method, "GET")) {
    /* GET /runs/{id}/wait is the Agent Protocol's: {run, values}; join
     * (LangGraph's) answers the values. */
    int ap = !thread && !strcmp(seg[1], "wait");
    if (atomic_fetch_add(&s->sse_clients, 1) >= s->max_streams) {
      atomic_fetch_sub(&s->sse_clients, 1);
      res = lc_api_reply_err(s, c, 503, "too many waits open: retry later");
    } else {
      res = park_wait(c, row, ap ? WAIT_AP : WAIT_OUTCOME); /* sse_clients: until it answers */
    }
  } else if (nseg == 2 && !strcmp(seg[1], "stream") && !strcmp(method, "GET")) {
    res = lc_stream_stream_run(s, c, tenant, row, lc_stream_query_tokens(c));
  } else {
    res = lc_api_reply_err(s, c, 404, "no such route");
  }
  cJSON_Delete(row);
  return res;
}
