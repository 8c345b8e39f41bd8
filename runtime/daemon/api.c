/* api.c: the HTTP side of `luact serve`: the Agent Protocol routes (and
 * LangGraph's names for them), bearer auth by tenant, SSE from the journal.
 *
 * libmicrohttpd runs a thread per connection (MHD_USE_THREAD_PER_CONNECTION
 * with its own polling thread): a wait or a stream blocks only its own
 * connection's thread, never a run's thread nor another request. Runs
 * execute on threads of their own (daemon.c); nothing here touches a Lua
 * state. Limits: --max-conns is libmicrohttpd's connection limit, and
 * streams and waits together stay under --max-streams (< --max-conns), so
 * /healthz and run creation always find a connection. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lc.h"
#include "secrets.h"
#include "serve.h"
#include "store.h"

struct req {
  char *body;
  size_t len;
  int too_big;
};

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
  enum MHD_Result ok = MHD_queue_response(c, code, r);
  MHD_destroy_response(r);
  return ok;
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
  const char *idem = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
  pthread_mutex_lock(&create_mu);
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
  pthread_mutex_unlock(&create_mu);
  return code;
}

static int waits_or_ends(const char *st) {
  return strcmp(st, "pending") && strcmp(st, "running");
}

/* Blocks this connection's thread until the run ends or waits for input.
 * Returns its status in st. */
static void wait_run(struct lc_serve *s, const char *id, char *st, size_t n) {
  for (;;) {
    if (lc_serve_run_status(s, id, st, n) || waits_or_ends(st)) return;
    if (atomic_load(&s->stopping)) return;
    lc_serve_wait_change(s, 500);
  }
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

/* ---- SSE ---- */

struct sse {
  struct lc_serve *s;
  char run[65], thread[65];
  long seq;   /* last journal line sent */
  int sub;    /* last terminal event sent after seq (0: none) */
  int meta, gap, done, tokens;
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
  size_t need = strlen(event) + (id ? strlen(id) : 0) + strlen(data) + 64;
  if (e->len + need > e->cap) {
    size_t cap = (e->len + need) * 2;
    char *b = realloc(e->buf, cap);
    if (!b) return;
    e->buf = b;
    e->cap = cap;
  }
  int k = id ? snprintf(e->buf + e->len, e->cap - e->len, "event: %s\nid: %s\ndata: %s\n\n",
                        event, id, data)
             : snprintf(e->buf + e->len, e->cap - e->len, "event: %s\ndata: %s\n\n", event, data);
  if (k > 0) e->len += (size_t)k;
}

static void sse_put_json(struct sse *e, const char *event, const char *id, cJSON *data) {
  char *t = cJSON_PrintUnformatted(data);
  cJSON_Delete(data);
  if (!t) return;
  lc_secrets_scrub(t, strlen(t) + 1, LC_SCRUB_JSON); /* never a secret in an event */
  sse_put(e, event, id, t);
  cJSON_free(t);
}

/* Appends what is new: journal lines after e->seq, then, once the run has
 * ended or waits, its terminal events. */
static void sse_fill(struct sse *e) {
  struct lc_serve *s = e->s;
  if (!e->meta) {
    e->meta = 1;
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "run_id", e->run);
    if (e->thread[0]) cJSON_AddStringToObject(m, "thread_id", e->thread);
    sse_put_json(e, "metadata", NULL, m);
    if (e->tokens) {
      /* Token deltas are never journaled: say so instead of a silent gap. */
      cJSON *g = cJSON_CreateObject();
      cJSON_AddStringToObject(g, "missing", "token deltas");
      cJSON_AddStringToObject(g, "reason", "token deltas are not journaled; the complete LLM "
                                           "responses come as steps");
      sse_put_json(e, "luact/gap", NULL, g);
    }
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
    any = 1;
  }
  cJSON_Delete(rows);
  if (any || !waits_or_ends(st)) return;
  if (!strcmp(st, "cancelled") && e->sub >= 2) {
    e->done = 1;
    return;
  }
  if (e->sub >= 2) {
    e->done = 1;
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
  e->done = 1;
  cJSON_Delete(row);
}

/* libmicrohttpd's content reader (this connection's thread): blocks until
 * there is something to send, or 15 s for a keep-alive comment. */
static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  struct sse *e = cls;
  for (;;) {
    if (e->off < e->len) {
      size_t k = e->len - e->off < max ? e->len - e->off : max;
      memcpy(buf, e->buf + e->off, k);
      e->off += k;
      e->last_send = mono();
      return (ssize_t)k;
    }
    e->len = e->off = 0;
    if (e->done || atomic_load(&e->s->stopping)) return MHD_CONTENT_READER_END_OF_STREAM;
    sse_fill(e);
    if (e->len) continue;
    /* Every 15 s, or twice per --conn-timeout when that is shorter (an
     * idle stream would be cut as a slow client). */
    double every = e->s->conn_timeout_s / 2.0 < 15 ? e->s->conn_timeout_s / 2.0 : 15;
    if (mono() - e->last_send >= every) {
      sse_put(e, "", NULL, ""); /* makes room */
      const char ka[] = ": keep-alive\n\n";
      memcpy(e->buf, ka, sizeof ka - 1);
      e->len = sizeof ka - 1;
      continue;
    }
    lc_serve_wait_change(e->s, 250);
  }
}

static void sse_free(void *cls) {
  struct sse *e = cls;
  atomic_fetch_sub(&e->s->sse_clients, 1);
  free(e->buf);
  free(e);
}

/* Parses Last-Event-ID ("N" or "N.k"). */
static void last_event(struct MHD_Connection *c, long *seq, int *sub) {
  *seq = 0;
  *sub = 0;
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
  if (!h) return;
  char *end;
  long n = strtol(h, &end, 10);
  if (n < 0) return;
  *seq = n;
  if (*end == '.') *sub = atoi(end + 1);
}

static int wants_tokens(const cJSON *sm) {
  const cJSON *x;
  if (cJSON_IsString(sm)) return strstr(sm->valuestring, "messages") != NULL;
  cJSON_ArrayForEach(x, sm) if (cJSON_IsString(x) && strstr(x->valuestring, "messages")) return 1;
  return 0;
}

static enum MHD_Result stream_run(struct lc_serve *s, struct MHD_Connection *c, const cJSON *row,
                                  int tokens) {
  if (atomic_fetch_add(&s->sse_clients, 1) >= s->max_streams) {
    atomic_fetch_sub(&s->sse_clients, 1);
    atomic_fetch_add(&s->streams_rejected, 1);
    return reply_err(s, c, 503, "too many streams open: retry later");
  }
  struct sse *e = calloc(1, sizeof *e);
  if (!e) {
    atomic_fetch_sub(&s->sse_clients, 1);
    return MHD_NO;
  }
  e->s = s;
  snprintf(e->run, sizeof e->run, "%s", jstr(row, "id"));
  if (jstr(row, "thread_id")) snprintf(e->thread, sizeof e->thread, "%s", jstr(row, "thread_id"));
  e->tokens = tokens;
  last_event(c, &e->seq, &e->sub);
  if (e->seq > 0) e->meta = !tokens; /* a resumed stream: metadata again only with the gap */
  e->last_send = mono();
  struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, e,
                                                             sse_free);
  if (!r) {
    sse_free(e);
    return MHD_NO;
  }
  MHD_add_response_header(r, "Content-Type", "text/event-stream");
  MHD_add_response_header(r, "Cache-Control", "no-store");
  char loc[200];
  if (e->thread[0])
    snprintf(loc, sizeof loc, "/threads/%s/runs/%s", e->thread, e->run);
  else
    snprintf(loc, sizeof loc, "/runs/%s", e->run);
  MHD_add_response_header(r, "Content-Location", loc);
  enum MHD_Result ok = MHD_queue_response(c, 200, r);
  MHD_destroy_response(r);
  return ok;
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
  fprintf(f, "# HELP luact_sse_clients Open event streams and waits.\n"
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
  if (cJSON_IsNumber(v)) return (long)v->valuedouble;
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
  if (nseg == 2 && !strcmp(seg[1], "search") && !strcmp(method, "POST")) {
    long limit = qnum(c, body, "limit", 10), offset = qnum(c, body, "offset", 0);
    const char *name = jstr(body, "name");
    const char *gid = jstr(body, "graph_id");
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < s->nagents; i++) {
      if (name && !strstr(s->agents[i].id, name)) continue;
      if (gid && strcmp(s->agents[i].id, gid)) continue;
      if (i < offset || cJSON_GetArraySize(arr) >= limit) continue;
      cJSON_AddItemToArray(arr, agent_json(&s->agents[i]));
    }
    return reply_json(c, 200, arr);
  }
  if (nseg >= 2 && !strcmp(method, "GET")) {
    const struct lc_agent *a = lc_serve_agent(s, seg[1]);
    if (!a) return reply_err(s, c, 404, "unknown agent");
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
      res = stream_run(s, c, row, wants_tokens(cJSON_GetObjectItem(body, "stream_mode")));
    } else if (nseg == 1) {
      if (atomic_fetch_add(&s->sse_clients, 1) >= s->max_streams) {
        atomic_fetch_sub(&s->sse_clients, 1);
        cJSON_Delete(row);
        return reply_err(s, c, 503, "too many waits open: retry later");
      }
      char st[32];
      wait_run(s, jstr(row, "id"), st, sizeof st);
      atomic_fetch_sub(&s->sse_clients, 1);
      res = reply_json(c, 200, ap ? ap_wait(s, row, st) : run_outcome(s, row, st));
    } else {
      res = reply_json(c, 200, run_json(s, row));
    }
    cJSON_Delete(row);
    return res;
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
    if (w && (!strcmp(w, "1") || !strcmp(w, "true"))) wait_run(s, id, st, sizeof st);
    res = reply_json(c, 202, run_json(s, row));
  } else if (nseg == 2 && (!strcmp(seg[1], "join") || !strcmp(seg[1], "wait")) &&
             !strcmp(method, "GET")) {
    /* GET /runs/{id}/wait is the Agent Protocol's: {run, values}; join
     * (LangGraph's) answers the values. */
    int ap = !thread && !strcmp(seg[1], "wait");
    if (atomic_fetch_add(&s->sse_clients, 1) >= s->max_streams) {
      atomic_fetch_sub(&s->sse_clients, 1);
      res = reply_err(s, c, 503, "too many waits open: retry later");
    } else {
      wait_run(s, id, st, sizeof st);
      atomic_fetch_sub(&s->sse_clients, 1);
      res = reply_json(c, 200, ap ? ap_wait(s, row, st) : run_outcome(s, row, st));
    }
  } else if (nseg == 2 && !strcmp(seg[1], "stream") && !strcmp(method, "GET")) {
    const char *sm = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "stream_mode");
    res = stream_run(s, c, row, sm && strstr(sm, "messages"));
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

static enum MHD_Result thread_routes(struct lc_serve *s, struct MHD_Connection *c,
                                     const char *method, char **seg, int nseg, const char *tenant,
                                     const cJSON *body, int body_ok) {
  char err[256];
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
    char *mt = md && cJSON_IsObject(md) ? cJSON_PrintUnformatted(md) : strdup("{}");
    double now = lc_serve_now();
    int rc = lc_dstore_exec(s->ds, NULL, err, sizeof err,
                            "INSERT INTO d_threads(id, tenant, created, updated, metadata) "
                            "VALUES(?,?,?,?,?)",
                            "ssdds", id, tenant, now, now, mt);
    cJSON_free(mt);
    if (rc) return reply_err(s, c, rc == LC_ESTATE ? 409 : 500, err);
    cJSON *t = thread_row(s, tenant, id);
    enum MHD_Result r = reply_json(c, 200, thread_json(s, t));
    cJSON_Delete(t);
    return r;
  }
  if (nseg == 2 && !strcmp(seg[1], "search") && !strcmp(method, "POST")) {
    if (!body_ok) return reply_err(s, c, 400, "the body is not valid JSON");
    long limit = qnum(c, body, "limit", 10), offset = qnum(c, body, "offset", 0);
    const cJSON *md = cJSON_GetObjectItem(body, "metadata");
    const char *stf = jstr(body, "status");
    cJSON *rows = query(s, "SELECT * FROM d_threads WHERE tenant=? ORDER BY created DESC", "s",
                        tenant);
    cJSON *arr = cJSON_CreateArray();
    long seen = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, rows) {
      cJSON *j = thread_json(s, r);
      if ((md && !md_match(cJSON_GetObjectItem(j, "metadata"), md)) ||
          (stf && strcmp(jstr(j, "status"), stf)) || seen++ < offset ||
          cJSON_GetArraySize(arr) >= limit) {
        cJSON_Delete(j);
        continue;
      }
      cJSON_AddItemToArray(arr, j);
    }
    cJSON_Delete(rows);
    return reply_json(c, 200, arr);
  }
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
      if (cJSON_GetArraySize(arr) >= limit) break;
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
    res = reply_json(c, 200, arr);
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
    MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ok = MHD_queue_response(c, 401, r);
    MHD_destroy_response(r);
    atomic_fetch_add(&s->http_errors, 1);
    return ok;
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
    res = agent_routes(s, c, method, seg, nseg, body);
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
  return route(s, c, url, method, rq);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
  (void)cls;
  (void)c;
  (void)toe;
  struct req *rq = *con_cls;
  if (rq) {
    free(rq->body);
    free(rq);
  }
  *con_cls = NULL;
}

int lc_api_start(struct lc_serve *s, char *err, size_t n) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)s->port);
  inet_pton(AF_INET, s->host, &a.sin_addr);
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
          MHD_USE_ITC,
      (uint16_t)s->port, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->max_conns, MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned)s->conn_timeout_s, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
      MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
  if (!d) {
    snprintf(err, n, "cannot listen on %s:%d", s->host, s->port);
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
  if (s->http) MHD_stop_daemon(s->http);
  s->http = NULL;
}
