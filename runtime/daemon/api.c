/* api.c: the HTTP side of `luact serve`: the Agent Protocol routes (and
 * LangGraph's names for them), bearer auth by tenant, SSE from the journal,
 * the thread stream's WebSocket.
 *
 * Event-driven: libmicrohttpd's few polling threads (epoll, a small pool)
 * only move bytes. A request's route runs on a worker of apiwork.c while
 * its connection is suspended; the reply is queued when it resumes. A wait
 * or a stream holds no thread: it is a parked item (apiwork.h) that looks
 * again on every run change and every 250 ms; an SSE stream's content
 * reader suspends its connection when it has nothing to send, and the
 * item resumes it when it has (events, or a keep-alive comment when one
 * is due). WebSockets live on one thread of their own (ws_loop) after the
 * upgrade. Store reads and commits happen on workers only, in bounded
 * batches. Runs execute on threads of their own (daemon.c); nothing here
 * touches a Lua state. Limits: --max-conns is libmicrohttpd's connection
 * limit, and streams, waits and WebSockets together stay under
 * --max-streams (< --max-conns), so /healthz and run creation always find
 * a connection. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <time.h>

#include "apiwork.h"
#include "crons.h"
#include "inbox.h"
#include "lc.h"
#include "llm.h"
#include "secrets.h"
#include "serve.h"
#include "store.h"
#include "tstate.h"
#include "ws.h"

enum { WAIT_OUTCOME = 1, WAIT_AP, WAIT_CANCEL };

/* A request (libmicrohttpd's con_cls): its body, then, while its route
 * runs on a worker (connection suspended), the reply it leaves. */
struct req {
  char *body;
  size_t len;
  int too_big;
  struct lc_work work; /* route_job, then wait_job for a wait */
  struct lc_serve *s;
  struct MHD_Connection *c;
  char *url, *method;
  int handed;                /* the route went to a worker */
  struct MHD_Response *resp; /* the reply left by the route (owned) */
  unsigned code;
  /* a wait: the run, what to answer, its d_runs row (owned) */
  char wait_run[65];
  int wait_kind, wait_misses;
  cJSON *wait_row;
  /* a WebSocket upgrade: its stream slot (until the upgrade takes it) */
  int ws_slot;
  char ws_tenant[128], ws_thread[65];
};

/* The request whose route runs on this thread (a worker): its replies are
 * left in it instead of queued (libmicrohttpd queues a reply only from its
 * own callbacks). NULL on libmicrohttpd's threads. */
static _Thread_local struct req *cur_rq;
/* Connections this file suspended and has not resumed yet: none may be
 * left when libmicrohttpd stops. */
static atomic_int suspended;

static void suspend_conn(struct MHD_Connection *c) {
  atomic_fetch_add(&suspended, 1);
  MHD_suspend_connection(c);
}

static void resume_conn(struct MHD_Connection *c) {
  MHD_resume_connection(c);
  atomic_fetch_sub(&suspended, 1);
}

/* Queues r (or leaves it for the request being routed); takes r. */
static enum MHD_Result send_resp(struct MHD_Connection *c, unsigned code,
                                 struct MHD_Response *r) {
  if (cur_rq) {
    if (cur_rq->resp) MHD_destroy_response(cur_rq->resp);
    cur_rq->resp = r;
    cur_rq->code = code;
    return MHD_YES;
  }
  enum MHD_Result ok = MHD_queue_response(c, code, r);
  MHD_destroy_response(r);
  return ok;
}

static pthread_mutex_t create_mu = PTHREAD_MUTEX_INITIALIZER; /* thread multitask checks */

/* ---- replies ---- */

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned code, const char *type,
                                  char *text, size_t len) {
  /* takes ownership of text (malloc'd) */
  struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(text);
    return MHD_NO;
  }
  MHD_add_response_header(r, "Content-Type", type);
  return send_resp(c, code, r);
}

/* Takes ownership of body (NULL: an empty 204-style reply). */
static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned code, cJSON *body) {
  if (!body) return reply_text(c, code, "application/json", strdup(""), 0);
  char *t = cJSON_PrintUnformatted(body);
  cJSON_Delete(body);
  if (!t) return MHD_NO;
  size_t n = lc_secrets_scrub(t, strlen(t), LC_SCRUB_JSON);
  char *m = malloc(n + 1);
  if (m) memcpy(m, t, n + 1);
  cJSON_free(t);
  return m ? reply_text(c, code, "application/json", m, n) : MHD_NO;
}

static enum MHD_Result reply_err(struct lc_serve *s, struct MHD_Connection *c, unsigned code,
                                 const char *msg) {
  atomic_fetch_add(&s->http_errors, 1);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "detail", msg);
  return reply_json(c, code, o);
}

/* ---- helpers ---- */

static void iso(double t, char *buf, size_t n) {
  time_t s = (time_t)t;
  struct tm tm;
  gmtime_r(&s, &tm);
  char b[32];
  strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, n, "%s.%03dZ", b, (int)((t - (double)s) * 1000) % 1000);
}

static void add_time(cJSON *o, const char *k, const cJSON *row, const char *col) {
  const cJSON *v = cJSON_GetObjectItem(row, col);
  char b[40];
  iso(cJSON_IsNumber(v) ? v->valuedouble : 0, b, sizeof b);
  cJSON_AddStringToObject(o, k, b);
}

static const char *jstr(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A JSON text column parsed (NULL text: null). */
static cJSON *jcol(const cJSON *row, const char *col) {
  const char *t = jstr(row, col);
  cJSON *v = t ? cJSON_Parse(t) : NULL;
  return v ? v : cJSON_CreateNull();
}

static cJSON *query(struct lc_serve *s, const char *sql, const char *spec, ...);

static const char *proto_status(const char *st) {
  if (!strcmp(st, "finished")) return "success";
  if (!strcmp(st, "failed") || !strcmp(st, "in_doubt")) return "error";
  if (!strcmp(st, "waiting_input") || !strcmp(st, "cancelled")) return "interrupted";
  return st; /* pending, running */
}

/* The d_runs row of a run of tenant (NULL: none). */
static cJSON *run_row(struct lc_serve *s, const char *tenant, const char *id) {
  char err[256];
  cJSON *rows = NULL;
  lc_dstore_exec(s->ds, &rows, err, sizeof err,
                 "SELECT * FROM d_runs WHERE id=? AND tenant=? AND deleted=0", "ss", id, tenant);
  cJSON *r = cJSON_DetachItemFromArray(rows, 0);
  cJSON_Delete(rows);
  return r;
}

static cJSON *run_json(struct lc_serve *s, const cJSON *row) {
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
  add_time(o, "created_at", row, "created");
  add_time(o, "updated_at", row, "created");
  cJSON_AddStringToObject(o, "status", proto_status(st));
  cJSON_AddStringToObject(o, "luact_status", st);
  cJSON_AddItemToObject(o, "metadata", jcol(row, "metadata"));
  const char *mt = jstr(row, "multitask");
  cJSON_AddStringToObject(o, "multitask_strategy", mt ? mt : "reject");
  cJSON_AddItemToObject(o, "kwargs", cJSON_CreateObject());
  return o;
}

static const char *thread_status(struct lc_serve *s, const char *thread) {
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

static cJSON *thread_row(struct lc_serve *s, const char *tenant, const char *id) {
  cJSON *rows = query(s, "SELECT * FROM d_threads WHERE id=? AND tenant=?", "ss", id, tenant);
  cJSON *r = cJSON_DetachItemFromArray(rows, 0);
  cJSON_Delete(rows);
  return r;
}

/* The question a thread's waiting run asked, as LangGraph's interrupts. */
static cJSON *thread_interrupts(struct lc_serve *s, const char *thread) {
  cJSON *arr = cJSON_CreateArray();
  cJSON *rows = query(s,
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

static cJSON *thread_json(struct lc_serve *s, const cJSON *row) {
  cJSON *o = cJSON_CreateObject();
  const char *id = jstr(row, "id");
  cJSON_AddStringToObject(o, "thread_id", id);
  add_time(o, "created_at", row, "created");
  add_time(o, "updated_at", row, "updated");
  cJSON_AddItemToObject(o, "metadata", jcol(row, "metadata"));
  cJSON_AddStringToObject(o, "status", thread_status(s, id));
  cJSON *v = jcol(row, "vals");
  if (cJSON_IsNull(v)) {
    cJSON_Delete(v);
    v = cJSON_CreateObject();
  }
  cJSON_AddItemToObject(o, "values", v);
  cJSON *ints = thread_interrupts(s, id);
  cJSON *m = cJSON_CreateObject();
  if (cJSON_GetArraySize(ints)) cJSON_AddItemToObject(m, "__all__", ints);
  else cJSON_Delete(ints);
  cJSON_AddItemToObject(o, "interrupts", m);
  return o;
}

static cJSON *query(struct lc_serve *s, const char *sql, const char *spec, ...) {
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

/* ---- auth ---- */

static const char *tenant_of(struct lc_serve *s, struct MHD_Connection *c) {
  if (s->no_auth) return "default";
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
  if (!h || strncasecmp(h, "Bearer ", 7)) return NULL;
  const char *tok = h + 7;
  size_t n = strlen(tok);
  const char *found = NULL;
  for (int i = 0; i < s->ntokens; i++) {
    const char *t = s->tokens[i].token;
    size_t m = strlen(t);
    unsigned char diff = (unsigned char)(m != n);
    for (size_t k = 0; k < n && k < m; k++) diff |= (unsigned char)(t[k] ^ tok[k]);
    if (!diff) found = s->tokens[i].tenant;
  }
  return found;
}

/* ---- runs: create, wait ---- */

static const char *body_str(const cJSON *b, const char *k) { return jstr(b, k); }

/* The answer text for luact.ask: a string as it is, anything else as JSON. */
static char *answer_text(const cJSON *v) {
  if (cJSON_IsString(v)) return strdup(v->valuestring);
  char *t = cJSON_PrintUnformatted(v);
  char *r = t ? strdup(t) : NULL;
  cJSON_free(t);
  return r;
}

/* Creates (or finds) a run. Returns the HTTP code; *out the run's d_runs
 * row; msg the reason on errors. thread may be NULL (stateless). */
static unsigned create_run(struct lc_serve *s, struct MHD_Connection *c, const char *tenant,
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
    cJSON *rows = query(s, "SELECT * FROM d_runs WHERE tenant=? AND idem=?", "ss", tenant, idem);
    cJSON *r = cJSON_DetachItemFromArray(rows, 0);
    cJSON_Delete(rows);
    if (r) {
      *out = r; /* the same run again */
      goto done;
    }
  }
  if (thread) {
    cJSON *t = thread_row(s, tenant, thread);
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
    cJSON *rows = query(s,
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
    char *ans = answer_text(resume);
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
    cJSON *rows = query(s, "SELECT id FROM d_runs WHERE thread_id=? AND deleted=0", "s", thread);
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
    cJSON *rows = query(s, "SELECT * FROM d_runs WHERE tenant=? AND idem=?", "ss", tenant, idem);
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
  *out = run_row(s, tenant, id);
  lc_serve_enqueue(s, id, thread, agent, 0);
done:
  if (locked) pthread_mutex_unlock(&create_mu);
  return code;
}

static int waits_or_ends(const char *st) {
  return strcmp(st, "pending") && strcmp(st, "running");
}


/* What a wait returns: the thread's values (or the run's output) with the
 * question as __interrupt__, or __error__. */
static cJSON *run_outcome(struct lc_serve *s, const cJSON *row, const char *st) {
  char err[256];
  struct lc_run_row r;
  memset(&r, 0, sizeof r);
  lc_store_run_get(s->store, jstr(row, "id"), &r, err, sizeof err);
  cJSON *v = NULL;
  const char *th = jstr(row, "thread_id");
  if (th) {
    cJSON *rows = query(s, "SELECT vals FROM d_threads WHERE id=?", "s", th);
    v = jcol(cJSON_GetArrayItem(rows, 0), "vals");
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
static cJSON *ap_wait(struct lc_serve *s, const cJSON *row, const char *st) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddItemToObject(o, "run", run_json(s, row));
  cJSON_AddItemToObject(o, "values", run_outcome(s, row, st));
  cJSON_AddItemToObject(o, "messages", cJSON_CreateArray());
  return o;
}

/* The route's connection goes back to libmicrohttpd with what the route
 * left (a worker, the request's item; it may be freed at once after). */
static int hand_back(struct req *rq) {
  lc_work_unpark(&rq->work);
  resume_conn(rq->c);
  return LC_WORK_HANDED;
}

/* A parked wait (a worker): answers once the run ended or waits for
 * input, or the daemon stops. */
static int wait_job(struct lc_work *w) {
  struct req *rq = (struct req *)((char *)w - offsetof(struct req, work));
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
  if (!rc && !waits_or_ends(st) && !stopping) return LC_WORK_KEEP;
  cur_rq = rq;
  if (rc) { /* stopping */
    if (rq->wait_kind != WAIT_CANCEL) atomic_fetch_sub(&s->sse_clients, 1);
    reply_err(s, rq->c, 503, "the daemon is stopping: wait again after its restart");
  } else if (rq->wait_kind == WAIT_CANCEL) {
    reply_json(rq->c, 202, run_json(s, rq->wait_row));
  } else {
    atomic_fetch_sub(&s->sse_clients, 1);
    reply_json(rq->c, 200, rq->wait_kind == WAIT_AP ? ap_wait(s, rq->wait_row, st)
                                                    : run_outcome(s, rq->wait_row, st));
  }
  cur_rq = NULL;
  return hand_back(rq);
}

/* From a route on a worker: the reply waits for run `row` (a copy is
 * kept); the request's item parks after this run (apiwork.c). */
static enum MHD_Result park_wait(struct MHD_Connection *c, const cJSON *row, int kind) {
  struct req *rq = cur_rq;
  (void)c;
  snprintf(rq->wait_run, sizeof rq->wait_run, "%s", jstr(row, "id"));
  rq->wait_kind = kind;
  rq->wait_row = cJSON_Duplicate(row, 1);
  rq->work.run = wait_job;
  rq->work.want_park = 1;
  return MHD_YES;
}

/* ---- live token deltas ----
 *
 * The journal records an LLM call's whole result, not its token deltas, so
 * deltas live here, in memory, per run (fed by the journal's delta hook on
 * the run's thread, read by stream threads). A delta's SSE id is "N.0.k":
 * the k-th delta after journal line N, so it sorts after line N ("N") and
 * before line N+1 and the terminal events ("N.1", "N.2"). Deltas under
 * lines after `start` are all here (this process ran them); deltas under
 * earlier lines may have gone to clients of an earlier process or an
 * evicted buffer: a stream passing those lines says so with one luact/gap
 * event and never sends an id twice. */

enum { DL_MAX_ITEMS = 65536, DL_MAX_BYTES = 4 << 20, DL_KEEP_ENDED = 256 };

struct dl_item {
  long base, k;
  int kind; /* enum lc_llm_delta_kind */
  int index;
  char eff[64];   /* the LLM call's effect id: the message's id */
  char *text;     /* fragment (tool start: the tool's name) */
  char *tool_id;  /* tool start: the call id */
  struct dl_item *next;
};

struct lc_deltas {
  struct lc_serve *s;
  char run[65];
  long start;    /* every delta under a line >= start is here */
  long full_at;  /* LONG_MAX, or the line from which deltas were dropped (cap) */
  long last_base, last_k, nitems;
  size_t bytes;
  int running;
  unsigned long serial; /* this buffer, for a stream's cursor into it */
  struct dl_item *head, *tail; /* in (base, k) order, append-only */
  struct lc_deltas *next;
};

static pthread_mutex_t dl_mu = PTHREAD_MUTEX_INITIALIZER;
/* Streams that asked for token deltas: a delta wakes the waiters (every
 * wait and stream re-reads the store) only when one is open. */
static atomic_int tok_streams;
static struct lc_deltas *dl_runs; /* newest first */
static unsigned long dl_serial;

static void dl_free(struct lc_deltas *d) {
  for (struct dl_item *i = d->head, *n; i; i = n) {
    n = i->next;
    free(i->text);
    free(i->tool_id);
    free(i);
  }
  free(d);
}

static struct lc_deltas *dl_find(const char *run) {
  for (struct lc_deltas *d = dl_runs; d; d = d->next)
    if (!strcmp(d->run, run)) return d;
  return NULL;
}

struct lc_deltas *lc_api_deltas_open(struct lc_serve *s, const char *run, long from) {
  pthread_mutex_lock(&dl_mu);
  struct lc_deltas *d = dl_find(run);
  if (!d && (d = calloc(1, sizeof *d))) {
    d->s = s;
    d->serial = ++dl_serial;
    snprintf(d->run, sizeof d->run, "%s", run);
    /* A resumed execution writes its resume line (from + 1) before any
     * delta; deltas under lines up to `from` were another execution's. A
     * new run has no line before its header. */
    d->start = from > 0 ? from + 1 : 0;
    d->full_at = LONG_MAX;
    d->next = dl_runs;
    dl_runs = d;
  }
  /* Else: an answered run executing again in this process; its earlier
   * deltas are all here. */
  if (d) d->running = 1;
  /* Keep the newest ended buffers only. */
  int ended = 0;
  for (struct lc_deltas **p = &dl_runs; *p;) {
    if (!(*p)->running && ++ended > DL_KEEP_ENDED) {
      struct lc_deltas *x = *p;
      *p = x->next;
      dl_free(x);
    } else {
      p = &(*p)->next;
    }
  }
  pthread_mutex_unlock(&dl_mu);
  return d;
}

void lc_api_deltas_close(struct lc_deltas *d) {
  if (!d) return;
  pthread_mutex_lock(&dl_mu);
  d->running = 0;
  pthread_mutex_unlock(&dl_mu);
}

void lc_api_delta(void *ud, long seq, const char *eff, const struct lc_llm_delta *dd) {
  struct lc_deltas *d = ud;
  if (!d) return;
  size_t len = dd->text ? dd->len : 0;
  if (dd->kind == LC_DELTA_TOOL_START && dd->name) len = strlen(dd->name);
  pthread_mutex_lock(&dl_mu);
  long k = seq == d->last_base ? d->last_k + 1 : 1;
  if (d->full_at != LONG_MAX || d->nitems >= DL_MAX_ITEMS || d->bytes + len > DL_MAX_BYTES) {
    if (d->full_at == LONG_MAX) d->full_at = seq; /* streams announce the rest as a gap */
    pthread_mutex_unlock(&dl_mu);
    return;
  }
  struct dl_item *i = calloc(1, sizeof *i);
  const char *src = dd->kind == LC_DELTA_TOOL_START ? dd->name : dd->text;
  if (i && (i->text = malloc(len + 1))) {
    if (len) memcpy(i->text, src, len);
    i->text[len] = 0;
    if (dd->kind == LC_DELTA_TOOL_START && dd->id) i->tool_id = strdup(dd->id);
    i->base = seq;
    i->k = k;
    i->kind = (int)dd->kind;
    i->index = dd->index;
    snprintf(i->eff, sizeof i->eff, "%s", eff ? eff : "");
    if (d->tail) d->tail->next = i;
    else d->head = i;
    d->tail = i;
    d->last_base = seq;
    d->last_k = k;
    d->nitems++;
    d->bytes += len + sizeof *i;
  } else {
    free(i);
    if (d->full_at == LONG_MAX) d->full_at = seq;
  }
  pthread_mutex_unlock(&dl_mu);
  if (atomic_load(&tok_streams) > 0) lc_serve_notify(d->s); /* streams waiting at the tail */
}

/* ---- SSE ---- */

struct sse {
  struct lc_serve *s;
  struct lc_work work;       /* parked while its connection is suspended */
  struct MHD_Connection *c;  /* NULL: a WebSocket's subscription */
  char tenant[128];          /* the thread's runs are this tenant's only */
  char run[65], thread[65];
  long seq;   /* last journal line sent */
  int sub;    /* last terminal event sent after seq (0: none) */
  int meta, gap, done, tokens; /* tokens: 0, or TOK_MESSAGES / TOK_TUPLE */
  long dk;                     /* last token delta sent after line seq (0: none) */
  int gap_full;                /* the cap's gap announced */
  long llm_from;               /* the run's first LLM intent line (0: not looked up yet,
                                  LONG_MAX: none) */
  unsigned long dl_serial;     /* cursor: the last delta item looked at, valid while */
  const struct dl_item *dl_at; /* its buffer (dl_serial) lives; under dl_mu */
  int thread_mode;             /* GET /threads/{id}/stream: the thread's runs in turn */
  int ap;                      /* POST /threads/{id}/stream: the channels (bits), 0: not */
  char acc_eff[64];            /* "messages": the message being accumulated */
  char *acc;
  size_t acc_len;
  char *buf;
  size_t len, off, cap;
  double last_send; /* monotonic seconds */
};

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sse_put(struct sse *e, const char *event, const char *id, const char *data) {
  char tid[160];
  if (id && e->thread_mode) { /* a thread's stream: the run names the id */
    snprintf(tid, sizeof tid, "%s:%s", e->run, id);
    id = tid;
  }
  size_t need = strlen(event) + (id ? strlen(id) : 0) + strlen(data) + 64;
  if (e->len + need > e->cap) {
    size_t cap = (e->len + need) * 2;
    char *b = realloc(e->buf, cap);
    if (!b) return;
    e->buf = b;
    e->cap = cap;
  }
  int k;
  if (!e->c) /* a WebSocket's: one message each, NUL-ended (JSON has no NUL) */
    k = snprintf(e->buf + e->len, e->cap - e->len, "%s%c", data, 0);
  else if (id)
    k = snprintf(e->buf + e->len, e->cap - e->len, "event: %s\nid: %s\ndata: %s\n\n", event, id,
                 data);
  else
    k = snprintf(e->buf + e->len, e->cap - e->len, "event: %s\ndata: %s\n\n", event, data);
  if (k > 0) e->len += (size_t)k;
}

/* The Agent Protocol's streaming channels (POST /threads/{id}/stream). */
static const char *const ap_channels[] = {"values", "updates", "messages", "tools", "lifecycle",
                                          "input", "checkpoints", "tasks", "custom", NULL};

/* The channel of one of our events. */
static const char *ap_channel_of(const char *event) {
  if (!strcmp(event, "values") || !strcmp(event, "custom")) return event;
  if (!strncmp(event, "messages", 8) || !strcmp(event, "luact/gap")) return "messages";
  return "lifecycle"; /* metadata, error, end */
}

static int ap_bit(const char *ch) {
  for (int i = 0; ap_channels[i]; i++)
    if (!strcmp(ap_channels[i], ch)) return 1 << i;
  return 0;
}

static void sse_put_json(struct sse *e, const char *event, const char *id, cJSON *data) {
  if (e->ap) {
    /* The protocol's StreamingEvent, on the channels asked for only. */
    const char *ch = ap_channel_of(event);
    if (!(e->ap & ap_bit(ch))) {
      cJSON_Delete(data);
      return;
    }
    cJSON *w = cJSON_CreateObject();
    cJSON_AddStringToObject(w, "type", "event");
    if (id) {
      char full[160];
      snprintf(full, sizeof full, "%s:%s", e->run, id);
      cJSON_AddStringToObject(w, "eventId", full);
    }
    cJSON_AddStringToObject(w, "method", ch);
    cJSON *pr = cJSON_AddObjectToObject(w, "params");
    cJSON_AddArrayToObject(pr, "namespace");
    cJSON_AddNumberToObject(pr, "timestamp", (double)(long long)(lc_serve_now() * 1000));
    if (strcmp(event, ch)) cJSON_AddStringToObject(pr, "event", event); /* which one */
    cJSON_AddItemToObject(pr, "data", data);
    data = w;
    event = ch;
  }
  char *t = cJSON_PrintUnformatted(data);
  cJSON_Delete(data);
  if (!t) return;
  lc_secrets_scrub(t, strlen(t) + 1, LC_SCRUB_JSON); /* never a secret in an event */
  sse_put(e, event, id, t);
  cJSON_free(t);
}

enum { TOK_MESSAGES = 1, TOK_TUPLE = 2 };

static void sse_gap(struct sse *e, long from, const char *why) {
  cJSON *g = cJSON_CreateObject();
  cJSON_AddStringToObject(g, "missing", "token deltas");
  cJSON_AddNumberToObject(g, "after_line", (double)from);
  cJSON_AddStringToObject(g, "reason", why);
  sse_put_json(e, "luact/gap", NULL, g);
}

/* One delta as LangGraph's message chunk: "messages-tuple" sends the chunk
 * ([chunk, metadata], event "messages"), "messages" the message so far
 * (event "messages/partial"). Under dl_mu. */
static void sse_delta(struct sse *e, const struct lc_deltas *d, const struct dl_item *i) {
  cJSON *msg = cJSON_CreateObject();
  char mid[160];
  snprintf(mid, sizeof mid, "luact-%s-%s", e->run, i->eff);
  const char *text = i->kind == LC_DELTA_TEXT ? i->text : "";
  if (e->tokens == TOK_MESSAGES) {
    if (strcmp(e->acc_eff, i->eff)) { /* a new message: what came before of it */
      snprintf(e->acc_eff, sizeof e->acc_eff, "%s", i->eff);
      e->acc_len = 0;
      for (const struct dl_item *x = d->head; x && x != i; x = x->next)
        if (!strcmp(x->eff, i->eff) && x->kind == LC_DELTA_TEXT) {
          size_t n = strlen(x->text);
          char *b = realloc(e->acc, e->acc_len + n + 1);
          if (!b) break;
          memcpy(b + e->acc_len, x->text, n + 1);
          e->acc = b;
          e->acc_len += n;
        }
    }
    size_t n = strlen(text);
    char *b = realloc(e->acc, e->acc_len + n + 1);
    if (b) {
      memcpy(b + e->acc_len, text, n + 1);
      e->acc = b;
      e->acc_len += n;
    }
    text = e->acc ? e->acc : "";
  }
  cJSON_AddStringToObject(msg, "content", text);
  cJSON_AddObjectToObject(msg, "additional_kwargs");
  cJSON_AddObjectToObject(msg, "response_metadata");
  cJSON_AddStringToObject(msg, "type", e->tokens == TOK_TUPLE ? "AIMessageChunk" : "ai");
  cJSON_AddStringToObject(msg, "id", mid);
  cJSON_AddArrayToObject(msg, "tool_calls");
  cJSON *tc = cJSON_AddArrayToObject(msg, "tool_call_chunks");
  if (i->kind == LC_DELTA_TOOL_START || i->kind == LC_DELTA_TOOL_ARGS) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", i->index);
    if (i->kind == LC_DELTA_TOOL_START) {
      cJSON_AddStringToObject(c, "name", i->text);
      if (i->tool_id) cJSON_AddStringToObject(c, "id", i->tool_id);
      cJSON_AddStringToObject(c, "args", "");
    } else {
      cJSON_AddStringToObject(c, "args", i->text);
    }
    cJSON_AddStringToObject(c, "type", "tool_call_chunk");
    cJSON_AddItemToArray(tc, c);
  }
  if (i->kind == LC_DELTA_REASONING) {
    cJSON *ak = cJSON_GetObjectItem(msg, "additional_kwargs");
    cJSON_AddStringToObject(ak, "reasoning_content", i->text);
  }
  char id[64];
  snprintf(id, sizeof id, "%ld.0.%ld", i->base, i->k);
  cJSON *data = cJSON_CreateArray();
  cJSON_AddItemToArray(data, msg);
  if (e->tokens == TOK_TUPLE) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "run_id", e->run);
    if (e->thread[0]) cJSON_AddStringToObject(m, "thread_id", e->thread);
    cJSON_AddStringToObject(m, "luact_effect", i->eff);
    cJSON_AddItemToArray(data, m);
  }
  sse_put_json(e, e->tokens == TOK_TUPLE ? "messages" : "messages/partial", id, data);
}

/* The token deltas after journal line e->seq not sent yet (1: some went
 * out). Deltas this process cannot know of are announced once as a gap. */
static int sse_deltas(struct sse *e) {
  int sent = 0;
  pthread_mutex_lock(&dl_mu);
  const struct lc_deltas *d = dl_find(e->run);
  long b = e->seq;
  if (b > 0 && (!d || b < d->start) && !e->gap && !e->llm_from) {
    /* Only LLM calls stream deltas: where the run made none (yet), no
     * delta can have been sent, and no gap is announced. */
    pthread_mutex_unlock(&dl_mu); /* a store query: not under the lock */
    cJSON *rows = query(e->s,
                        "SELECT min(seq) AS m FROM journal WHERE run_id=? AND line LIKE "
                        "'%\"type\":\"intent\"%' AND line LIKE '%\"kind\":\"llm\"%'",
                        "s", e->run);
    const cJSON *mv = cJSON_GetObjectItem(cJSON_GetArrayItem(rows, 0), "m");
    e->llm_from = cJSON_IsNumber(mv) ? (long)mv->valuedouble : LONG_MAX;
    cJSON_Delete(rows);
    pthread_mutex_lock(&dl_mu);
    d = dl_find(e->run);
  }
  if (b > 0 && (!d || b < d->start)) {
    /* Line b was written by another execution (an earlier process, or a
     * buffer since dropped): its deltas, if any, cannot be replayed. */
    if (!e->gap && b >= e->llm_from) {
      e->gap = 1;
      sse_gap(e, b, "token deltas are not journaled and this server did not stream those of "
                    "earlier executions; the complete LLM responses come as steps");
      sent = 1;
    }
  } else if (d) {
    /* From the cursor on: the items are in (base, k) order and b only
     * grows, so each is looked at once per stream. */
    const struct dl_item *i = e->dl_serial == d->serial && e->dl_at ? e->dl_at->next : d->head;
    for (; i && i->base <= b; i = i->next) {
      e->dl_serial = d->serial;
      e->dl_at = i;
      if (i->base < b || i->k <= e->dk) continue;
      sse_delta(e, d, i);
      e->dk = i->k;
      sent = 1;
    }
    if (b >= d->full_at && !e->gap_full) {
      e->gap_full = 1;
      sse_gap(e, b, "too many token deltas for this run: the rest are not streamed; the "
                    "complete LLM responses come as steps");
      sent = 1;
    }
  }
  pthread_mutex_unlock(&dl_mu);
  return sent;
}

/* The run's stream is over. A thread's stream goes on with the thread's
 * next run (created after it), from its start, if there is one. The
 * protocol's stream is connection-scoped: without a next run it stays,
 * idle, for the run's continuation (an answer) or the next run. */
static void sse_finish(struct sse *e) {
  e->done = !e->ap;
  if (!e->thread_mode) return;
  cJSON *rows = query(e->s,
                      "SELECT n.id AS id FROM d_runs n JOIN d_runs c ON c.id=? WHERE "
                      "n.thread_id=c.thread_id AND n.tenant=? AND n.deleted=0 AND "
                      "(n.created>c.created OR (n.created=c.created AND n.id>c.id)) ORDER BY "
                      "n.created, n.id LIMIT 1",
                      "ss", e->run, e->tenant);
  const char *next = jstr(cJSON_GetArrayItem(rows, 0), "id");
  if (next) {
    snprintf(e->run, sizeof e->run, "%s", next);
    e->seq = e->dk = 0;
    e->sub = e->gap = e->gap_full = 0;
    e->llm_from = 0;
    e->dl_at = NULL; /* another run's buffer */
    e->meta = 0; /* its metadata first */
    e->acc_eff[0] = 0;
    e->done = 0;
  }
  cJSON_Delete(rows);
}

/* Appends what is new: journal lines after e->seq, then, once the run has
 * ended or waits, its terminal events. */
static void sse_fill(struct sse *e) {
  struct lc_serve *s = e->s;
  if (!e->run[0]) {
    /* A thread's stream opened before its first run: idle until one is. */
    cJSON *rows = query(s, "SELECT id FROM d_runs WHERE thread_id=? AND tenant=? AND "
                           "deleted=0 ORDER BY created, id LIMIT 1",
                        "ss", e->thread, e->tenant);
    const char *id = jstr(cJSON_GetArrayItem(rows, 0), "id");
    if (id) snprintf(e->run, sizeof e->run, "%s", id);
    cJSON_Delete(rows);
    if (!e->run[0]) return;
  }
  if (!e->meta) {
    e->meta = 1;
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "run_id", e->run);
    if (e->thread[0]) cJSON_AddStringToObject(m, "thread_id", e->thread);
    sse_put_json(e, "metadata", NULL, m);
    return;
  }
  /* The status first: when it says ended, every line is already in. */
  char st[32] = "";
  lc_serve_run_status(s, e->run, st, sizeof st);
  char err[256];
  cJSON *rows = NULL;
  lc_dstore_exec(s->ds, &rows, err, sizeof err,
                 "SELECT seq, line FROM journal WHERE run_id=? AND seq>? ORDER BY seq LIMIT 256",
                 "si", e->run, e->seq);
  const cJSON *r;
  int any = 0;
  cJSON_ArrayForEach(r, rows) {
    const cJSON *sq = cJSON_GetObjectItem(r, "seq");
    long seq = (long)sq->valuedouble;
    if (e->tokens) sse_deltas(e); /* the rest of those after the previous line */
    cJSON *line = cJSON_Parse(jstr(r, "line") ? jstr(r, "line") : "null");
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "run_id", e->run);
    cJSON_AddNumberToObject(d, "seq", (double)seq);
    cJSON_AddItemToObject(d, "step", line ? line : cJSON_CreateNull());
    char id[32];
    snprintf(id, sizeof id, "%ld", seq);
    sse_put_json(e, "custom", id, d);
    e->seq = seq;
    e->sub = 0;
    e->dk = 0;
    any = 1;
  }
  cJSON_Delete(rows);
  if (!any && e->tokens && e->sub == 0) any = sse_deltas(e); /* live, at the tail */
  if (any || !waits_or_ends(st)) return;
  if (!strcmp(st, "cancelled") && e->sub >= 2) {
    sse_finish(e);
    return;
  }
  if (e->sub >= 2) {
    sse_finish(e);
    return;
  }
  /* The tenant was checked when the stream opened. */
  cJSON *rows2 = query(s, "SELECT * FROM d_runs WHERE id=?", "s", e->run);
  cJSON *row = cJSON_DetachItemFromArray(rows2, 0);
  cJSON_Delete(rows2);
  char id[48];
  if (e->sub < 1) {
    snprintf(id, sizeof id, "%ld.1", e->seq);
    cJSON *out = row ? run_outcome(s, row, st) : cJSON_CreateObject();
    const char *ev = !strcmp(st, "finished") || !strcmp(st, "waiting_input") ? "values" : "error";
    if (!strcmp(ev, "error")) {
      cJSON *x = cJSON_DetachItemFromObject(out, "__error__");
      cJSON_Delete(out);
      out = x ? x : cJSON_CreateObject();
    }
    sse_put_json(e, ev, id, out);
    e->sub = 1;
  }
  snprintf(id, sizeof id, "%ld.2", e->seq);
  cJSON *end = cJSON_CreateObject();
  cJSON_AddStringToObject(end, "status", proto_status(st));
  cJSON_AddStringToObject(end, "luact_status", st);
  sse_put_json(e, "end", id, end);
  e->sub = 2;
  sse_finish(e);
  cJSON_Delete(row);
}

/* libmicrohttpd's content reader (its polling thread): sends what is
 * buffered; with nothing buffered, suspends the connection and parks the
 * stream (sse_job fills it on a worker) instead of waiting here. */
static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  struct sse *e = cls;
  if (e->off < e->len) {
    size_t k = e->len - e->off < max ? e->len - e->off : max;
    memcpy(buf, e->buf + e->off, k);
    e->off += k;
    e->last_send = mono();
    return (ssize_t)k;
  }
  e->len = e->off = 0;
  if (e->done || atomic_load(&e->s->stopping)) return MHD_CONTENT_READER_END_OF_STREAM;
  suspend_conn(e->c); /* before the park: only then may a worker resume it */
  lc_work_park(&e->work);
  return 0; /* suspended: called again after the resume */
}

/* A parked stream (a worker): new events, or a keep-alive comment when
 * one is due, resume its connection. Every 15 s, or twice per
 * --conn-timeout when that is shorter (an idle stream would be cut as a
 * slow client). */
static int sse_job(struct lc_work *w) {
  struct sse *e = (struct sse *)((char *)w - offsetof(struct sse, work));
  if (!e->done && !atomic_load(&e->s->stopping)) {
    sse_fill(e);
    double every = e->s->conn_timeout_s / 2.0 < 15 ? e->s->conn_timeout_s / 2.0 : 15;
    if (!e->len && !e->done && mono() - e->last_send >= every) {
      sse_put(e, "", NULL, ""); /* makes room */
      const char ka[] = ": keep-alive\n\n";
      memcpy(e->buf, ka, sizeof ka - 1);
      e->len = sizeof ka - 1;
    }
    if (!e->len && !e->done) return LC_WORK_KEEP;
  }
  lc_work_unpark(w);
  resume_conn(e->c); /* e may be freed from here on */
  return LC_WORK_HANDED;
}

static void sse_free(void *cls) {
  struct sse *e = cls;
  if (e->c) atomic_fetch_sub(&e->s->sse_clients, 1);
  if (e->tokens) atomic_fetch_sub(&tok_streams, 1);
  free(e->acc);
  free(e->buf);
  free(e);
}

/* Parses Last-Event-ID ("N", "N.k", or a token delta's "N.0.k"). */
static void last_event(const char *h, long *seq, int *sub, long *dk) {
  *seq = 0;
  *sub = 0;
  *dk = 0;
  if (!h) return;
  char *end;
  long n = strtol(h, &end, 10);
  if (n < 0) return;
  *seq = n;
  if (*end != '.') return;
  long k = strtol(end + 1, &end, 10);
  if (k < 0) return;
  *sub = (int)(k > 2 ? 2 : k);
  if (*sub == 0 && *end == '.') {
    long d = strtol(end + 1, NULL, 10);
    *dk = d > 0 ? d : 0;
  }
}

/* The token form a stream_mode asks for: "messages-tuple" (LangGraph's
 * SDK) or "messages" (TOK_*), else 0. */
static int tok_mode(const char *m) {
  if (!strcmp(m, "messages-tuple")) return TOK_TUPLE;
  if (!strcmp(m, "messages")) return TOK_MESSAGES;
  return 0;
}

static int wants_tokens(const cJSON *sm) {
  const cJSON *x;
  int t = 0;
  if (cJSON_IsString(sm)) return tok_mode(sm->valuestring);
  cJSON_ArrayForEach(x, sm) if (cJSON_IsString(x) && tok_mode(x->valuestring) > t) t =
      tok_mode(x->valuestring);
  return t;
}

/* stream_mode as query arguments (stream_mode=a&stream_mode=b, or a,b). */
static enum MHD_Result tok_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value) {
  (void)kind;
  int *t = cls;
  if (!key || strcmp(key, "stream_mode") || !value) return MHD_YES;
  char v[128];
  snprintf(v, sizeof v, "%s", value);
  for (char *sv, *p = strtok_r(v, ",", &sv); p; p = strtok_r(NULL, ",", &sv))
    if (tok_mode(p) > *t) *t = tok_mode(p);
  return MHD_YES;
}

static int query_tokens(struct MHD_Connection *c) {
  int t = 0;
  MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, tok_arg, &t);
  return t;
}

/* A run's stream; a thread's (thread_mode) starts at row's run and goes on
 * with the thread's later runs. last: the Last-Event-ID to resume after
 * (without a thread's run prefix), or NULL. */
/* A stream's state (c NULL: a WebSocket's subscription, which does not
 * count as a stream of its own). NULL when out of memory. */
static struct sse *sse_new(struct lc_serve *s, struct MHD_Connection *c, const char *tenant,
                           const cJSON *row, int tokens, int thread_mode, const char *last,
                           int ap, const char *thread) {
  struct sse *e = calloc(1, sizeof *e);
  if (!e) return NULL;
  e->s = s;
  e->c = c;
  e->work.run = sse_job;
  snprintf(e->tenant, sizeof e->tenant, "%s", tenant);
  if (row) snprintf(e->run, sizeof e->run, "%s", jstr(row, "id")); /* else the thread's first */
  if (jstr(row, "thread_id")) snprintf(e->thread, sizeof e->thread, "%s", jstr(row, "thread_id"));
  else if (thread) snprintf(e->thread, sizeof e->thread, "%s", thread);
  e->ap = ap;
  e->tokens = tokens;
  e->thread_mode = thread_mode;
  if (e->tokens) atomic_fetch_add(&tok_streams, 1); /* before sse_free can run */
  last_event(last, &e->seq, &e->sub, &e->dk);
  if (e->seq > 0) e->meta = 1; /* a resumed stream: no metadata again */
  e->last_send = mono();
  return e;
}

static enum MHD_Result stream_from(struct lc_serve *s, struct MHD_Connection *c, const char *tenant,
                                   const cJSON *row, int tokens, int thread_mode, const char *last,
                                   int ap, const char *thread) {
  if (atomic_fetch_add(&s->sse_clients, 1) >= s->max_streams) {
    atomic_fetch_sub(&s->sse_clients, 1);
    atomic_fetch_add(&s->streams_rejected, 1);
    return reply_err(s, c, 503, "too many streams open: retry later");
  }
  struct sse *e = sse_new(s, c, tenant, row, tokens, thread_mode, last, ap, thread);
  if (!e) {
    atomic_fetch_sub(&s->sse_clients, 1);
    return MHD_NO;
  }
  sse_fill(e); /* the first events now (a worker): no trip through the queue */
  struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, e,
                                                             sse_free);
  if (!r) {
    sse_free(e);
    return MHD_NO;
  }
  MHD_add_response_header(r, "Content-Type", "text/event-stream");
  MHD_add_response_header(r, "Cache-Control", "no-store");
  char loc[200];
  if (thread_mode)
    snprintf(loc, sizeof loc, "/threads/%s", e->thread);
  else if (e->thread[0])
    snprintf(loc, sizeof loc, "/threads/%s/runs/%s", e->thread, e->run);
  else
    snprintf(loc, sizeof loc, "/runs/%s", e->run);
  MHD_add_response_header(r, "Content-Location", loc);
  return send_resp(c, 200, r);
}

static enum MHD_Result stream_run(struct lc_serve *s, struct MHD_Connection *c, const char *tenant,
                                  const cJSON *row, int tokens) {
  return stream_from(s, c, tenant, row, tokens, 0,
                     MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID"), 0, NULL);
}

/* Where a thread's stream starts: the oldest run still to go (pending,
 * running: an enqueued run waits behind it), else the newest; NULL: none. */
static cJSON *thread_pick(struct lc_serve *s, const char *tenant, const char *thread) {
  cJSON *rows = query(s,
                      "SELECT * FROM d_runs WHERE thread_id=? AND tenant=? AND deleted=0 "
                      "ORDER BY created DESC, id DESC LIMIT 64",
                      "ss", thread, tenant);
  int pick = 0, k = 0;
  const cJSON *x;
  cJSON_ArrayForEach(x, rows) {
    char st[32] = "";
    lc_serve_run_status(s, jstr(x, "id"), st, sizeof st);
    if (!waits_or_ends(st)) pick = k;
    k++;
  }
  cJSON *row = cJSON_DetachItemFromArray(rows, pick);
  cJSON_Delete(rows);
  return row;
}

/* The channels of a subscription ({"channels": [...]}) as bits; 0 with
 * why set when they are not valid. */
static int parse_channels(const cJSON *body, const char **why) {
  const cJSON *chs = cJSON_GetObjectItem(body, "channels"), *x;
  int ap = 0;
  if (!cJSON_IsObject(body) || !cJSON_IsArray(chs) || !cJSON_GetArraySize(chs)) {
    *why = "channels (a non-empty list) is required";
    return 0;
  }
  cJSON_ArrayForEach(x, chs) {
    if (!cJSON_IsString(x)) {
      *why = "a channel is a string";
      return 0;
    }
    if (!strncmp(x->valuestring, "custom:", 7)) x = NULL; /* named custom: custom */
    int b = ap_bit(x ? x->valuestring : "custom");
    if (!b) {
      *why = "unknown channel";
      return 0;
    }
    ap |= b;
  }
  return ap;
}

/* GET /threads/{id}/stream (LangGraph's threads.joinStream): the thread's
 * newest run, then the runs created after it. Its ids are "RUN:ID", so a
 * Last-Event-ID names the run to go on with. */
static enum MHD_Result stream_thread(struct lc_serve *s, struct MHD_Connection *c,
                                     const char *tenant, const char *thread, const cJSON *body) {
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
  int ap = 0, tokens = 0;
  if (body) {
    /* The Agent Protocol's form: {"channels": [...]} (namespaces: only the
     * root agent's, []); a replay from a sequence number ("since") is not
     * kept: Last-Event-ID resumes instead. */
    const char *why = NULL;
    ap = parse_channels(body, &why);
    if (!ap) return reply_err(s, c, 422, why);
    if (cJSON_GetObjectItem(body, "since"))
      return reply_err(s, c, 422, "since is not supported: resume with Last-Event-ID");
    tokens = ap & ap_bit("messages") ? TOK_TUPLE : 0;
  } else {
    tokens = query_tokens(c);
  }
  const char *rest = NULL;
  cJSON *row = NULL;
  if (h) {
    const char *colon = strchr(h, ':');
    if (!colon || colon == h || colon - h > 64)
      return reply_err(s, c, 400, "the Last-Event-ID of a thread's stream is RUN:ID");
    char rid[65];
    snprintf(rid, sizeof rid, "%.*s", (int)(colon - h), h);
    rest = colon + 1;
    row = run_row(s, tenant, rid);
    if (!row || !jstr(row, "thread_id") || strcmp(jstr(row, "thread_id"), thread)) {
      cJSON_Delete(row);
      return reply_err(s, c, 404, "Last-Event-ID names no run of this thread");
    }
  } else {
    row = thread_pick(s, tenant, thread);
    /* The protocol's stream may open before the first run: it idles. */
    if (!row && !ap) return reply_err(s, c, 404, "the thread has no run to stream");
  }
  enum MHD_Result res = stream_from(s, c, tenant, row, tokens, 1, rest, ap, thread);
  cJSON_Delete(row);
  return res;
}

/* ---- metrics ---- */

/* A label value, escaped as the text format says. */
static void put_label(FILE *f, const char *v) {
  for (; *v; v++) {
    if (*v == '\n') {
      fputs("\\n", f);
      continue;
    }
    if (*v == '"' || *v == '\\') fputc('\\', f);
    fputc(*v, f);
  }
}

static enum MHD_Result metrics(struct lc_serve *s, struct MHD_Connection *c) {
  char *b = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&b, &n);
  if (!f) return MHD_NO;
  fprintf(f, "# HELP luact_http_requests_total HTTP requests answered.\n"
             "# TYPE luact_http_requests_total counter\nluact_http_requests_total %ld\n",
          atomic_load(&s->http_requests));
  fprintf(f, "# HELP luact_http_errors_total HTTP requests answered with 4xx or 5xx.\n"
             "# TYPE luact_http_errors_total counter\nluact_http_errors_total %ld\n",
          atomic_load(&s->http_errors));
  fprintf(f, "# HELP luact_http_rejected_total Requests refused by a limit or by auth.\n"
             "# TYPE luact_http_rejected_total counter\n"
             "luact_http_rejected_total{reason=\"body_size\"} %ld\n"
             "luact_http_rejected_total{reason=\"auth\"} %ld\n"
             "luact_http_rejected_total{reason=\"streams\"} %ld\n",
          atomic_load(&s->body_rejected), atomic_load(&s->auth_rejected),
          atomic_load(&s->streams_rejected));
  long groups = 0, writes = 0;
  lc_dstore_stats(s->ds, &groups, &writes);
  fprintf(f, "# HELP luact_serve_table_commits_total Commits of the daemon's tables (grouped).\n"
             "# TYPE luact_serve_table_commits_total counter\nluact_serve_table_commits_total %ld\n"
             "# HELP luact_serve_table_writes_total Writes to the daemon's tables, in those "
             "commits.\n"
             "# TYPE luact_serve_table_writes_total counter\nluact_serve_table_writes_total %ld\n",
          groups, writes);
  fprintf(f, "# HELP luact_runs_created_total Runs accepted.\n"
             "# TYPE luact_runs_created_total counter\nluact_runs_created_total %ld\n",
          atomic_load(&s->runs_created));
  fprintf(f, "# HELP luact_runs_ended_total Run executions that ended, by outcome.\n"
             "# TYPE luact_runs_ended_total counter\n"
             "luact_runs_ended_total{status=\"finished\"} %ld\n"
             "luact_runs_ended_total{status=\"failed\"} %ld\n"
             "luact_runs_ended_total{status=\"cancelled\"} %ld\n"
             "luact_runs_ended_total{status=\"waiting_input\"} %ld\n",
          atomic_load(&s->runs_done_ok), atomic_load(&s->runs_done_failed),
          atomic_load(&s->runs_done_cancelled), atomic_load(&s->runs_interrupted));
  /* By agent: the agent names are the folder's files, a bounded set;
   * quotes, backslashes and newlines escaped as the text format says. */
  fprintf(f, "# HELP luact_agent_runs_created_total Runs accepted, by agent.\n"
             "# TYPE luact_agent_runs_created_total counter\n");
  for (int i = 0; i < s->nagents; i++) {
    fputs("luact_agent_runs_created_total{agent=\"", f);
    put_label(f, s->agents[i].id);
    fprintf(f, "\"} %ld\n", atomic_load(&s->agents[i].created));
  }
  fprintf(f, "# HELP luact_agent_runs_ended_total Run executions ended, by agent and status.\n"
             "# TYPE luact_agent_runs_ended_total counter\n");
  for (int i = 0; i < s->nagents; i++)
    for (int k = 0; lc_serve_end_names[k]; k++) {
      fputs("luact_agent_runs_ended_total{agent=\"", f);
      put_label(f, s->agents[i].id);
      fprintf(f, "\",status=\"%s\"} %ld\n", lc_serve_end_names[k],
              atomic_load(&s->agents[i].ended[k]));
    }
  fprintf(f, "# HELP luact_effects_total Effects of run executions: answered from the journal "
             "(replayed) or run.\n# TYPE luact_effects_total counter\n"
             "luact_effects_total{how=\"replayed\"} %ld\nluact_effects_total{how=\"ran\"} %ld\n",
          atomic_load(&s->effects_replayed), atomic_load(&s->effects_ran));
  fprintf(f, "# HELP luact_effect_duration_seconds Effects run live, by kind (from the "
             "journal's latency).\n# TYPE luact_effect_duration_seconds summary\n");
  for (int k = 0; lc_serve_kind_names[k]; k++)
    fprintf(f,
            "luact_effect_duration_seconds_sum{kind=\"%s\"} %.6f\n"
            "luact_effect_duration_seconds_count{kind=\"%s\"} %ld\n",
            lc_serve_kind_names[k], atomic_load(&s->kind_us[k]) / 1e6, lc_serve_kind_names[k],
            atomic_load(&s->kind_n[k]));
  fprintf(f, "# HELP luact_llm_tokens_total LLM tokens of runs' calls.\n"
             "# TYPE luact_llm_tokens_total counter\n"
             "luact_llm_tokens_total{direction=\"input\"} %ld\n"
             "luact_llm_tokens_total{direction=\"output\"} %ld\n",
          atomic_load(&s->llm_tokens_in), atomic_load(&s->llm_tokens_out));
  fprintf(f, "# HELP luact_runs_resumed_total Runs continued from their journal.\n"
             "# TYPE luact_runs_resumed_total counter\nluact_runs_resumed_total %ld\n",
          atomic_load(&s->runs_resumed));
  pthread_mutex_lock(&s->mu);
  int act = s->nactive, q = s->nqueued;
  pthread_mutex_unlock(&s->mu);
  fprintf(f, "# HELP luact_runs Runs by state in this process.\n# TYPE luact_runs gauge\n"
             "luact_runs{state=\"running\"} %d\nluact_runs{state=\"queued\"} %d\n",
          act, q);
  cJSON *rows = query(s, "SELECT status, count(*) AS n FROM runs GROUP BY status", "");
  const cJSON *r;
  fprintf(f, "# HELP luact_store_runs Runs in the store by status.\n"
             "# TYPE luact_store_runs gauge\n");
  cJSON_ArrayForEach(r, rows) {
    const char *st = jstr(r, "status");
    const cJSON *k = cJSON_GetObjectItem(r, "n");
    if (st && strspn(st, "abcdefghijklmnopqrstuvwxyz_") == strlen(st))
      fprintf(f, "luact_store_runs{status=\"%s\"} %.0f\n", st, k->valuedouble);
  }
  cJSON_Delete(rows);
  fprintf(f, "# HELP luact_run_queue_wait_seconds Time runs waited in the queue.\n"
             "# TYPE luact_run_queue_wait_seconds summary\n"
             "luact_run_queue_wait_seconds_sum %.6f\nluact_run_queue_wait_seconds_count %ld\n",
          atomic_load(&s->queue_wait_us) / 1e6, atomic_load(&s->queue_waits));
  fprintf(f, "# HELP luact_run_duration_seconds Time of run executions.\n"
             "# TYPE luact_run_duration_seconds summary\n"
             "luact_run_duration_seconds_sum %.6f\nluact_run_duration_seconds_count %ld\n",
          atomic_load(&s->run_us) / 1e6, atomic_load(&s->runs_timed));
  fprintf(f, "# HELP luact_sse_clients Open event streams, waits and WebSockets.\n"
             "# TYPE luact_sse_clients gauge\nluact_sse_clients %ld\n",
          atomic_load(&s->sse_clients));
  fclose(f);
  return reply_text(c, 200, "text/plain; version=0.0.4", b, n);
}

/* ---- routes ---- */

static cJSON *agent_json(const struct lc_agent *a) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "assistant_id", a->id);
  cJSON_AddStringToObject(o, "agent_id", a->id);
  cJSON_AddStringToObject(o, "graph_id", a->id);
  cJSON_AddStringToObject(o, "name", a->id);
  if (a->description) cJSON_AddStringToObject(o, "description", a->description);
  else cJSON_AddNullToObject(o, "description");
  cJSON_AddItemToObject(o, "config", cJSON_CreateObject());
  cJSON_AddItemToObject(o, "metadata", cJSON_CreateObject());
  cJSON_AddItemToObject(o, "context", cJSON_CreateObject());
  cJSON_AddNumberToObject(o, "version", 1);
  cJSON_AddStringToObject(o, "created_at", "1970-01-01T00:00:00.000Z");
  cJSON_AddStringToObject(o, "updated_at", "1970-01-01T00:00:00.000Z");
  cJSON *caps = cJSON_AddObjectToObject(o, "capabilities");
  cJSON_AddBoolToObject(caps, "ap.io.messages", 0);
  cJSON_AddBoolToObject(caps, "ap.io.streaming", 1);
  return o;
}

static cJSON *schema_or_null(const char *t) {
  cJSON *v = t ? cJSON_Parse(t) : NULL;
  return v ? v : cJSON_CreateNull();
}

static long qnum(struct MHD_Connection *c, const cJSON *body, const char *k, long def) {
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
static int md_match(const cJSON *o, const cJSON *filter) {
  const cJSON *f;
  cJSON_ArrayForEach(f, filter) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, f->string);
    if (!v || !cJSON_Compare(v, f, 1)) return 0;
  }
  return 1;
}

/* Namespace (array of strings) as stored: labels each ended by \x1f. */
static char *ns_key(const cJSON *ns, int allow_empty) {
  if (!cJSON_IsArray(ns) || (!allow_empty && !cJSON_GetArraySize(ns))) return NULL;
  size_t n = 1;
  const cJSON *x;
  cJSON_ArrayForEach(x, ns) {
    if (!cJSON_IsString(x) || !x->valuestring[0] || strchr(x->valuestring, '\x1f')) return NULL;
    n += strlen(x->valuestring) + 1;
  }
  char *k = calloc(1, n);
  if (!k) return NULL;
  cJSON_ArrayForEach(x, ns) {
    strcat(k, x->valuestring);
    strcat(k, "\x1f");
  }
  return k;
}

static cJSON *ns_array(const char *k) {
  cJSON *a = cJSON_CreateArray();
  while (k && *k) {
    const char *e = strchr(k, '\x1f');
    if (!e) break;
    char *lab = strndup(k, (size_t)(e - k));
    cJSON_AddItemToArray(a, cJSON_CreateString(lab ? lab : ""));
    free(lab);
    k = e + 1;
  }
  return a;
}

static cJSON *item_json(const cJSON *row) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddItemToObject(o, "namespace", ns_array(jstr(row, "ns")));
  cJSON_AddStringToObject(o, "key", jstr(row, "key"));
  cJSON_AddItemToObject(o, "value", jcol(row, "value"));
  add_time(o, "created_at", row, "created");
  add_time(o, "updated_at", row, "updated");
  return o;
}

static enum MHD_Result store_routes(struct lc_serve *s, struct MHD_Connection *c,
                                    const char *method, char **seg, int nseg, const char *tenant,
                                    const cJSON *body) {
  char err[256];
  if (nseg == 2 && !strcmp(seg[1], "items")) {
    if (!strcmp(method, "PUT")) {
      char *k = ns_key(cJSON_GetObjectItem(body, "namespace"), 0);
      const char *key = jstr(body, "key");
      const cJSON *v = cJSON_GetObjectItem(body, "value");
      if (!k || !key || !cJSON_IsObject(v)) {
        free(k);
        return reply_err(s, c, 422, "namespace (non-empty list of labels), key and value "
                                    "(an object) are required");
      }
      char *vt = cJSON_PrintUnformatted(v);
      double now = lc_serve_now();
      int rc = lc_dstore_exec(s->ds, NULL, err, sizeof err,
                              "INSERT INTO d_items(tenant, ns, key, value, created, updated) "
                              "VALUES(?,?,?,?,?,?) ON CONFLICT(tenant, ns, key) DO UPDATE SET "
                              "value=excluded.value, updated=excluded.updated",
                              "ssssdd", tenant, k, key, vt, now, now);
      cJSON_free(vt);
      free(k);
      return rc ? reply_err(s, c, 500, err) : reply_json(c, 204, NULL);
    }
    if (!strcmp(method, "GET") || !strcmp(method, "DELETE")) {
      const char *key = jstr(body, "key");
      char *k = ns_key(cJSON_GetObjectItem(body, "namespace"), 0);
      if (!key) key = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "key");
      if (!k) {
        /* LangGraph's client: ?namespace=a.b */
        const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "namespace");
        if (q && *q) {
          k = malloc(strlen(q) + 2);
          if (k) {
            size_t j = 0;
            for (const char *p = q; *p; p++) k[j++] = *p == '.' ? '\x1f' : *p;
            k[j++] = '\x1f';
            k[j] = 0;
          }
        }
      }
      if (!k || !key) {
        free(k);
        return reply_err(s, c, 422, "namespace and key are required");
      }
      cJSON *rows = NULL;
      int rc;
      if (!strcmp(method, "GET"))
        rc = lc_dstore_exec(s->ds, &rows, err, sizeof err,
                            "SELECT * FROM d_items WHERE tenant=? AND ns=? AND key=?", "sss",
                            tenant, k, key);
      else
        rc = lc_dstore_exec(s->ds, NULL, err, sizeof err,
                            "DELETE FROM d_items WHERE tenant=? AND ns=? AND key=?", "sss", tenant,
                            k, key);
      free(k);
      if (rc) return reply_err(s, c, 500, err);
      if (!strcmp(method, "DELETE")) return reply_json(c, 204, NULL);
      const cJSON *r = cJSON_GetArrayItem(rows, 0);
      enum MHD_Result res = r ? reply_json(c, 200, item_json(r)) : reply_err(s, c, 404, "no such item");
      cJSON_Delete(rows);
      return res;
    }
  }
  if (nseg == 3 && !strcmp(seg[1], "items") && !strcmp(seg[2], "search") && !strcmp(method, "POST")) {
    const cJSON *qy = cJSON_GetObjectItem(body, "query");
    if (qy && !cJSON_IsNull(qy) && !(cJSON_IsString(qy) && !*qy->valuestring))
      return reply_err(s, c, 422, "query (semantic search) is not supported: use filter");
    const cJSON *p = cJSON_GetObjectItem(body, "namespace_prefix");
    char *k = p ? ns_key(p, 1) : strdup("");
    if (!k) return reply_err(s, c, 422, "namespace_prefix must be a list of labels");
    long limit = qnum(c, body, "limit", 10), offset = qnum(c, body, "offset", 0);
    cJSON *rows = NULL;
    lc_dstore_exec(s->ds, &rows, err, sizeof err,
                   "SELECT * FROM d_items WHERE tenant=? AND substr(ns, 1, length(?))=? ORDER BY "
                   "updated DESC",
                   "sss", tenant, k, k);
    free(k);
    const cJSON *filter = cJSON_GetObjectItem(body, "filter");
    cJSON *items = cJSON_CreateArray();
    long seen = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, rows) {
      cJSON *it = item_json(r);
      if (filter && !md_match(cJSON_GetObjectItem(it, "value"), filter)) {
        cJSON_Delete(it);
        continue;
      }
      if (seen++ < offset || cJSON_GetArraySize(items) >= limit) {
        cJSON_Delete(it);
        continue;
      }
      cJSON_AddItemToArray(items, it);
    }
    cJSON_Delete(rows);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "items", items);
    return reply_json(c, 200, o);
  }
  if (nseg == 2 && !strcmp(seg[1], "namespaces") && !strcmp(method, "POST")) {
    const cJSON *suf = cJSON_GetObjectItem(body, "suffix"); /* LangGraph's */
    if (suf && !cJSON_IsNull(suf) && !cJSON_IsArray(suf))
      return reply_err(s, c, 422, "suffix must be a list of labels");
    const cJSON *p = cJSON_GetObjectItem(body, "prefix");
    char *k = p ? ns_key(p, 1) : strdup("");
    if (!k) return reply_err(s, c, 422, "prefix must be a list of labels");
    long maxd = qnum(c, body, "max_depth", 0), limit = qnum(c, body, "limit", 100),
         offset = qnum(c, body, "offset", 0);
    cJSON *rows = NULL;
    lc_dstore_exec(s->ds, &rows, err, sizeof err,
                   "SELECT DISTINCT ns FROM d_items WHERE tenant=? AND substr(ns, 1, length(?))=? "
                   "ORDER BY ns",
                   "sss", tenant, k, k);
    free(k);
    cJSON *out = cJSON_CreateArray();
    long seen = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, rows) {
      cJSON *a = ns_array(jstr(r, "ns"));
      int na = cJSON_GetArraySize(a), ns_ = cJSON_GetArraySize(suf), sok = ns_ <= na;
      for (int q = 0; sok && q < ns_; q++) /* "*" matches any label, as in LangGraph */
        sok = cJSON_IsString(cJSON_GetArrayItem(suf, q)) &&
              (!strcmp(cJSON_GetArrayItem(suf, q)->valuestring, "*") ||
               cJSON_Compare(cJSON_GetArrayItem(suf, q), cJSON_GetArrayItem(a, na - ns_ + q), 1));
      if (!sok) {
        cJSON_Delete(a);
        continue;
      }
      while (maxd > 0 && cJSON_GetArraySize(a) > maxd) cJSON_DeleteItemFromArray(a, cJSON_GetArraySize(a) - 1);
      int dup = 0;
      const cJSON *x;
      cJSON_ArrayForEach(x, out) dup |= cJSON_Compare(x, a, 1);
      if (dup || seen++ < offset || cJSON_GetArraySize(out) >= limit) {
        cJSON_Delete(a);
        continue;
      }
      cJSON_AddItemToArray(out, a);
    }
    cJSON_Delete(rows);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "namespaces", out);
    return reply_json(c, 200, o);
  }
  return reply_err(s, c, 404, "no such route");
}

static enum MHD_Result agent_routes(struct lc_serve *s, struct MHD_Connection *c,
                                    const char *method, char **seg, int nseg, const cJSON *body) {
  if (nseg == 2 && !strcmp(seg[1], "count") && !strcmp(method, "POST")) {
    /* LangGraph's assistants.count */
    const char *gid = jstr(body, "graph_id");
    int n = 0;
    for (int i = 0; i < s->nagents; i++) n += !gid || !strcmp(s->agents[i].id, gid);
    if (cJSON_GetArraySize(cJSON_GetObjectItem(body, "metadata"))) n = 0; /* agents have none */
    return reply_json(c, 200, cJSON_CreateNumber(n));
  }
  if (nseg == 2 && !strcmp(seg[1], "search") && !strcmp(method, "POST")) {
    long limit = qnum(c, body, "limit", 10), offset = qnum(c, body, "offset", 0);
    const char *name = jstr(body, "name");
    const char *gid = jstr(body, "graph_id");
    /* LangGraph's sort_by: by id (assistant_id, graph_id and name are the
     * agent's id; created_at, updated_at are the same for every agent:
     * the folder's order), sort_order asc or desc. */
    const char *sb = jstr(body, "sort_by"), *so = jstr(body, "sort_order");
    int by_id = sb && (!strcmp(sb, "assistant_id") || !strcmp(sb, "graph_id") ||
                       !strcmp(sb, "name"));
    if (sb && !by_id && strcmp(sb, "created_at") && strcmp(sb, "updated_at"))
      return reply_err(s, c, 422, "sort_by is one of assistant_id, graph_id, name, created_at, "
                                  "updated_at");
    if (so && strcasecmp(so, "asc") && strcasecmp(so, "desc"))
      return reply_err(s, c, 422, "sort_order is asc or desc");
    int desc = so && !strcasecmp(so, "desc");
    const struct lc_agent **order = malloc(sizeof *order * (size_t)(s->nagents + 1));
    if (!order) return reply_err(s, c, 500, "out of memory");
    for (int i = 0; i < s->nagents; i++) { /* insertion sort: a folder's agents are few */
      int k = i;
      while (by_id && k > 0 && strcmp(order[k - 1]->id, s->agents[i].id) > 0) {
        order[k] = order[k - 1];
        k--;
      }
      order[k] = &s->agents[i];
    }
    cJSON *arr = cJSON_CreateArray();
    /* An agent's metadata is empty: a filter with a key matches none. */
    int none = cJSON_GetArraySize(cJSON_GetObjectItem(body, "metadata")) > 0;
    long seen = 0;
    for (int n = 0; n < s->nagents && !none; n++) {
      const struct lc_agent *a = order[desc ? s->nagents - 1 - n : n];
      if (name && !strstr(a->id, name)) continue;
      if (gid && strcmp(a->id, gid)) continue;
      /* offset counts matches (it counted the folder's agents) */
      if (seen++ < offset || cJSON_GetArraySize(arr) >= limit) continue;
      cJSON_AddItemToArray(arr, agent_json(a));
    }
    free(order);
    return reply_json(c, 200, arr);
  }
  if (nseg == 1 && !strcmp(method, "POST")) {
    /* LangGraph's assistants.create: an assistant is its agent's script,
     * so "creating" one names an agent and answers it (if_exists has
     * nothing to decide); configured variants are refused. */
    const char *gid = jstr(body, "graph_id"), *aid = jstr(body, "assistant_id");
    const struct lc_agent *a = gid ? lc_serve_agent(s, gid) : NULL;
    if (!gid) return reply_err(s, c, 422, "graph_id (an agent) is required");
    if (!a) return reply_err(s, c, 404, "unknown agent: agents are the scripts of AGENTS_DIR");
    if ((aid && strcmp(aid, gid)) || cJSON_GetArraySize(cJSON_GetObjectItem(body, "config")) ||
        cJSON_GetArraySize(cJSON_GetObjectItem(body, "context")) ||
        cJSON_GetArraySize(cJSON_GetObjectItem(body, "metadata")))
      return reply_err(s, c, 422, "an agent has one assistant, itself: no id, config, context or "
                                  "metadata of its own");
    return reply_json(c, 200, agent_json(a));
  }
  if (nseg == 2 && (!strcmp(method, "PATCH") || !strcmp(method, "DELETE")))
    return reply_err(s, c, 405, "agents are the scripts of AGENTS_DIR: change the folder");
  if (nseg == 3 && !strcmp(method, "POST") &&
      (!strcmp(seg[2], "versions") || !strcmp(seg[2], "latest"))) {
    /* LangGraph's assistant versions: an agent is its script, version 1. */
    const struct lc_agent *a = lc_serve_agent(s, seg[1]);
    if (!a) return reply_err(s, c, 404, "unknown agent");
    if (body && !cJSON_IsObject(body)) return reply_err(s, c, 422, "the body must be an object");
    if (!strcmp(seg[2], "latest")) {
      const cJSON *v = cJSON_GetObjectItem(body, "version");
      if (!cJSON_IsNumber(v)) return reply_err(s, c, 422, "version (a number) is required");
      if (v->valuedouble != 1) return reply_err(s, c, 404, "an agent has one version: 1");
      return reply_json(c, 200, agent_json(a));
    }
    cJSON *arr = cJSON_CreateArray();
    if (qnum(c, body, "offset", 0) == 0 && qnum(c, body, "limit", 10) > 0)
      cJSON_AddItemToArray(arr, agent_json(a));
    return reply_json(c, 200, arr);
  }
  if (nseg >= 2 && !strcmp(method, "GET")) {
    const struct lc_agent *a = lc_serve_agent(s, seg[1]);
    if (!a) return reply_err(s, c, 404, "unknown agent");
    if (nseg == 3 && !strcmp(seg[2], "graph")) {
      /* LangGraph's drawing of the graph: an agent is one step. */
      cJSON *g = cJSON_CreateObject();
      cJSON *nodes = cJSON_AddArrayToObject(g, "nodes"), *edges = cJSON_AddArrayToObject(g, "edges");
      const char *ids[] = {"__start__", "run", "__end__"};
      for (int i = 0; i < 3; i++) {
        cJSON *n = cJSON_CreateObject();
        cJSON_AddStringToObject(n, "id", ids[i]);
        cJSON_AddStringToObject(n, "type", i == 1 ? "runnable" : "schema");
        cJSON_AddStringToObject(n, "data", i == 1 ? a->id : ids[i]);
        cJSON_AddItemToArray(nodes, n);
        if (i) {
          cJSON *e = cJSON_CreateObject();
          cJSON_AddStringToObject(e, "source", ids[i - 1]);
          cJSON_AddStringToObject(e, "target", ids[i]);
          cJSON_AddItemToArray(edges, e);
        }
      }
      return reply_json(c, 200, g);
    }
    if ((nseg == 3 || nseg == 4) && !strcmp(seg[2], "subgraphs"))
      return reply_json(c, 200, cJSON_CreateObject()); /* none */
    if (nseg == 2) return reply_json(c, 200, agent_json(a));
    if (nseg == 3 && !strcmp(seg[2], "schemas")) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "agent_id", a->id);
      cJSON_AddStringToObject(o, "graph_id", a->id);
      cJSON_AddItemToObject(o, "input_schema", schema_or_null(a->input_schema));
      cJSON_AddItemToObject(o, "output_schema", schema_or_null(a->output_schema));
      cJSON_AddItemToObject(o, "state_schema", schema_or_null(a->output_schema));
      cJSON_AddNullToObject(o, "config_schema");
      return reply_json(c, 200, o);
    }
  }
  return reply_err(s, c, 404, "no such route");
}

/* Run routes under a thread (thread set) or stateless (thread NULL):
 * seg are the parts after "runs". */
static enum MHD_Result run_routes(struct lc_serve *s, struct MHD_Connection *c,
                                  const char *method, char **seg, int nseg, const char *tenant,
                                  const char *thread, const cJSON *body, int body_ok) {
  char msg[512];
  if (nseg >= 1 && !strcmp(seg[0], "crons")) { /* LangGraph's crons (crons.c) */
    cJSON *out = NULL;
    unsigned code =
        lc_crons_route(s, method, seg + 1, nseg - 1, tenant, thread, body, body_ok, &out);
    if (code < 400) return reply_json(c, code, out);
    enum MHD_Result r = reply_err(s, c, code, out ? jstr(out, "detail") : "error");
    cJSON_Delete(out);
    return r;
  }
  /* create: POST runs, runs/wait, runs/stream */
  if (!strcmp(method, "POST") &&
      (nseg == 0 || (nseg == 1 && (!strcmp(seg[0], "wait") || !strcmp(seg[0], "stream"))))) {
    if (!body_ok) return reply_err(s, c, 400, "the body is not valid JSON");
    if (!cJSON_IsObject(body)) return reply_err(s, c, 422, "the body must be a JSON object");
    /* The Agent Protocol names the thread in the body of POST /runs. */
    if (!thread && jstr(body, "thread_id")) thread = jstr(body, "thread_id");
    /* An Agent Protocol request (agent_id, not LangGraph's assistant_id)
     * gets the protocol's wait answer: {run, values, messages}. */
    int ap = !jstr(body, "assistant_id") && jstr(body, "agent_id");
    cJSON *row = NULL;
    unsigned code = create_run(s, c, tenant, thread, body, &row, msg, sizeof msg);
    if (code != 200) return reply_err(s, c, code, msg);
    enum MHD_Result res;
    if (nseg == 1 && !strcmp(seg[0], "stream")) {
      res = stream_run(s, c, tenant, row, wants_tokens(cJSON_GetObjectItem(body, "stream_mode")));
    } else if (nseg == 1) {
      if (atomic_fetch_add(&s->sse_clients, 1) >= s->max_streams) {
        atomic_fetch_sub(&s->sse_clients, 1);
        cJSON_Delete(row);
        return reply_err(s, c, 503, "too many waits open: retry later");
      }
      res = park_wait(c, row, ap ? WAIT_AP : WAIT_OUTCOME); /* sse_clients: until it answers */
    } else {
      res = reply_json(c, 200, run_json(s, row));
    }
    cJSON_Delete(row);
    return res;
  }
  if (nseg == 1 && !strcmp(seg[0], "batch") && !strcmp(method, "POST") && !thread) {
    /* LangGraph's runs.createBatch: background runs, each as POST /runs
     * would make it; the first refused one answers for the batch (those
     * before it are made). */
    if (!body_ok) return reply_err(s, c, 400, "the body is not valid JSON");
    if (!cJSON_IsArray(body)) return reply_err(s, c, 422, "the body must be a list of runs");
    if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key"))
      return reply_err(s, c, 422, "an Idempotency-Key names one run, not a batch");
    cJSON *arr = cJSON_CreateArray();
    const cJSON *p;
    cJSON_ArrayForEach(p, body) {
      cJSON *row = NULL;
      unsigned code = cJSON_IsObject(p) ? create_run(s, c, tenant, jstr(p, "thread_id"), p, &row,
                                                     msg, sizeof msg)
                                        : (snprintf(msg, sizeof msg, "each run is an object"), 422);
      if (code != 200) {
        cJSON_Delete(arr);
        return reply_err(s, c, code, msg);
      }
      cJSON_AddItemToArray(arr, run_json(s, row));
      cJSON_Delete(row);
    }
    return reply_json(c, 200, arr);
  }
  if (nseg == 1 && !strcmp(seg[0], "search") && !strcmp(method, "POST") && !thread) {
    /* Agent Protocol: runs by thread, agent, status, metadata. */
    if (!body_ok) return reply_err(s, c, 400, "the body is not valid JSON");
    long limit = qnum(c, body, "limit", 10), offset = qnum(c, body, "offset", 0);
    const char *tf = jstr(body, "thread_id"), *af = jstr(body, "agent_id"),
               *stf = jstr(body, "status");
    const cJSON *md = cJSON_GetObjectItem(body, "metadata");
    cJSON *rows = query(s,
                        "SELECT * FROM d_runs WHERE tenant=? AND deleted=0 ORDER BY created DESC, "
                        "rowid DESC",
                        "s", tenant);
    cJSON *arr = cJSON_CreateArray();
    long seen = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, rows) {
      if ((tf && (!jstr(r, "thread_id") || strcmp(tf, jstr(r, "thread_id")))) ||
          (af && strcmp(af, jstr(r, "agent"))))
        continue;
      cJSON *j = run_json(s, r);
      if ((stf && strcmp(jstr(j, "status"), stf)) ||
          (md && !md_match(cJSON_GetObjectItem(j, "metadata"), md)) || seen++ < offset ||
          cJSON_GetArraySize(arr) >= limit) {
        cJSON_Delete(j);
        continue;
      }
      cJSON_AddItemToArray(arr, j);
    }
    cJSON_Delete(rows);
    return reply_json(c, 200, arr);
  }
  if (nseg == 0 && !strcmp(method, "GET") && thread) {
    long limit = qnum(c, NULL, "limit", 10), offset = qnum(c, NULL, "offset", 0);
    const char *stf = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "status");
    cJSON *rows = query(s,
                        "SELECT * FROM d_runs WHERE thread_id=? AND tenant=? AND deleted=0 "
                        "ORDER BY created DESC, rowid DESC",
                        "ss", thread, tenant);
    cJSON *arr = cJSON_CreateArray();
    long seen = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, rows) {
      cJSON *j = run_json(s, r);
      if ((stf && strcmp(jstr(j, "status"), stf)) || seen++ < offset ||
          cJSON_GetArraySize(arr) >= limit) {
        cJSON_Delete(j);
        continue;
      }
      cJSON_AddItemToArray(arr, j);
    }
    cJSON_Delete(rows);
    return reply_json(c, 200, arr);
  }
  if (nseg < 1) return reply_err(s, c, 404, "no such route");
  cJSON *row = run_row(s, tenant, seg[0]);
  if (!row || (thread && (!jstr(row, "thread_id") || strcmp(jstr(row, "thread_id"), thread)))) {
    cJSON_Delete(row);
    return reply_err(s, c, 404, "run not found");
  }
  enum MHD_Result res;
  const char *id = jstr(row, "id");
  char st[32] = "";
  if (nseg == 1 && !strcmp(method, "GET")) {
    res = reply_json(c, 200, run_json(s, row));
  } else if (nseg == 1 && !strcmp(method, "DELETE")) {
    lc_serve_run_status(s, id, st, sizeof st);
    if (!waits_or_ends(st)) {
      res = reply_err(s, c, 409, "the run is active: cancel it first");
    } else {
      char err[256];
      lc_dstore_exec(s->ds, NULL, err, sizeof err, "UPDATE d_runs SET deleted=1 WHERE id=?", "s",
                     id);
      res = reply_json(c, 204, NULL);
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
    else res = reply_json(c, 202, run_json(s, row));
  } else if (nseg == 2 && (!strcmp(seg[1], "join") || !strcmp(seg[1], "wait")) &&
             !strcmp(method, "GET")) {
    /* GET /runs/{id}/wait is the Agent Protocol's: {run, values}; join
     * (LangGraph's) answers the values. */
    int ap = !thread && !strcmp(seg[1], "wait");
    if (atomic_fetch_add(&s->sse_clients, 1) >= s->max_streams) {
      atomic_fetch_sub(&s->sse_clients, 1);
      res = reply_err(s, c, 503, "too many waits open: retry later");
    } else {
      res = park_wait(c, row, ap ? WAIT_AP : WAIT_OUTCOME); /* sse_clients: until it answers */
    }
  } else if (nseg == 2 && !strcmp(seg[1], "stream") && !strcmp(method, "GET")) {
    res = stream_run(s, c, tenant, row, query_tokens(c));
  } else {
    res = reply_err(s, c, 404, "no such route");
  }
  cJSON_Delete(row);
  return res;
}

static cJSON *state_of(struct lc_serve *s, const cJSON *trow) {
  cJSON *t = thread_json(s, trow);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddItemToObject(o, "values", cJSON_DetachItemFromObject(t, "values"));
  cJSON *ints = thread_interrupts(s, jstr(trow, "id"));
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

/* The Agent Protocol's streaming commands answer 200 with an envelope:
 * {"type": "success", "id", "result"} or {"type": "error", "id", "error",
 * "message"}. */
static cJSON *cmd_env(const cJSON *id, cJSON *result, const char *error,
                      const char *message) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "type", result ? "success" : "error");
  cJSON_AddItemToObject(o, "id", id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull());
  if (result) {
    cJSON_AddItemToObject(o, "result", result);
  } else {
    cJSON_AddStringToObject(o, "error", error);
    cJSON_AddStringToObject(o, "message", message);
  }
  return o;
}

static cJSON *cmd_fail(unsigned *code, char *why, size_t wn, unsigned c, const char *msg) {
  *code = c;
  snprintf(why, wn, "%s", msg);
  return NULL;
}

/* POST /threads/{id}/commands (and a WebSocket's commands, c NULL): run.start (a new run; the answer when the
 * thread's run waits for one), input.respond (the answer, by interrupt id:
 * the waiting run's id) and state.get. The thread is created by the first
 * run.start when it does not exist. */
static cJSON *command_exec(struct lc_serve *s, struct MHD_Connection *c, const char *tenant,
                           const char *thread, const cJSON *body, unsigned *code, char *why,
                           size_t wn) {
  const cJSON *id = cJSON_GetObjectItem(body, "id");
  const char *method = jstr(body, "method");
  const cJSON *params = cJSON_GetObjectItem(body, "params");
  if (!cJSON_IsObject(body) || !cJSON_IsNumber(id) || id->valuedouble < 0 || !method ||
      (params && !cJSON_IsObject(params)))
    return cmd_fail(code, why, wn, 422, "a command is {\"id\": N, \"method\": M, \"params\": {...}}");
  cJSON *trow = thread_row(s, tenant, thread);
  int start = !strcmp(method, "run.start"), respond = !strcmp(method, "input.respond");
  if (!trow) {
    cJSON *ex = query(s, "SELECT tenant FROM d_threads WHERE id=?", "s", thread);
    int taken = cJSON_GetArraySize(ex) > 0; /* another tenant's: not told */
    cJSON_Delete(ex);
    if (!start || taken || strlen(thread) > 64) return cmd_fail(code, why, wn, 404, "thread not found");
  }
  if (!strcmp(method, "input.inject")) { /* for the run's next question (inbox.c) */
    const char *ecode = NULL;
    char m[512] = "";
    cJSON *r = lc_inbox_inject(s, tenant, thread, params, &ecode, m, sizeof m);
    cJSON_Delete(trow);
    return cmd_env(id, r, ecode, m);
  }
  if (trow) { /* state.listCheckpoints, state.fork, agent.getTree (tstate.c) */
    const char *ecode = NULL;
    char m[512] = "";
    cJSON *r = lc_tstate_command(s, tenant, thread, method, params, &ecode, m, sizeof m);
    if (r || ecode) {
      cJSON_Delete(trow);
      return cmd_env(id, r, ecode, m);
    }
  }
  if (!start && !respond && strcmp(method, "state.get")) {
    cJSON_Delete(trow);
    return cmd_env(id, NULL, "unknown_command",
                     "supported: run.start, input.respond, input.inject, state.get, "
                     "state.listCheckpoints, state.fork, agent.getTree");
  }
  if (!strcmp(method, "state.get")) {
    cJSON *st = state_of(s, trow);
    cJSON_Delete(trow);
    return cmd_env(id, st, NULL, NULL);
  }
  const char *st = trow ? thread_status(s, thread) : "idle";
  if (start && !strcmp(st, "busy")) { /* the protocol: input for the active run (inbox.c) */
    const char *ecode = NULL;
    char m[512] = "";
    char *text = answer_text(cJSON_GetObjectItem(params, "input"));
    cJSON *r = text ? lc_inbox_inject_text(s, tenant, thread, text, &ecode, m, sizeof m) : NULL;
    if (!text) snprintf(m, sizeof m, "input is required");
    free(text);
    cJSON_Delete(trow);
    return cmd_env(id, r, ecode ? ecode : "invalid_argument", m);
  }
  cJSON *rb = cJSON_CreateObject(); /* the run request it stands for */
  const char *agent = jstr(params, "assistant_id");
  if (!agent) agent = jstr(params, "assistantId");
  if (!agent) agent = jstr(params, "agent_id");
  const cJSON *input = cJSON_GetObjectItem(params, start ? "input" : "response");
  char msg[512] = "";
  cJSON *res;
  if (respond || !strcmp(st, "interrupted")) {
    /* The answer to the thread's waiting run. */
    const char *iid = jstr(params, "interrupt_id");
    if (!iid) iid = jstr(params, "interruptId");
    cJSON *w = query(s,
                     "SELECT d.id AS id, d.agent AS agent FROM d_runs d JOIN runs r ON "
                     "r.id=d.id WHERE d.thread_id=? AND d.deleted=0 AND "
                     "r.status='waiting_input' LIMIT 1",
                     "s", thread);
    const cJSON *wr = cJSON_GetArrayItem(w, 0);
    if (!wr || (iid && strcmp(iid, jstr(wr, "id")))) {
      cJSON_Delete(w);
      cJSON_Delete(rb);
      cJSON_Delete(trow);
      return cmd_env(id, NULL, "no_such_interrupt",
                       "no run of this thread waits for that answer");
    }
    if (!input) {
      cJSON_Delete(w);
      cJSON_Delete(rb);
      cJSON_Delete(trow);
      return cmd_env(id, NULL, "invalid_argument",
                       start ? "input (the answer) is required" : "response is required");
    }
    cJSON_AddStringToObject(rb, "assistant_id", agent ? agent : jstr(wr, "agent"));
    cJSON_AddItemToObject(cJSON_AddObjectToObject(rb, "command"), "resume",
                          cJSON_Duplicate(input, 1));
    cJSON_Delete(w);
  } else {
    if (!agent) {
      cJSON_Delete(rb);
      cJSON_Delete(trow);
      return cmd_env(id, NULL, "invalid_argument", "assistant_id is required");
    }
    cJSON_AddStringToObject(rb, "assistant_id", agent);
    cJSON_AddItemToObject(rb, "input", input ? cJSON_Duplicate(input, 1) : cJSON_CreateNull());
    const cJSON *md = cJSON_GetObjectItem(params, "metadata");
    if (md) cJSON_AddItemToObject(rb, "metadata", cJSON_Duplicate(md, 1));
    cJSON_AddStringToObject(rb, "if_not_exists", "create");
  }
  cJSON *row = NULL;
  unsigned rcode = create_run(s, c, tenant, thread, rb, &row, msg, sizeof msg);
  if (rcode == 200) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "run_id", jstr(row, "id"));
    res = cmd_env(id, r, NULL, NULL);
  } else {
    /* The protocol's closed set of codes: an answer nothing takes is
     * no_such_interrupt; an unknown agent or a refused run invalid. */
    res = cmd_env(id, NULL,
                    cJSON_GetObjectItem(rb, "command") && (rcode == 404 || rcode == 409)
                        ? "no_such_interrupt"
                        : "invalid_argument",
                    msg);
  }
  cJSON_Delete(row);
  cJSON_Delete(rb);
  cJSON_Delete(trow);
  return res;
}

static enum MHD_Result thread_command(struct lc_serve *s, struct MHD_Connection *c,
                                      const char *tenant, const char *thread, const cJSON *body,
                                      int body_ok) {
  if (!body_ok) return reply_err(s, c, 400, "the body is not valid JSON");
  unsigned code = 0;
  char why[200];
  cJSON *env = command_exec(s, c, tenant, thread, body, &code, why, sizeof why);
  return env ? reply_json(c, 200, env) : reply_err(s, c, code, why);
}

/* The thread's state after its finished run `run` (a checkpoint, as
 * history lists it), or NULL. */
static cJSON *state_at(struct lc_serve *s, const char *thread, const char *run) {
  cJSON *rows = query(s,
                      "SELECT d.id AS id, r.result AS result, r.updated AS updated FROM d_runs d "
                      "JOIN runs r ON r.id=d.id WHERE d.thread_id=? AND d.id=? AND d.deleted=0 "
                      "AND r.status='finished'",
                      "ss", thread, run);
  const cJSON *r = cJSON_GetArrayItem(rows, 0);
  cJSON *o = NULL;
  if (r) {
    o = cJSON_CreateObject();
    cJSON *v = jcol(r, "result");
    if (!cJSON_IsObject(v)) {
      cJSON *w = cJSON_CreateObject();
      cJSON_AddItemToObject(w, "output", v);
      v = w;
    }
    cJSON_AddItemToObject(o, "values", v);
    cJSON_AddItemToObject(o, "next", cJSON_CreateArray());
    cJSON_AddItemToObject(o, "tasks", cJSON_CreateArray());
    cJSON_AddItemToObject(o, "metadata", cJSON_CreateObject());
    add_time(o, "created_at", r, "updated");
    cJSON *cp = cJSON_AddObjectToObject(o, "checkpoint");
    cJSON_AddStringToObject(cp, "thread_id", thread);
    cJSON_AddStringToObject(cp, "checkpoint_ns", "");
    cJSON_AddStringToObject(cp, "checkpoint_id", jstr(r, "id"));
  }
  cJSON_Delete(rows);
  return o;
}

static int is_upgrade(struct MHD_Connection *c);
static enum MHD_Result ws_upgrade(struct lc_serve *s, struct MHD_Connection *c,
                                  const char *tenant, const char *thread);

static enum MHD_Result thread_routes(struct lc_serve *s, struct MHD_Connection *c,
                                     const char *method, char **seg, int nseg, const char *tenant,
                                     const cJSON *body, int body_ok) {
  char err[256];
  if (nseg == 3 && !strcmp(seg[2], "stream") && !strcmp(method, "GET") && is_upgrade(c))
    return ws_upgrade(s, c, tenant, seg[1]); /* the Agent Protocol's WebSocket */
  if (nseg == 1 && !strcmp(method, "POST")) { /* create */
    if (!body_ok) return reply_err(s, c, 400, "the body is not valid JSON");
    if (body && !cJSON_IsObject(body)) return reply_err(s, c, 422, "the body must be an object");
    const cJSON *md = cJSON_GetObjectItem(body, "metadata");
    if (md && !cJSON_IsObject(md) && !cJSON_IsNull(md))
      return reply_err(s, c, 422, "metadata must be an object");
    char id[65];
    const char *want = jstr(body, "thread_id");
    if (want && (strlen(want) > 64 || !*want)) return reply_err(s, c, 422, "thread_id too long");
    if (want) snprintf(id, sizeof id, "%s", want);
    else lc_serve_uuid(id);
    cJSON *ex = query(s, "SELECT tenant FROM d_threads WHERE id=?", "s", id);
    const cJSON *exr = cJSON_GetArrayItem(ex, 0);
    if (exr) {
      int mine = !strcmp(jstr(exr, "tenant"), tenant);
      cJSON_Delete(ex);
      const char *ie = jstr(body, "if_exists");
      if (mine && ie && !strcmp(ie, "do_nothing")) {
        cJSON *t = thread_row(s, tenant, id);
        enum MHD_Result r = reply_json(c, 200, thread_json(s, t));
        cJSON_Delete(t);
        return r;
      }
      return reply_err(s, c, 409, "a thread with this id exists");
    }
    cJSON_Delete(ex);
    /* LangGraph's supersteps: updates to apply in order; luact's are
     * values (merged, as updateState); a command has no graph to steer. */
    const cJSON *ss = cJSON_GetObjectItem(body, "supersteps"), *step, *u;
    if (ss && !cJSON_IsNull(ss) && !cJSON_IsArray(ss))
      return reply_err(s, c, 422, "supersteps must be a list");
    cJSON_ArrayForEach(step, ss) cJSON_ArrayForEach(u, cJSON_GetObjectItem(step, "updates")) {
      const cJSON *uv = cJSON_GetObjectItem(u, "values"), *uc = cJSON_GetObjectItem(u, "command");
      if ((uc && !cJSON_IsNull(uc)) || (uv && !cJSON_IsNull(uv) && !cJSON_IsObject(uv)))
        return reply_err(s, c, 422, "a superstep's update is {\"values\": {...}} here");
    }
    char *mt = md && cJSON_IsObject(md) ? cJSON_PrintUnformatted(md) : strdup("{}");
    double now = lc_serve_now();
    int rc = lc_dstore_exec(s->ds, NULL, err, sizeof err,
                            "INSERT INTO d_threads(id, tenant, created, updated, metadata) "
                            "VALUES(?,?,?,?,?)",
                            "ssdds", id, tenant, now, now, mt);
    cJSON_free(mt);
    if (rc) return reply_err(s, c, rc == LC_ESTATE ? 409 : 500, err);
    cJSON_ArrayForEach(step, ss) cJSON_ArrayForEach(u, cJSON_GetObjectItem(step, "updates")) {
      cJSON *uo = NULL;
      if (!cJSON_IsObject(cJSON_GetObjectItem(u, "values"))) continue;
      unsigned uc = lc_tstate_route(s, "POST", tenant, id, u, 1, &uo);
      cJSON_Delete(uo);
      if (uc >= 400) return reply_err(s, c, 500, "cannot apply the supersteps");
    }
    cJSON *t = thread_row(s, tenant, id);
    enum MHD_Result r = reply_json(c, 200, thread_json(s, t));
    cJSON_Delete(t);
    return r;
  }
  if (nseg == 2 && (!strcmp(seg[1], "search") || !strcmp(seg[1], "count")) &&
      !strcmp(method, "POST")) {
    if (!body_ok) return reply_err(s, c, 400, "the body is not valid JSON");
    if (body && !cJSON_IsObject(body)) return reply_err(s, c, 422, "the body must be an object");
    int count = !strcmp(seg[1], "count"); /* LangGraph's threads.count: how many match */
    long limit = count ? LONG_MAX : qnum(c, body, "limit", 10),
         offset = count ? 0 : qnum(c, body, "offset", 0);
    const cJSON *md = cJSON_GetObjectItem(body, "metadata");
    const cJSON *vf = cJSON_GetObjectItem(body, "values"); /* LangGraph's: on the state */
    const char *stf = jstr(body, "status");
    /* LangGraph's sort_by and sort_order (status is no column: refused) */
    const char *sb = jstr(body, "sort_by"), *so = jstr(body, "sort_order");
    const char *col = !sb || !strcmp(sb, "created_at") ? "created"
                      : !strcmp(sb, "updated_at")      ? "updated"
                      : !strcmp(sb, "thread_id")       ? "id"
                                                       : NULL;
    if (!col) return reply_err(s, c, 422, "sort_by is one of thread_id, created_at, updated_at");
    if (so && strcasecmp(so, "asc") && strcasecmp(so, "desc"))
      return reply_err(s, c, 422, "sort_order is asc or desc");
    char tsql[120];
    snprintf(tsql, sizeof tsql, "SELECT * FROM d_threads WHERE tenant=? ORDER BY %s %s, id", col,
             so && !strcasecmp(so, "asc") ? "ASC" : "DESC");
    cJSON *rows = query(s, tsql, "s", tenant);
    cJSON *arr = cJSON_CreateArray();
    long seen = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, rows) {
      cJSON *j = thread_json(s, r);
      if ((md && !md_match(cJSON_GetObjectItem(j, "metadata"), md)) ||
          (cJSON_IsObject(vf) && !md_match(cJSON_GetObjectItem(j, "values"), vf)) ||
          (stf && strcmp(jstr(j, "status"), stf)) || seen++ < offset ||
          cJSON_GetArraySize(arr) >= limit) {
        cJSON_Delete(j);
        continue;
      }
      cJSON_AddItemToArray(arr, j);
    }
    cJSON_Delete(rows);
    if (count) {
      cJSON *n = cJSON_CreateNumber(cJSON_GetArraySize(arr));
      cJSON_Delete(arr);
      return reply_json(c, 200, n);
    }
    return reply_json(c, 200, arr);
  }
  if (nseg == 3 && !strcmp(seg[2], "commands") && !strcmp(method, "POST"))
    return thread_command(s, c, tenant, seg[1], body, body_ok);
  if (nseg < 2) return reply_err(s, c, 404, "no such route");
  cJSON *trow = thread_row(s, tenant, seg[1]);
  if (!trow) return reply_err(s, c, 404, "thread not found");
  const char *tid = jstr(trow, "id");
  enum MHD_Result res;
  if (nseg == 2 && !strcmp(method, "GET")) {
    res = reply_json(c, 200, thread_json(s, trow));
  } else if (nseg == 2 && !strcmp(method, "PATCH")) {
    const cJSON *md = cJSON_GetObjectItem(body, "metadata");
    if (!body_ok) res = reply_err(s, c, 400, "the body is not valid JSON");
    else if (!cJSON_IsObject(md)) res = reply_err(s, c, 422, "metadata (an object) is required");
    else {
      cJSON *cur = jcol(trow, "metadata");
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
      cJSON *t = thread_row(s, tenant, tid);
      res = reply_json(c, 200, thread_json(s, t));
      cJSON_Delete(t);
    }
  } else if (nseg == 2 && !strcmp(method, "DELETE")) {
    cJSON *rows = query(s, "SELECT id FROM d_runs WHERE thread_id=? AND deleted=0", "s", tid);
    const cJSON *r;
    cJSON_ArrayForEach(r, rows) lc_serve_cancel(s, jstr(r, "id"), 1);
    cJSON_Delete(rows);
    lc_dstore_exec(s->ds, NULL, err, sizeof err, "UPDATE d_runs SET deleted=1 WHERE thread_id=?",
                   "s", tid);
    lc_dstore_exec(s->ds, NULL, err, sizeof err, "DELETE FROM d_threads WHERE id=?", "s", tid);
    res = reply_json(c, 204, NULL);
  } else if (nseg == 3 && !strcmp(seg[2], "state") && !strcmp(method, "GET")) {
    res = reply_json(c, 200, state_of(s, trow));
  } else if (nseg == 3 && !strcmp(seg[2], "history") &&
             (!strcmp(method, "GET") || !strcmp(method, "POST"))) {
    long limit = qnum(c, body, "limit", 10);
    cJSON *arr = cJSON_CreateArray();
    cJSON_AddItemToArray(arr, state_of(s, trow));
    cJSON *rows = query(s,
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
      cJSON *o = cJSON_CreateObject();
      cJSON *v = jcol(r, "result");
      if (!cJSON_IsObject(v)) {
        cJSON *w = cJSON_CreateObject();
        cJSON_AddItemToObject(w, "output", v);
        v = w;
      }
      cJSON_AddItemToObject(o, "values", v);
      cJSON_AddItemToObject(o, "next", cJSON_CreateArray());
      cJSON_AddItemToObject(o, "tasks", cJSON_CreateArray());
      cJSON_AddItemToObject(o, "metadata", cJSON_CreateObject());
      add_time(o, "created_at", r, "updated");
      cJSON *cp = cJSON_AddObjectToObject(o, "checkpoint");
      cJSON_AddStringToObject(cp, "thread_id", tid);
      cJSON_AddStringToObject(cp, "checkpoint_ns", "");
      cJSON_AddStringToObject(cp, "checkpoint_id", jstr(r, "id"));
      cJSON_AddItemToArray(arr, o);
    }
    cJSON_Delete(rows);
    /* LangGraph's paging (before: a checkpoint's config; the states older
     * than it) and metadata filter, then the limit. */
    const char *bf = jstr(cJSON_GetObjectItem(cJSON_GetObjectItem(body, "before"), "configurable"),
                          "checkpoint_id");
    const cJSON *hmd = cJSON_GetObjectItem(body, "metadata");
    cJSON *page = cJSON_CreateArray();
    for (int past = !bf; cJSON_GetArraySize(arr);) {
      cJSON *e = cJSON_DetachItemFromArray(arr, 0);
      const char *eid = jstr(cJSON_GetObjectItem(e, "checkpoint"), "checkpoint_id");
      int keep = past && cJSON_GetArraySize(page) < limit &&
                 (!cJSON_IsObject(hmd) || md_match(cJSON_GetObjectItem(e, "metadata"), hmd));
      past |= eid && bf && !strcmp(eid, bf);
      if (keep) cJSON_AddItemToArray(page, e);
      else cJSON_Delete(e);
    }
    cJSON_Delete(arr);
    res = reply_json(c, 200, page);
  } else if (nseg == 3 && !strcmp(seg[2], "copy") && !strcmp(method, "POST")) {
    char id[37];
    lc_serve_uuid(id);
    double now = lc_serve_now();
    lc_dstore_exec(s->ds, NULL, err, sizeof err,
                   "INSERT INTO d_threads(id, tenant, created, updated, metadata, vals) SELECT ?, "
                   "tenant, ?, ?, metadata, vals FROM d_threads WHERE id=?",
                   "sdds", id, now, now, tid);
    cJSON *t = thread_row(s, tenant, id);
    res = t ? reply_json(c, 200, thread_json(s, t)) : reply_err(s, c, 500, err);
    cJSON_Delete(t);
  } else if (nseg == 3 && !strcmp(seg[2], "stream") && !strcmp(method, "GET")) {
    res = stream_thread(s, c, tenant, tid, NULL);
  } else if (nseg == 3 && !strcmp(seg[2], "stream") && !strcmp(method, "POST")) {
    if (!body_ok) res = reply_err(s, c, 400, "the body is not valid JSON");
    else if (!body) res = reply_err(s, c, 422, "channels (a non-empty list) is required");
    else res = stream_thread(s, c, tenant, tid, body);
  } else if (nseg == 3 && !strcmp(seg[2], "state") &&
             (!strcmp(method, "PATCH") ||
              (!strcmp(method, "POST") && cJSON_GetObjectItem(body, "values")))) {
    cJSON *out = NULL; /* LangGraph's patchState, updateState (tstate.c) */
    unsigned code = lc_tstate_route(s, method, tenant, tid, body, body_ok, &out);
    res = code < 400 ? reply_json(c, code, out) : reply_err(s, c, code, jstr(out, "detail"));
    if (code >= 400) cJSON_Delete(out);
  } else if (((nseg == 3 && !strcmp(seg[2], "state")) ||
              (nseg == 4 && !strcmp(seg[2], "state") && !strcmp(seg[3], "checkpoint"))) &&
             !strcmp(method, "POST")) {
    /* LangGraph's getState at a checkpoint: a checkpoint is a finished
     * run of the thread (its id, as history lists them). */
    const char *cp = jstr(cJSON_GetObjectItem(body, "checkpoint"), "checkpoint_id");
    cJSON *at = cp && *cp ? state_at(s, tid, cp) : NULL;
    if (!body_ok) res = reply_err(s, c, 400, "the body is not valid JSON");
    else if (cp && *cp && !at) res = reply_err(s, c, 404, "no such checkpoint of this thread");
    else res = reply_json(c, 200, at ? at : state_of(s, trow));
    if (!body_ok || !at) cJSON_Delete(at);
  } else if (nseg == 4 && !strcmp(seg[2], "state") && !strcmp(method, "GET")) {
    cJSON *at = state_at(s, tid, seg[3]);
    res = at ? reply_json(c, 200, at) : reply_err(s, c, 404, "no such checkpoint of this thread");
  } else if (nseg >= 3 && !strcmp(seg[2], "runs")) {
    res = run_routes(s, c, method, seg + 3, nseg - 3, tenant, tid, body, body_ok);
  } else {
    res = reply_err(s, c, 404, "no such route");
  }
  cJSON_Delete(trow);
  return res;
}

static enum MHD_Result route(struct lc_serve *s, struct MHD_Connection *c, const char *url,
                             const char *method, struct req *rq) {
  atomic_fetch_add(&s->http_requests, 1);
  if (!strcmp(url, "/healthz")) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    return reply_json(c, 200, o);
  }
  const char *tenant = tenant_of(s, c);
  if (!tenant) {
    atomic_fetch_add(&s->auth_rejected, 1);
    struct MHD_Response *r = MHD_create_response_from_buffer(
        sizeof "{\"detail\":\"a valid bearer token is required\"}" - 1,
        (void *)"{\"detail\":\"a valid bearer token is required\"}", MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    MHD_add_response_header(r, "Content-Type", "application/json");
    atomic_fetch_add(&s->http_errors, 1);
    return send_resp(c, 401, r);
  }
  if (!strcmp(url, "/readyz")) {
    int ok = atomic_load(&s->ready) && lc_dstore_ping(s->ds) == 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", ok ? "ready" : "not ready");
    return reply_json(c, ok ? 200 : 503, o);
  }
  if (!strcmp(url, "/metrics")) return metrics(s, c);
  if (!strcmp(url, "/info") || !strcmp(url, "/ok")) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "version", LUACT_VERSION);
    cJSON_AddBoolToObject(o, "ok", 1);
    return reply_json(c, 200, o);
  }
  /* Segments of the path (no percent-decoding needed: ids are plain). */
  char path[1024];
  snprintf(path, sizeof path, "%s", url);
  char *seg[16];
  int nseg = 0;
  for (char *p = strtok(path, "/"); p && nseg < 16; p = strtok(NULL, "/")) seg[nseg++] = p;
  if (!nseg) return reply_err(s, c, 404, "no such route");
  cJSON *body = NULL;
  int body_ok = 1;
  if (rq->len) {
    body = cJSON_ParseWithLength(rq->body, rq->len);
    body_ok = body != NULL;
  }
  enum MHD_Result res;
  if (!strcmp(seg[0], "agents") || !strcmp(seg[0], "assistants")) {
    if (!body_ok) res = reply_err(s, c, 400, "the body is not valid JSON");
    else res = agent_routes(s, c, method, seg, nseg, body);
  } else if (!strcmp(seg[0], "threads")) {
    res = thread_routes(s, c, method, seg, nseg, tenant, body, body_ok);
  } else if (!strcmp(seg[0], "runs")) {
    res = run_routes(s, c, method, seg + 1, nseg - 1, tenant, NULL, body, body_ok);
  } else if (!strcmp(seg[0], "store")) {
    if (!body_ok) res = reply_err(s, c, 400, "the body is not valid JSON");
    else res = store_routes(s, c, method, seg, nseg, tenant, body);
  } else {
    res = reply_err(s, c, 404, "no such route");
  }
  cJSON_Delete(body);
  return res;
}

/* ---- the thread stream's WebSocket ----
 *
 * GET /threads/{id}/stream with Upgrade: websocket (the Agent Protocol's
 * WebSocket transport): after the 101, the socket is ours. One thread
 * (ws_loop) reads and writes every WebSocket: frames in (ws.c's parser),
 * frames out from a per-connection buffer. Commands and subscriptions run
 * on the workers (ws_job, the connection's parked item): the same
 * commands as POST /threads/{id}/commands plus subscription.subscribe /
 * unsubscribe, whose events are those of POST /threads/{id}/stream, one
 * text message each. Keep-alive: a ping when nothing came for a while; a
 * peer that answers nothing, a frame left half sent, or a reader too slow
 * for what is queued is cut off. */

enum { WS_MAX_SUBS = 8, WS_MAX_CMDS = 32, WS_OUT_CAP = 1 << 20, WS_FILL_BELOW = 256 << 10 };

struct wsc {
  struct lc_work work; /* ws_job; parked for the connection's life */
  struct lc_serve *s;
  struct MHD_UpgradeResponseHandle *urh;
  int fd;
  char tenant[128], thread[65];
  /* the loop's */
  struct lc_ws_parser p;
  double last_rx, ping_at, stall_at, shut_at;
  int ping_out, shut, dead;
  int closing; /* the loop queued a close: what comes in after is not read */
  unsigned char *pre; /* bytes read by libmicrohttpd past the request */
  size_t npre;
  struct wsc *lnext;
  /* under mu */
  pthread_mutex_t mu;
  unsigned char *out;
  size_t olen, ooff, ocap;
  char *cmds[WS_MAX_CMDS];
  size_t cmdlen[WS_MAX_CMDS];
  int ncmd, close_queued;
  /* the worker's (ws_job) */
  struct sse *subs[WS_MAX_SUBS];
  char subid[WS_MAX_SUBS][16];
  int nextsub;
};

static struct {
  int ep, efd, stop, started;
  pthread_t th;
  pthread_mutex_t mu; /* pending */
  struct wsc *pending, *all;
} wl = {.ep = -1, .efd = -1, .mu = PTHREAD_MUTEX_INITIALIZER};

static void ws_wake(void) {
  uint64_t one = 1;
  ssize_t w = write(wl.efd, &one, sizeof one);
  (void)w;
}

/* Appends a frame (any thread; under x->mu); 1 if it did. After a close,
 * nothing. */
static int ws_put_locked(struct wsc *x, int op, const void *data, size_t len) {
  if (x->close_queued) return 0;
  if (x->ooff && x->ooff == x->olen) x->olen = x->ooff = 0;
  if (x->olen + len + 14 > x->ocap) {
    if (x->ooff) { /* the sent part goes first */
      memmove(x->out, x->out + x->ooff, x->olen - x->ooff);
      x->olen -= x->ooff;
      x->ooff = 0;
    }
    if (x->olen + len + 14 > x->ocap) {
      size_t cap = (x->olen + len + 14) * 2;
      unsigned char *b = realloc(x->out, cap);
      if (!b) return 0;
      x->out = b;
      x->ocap = cap;
    }
  }
  x->olen += lc_ws_frame(x->out + x->olen, op, data, len);
  if (op == LC_WS_OP_CLOSE) x->close_queued = 1;
  return 1;
}

static void ws_send(struct wsc *x, int op, const void *data, size_t len) {
  pthread_mutex_lock(&x->mu);
  int put = ws_put_locked(x, op, data, len);
  pthread_mutex_unlock(&x->mu);
  if (put) ws_wake();
}

static void ws_close(struct wsc *x, int code, const char *reason) {
  unsigned char b[125];
  size_t n = strlen(reason);
  if (n > sizeof b - 2) n = sizeof b - 2;
  b[0] = (unsigned char)(code >> 8);
  b[1] = (unsigned char)code;
  memcpy(b + 2, reason, n);
  ws_send(x, LC_WS_OP_CLOSE, b, n + 2);
}

static void ws_send_json(struct wsc *x, cJSON *o) {
  char *t = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!t) return;
  lc_secrets_scrub(t, strlen(t) + 1, LC_SCRUB_JSON); /* never a secret */
  ws_send(x, LC_WS_OP_TEXT, t, strlen(t));
  cJSON_free(t);
}

/* Frees a closed connection (lc_work_kill: the loop let it go). */
static void ws_free(struct lc_work *w) {
  struct wsc *x = (struct wsc *)((char *)w - offsetof(struct wsc, work));
  for (int i = 0; i < WS_MAX_SUBS; i++)
    if (x->subs[i]) sse_free(x->subs[i]);
  for (int i = 0; i < x->ncmd; i++) free(x->cmds[i]);
  lc_ws_parser_free(&x->p);
  free(x->pre);
  free(x->out);
  pthread_mutex_destroy(&x->mu);
  atomic_fetch_sub(&x->s->sse_clients, 1);
  free(x);
}

static cJSON *ws_subscribe(struct wsc *x, const cJSON *id, const cJSON *params) {
  const char *why = NULL;
  int ap = parse_channels(params, &why);
  if (!ap) return cmd_env(id, NULL, "invalid_argument", why);
  int k = 0;
  while (k < WS_MAX_SUBS && x->subs[k]) k++;
  if (k == WS_MAX_SUBS) return cmd_env(id, NULL, "invalid_argument", "too many subscriptions");
  cJSON *row = thread_pick(x->s, x->tenant, x->thread);
  struct sse *e = sse_new(x->s, NULL, x->tenant, row, ap & ap_bit("messages") ? TOK_TUPLE : 0, 1,
                          NULL, ap, x->thread);
  cJSON_Delete(row);
  if (!e) return cmd_env(id, NULL, "unknown_error", "out of memory");
  x->subs[k] = e;
  snprintf(x->subid[k], sizeof x->subid[k], "sub-%d", ++x->nextsub);
  cJSON *r = cJSON_CreateObject();
  cJSON_AddStringToObject(r, "subscriptionId", x->subid[k]);
  return cmd_env(id, r, NULL, NULL);
}

static cJSON *ws_command(struct wsc *x, const char *text, size_t len) {
  cJSON *b = cJSON_ParseWithLength(text, len);
  if (!b) return cmd_env(NULL, NULL, "invalid_argument", "a command is JSON");
  const cJSON *id = cJSON_GetObjectItem(b, "id");
  const char *m = jstr(b, "method");
  const cJSON *params = cJSON_GetObjectItem(b, "params");
  cJSON *env;
  if (!cJSON_IsNumber(id) || id->valuedouble < 0 || !m || (params && !cJSON_IsObject(params))) {
    env = cmd_env(cJSON_IsNumber(id) ? id : NULL, NULL, "invalid_argument",
                  "a command is {\"id\": N, \"method\": M, \"params\": {...}}");
  } else if (!strcmp(m, "subscription.subscribe")) {
    env = ws_subscribe(x, id, params);
  } else if (!strcmp(m, "subscription.unsubscribe")) {
    const char *sid = jstr(params, "subscriptionId");
    int k = 0;
    while (k < WS_MAX_SUBS && !(x->subs[k] && sid && !strcmp(x->subid[k], sid))) k++;
    if (k == WS_MAX_SUBS) {
      env = cmd_env(id, NULL, "no_such_subscription", "no such subscription");
    } else {
      sse_free(x->subs[k]);
      x->subs[k] = NULL;
      env = cmd_env(id, cJSON_CreateObject(), NULL, NULL);
    }
  } else {
    unsigned code = 0;
    char why[200];
    env = command_exec(x->s, NULL, x->tenant, x->thread, b, &code, why, sizeof why);
    if (!env) env = cmd_env(id, NULL, code == 404 ? "not_found" : "invalid_argument", why);
  }
  cJSON_Delete(b);
  return env;
}

/* A WebSocket's item (a worker): its commands, then its subscriptions'
 * new events while the client keeps up. */
static int ws_job(struct lc_work *w) {
  struct wsc *x = (struct wsc *)((char *)w - offsetof(struct wsc, work));
  char *cmds[WS_MAX_CMDS];
  size_t lens[WS_MAX_CMDS];
  pthread_mutex_lock(&x->mu);
  int n = x->ncmd;
  memcpy(cmds, x->cmds, sizeof cmds);
  memcpy(lens, x->cmdlen, sizeof lens);
  x->ncmd = 0;
  pthread_mutex_unlock(&x->mu);
  for (int i = 0; i < n; i++) {
    ws_send_json(x, ws_command(x, cmds[i], lens[i]));
    free(cmds[i]);
  }
  if (atomic_load(&x->s->stopping)) {
    ws_close(x, LC_WS_CLOSE_GOING_AWAY, "server stopping");
    return LC_WORK_KEEP;
  }
  for (int k = 0; k < WS_MAX_SUBS; k++) {
    struct sse *e = x->subs[k];
    for (int round = 0; e && round < 4; round++) {
      pthread_mutex_lock(&x->mu);
      size_t pending = x->olen - x->ooff;
      pthread_mutex_unlock(&x->mu);
      if (pending > WS_FILL_BELOW) break; /* the next tick, once it drained */
      sse_fill(e);
      if (!e->len) break;
      for (size_t off = 0; off < e->len;) {
        size_t m = strlen(e->buf + off);
        ws_send(x, LC_WS_OP_TEXT, e->buf + off, m);
        off += m + 1;
      }
      e->len = e->off = 0;
    }
  }
  return LC_WORK_KEEP;
}

/* The loop lets a connection go: libmicrohttpd closes its socket; the
 * loop's sweep frees it (lc_work_kill) once it is off the list. */
static void ws_finish(struct wsc *x) {
  epoll_ctl(wl.ep, EPOLL_CTL_DEL, x->fd, NULL);
  x->dead = 1;
  MHD_upgrade_action(x->urh, MHD_UPGRADE_ACTION_CLOSE);
}

/* Received bytes (the loop). */
static void ws_input(struct wsc *x, const unsigned char *b, size_t n) {
  x->last_rx = mono();
  x->ping_out = 0;
  if (x->shut || x->closing) return; /* after our close: only waiting for theirs */
  while (n) {
    size_t used = 0;
    int rc = lc_ws_feed(&x->p, b, n, &used);
    b += used;
    n -= used;
    if (rc < 0) {
      x->closing = 1;
      ws_close(x, -rc, -rc == LC_WS_CLOSE_TOO_BIG ? "message too big"
                       : -rc == LC_WS_CLOSE_BAD_DATA ? "invalid UTF-8"
                                                     : "protocol error");
      return;
    }
    if (rc == LC_WS_NEED) break;
    if (rc == LC_WS_PING) {
      ws_send(x, LC_WS_OP_PONG, x->p.data, x->p.len);
    } else if (rc == LC_WS_CLOSED) {
      int code = x->p.close_code ? x->p.close_code : LC_WS_CLOSE_NORMAL;
      x->closing = 1;
      ws_close(x, code, ""); /* the echo (RFC 6455 5.5.1) */
      return;
    } else if (rc == LC_WS_MESSAGE) {
      if (x->p.op != LC_WS_OP_TEXT) {
        x->closing = 1;
        ws_close(x, LC_WS_CLOSE_UNSUPPORTED, "commands are text");
        return;
      }
      pthread_mutex_lock(&x->mu);
      int full = x->ncmd == WS_MAX_CMDS;
      char *t = full ? NULL : malloc(x->p.len + 1);
      if (t) {
        memcpy(t, x->p.data, x->p.len);
        t[x->p.len] = 0;
        x->cmdlen[x->ncmd] = x->p.len;
        x->cmds[x->ncmd++] = t;
      }
      pthread_mutex_unlock(&x->mu);
      if (!t) {
        x->closing = 1;
        ws_close(x, LC_WS_CLOSE_POLICY, "too many commands pending");
        return;
      }
      lc_work_kick(&x->work);
    }
  }
}

/* Reads what there is (the loop); 0, or -1 when the connection is done. */
static int ws_read(struct wsc *x) {
  unsigned char b[16384];
  if (x->shut == 2) return 0; /* the peer is gone: only our close to send */
  for (int i = 0; i < 4; i++) {
    ssize_t k = recv(x->fd, b, sizeof b, 0);
    if (k > 0) {
      ws_input(x, b, (size_t)k);
      continue;
    }
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    if (k < 0 && errno == EINTR) continue;
    /* EOF or an error. A frame cut short is a protocol error; a close we
     * queued still goes out (the peer may only have half closed). */
    if (k == 0 && !x->shut) {
      if (!x->closing && lc_ws_mid_frame(&x->p)) {
        x->closing = 1;
        ws_close(x, LC_WS_CLOSE_PROTOCOL, "truncated frame");
      }
      if (x->closing) {
        x->shut_at = mono();
        x->shut = 2; /* done once it is out */
        return 0;
      }
    }
    return -1;
  }
  return 0;
}

/* Sends what is queued, keeps time (the loop); 0, or -1: done. Stopping,
 * a client gets 2 s at most to take the rest. */
static int ws_service(struct wsc *x, double now, int stop) {
  struct lc_serve *s = x->s;
  double limit = stop && s->conn_timeout_s > 2 ? 2 : s->conn_timeout_s;
  double every = s->conn_timeout_s / 2.0 < 15 ? s->conn_timeout_s / 2.0 : 15;
  if (!x->shut && !x->ping_out && now - x->last_rx >= every) {
    ws_send(x, LC_WS_OP_PING, "", 0);
    x->ping_out = 1;
    x->ping_at = now;
  }
  if (!x->shut && x->ping_out && now - x->ping_at > (s->conn_timeout_s > every ? s->conn_timeout_s : every))
    return -1; /* nothing came back */
  if (!x->shut && !x->closing && lc_ws_mid_frame(&x->p) && now - x->last_rx > s->conn_timeout_s) {
    x->closing = 1;
    ws_close(x, LC_WS_CLOSE_PROTOCOL, "incomplete frame");
  }
  pthread_mutex_lock(&x->mu);
  int err = 0;
  while (x->ooff < x->olen) {
    ssize_t k = send(x->fd, x->out + x->ooff, x->olen - x->ooff, MSG_NOSIGNAL);
    if (k > 0) {
      x->ooff += (size_t)k;
      x->stall_at = now;
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    err = 1;
    break;
  }
  size_t pending = x->olen - x->ooff;
  int closed = x->close_queued;
  pthread_mutex_unlock(&x->mu);
  if (err) return -1;
  if (!pending) x->stall_at = now;
  if (pending && now - x->stall_at > limit) return -1; /* a slow client */
  if (closed && !pending && x->shut != 1) {
    /* Our close is out: the peer's close, or its EOF, ends it. */
    shutdown(x->fd, SHUT_WR);
    if (!x->shut) x->shut_at = now;
    if (x->shut == 2) return -1;
    x->shut = 1;
  }
  if (x->shut == 1 && now - x->shut_at > 2) return -1;
  struct epoll_event ev = {.events = (pending ? EPOLLOUT : 0) |
                                     (pending > WS_OUT_CAP || x->shut == 2 ? 0 : EPOLLIN),
                           .data.ptr = x};
  epoll_ctl(wl.ep, EPOLL_CTL_MOD, x->fd, &ev);
  return 0;
}

static void *ws_loop(void *arg) {
  (void)arg;
  struct epoll_event evs[64];
  for (;;) {
    int n = epoll_wait(wl.ep, evs, 64, 100);
    double now = mono();
    for (int i = 0; i < n; i++) {
      if (!evs[i].data.ptr) {
        uint64_t v;
        ssize_t r = read(wl.efd, &v, sizeof v);
        (void)r;
        continue;
      }
      struct wsc *x = evs[i].data.ptr;
      if (x->dead) continue;
      if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && ws_read(x) < 0) ws_finish(x);
    }
    pthread_mutex_lock(&wl.mu);
    struct wsc *add = wl.pending;
    wl.pending = NULL;
    int stop = wl.stop;
    pthread_mutex_unlock(&wl.mu);
    while (add) {
      struct wsc *x = add;
      add = x->lnext;
      struct epoll_event ev = {.events = EPOLLIN, .data.ptr = x};
      x->lnext = wl.all;
      wl.all = x;
      if (epoll_ctl(wl.ep, EPOLL_CTL_ADD, x->fd, &ev)) {
        ws_finish(x);
        continue;
      }
      if (x->npre) ws_input(x, x->pre, x->npre);
      lc_work_park(&x->work); /* subscriptions follow run changes */
    }
    for (struct wsc **pp = &wl.all; *pp;) {
      struct wsc *x = *pp;
      if (!x->dead && stop) ws_close(x, LC_WS_CLOSE_GOING_AWAY, "server stopping");
      if (!x->dead && ws_service(x, now, stop) < 0) ws_finish(x);
      if (x->dead) {
        *pp = x->lnext;
        lc_work_kill(&x->work); /* now, or after its run on a worker */
        continue;
      }
      pp = &x->lnext;
    }
    if (stop && !wl.all) break;
  }
  return NULL;
}

/* libmicrohttpd's upgrade callback (its thread): the socket is ours. */
static void ws_upgraded(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra,
                        size_t nextra, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh) {
  (void)c;
  struct lc_serve *s = cls;
  struct req *rq = con_cls;
  struct wsc *x = calloc(1, sizeof *x);
  if (x && nextra && !(x->pre = malloc(nextra))) {
    free(x);
    x = NULL;
  }
  if (!x || !rq) {
    free(x);
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
    return; /* the stream slot goes back in completed() */
  }
  rq->ws_slot = 0; /* the connection's now */
  x->s = s;
  x->urh = urh;
  x->fd = sock;
  snprintf(x->tenant, sizeof x->tenant, "%s", rq->ws_tenant);
  snprintf(x->thread, sizeof x->thread, "%s", rq->ws_thread);
  if (nextra) memcpy(x->pre, extra, nextra);
  x->npre = nextra;
  pthread_mutex_init(&x->mu, NULL);
  lc_ws_parser_init(&x->p, (size_t)s->max_body);
  x->last_rx = x->stall_at = mono();
  x->work.run = ws_job;
  x->work.free_fn = ws_free;
  int fl = fcntl(sock, F_GETFL);
  if (fl >= 0) fcntl(sock, F_SETFL, fl | O_NONBLOCK);
  pthread_mutex_lock(&wl.mu);
  x->lnext = wl.pending;
  wl.pending = x;
  pthread_mutex_unlock(&wl.mu);
  ws_wake();
}

static int header_has(struct MHD_Connection *c, const char *h, const char *token) {
  const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, h);
  size_t n = strlen(token);
  for (const char *p = v; p && *p; p++)
    if (!strncasecmp(p, token, n) && (p == v || strchr(" ,\t", p[-1])) &&
        (!p[n] || strchr(" ,\t", p[n])))
      return 1;
  return 0;
}

static int is_upgrade(struct MHD_Connection *c) { return header_has(c, "Upgrade", "websocket"); }

/* GET /threads/{id}/stream with Upgrade: websocket (a worker). The thread
 * may not exist yet (run.start creates it) unless another tenant has it. */
static enum MHD_Result ws_upgrade(struct lc_serve *s, struct MHD_Connection *c,
                                  const char *tenant, const char *thread) {
  const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Key");
  const char *ver = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Version");
  if (!header_has(c, "Connection", "upgrade") || !key || strlen(key) != 24)
    return reply_err(s, c, 400, "a WebSocket upgrade needs Connection: Upgrade and a "
                                "Sec-WebSocket-Key");
  if (!ver || strcmp(ver, "13")) {
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Sec-WebSocket-Version", "13");
    atomic_fetch_add(&s->http_errors, 1);
    return send_resp(c, 426, r);
  }
  cJSON *t = thread_row(s, tenant, thread);
  if (!t) {
    cJSON *ex = query(s, "SELECT tenant FROM d_threads WHERE id=?", "s", thread);
    int taken = cJSON_GetArraySize(ex) > 0; /* another tenant's: not told */
    cJSON_Delete(ex);
    if (taken || strlen(thread) > 64) return reply_err(s, c, 404, "thread not found");
  }
  cJSON_Delete(t);
  if (atomic_fetch_add(&s->sse_clients, 1) >= s->max_streams) {
    atomic_fetch_sub(&s->sse_clients, 1);
    atomic_fetch_add(&s->streams_rejected, 1);
    return reply_err(s, c, 503, "too many streams open: retry later");
  }
  struct req *rq = cur_rq;
  rq->ws_slot = 1; /* given back by completed() unless the upgrade takes it */
  snprintf(rq->ws_tenant, sizeof rq->ws_tenant, "%s", tenant);
  snprintf(rq->ws_thread, sizeof rq->ws_thread, "%s", thread);
  char acc[29];
  lc_ws_accept(key, acc);
  struct MHD_Response *r = MHD_create_response_for_upgrade(ws_upgraded, s);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, "Upgrade", "websocket");
  MHD_add_response_header(r, "Sec-WebSocket-Accept", acc);
  return send_resp(c, 101, r);
}

static int ws_start(struct lc_serve *s, char *err, size_t n) {
  (void)s;
  wl.stop = 0;
  wl.ep = epoll_create1(EPOLL_CLOEXEC);
  wl.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (wl.ep < 0 || wl.efd < 0 || epoll_ctl(wl.ep, EPOLL_CTL_ADD, wl.efd, &ev) ||
      pthread_create(&wl.th, NULL, ws_loop, NULL)) {
    snprintf(err, n, "cannot start the WebSocket loop");
    if (wl.ep >= 0) close(wl.ep);
    if (wl.efd >= 0) close(wl.efd);
    wl.ep = wl.efd = -1;
    return LC_EIO;
  }
  wl.started = 1;
  return 0;
}

/* Closes every WebSocket (1001) and ends the loop. */
static void ws_stop(void) {
  if (!wl.started) return;
  pthread_mutex_lock(&wl.mu);
  wl.stop = 1;
  pthread_mutex_unlock(&wl.mu);
  ws_wake();
  pthread_join(wl.th, NULL);
  wl.started = 0;
  close(wl.ep);
  close(wl.efd);
  wl.ep = wl.efd = -1;
}

/* A route on a worker, its connection suspended (handler). */
static int route_job(struct lc_work *w) {
  struct req *rq = (struct req *)((char *)w - offsetof(struct req, work));
  cur_rq = rq;
  enum MHD_Result r = route(rq->s, rq->c, rq->url, rq->method, rq);
  cur_rq = NULL;
  if (rq->work.want_park) return LC_WORK_KEEP; /* a wait: parked (wait_job) */
  if (r != MHD_YES && rq->resp) { /* the connection is to be closed */
    MHD_destroy_response(rq->resp);
    rq->resp = NULL;
  }
  return hand_back(rq);
}

/* Routes answered on libmicrohttpd's thread: no store, no lock held long. */
static int inline_route(const char *url) {
  return !strcmp(url, "/healthz") || !strcmp(url, "/info") || !strcmp(url, "/ok");
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls) {
  (void)version;
  struct lc_serve *s = cls;
  struct req *rq = *con_cls;
  if (!rq) {
    rq = calloc(1, sizeof *rq);
    if (!rq) return MHD_NO;
    *con_cls = rq;
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl && atol(cl) > s->max_body) rq->too_big = 1;
    return MHD_YES;
  }
  if (rq->handed) {
    /* Resumed: the route ran on a worker and left its reply (none: it
     * failed, and the connection is closed). */
    if (!rq->resp) return MHD_NO;
    struct MHD_Response *r = rq->resp;
    rq->resp = NULL;
    enum MHD_Result ok = MHD_queue_response(c, rq->code, r);
    MHD_destroy_response(r);
    return ok;
  }
  if (*upload_size) {
    if (!rq->too_big && rq->len + *upload_size > (size_t)s->max_body) {
      rq->too_big = 1;
      free(rq->body);
      rq->body = NULL;
      rq->len = 0;
    }
    if (!rq->too_big) {
      char *b = realloc(rq->body, rq->len + *upload_size + 1);
      if (!b) return MHD_NO;
      memcpy(b + rq->len, upload, *upload_size);
      rq->body = b;
      rq->len += *upload_size;
      b[rq->len] = 0;
    }
    *upload_size = 0;
    return MHD_YES;
  }
  if (rq->too_big) {
    atomic_fetch_add(&s->body_rejected, 1);
    return reply_err(s, c, 413, "the request body is over --max-body");
  }
  if (atomic_load(&s->stopping)) return reply_err(s, c, 503, "shutting down");
  if (inline_route(url)) return route(s, c, url, method, rq);
  rq->s = s;
  rq->c = c;
  rq->url = strdup(url);
  rq->method = strdup(method);
  if (!rq->url || !rq->method) return MHD_NO;
  rq->handed = 1;
  rq->work.run = route_job;
  suspend_conn(c); /* before the submit: only then may a worker resume it */
  lc_work_submit(&rq->work);
  return MHD_YES;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
  (void)cls;
  (void)c;
  (void)toe;
  struct req *rq = *con_cls;
  if (rq) {
    free(rq->body);
    free(rq->url);
    free(rq->method);
    if (rq->resp) MHD_destroy_response(rq->resp);
    cJSON_Delete(rq->wait_row);
    if (rq->ws_slot) atomic_fetch_sub(&rq->s->sse_clients, 1); /* never upgraded */
    free(rq);
  }
  *con_cls = NULL;
}

static unsigned pool_size(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 2 ? 2 : n > 4 ? 4 : (unsigned)n;
}

int lc_api_start(struct lc_serve *s, char *err, size_t n) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)s->port);
  inet_pton(AF_INET, s->host, &a.sin_addr);
  int rc = lc_work_start(s, s->http_workers > 0 ? s->http_workers : 16, err, n);
  if (rc) return rc;
  if ((rc = ws_start(s, err, n))) {
    lc_work_stop();
    return rc;
  }
  /* A few polling threads with epoll; suspend/resume for streams and
   * waits; upgrade for the WebSocket. */
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
          MHD_ALLOW_UPGRADE | MHD_USE_ITC,
      (uint16_t)s->port, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a,
      MHD_OPTION_THREAD_POOL_SIZE, pool_size(), MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)s->max_conns, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->conn_timeout_s,
      MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
      MHD_OPTION_END);
  if (!d) {
    snprintf(err, n, "cannot listen on %s:%d", s->host, s->port);
    ws_stop();
    lc_work_stop();
    return LC_EIO;
  }
  s->http = d;
  if (s->port == 0) {
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    if (i) s->port = i->port;
  }
  return 0;
}

void lc_api_quiesce(struct lc_serve *s) {
  if (s->http) {
    MHD_socket fd = MHD_quiesce_daemon(s->http);
    (void)fd; /* closed by MHD_stop_daemon */
  }
}

void lc_api_stop(struct lc_serve *s) {
  if (!s->http) return;
  /* stopping is set: parked streams end, waits answer, WebSockets close
   * (1001). libmicrohttpd may not stop with a connection suspended. */
  ws_stop();
  for (int i = 0; i < 400 && atomic_load(&suspended) > 0; i++) {
    lc_work_kick_all();
    lc_serve_wait_change(s, 25);
  }
  if (atomic_load(&suspended) > 0) {
    /* libmicrohttpd would abort: leave it to the process's exit. */
    lc_serve_log(s, "error", "http_stop", NULL, "connections still suspended");
    s->http = NULL;
    return;
  }
  MHD_stop_daemon(s->http);
  s->http = NULL;
  lc_work_stop();
}
