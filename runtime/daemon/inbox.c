/* inbox.c: input.inject: messages queued for a thread's active run and
 * given to it as the answer to its next question (inbox.h says why). */
#include "inbox.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc.h"
#include "serve.h"

/* One deliverer at a time in this process: a run's messages go oldest
 * first. */
static pthread_mutex_t deliver_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *jstr(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int active(const char *st) {
  return !strcmp(st, "pending") || !strcmp(st, "running") || !strcmp(st, "waiting_input");
}

cJSON *lc_inbox_inject_text(struct lc_serve *s, const char *tenant, const char *thread,
                            const char *text, const char **code, char *msg, size_t n) {
  char err[256];
  cJSON *rows = NULL;
  /* The run that executes first: the thread's oldest active one. */
  lc_dstore_exec(s->ds, &rows, err, sizeof err,
                 "SELECT id FROM d_runs WHERE thread_id=? AND tenant=? AND deleted=0 "
                 "ORDER BY created, rowid",
                 "ss", thread, tenant);
  const char *run = NULL;
  const cJSON *r;
  cJSON_ArrayForEach(r, rows) {
    char st[32] = "";
    lc_serve_run_status(s, jstr(r, "id"), st, sizeof st);
    if (active(st)) {
      run = jstr(r, "id");
      break;
    }
  }
  if (!run) {
    cJSON_Delete(rows);
    *code = "no_such_run";
    snprintf(msg, n, "no run of this thread is active: start one with run.start");
    return NULL;
  }
  char id[37];
  lc_serve_uuid(id);
  int rc = lc_dstore_exec(s->ds, NULL, err, sizeof err,
                          "INSERT INTO d_inbox(id, tenant, thread_id, run_id, answer, created) "
                          "VALUES(?,?,?,?,?,?)",
                          "sssssd", id, tenant, thread, run, text, lc_serve_now());
  if (rc) {
    cJSON_Delete(rows);
    *code = "unknown_error";
    snprintf(msg, n, "cannot store the message: %s", err);
    return NULL;
  }
  lc_serve_log(s, "info", "input_injected", run, NULL);
  cJSON *res = cJSON_CreateObject();
  cJSON_AddStringToObject(res, "run_id", run); /* an extension: the run it waits for */
  cJSON_Delete(rows);
  lc_inbox_deliver(s); /* at once when the run already waits */
  return res;
}

cJSON *lc_inbox_inject(struct lc_serve *s, const char *tenant, const char *thread,
                       const cJSON *params, const char **code, char *msg, size_t n) {
  const cJSON *ns = cJSON_GetObjectItem(params, "namespace");
  const cJSON *m = cJSON_GetObjectItem(params, "message");
  const char *role = jstr(m, "role"), *content = jstr(m, "content");
  *code = "invalid_argument";
  if (ns && !cJSON_IsArray(ns) && !cJSON_IsNull(ns)) {
    snprintf(msg, n, "namespace must be a list of strings");
    return NULL;
  }
  if (cJSON_GetArraySize(ns) > 0) {
    /* A luact run is one agent: its tree is the root alone. */
    *code = "no_such_namespace";
    snprintf(msg, n, "a luact run has only the root namespace []");
    return NULL;
  }
  if (!cJSON_IsObject(m) || !content || !role || (strcmp(role, "user") && strcmp(role, "system"))) {
    snprintf(msg, n, "message is {\"role\": \"user\"|\"system\", \"content\": TEXT}");
    return NULL;
  }
  return lc_inbox_inject_text(s, tenant, thread, content, code, msg, n);
}

void lc_inbox_deliver(struct lc_serve *s) {
  char err[512];
  pthread_mutex_lock(&deliver_mu);
  /* A read (no commit, no fsync) when the inbox is empty: the clock
   * thread calls this every look. */
  cJSON *rows = NULL;
  lc_dstore_exec(s->ds, &rows, err, sizeof err,
                 "SELECT i.id AS id, i.run_id AS run_id, i.thread_id AS thread_id, i.answer AS "
                 "answer, i.created AS created, i.tenant AS tenant, d.agent AS agent, r.status AS "
                 "status, d.deleted AS deleted, d.pstatus AS pstatus FROM d_inbox i LEFT JOIN "
                 "runs r ON r.id=i.run_id LEFT JOIN d_runs d ON d.id=i.run_id "
                 "ORDER BY i.created, i.id LIMIT 500",
                 "");
  cJSON *done = cJSON_CreateArray(); /* runs answered in this pass */
  const cJSON *r;
  cJSON_ArrayForEach(r, rows) {
    const char *run = jstr(r, "run_id"), *id = jstr(r, "id"), *st = jstr(r, "status");
    const cJSON *del = cJSON_GetObjectItem(r, "deleted");
    const char *ps = jstr(r, "pstatus");
    int ended = (st && !active(st)) || !jstr(r, "agent") ||
                (cJSON_IsNumber(del) && del->valueint) || (!st && ps && !strcmp(ps, "cancelled"));
    if (ended) {
      /* It was for that run, which will ask nothing more. */
      lc_dstore_exec(s->ds, NULL, err, sizeof err, "DELETE FROM d_inbox WHERE id=?", "s", id);
      lc_serve_log(s, "info", "input_dropped", run, "the run ended before it asked");
      continue;
    }
    if (!st || strcmp(st, "waiting_input")) continue;
    int seen = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, done) seen |= !strcmp(x->valuestring, run);
    if (seen) continue; /* one message per question */
    cJSON_AddItemToArray(done, cJSON_CreateString(run));
    /* Taken out first: at most once (inbox.h). */
    cJSON *took = NULL;
    lc_dstore_exec(s->ds, &took, err, sizeof err, "DELETE FROM d_inbox WHERE id=? RETURNING id",
                   "s", id);
    int mine = cJSON_GetArraySize(took) == 1;
    cJSON_Delete(took);
    if (!mine) continue; /* another daemon of the fleet took it */
    int again = 0;
    char msg[512] = "";
    int rc = lc_serve_answer(s, run, jstr(r, "answer"), &again, msg, sizeof msg);
    if (rc == 0 && !again) {
      lc_serve_log(s, "info", "run_answered", run, "injected input");
      lc_serve_enqueue(s, run, jstr(r, "thread_id"), jstr(r, "agent"), 1);
      continue;
    }
    /* Not waiting after all (answered or cancelled meanwhile): back in
     * the inbox, in its place, for the next question. */
    const cJSON *cr = cJSON_GetObjectItem(r, "created");
    lc_dstore_exec(s->ds, NULL, err, sizeof err,
                   "INSERT INTO d_inbox(id, tenant, thread_id, run_id, answer, created) "
                   "VALUES(?,?,?,?,?,?)",
                   "sssssd", id, jstr(r, "tenant"), jstr(r, "thread_id"), run, jstr(r, "answer"),
                   cJSON_IsNumber(cr) ? cr->valuedouble : lc_serve_now());
  }
  cJSON_Delete(done);
  cJSON_Delete(rows);
  pthread_mutex_unlock(&deliver_mu);
}
