/* apisse.c: event streams from the journal (apisse.h). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apideltas.h"
#include "apireq.h"
#include "apisse.h"
#include "apiview.h"
#include "llm.h"
#include "secrets.h"
#include "serve.h"

static void sse_put(struct lc_stream *e, const char *event, const char *id, const char *data) {
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

int lc_stream_channel_bit(const char *ch) {
  for (int i = 0; ap_channels[i]; i++)
    if (!strcmp(ap_channels[i], ch)) return 1 << i;
  return 0;
}

static void sse_put_json(struct lc_stream *e, const char *event, const char *id, cJSON *data) {
  if (e->ap) {
    /* The protocol's StreamingEvent, on the channels asked for only. */
    const char *ch = ap_channel_of(event);
    if (!(e->ap & lc_stream_channel_bit(ch))) {
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

static void sse_gap(struct lc_stream *e, long from, const char *why) {
  cJSON *g = cJSON_CreateObject();
  cJSON_AddStringToObject(g, "missing", "token deltas");
  cJSON_AddNumberToObject(g, "after_line", (double)from);
  cJSON_AddStringToObject(g, "reason", why);
  sse_put_json(e, "luact/gap", NULL, g);
}

/* One delta as LangGraph's message chunk: "messages-tuple" sends the chunk
 * ([chunk, metadata], event "messages"), "messages" the message so far
 * (event "messages/partial"). Under lc_api_deltas_mu. */
static void sse_delta(struct lc_stream *e, const struct lc_deltas *d, const struct lc_delta_item *i) {
  cJSON *msg = cJSON_CreateObject();
  char mid[160];
  snprintf(mid, sizeof mid, "luact-%s-%s", e->run, i->eff);
  const char *text = i->kind == LC_DELTA_TEXT ? i->text : "";
  if (e->tokens == LC_STREAM_TOK_MESSAGES) {
    if (strcmp(e->acc_eff, i->eff)) { /* a new message: what came before of it */
      snprintf(e->acc_eff, sizeof e->acc_eff, "%s", i->eff);
      e->acc_len = 0;
      for (const struct lc_delta_item *x = d->head; x && x != i; x = x->next)
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
  cJSON_AddStringToObject(msg, "type", e->tokens == LC_STREAM_TOK_TUPLE ? "AIMessageChunk" : "ai");
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
  if (e->tokens == LC_STREAM_TOK_TUPLE) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "run_id", e->run);
    if (e->thread[0]) cJSON_AddStringToObject(m, "thread_id", e->thread);
    cJSON_AddStringToObject(m, "luact_effect", i->eff);
    cJSON_AddItemToArray(data, m);
  }
  sse_put_json(e, e->tokens == LC_STREAM_TOK_TUPLE ? "messages" : "messages/partial", id, data);
}

/* The token deltas after journal line e->seq not sent yet (1: some went
 * out). Deltas this process cannot know of are announced once as a gap. */
static int sse_deltas(struct lc_stream *e) {
  int sent = 0;
  pthread_mutex_lock(&lc_api_deltas_mu);
  const struct lc_deltas *d = lc_api_deltas_find(e->run);
  long b = e->seq;
  if (b > 0 && (!d || b < d->start) && !e->gap && !e->llm_from) {
    /* Only LLM calls stream deltas: where the run made none (yet), no
     * delta can have been sent, and no gap is announced. */
    pthread_mutex_unlock(&lc_api_deltas_mu); /* a store query: not under the lock */
    cJSON *rows = lc_api_query(e->s,
                        "SELECT min(seq) AS m FROM journal WHERE run_id=? AND line LIKE "
                        "'%\"type\":\"intent\"%' AND line LIKE '%\"kind\":\"llm\"%'",
                        "s", e->run);
    const cJSON *mv = cJSON_GetObjectItem(cJSON_GetArrayItem(rows, 0), "m");
    e->llm_from = cJSON_IsNumber(mv) ? (long)mv->valuedouble : LONG_MAX;
    cJSON_Delete(rows);
    pthread_mutex_lock(&lc_api_deltas_mu);
    d = lc_api_deltas_find(e->run);
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
    const struct lc_delta_item *i = e->dl_serial == d->serial && e->dl_at ? e->dl_at->next : d->head;
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
  pthread_mutex_unlock(&lc_api_deltas_mu);
  return sent;
}

/* The run's stream is over. A thread's stream goes on with the thread's
 * next run (created after it), from its start, if there is one. The
 * protocol's stream is connection-scoped: without a next run it stays,
 * idle, for the run's continuation (an answer) or the next run. */
static void sse_finish(struct lc_stream *e) {
  e->done = !e->ap;
  if (!e->thread_mode) return;
  cJSON *rows = lc_api_query(e->s,
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
void lc_stream_fill(struct lc_stream *e) {
  struct lc_serve *s = e->s;
  if (!e->run[0]) {
    /* A thread's stream opened before its first run: idle until one is. */
    cJSON *rows = lc_api_query(s, "SELECT id FROM d_runs WHERE thread_id=? AND tenant=? AND "
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
  if (any || !lc_api_waits_or_ends(st)) return;
  if (!strcmp(st, "cancelled") && e->sub >= 2) {
    sse_finish(e);
    return;
  }
  if (e->sub >= 2) {
    sse_finish(e);
    return;
  }
  /* The tenant was checked when the stream opened. */
  cJSON *rows2 = lc_api_query(s, "SELECT * FROM d_runs WHERE id=?", "s", e->run);
  cJSON *row = cJSON_DetachItemFromArray(rows2, 0);
  cJSON_Delete(rows2);
  char id[48];
  if (e->sub < 1) {
    snprintf(id, sizeof id, "%ld.1", e->seq);
    cJSON *out = row ? lc_api_run_outcome(s, row, st) : cJSON_CreateObject();
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
  cJSON_AddStringToObject(end, "status", lc_api_proto_status(st));
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
  struct lc_stream *e = cls;
  if (e->off < e->len) {
    size_t k = e->len - e->off < max ? e->len - e->off : max;
    memcpy(buf, e->buf + e->off, k);
    e->off += k;
    e->last_send = lc_api_mono();
    return (ssize_t)k;
  }
  e->len = e->off = 0;
  if (e->done || atomic_load(&e->s->stopping)) return MHD_CONTENT_READER_END_OF_STREAM;
  lc_api_suspend(e->c); /* before the park: only then may a worker resume it */
  lc_work_park(&e->work);
  return 0; /* suspended: called again after the resume */
}

/* A parked stream (a worker): new events, or a keep-alive comment when
 * one is due, resume its connection. Every 15 s, or twice per
 * --conn-timeout when that is shorter (an idle stream would be cut as a
 * slow client). */
static int sse_job(struct lc_work *w) {
  struct lc_stream *e = (struct lc_stream *)((char *)w - offsetof(struct lc_stream, work));
  if (!e->done && !atomic_load(&e->s->stopping)) {
    lc_stream_fill(e);
    double every = e->s->conn_timeout_s / 2.0 < 15 ? e->s->conn_timeout_s / 2.0 : 15;
    if (!e->len && !e->done && lc_api_mono() - e->last_send >= every) {
      sse_put(e, "", NULL, ""); /* makes room */
      const char ka[] = ": keep-alive\n\n";
      memcpy(e->buf, ka, sizeof ka - 1);
      e->len = sizeof ka - 1;
    }
    if (!e->len && !e->done) return LC_WORK_KEEP;
  }
  lc_work_unpark(w);
  lc_api_resume(e->c); /* e may be freed from here on */
  return LC_WORK_HANDED;
}

void lc_stream_free(void *cls) {
  struct lc_stream *e = cls;
  if (e->c) atomic_fetch_sub(&e->s->sse_clients, 1);
  if (e->tokens) atomic_fetch_sub(&lc_api_tok_streams, 1);
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
  if (!strcmp(m, "messages-tuple")) return LC_STREAM_TOK_TUPLE;
  if (!strcmp(m, "messages")) return LC_STREAM_TOK_MESSAGES;
  return 0;
}

int lc_stream_wants_tokens(const cJSON *sm) {
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

int lc_stream_query_tokens(struct MHD_Connection *c) {
  int t = 0;
  MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, tok_arg, &t);
  return t;
}

/* A run's stream; a thread's (thread_mode) starts at row's run and goes on
 * with the thread's later runs. last: the Last-Event-ID to resume after
 * (without a thread's run prefix), or NULL. */
/* A stream's state (c NULL: a WebSocket's subscription, which does not
 * count as a stream of its own). NULL when out of memory. */
struct lc_stream *lc_stream_new(struct lc_serve *s, struct MHD_Connection *c, const char *tenant,
                           const cJSON *row, int tokens, int thread_mode, const char *last,
                           int ap, const char *thread) {
  struct lc_stream *e = calloc(1, sizeof *e);
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
  if (e->tokens) atomic_fetch_add(&lc_api_tok_streams, 1); /* before lc_stream_free can run */
  last_event(last, &e->seq, &e->sub, &e->dk);
  if (e->seq > 0) e->meta = 1; /* a resumed stream: no metadata again */
  e->last_send = lc_api_mono();
  return e;
}

static enum MHD_Result stream_from(struct lc_serve *s, struct MHD_Connection *c, const char *tenant,
                                   const cJSON *row, int tokens, int thread_mode, const char *last,
                                   int ap, const char *thread) {
  if (atomic_fetch_add(&s->sse_clients, 1) >= s->max_streams) {
    atomic_fetch_sub(&s->sse_clients, 1);
    atomic_fetch_add(&s->streams_rejected, 1);
    return lc_api_reply_err(s, c, 503, "too many streams open: retry later");
  }
  struct lc_stream *e = lc_stream_new(s, c, tenant, row, tokens, thread_mode, last, ap, thread);
  if (!e) {
    atomic_fetch_sub(&s->sse_clients, 1);
    return MHD_NO;
  }
  lc_stream_fill(e); /* the first events now (a worker): no trip through the queue */
  struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, e,
                                                             lc_stream_free);
  if (!r) {
    lc_stream_free(e);
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
  return lc_api_send(c, 200, r);
}

enum MHD_Result lc_stream_stream_run(struct lc_serve *s, struct MHD_Connection *c, const char *tenant,
                                  const cJSON *row, int tokens) {
  return stream_from(s, c, tenant, row, tokens, 0,
                     MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID"), 0, NULL);
}

/* Where a thread's stream starts: the oldest run still to go (pending,
 * running: an enqueued run waits behind it), else the newest; NULL: none. */
cJSON *lc_stream_thread_pick(struct lc_serve *s, const char *tenant, const char *thread) {
  cJSON *rows = lc_api_query(s,
                      "SELECT * FROM d_runs WHERE thread_id=? AND tenant=? AND deleted=0 "
                      "ORDER BY created DESC, id DESC LIMIT 64",
                      "ss", thread, tenant);
  int pick = 0, k = 0;
  const cJSON *x;
  cJSON_ArrayForEach(x, rows) {
    char st[32] = "";
    lc_serve_run_status(s, jstr(x, "id"), st, sizeof st);
    if (!lc_api_waits_or_ends(st)) pick = k;
    k++;
  }
  cJSON *row = cJSON_DetachItemFromArray(rows, pick);
  cJSON_Delete(rows);
  return row;
}

/* The channels of a subscription ({"channels": [...]}) as bits; 0 with
 * why set when they are not valid. */
int lc_stream_channels(const cJSON *body, const char **why) {
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
    int b = lc_stream_channel_bit(x ? x->valuestring : "custom");
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
enum MHD_Result lc_stream_stream_thread(struct lc_serve *s, struct MHD_Connection *c,
                                     const char *tenant, const char *thread, const cJSON *body) {
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
  int ap = 0, tokens = 0;
  if (body) {
    /* The Agent Protocol's form: {"channels": [...]} (namespaces: only the
     * root agent's, []); a replay from a sequence number ("since") is not
     * kept: Last-Event-ID resumes instead. */
    const char *why = NULL;
    ap = lc_stream_channels(body, &why);
    if (!ap) return lc_api_reply_err(s, c, 422, why);
    if (cJSON_GetObjectItem(body, "since"))
      return lc_api_reply_err(s, c, 422, "since is not supported: resume with Last-Event-ID");
    tokens = ap & lc_stream_channel_bit("messages") ? LC_STREAM_TOK_TUPLE : 0;
  } else {
    tokens = lc_stream_query_tokens(c);
  }
  const char *rest = NULL;
  cJSON *row = NULL;
  if (h) {
    const char *colon = strchr(h, ':');
    if (!colon || colon == h || colon - h > 64)
      return lc_api_reply_err(s, c, 400, "the Last-Event-ID of a thread's stream is RUN:ID");
    char rid[65];
    snprintf(rid, sizeof rid, "%.*s", (int)(colon - h), h);
    rest = colon + 1;
    row = lc_api_run_row(s, tenant, rid);
    if (!row || !jstr(row, "thread_id") || strcmp(jstr(row, "thread_id"), thread)) {
      cJSON_Delete(row);
      return lc_api_reply_err(s, c, 404, "Last-Event-ID names no run of this thread");
    }
  } else {
    row = lc_stream_thread_pick(s, tenant, thread);
    /* The protocol's stream may open before the first run: it idles. */
    if (!row && !ap) return lc_api_reply_err(s, c, 404, "the thread has no run to stream");
  }
  enum MHD_Result res = stream_from(s, c, tenant, row, tokens, 1, rest, ap, thread);
  cJSON_Delete(row);
  return res;
}
