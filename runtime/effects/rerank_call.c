/* embed_call.c: an embeddings call on the loop: batches, governor,
 * retries, journal (rerank_call.h). */
#include "rerank_call.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "governor.h"
#include "http.h"
#include "lc.h"
#include "loop.h"
#include "secrets.h"
#include "sha256.h"

struct lc_rerank_call {
  struct lc_loop *loop;
  struct lc_rerank_request q; /* owned */
  struct lc_llm_opts opts;
  struct lc_rerank_result res;
  struct lc_llm_http http; /* the current batch, sent on every attempt */
  struct lc_http_op op;
  struct lc_timer timer;
  lc_rerank_done_fn done;
  void *ud;
  struct lc_governor *gov;
  struct lc_governor_ticket ticket;
  int gov_waiting;
  double est_tokens;
  double first_ms;
  size_t from, batch; /* the batch in flight: documents [from, from + batch) */
  int attempts;       /* of the current batch */
  int requests;       /* all HTTP requests */
  int finished;
  struct lc_effect_op *eff;
  int journaled;
  struct lc_journal_deferred replay;
};

static void set_err(struct lc_rerank_result *r, enum lc_llm_err e, const char *msg) {
  r->err = e;
  lc_free(r->err_message);
  r->err_message = lc_strdup(msg);
}

/* ---- journal ---- */

/* The query and documents go in by their SHA-256: a replay still compares
 * them one by one, and the journal does not carry a second copy of every
 * passage (often large, sometimes confidential) next to the scores. */
static cJSON *request_json(const struct lc_rerank_request *q) {
  cJSON *o = cJSON_CreateObject(), *in = o ? cJSON_AddArrayToObject(o, "documents_sha256") : NULL;
  if (!in) goto nomem;
  char hex[65];
  cJSON_AddStringToObject(o, "provider", lc_rerank_provider_name(q->provider));
  cJSON_AddStringToObject(o, "model", q->model ? q->model : "");
  lc_sha256_hex(q->query, strlen(q->query), hex);
  cJSON_AddStringToObject(o, "query_sha256", hex);
  for (size_t i = 0; i < q->n_docs; i++) {
    lc_sha256_hex(q->docs[i], q->doc_len[i], hex);
    cJSON *s = cJSON_CreateString(hex);
    if (!s) goto nomem;
    cJSON_AddItemToArray(in, s);
  }
  if (q->top_n) cJSON_AddNumberToObject(o, "top_n", (double)q->top_n);
  if (q->truncate) cJSON_AddBoolToObject(o, "truncate", 1);
  return o;
nomem:
  cJSON_Delete(o);
  return NULL;
}

static int effect_begin(struct lc_rerank_call *c) {
  cJSON *req = request_json(&c->q);
  if (!req) {
    lc_journal_fail(c->opts.effect.j, LC_JOURNAL_EIO, "journal: out of memory");
    return LC_ENOMEM;
  }
  char name[300];
  snprintf(name, sizeof name, "%s:%.250s", lc_rerank_provider_name(c->q.provider),
           c->q.model ? c->q.model : "");
  struct lc_effect_who w;
  c->opts.effect.next(c->opts.effect.ud, &w);
  struct lc_effect_desc d = {.kind = "rerank", .name = name, .request = req, .cls = LC_EFFECT_PURE};
  int rc = lc_effect_begin(c->opts.effect.j, &w, &d, c->eff);
  cJSON_Delete(req);
  return rc;
}

/* The hits as [[index, score], ...], best first: doubles round-trip
 * through cJSON's printing exactly. */
static void effect_end(struct lc_rerank_call *c) {
  const struct lc_rerank_result *r = &c->res;
  cJSON *body = cJSON_CreateObject(), *extra = cJSON_CreateObject();
  if (!body || !extra) goto nomem;
  if (r->err != LC_LLM_OK) {
    cJSON_AddStringToObject(body, "kind", lc_llm_err_name(r->err));
    if (r->err_message) cJSON_AddStringToObject(body, "message", r->err_message);
    if (r->err_type) cJSON_AddStringToObject(body, "type", r->err_type);
  } else {
    cJSON *hits = cJSON_AddArrayToObject(body, "hits");
    if (!hits) goto nomem;
    for (size_t i = 0; i < r->n; i++) {
      cJSON *p = cJSON_CreateArray();
      if (!p) goto nomem;
      cJSON_AddItemToArray(hits, p);
      cJSON_AddItemToArray(p, cJSON_CreateNumber((double)r->hits[i].index));
      cJSON_AddItemToArray(p, cJSON_CreateNumber(r->hits[i].score));
    }
    if (r->model) cJSON_AddStringToObject(body, "model", r->model);
  }
  cJSON_AddNumberToObject(body, "http_status", r->http_status);
  cJSON_AddNumberToObject(body, "attempts", r->attempts);
  cJSON_AddNumberToObject(extra, "tokens", (double)r->tokens);
  cJSON_AddNumberToObject(extra, "latency_ms", r->latency_ms);
  if (r->err != LC_LLM_OK) lc_effect_end(c->eff, NULL, body, extra);
  else lc_effect_end(c->eff, body, NULL, extra);
  return;
nomem:
  cJSON_Delete(body);
  cJSON_Delete(extra);
  lc_effect_end(c->eff, NULL, NULL, NULL);
}

static const char *jstr(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int replay_bad(struct lc_rerank_call *c, const char *why) {
  char msg[1024];
  snprintf(msg, sizeof msg, "replay: effect %s: %s", c->eff->id, why);
  lc_journal_fail(c->eff->j, LC_JOURNAL_MISMATCH, msg);
  return LC_EINVAL;
}

/* Replay: the recorded answer into c->res. A journal's hits are checked
 * like a provider's: the file may have been edited. */
static int effect_replay(struct lc_rerank_call *c) {
  const cJSON *res = lc_effect_result(c->eff), *err = lc_effect_error(c->eff);
  struct lc_rerank_result *r = &c->res;
  if (err && cJSON_IsObject(err)) {
    const char *kind = jstr(err, "kind"), *m = jstr(err, "message"), *t = jstr(err, "type");
    r->err = LC_LLM_ESERVER;
    for (int k = 1; kind && k < LC_LLM_E__COUNT; k++)
      if (!strcmp(lc_llm_err_name((enum lc_llm_err)k), kind)) r->err = (enum lc_llm_err)k;
    if (m && !(r->err_message = lc_strdup(m))) return LC_ENOMEM;
    if (t && !(r->err_type = lc_strdup(t))) return LC_ENOMEM;
    return 0;
  }
  const cJSON *hits = cJSON_GetObjectItemCaseSensitive(res, "hits");
  size_t n = cJSON_IsArray(hits) ? (size_t)cJSON_GetArraySize(hits) : 0;
  size_t want = c->q.top_n && c->q.top_n < c->q.n_docs ? c->q.top_n : c->q.n_docs;
  if (!cJSON_IsArray(hits) || n != want) return replay_bad(c, "no usable recorded scores");
  unsigned char *seen = lc_calloc(c->q.n_docs ? c->q.n_docs : 1, 1);
  if (!seen || !(r->hits = lc_calloc(n ? n : 1, sizeof *r->hits))) {
    lc_free(seen);
    return LC_ENOMEM;
  }
  int rc = 0;
  size_t k = 0;
  for (const cJSON *p = hits->child; p && !rc; p = p->next, k++) {
    const cJSON *ix = cJSON_GetArrayItem(p, 0), *sc = cJSON_GetArrayItem(p, 1);
    if (!cJSON_IsNumber(ix) || !cJSON_IsNumber(sc) || ix->valuedouble < 0 ||
        ix->valuedouble >= (double)c->q.n_docs || ix->valuedouble != (double)(size_t)ix->valuedouble ||
        seen[(size_t)ix->valuedouble]++ || !isfinite(sc->valuedouble))
      rc = replay_bad(c, "a recorded score is out of range, repeated or not finite");
    else
      r->hits[k] = (struct lc_rerank_hit){(size_t)ix->valuedouble, sc->valuedouble};
  }
  lc_free(seen);
  if (rc) return rc;
  r->n = n;
  const char *m = jstr(res, "model");
  if (m && !(r->model = lc_strdup(m))) return LC_ENOMEM;
  const cJSON *tok = lc_effect_member(c->eff, "tokens");
  long t; /* the journal's number, range-checked (a crafted 1e300) */
  if (cJSON_IsNumber(tok) && lc_dbl_to_long(tok->valuedouble, 0, 1000000000000000L, &t) == 0)
    r->tokens = t;
  return 0;
}

/* ---- the transfer ---- */

static void finish(struct lc_rerank_call *c) {
  c->finished = 1;
  lc_llm_http_free(&c->http);
  c->res.latency_ms = lc_now_ms() - c->first_ms;
  c->res.attempts = c->requests;
  if (c->res.err != LC_LLM_OK) {
    lc_free(c->res.hits);
    c->res.hits = NULL;
    c->res.n = 0;
  } else {
    lc_rerank_finish(&c->q, &c->res);
  }
  if (c->journaled) {
    c->journaled = 0;
    effect_end(c);
  }
  c->done(c, c->ud);
}

static void on_replayed(struct lc_journal_deferred *d) {
  struct lc_rerank_call *c =
      (struct lc_rerank_call *)((char *)d - offsetof(struct lc_rerank_call, replay));
  c->finished = 1;
  c->done(c, c->ud);
}

static void on_finish_timer(struct lc_loop *loop, struct lc_timer *t) { finish(t->ud); }

static void fail_later(struct lc_rerank_call *c, enum lc_llm_err e, const char *msg) {
  set_err(&c->res, e, msg);
  c->timer.cb = on_finish_timer;
  if (lc_timer_start(c->loop, &c->timer, 0) < 0) finish(c);
}

static void send_now(struct lc_rerank_call *c);
static void next_batch(struct lc_rerank_call *c);
static void on_http_done(struct lc_http_op *op, void *ud);

static void on_governed(struct lc_loop *loop, struct lc_timer *t) {
  struct lc_rerank_call *c = t->ud;
  c->gov_waiting = 0;
  send_now(c);
}

static void attempt(struct lc_rerank_call *c) {
  double wait = lc_governor_reserve_ticket(c->gov, c->est_tokens, lc_now_ms(), &c->ticket);
  if (wait > 0) {
    c->timer.cb = on_governed;
    if (lc_timer_start(c->loop, &c->timer, wait) == 0) {
      c->gov_waiting = 1;
      return;
    }
  }
  send_now(c);
}

static void on_backoff(struct lc_loop *loop, struct lc_timer *t) { attempt(t->ud); }
static void on_next(struct lc_loop *loop, struct lc_timer *t) { next_batch(t->ud); }

static void send_now(struct lc_rerank_call *c) {
  c->attempts++;
  c->requests++;
  struct lc_http_req hr = {
      .method = "POST",
      .url = c->http.url,
      .headers = (const char *const *)c->http.headers,
      .n_headers = c->http.n_headers,
      .body = c->http.body,
      .body_len = c->http.body_len,
      .body_borrowed = 1,
      .connect_timeout_ms = c->opts.connect_timeout_ms,
      .idle_timeout_ms = c->opts.idle_timeout_ms,
      .total_timeout_ms = c->opts.request_timeout_ms,
      .max_body = c->opts.max_response_bytes,
  };
  if (lc_http_start(c->loop, &c->op, &hr, NULL, NULL, on_http_done, c))
    fail_later(c, LC_LLM_ENETWORK, "could not start the HTTP transfer");
}

/* Builds and starts the batch at c->from, or finishes when none is left. */
static void next_batch(struct lc_rerank_call *c) {
  if (c->from >= c->q.n_docs) {
    finish(c);
    return;
  }
  char err[256] = "";
  lc_llm_http_free(&c->http);
  c->batch = lc_rerank_next_batch(&c->q, c->from);
  int rc = lc_rerank_build(&c->q, c->from, c->batch, &c->http, err, sizeof err);
  if (rc) {
    set_err(&c->res, rc == LC_ENOMEM ? LC_LLM_EBADRESP : LC_LLM_ECONFIG, err);
    finish(c);
    return;
  }
  c->attempts = 0;
  c->est_tokens = (double)c->http.body_len / 4.0;
  attempt(c);
}

static void on_http_done(struct lc_http_op *op, void *ud) {
  struct lc_rerank_call *c = ud;
  struct lc_rerank_result *r = &c->res;
  r->http_status = (int)op->status;
  lc_free(r->err_message);
  lc_free(r->err_type);
  r->err_message = r->err_type = NULL;
  r->err = LC_LLM_OK;
  r->retry_after_s = -1;
  char msg[512];
  if (op->err) {
    snprintf(msg, sizeof msg, "%s%s", op->err == LC_ETIMEOUT ? "timeout: " : "network error: ",
             op->errmsg);
    set_err(r, op->err == LC_ETIMEOUT   ? LC_LLM_ETIMEOUT
               : op->err == LC_ETOOBIG ? LC_LLM_EBADRESP
                                       : LC_LLM_ENETWORK,
            msg);
  } else if (op->status >= 200 && op->status < 300) {
    lc_rerank_parse(&c->q, op->body.data ? op->body.data : "", op->body.len, c->from, c->batch, r);
  } else {
    lc_rerank_parse_error(&c->q, (int)op->status, op->body.data ? op->body.data : "",
                         op->body.len, r);
  }
  if (c->gov) lc_governor_settle(c->gov, c->est_tokens, c->est_tokens);
  double ra = lc_llm_retry_after_s("retry-after-ms", op->retry_after_ms, lc_wall_s());
  if (ra < 0) ra = lc_llm_retry_after_s("retry-after", op->retry_after, lc_wall_s());
  if (ra >= 0) r->retry_after_s = ra;
  if (r->err != LC_LLM_OK && lc_llm_err_retryable(r->err)) {
    const char *why = NULL;
    double delay = lc_retry_delay(&c->opts.retry, c->attempts,
                                  r->retry_after_s >= 0 ? r->retry_after_s * 1000 : -1,
                                  lc_now_ms() - c->first_ms, lc_rand64(), &why);
    if (delay >= 0) {
      c->timer.cb = on_backoff;
      if (lc_timer_start(c->loop, &c->timer, delay) == 0) return;
    }
    if (why && c->attempts > 1) {
      char m2[1024];
      snprintf(m2, sizeof m2, "%s (gave up after %d attempts: %s)",
               r->err_message ? r->err_message : lc_llm_err_name(r->err), c->attempts, why);
      set_err(r, r->err, m2);
    }
  }
  if (r->err != LC_LLM_OK) {
    if (c->from) {
      /* Say which documents failed: earlier batches were fine. */
      snprintf(msg, sizeof msg, "documents %zu..%zu: %s", c->from + 1, c->from + c->batch,
               r->err_message ? r->err_message : lc_llm_err_name(r->err));
      set_err(r, r->err, msg);
    }
    lc_secrets_scrub_str(r->err_message);
    finish(c);
    return;
  }
  c->from += c->batch;
  /* The next batch starts from a timer, never inside this callback. */
  c->timer.cb = on_next;
  if (lc_timer_start(c->loop, &c->timer, 0) < 0) next_batch(c);
}

int lc_rerank_call_start(struct lc_loop *loop, struct lc_rerank_request *q,
                        const struct lc_llm_opts *o, lc_rerank_done_fn done, void *ud,
                        struct lc_rerank_call **out) {
  struct lc_rerank_call *c = lc_calloc(1, sizeof *c);
  if (!c) {
    lc_rerank_request_free(q);
    return LC_ENOMEM;
  }
  c->loop = loop;
  c->q = *q;
  memset(q, 0, sizeof *q);
  lc_rerank_result_init(&c->res);
  c->done = done;
  c->ud = ud;
  if (o) c->opts = *o;
  else lc_llm_opts_default(&c->opts);
  if (c->opts.retry.max_attempts < 1) c->opts.retry.max_attempts = 1;
  lc_http_op_init(&c->op);
  lc_timer_init(&c->timer, on_finish_timer, c);
  c->first_ms = lc_now_ms();
  if (c->opts.effect.j) {
    if (!(c->eff = lc_calloc(1, sizeof *c->eff))) goto nomem;
    int erc = effect_begin(c);
    if (erc == LC_EFFECT_REPLAYED) {
      erc = effect_replay(c);
      if (erc == LC_ENOMEM) goto nomem;
      if (erc == 0) {
        c->replay.fire = on_replayed;
        lc_journal_defer(c->opts.effect.j, c->eff, &c->replay);
        *out = c;
        return 0;
      }
    }
    if (erc < 0) {
      set_err(&c->res, LC_LLM_ECONFIG, lc_journal_error(c->opts.effect.j));
      if (lc_timer_start(loop, &c->timer, 0) < 0) goto nomem;
      *out = c;
      return 0;
    }
    c->journaled = c->eff->recording;
  }
  /* The provider's endpoint and key (its environment variable). */
  char err[512] = "";
  int rc = lc_rerank_resolve(&c->q, err, sizeof err);
  if (rc == LC_ENOMEM) goto nomem;
  if (rc) {
    set_err(&c->res, LC_LLM_ECONFIG, err);
    if (lc_timer_start(loop, &c->timer, 0) < 0) goto nomem;
    *out = c;
    return 0;
  }
  c->gov = lc_governor_for(lc_rerank_provider_name(c->q.provider), c->q.base_url, c->q.api_key);
  if (c->q.n_docs == 0) {
    if (lc_timer_start(loop, &c->timer, 0) < 0) goto nomem; /* done: no hits */
  } else {
    c->timer.cb = on_next;
    if (lc_timer_start(loop, &c->timer, 0) < 0) goto nomem;
  }
  *out = c;
  return 0;
nomem:
  lc_rerank_call_free(c);
  return LC_ENOMEM;
}

const struct lc_rerank_result *lc_rerank_call_result(const struct lc_rerank_call *c) {
  return &c->res;
}

int lc_rerank_call_requests(const struct lc_rerank_call *c) { return c->requests; }

void lc_rerank_call_free(struct lc_rerank_call *c) {
  if (!c) return;
  if (c->journaled) lc_effect_cancel(c->eff, "cancelled");
  if (c->replay.queued) lc_journal_undefer(c->opts.effect.j, &c->replay);
  if (c->loop) lc_timer_stop(c->loop, &c->timer);
  if (c->gov_waiting) lc_governor_refund(c->gov, &c->ticket);
  lc_http_op_cleanup(&c->op);
  lc_llm_http_free(&c->http);
  lc_rerank_result_free(&c->res);
  lc_rerank_request_free(&c->q);
  lc_free(c->eff);
  lc_free(c);
}
