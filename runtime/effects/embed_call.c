/* embed_call.c: an embeddings call on the loop: batches, governor,
 * retries, journal (embed_call.h). */
#include "embed_call.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "governor.h"
#include "http.h"
#include "lc.h"
#include "loop.h"
#include "secrets.h"
#include "sha256.h"

struct lc_embed_call {
  struct lc_loop *loop;
  struct lc_embed_request q; /* owned */
  struct lc_llm_opts opts;
  struct lc_embed_result res;
  struct lc_llm_http http; /* the current batch, sent on every attempt */
  struct lc_http_op op;
  struct lc_timer timer;
  lc_embed_done_fn done;
  void *ud;
  struct lc_governor *gov;
  struct lc_governor_ticket ticket;
  int gov_waiting;
  double est_tokens;
  double first_ms;
  size_t from, batch; /* the batch in flight: inputs [from, from + batch) */
  int attempts;       /* of the current batch */
  int requests;       /* all HTTP requests */
  int finished;
  struct lc_effect_op *eff;
  int journaled;
  struct lc_journal_deferred replay;
};

static void set_err(struct lc_embed_result *r, enum lc_llm_err e, const char *msg) {
  r->err = e;
  lc_free(r->err_message);
  r->err_message = lc_strdup(msg);
}

/* ---- journal ---- */

/* The inputs go in by their SHA-256: a replay still compares them one by
 * one, and the journal does not carry a second copy of every document
 * (often large, sometimes confidential) next to the vectors. */
static cJSON *request_json(const struct lc_embed_request *q) {
  cJSON *o = cJSON_CreateObject(), *in = o ? cJSON_AddArrayToObject(o, "input_sha256") : NULL;
  if (!in) goto nomem;
  cJSON_AddStringToObject(o, "provider", lc_embed_provider_name(q->provider));
  cJSON_AddStringToObject(o, "model", q->model ? q->model : "");
  for (size_t i = 0; i < q->n_input; i++) {
    char hex[65];
    lc_sha256_hex(q->input[i], q->input_len[i], hex);
    cJSON *s = cJSON_CreateString(hex);
    if (!s) goto nomem;
    cJSON_AddItemToArray(in, s);
  }
  if (q->dimensions) cJSON_AddNumberToObject(o, "dimensions", q->dimensions);
  if (q->base64) cJSON_AddBoolToObject(o, "base64", 1);
  if (q->legacy) cJSON_AddBoolToObject(o, "legacy", 1);
  if (q->task_type) cJSON_AddStringToObject(o, "task_type", q->task_type);
  return o;
nomem:
  cJSON_Delete(o);
  return NULL;
}

static int effect_begin(struct lc_embed_call *c) {
  cJSON *req = request_json(&c->q);
  if (!req) {
    lc_journal_fail(c->opts.effect.j, LC_JOURNAL_EIO, "journal: out of memory");
    return LC_ENOMEM;
  }
  char name[300];
  snprintf(name, sizeof name, "%s:%.250s", lc_embed_provider_name(c->q.provider),
           c->q.model ? c->q.model : "");
  struct lc_effect_who w;
  c->opts.effect.next(c->opts.effect.ud, &w);
  struct lc_effect_desc d = {.kind = "embed", .name = name, .request = req, .cls = LC_EFFECT_PURE};
  int rc = lc_effect_begin(c->opts.effect.j, &w, &d, c->eff);
  cJSON_Delete(req);
  return rc;
}

/* The vectors go into the journal as one base64 string of little-endian
 * float32s: exact, and a third of the size of decimal text. */
static void effect_end(struct lc_embed_call *c) {
  const struct lc_embed_result *r = &c->res;
  cJSON *body = cJSON_CreateObject(), *extra = cJSON_CreateObject();
  char *b64 = NULL;
  if (!body || !extra) goto nomem;
  if (r->err != LC_LLM_OK) {
    cJSON_AddStringToObject(body, "kind", lc_llm_err_name(r->err));
    if (r->err_message) cJSON_AddStringToObject(body, "message", r->err_message);
    if (r->err_type) cJSON_AddStringToObject(body, "type", r->err_type);
  } else {
    size_t nb = r->n * r->dims * 4;
    unsigned char *le = lc_malloc(nb ? nb : 1);
    b64 = lc_malloc(4 * ((nb + 2) / 3) + 1);
    if (!le || !b64) {
      lc_free(le);
      goto nomem;
    }
    for (size_t i = 0; i < r->n * r->dims; i++) {
      uint32_t u;
      memcpy(&u, &r->rows[i], 4);
      le[i * 4] = (unsigned char)u;
      le[i * 4 + 1] = (unsigned char)(u >> 8);
      le[i * 4 + 2] = (unsigned char)(u >> 16);
      le[i * 4 + 3] = (unsigned char)(u >> 24);
    }
    lc_embed_b64_encode(le, nb, b64);
    lc_free(le);
    cJSON_AddNumberToObject(body, "n", (double)r->n);
    cJSON_AddNumberToObject(body, "dims", (double)r->dims);
    cJSON_AddStringToObject(body, "vectors_f32le", b64);
    if (r->model) cJSON_AddStringToObject(body, "model", r->model);
    lc_free(b64);
  }
  cJSON_AddNumberToObject(body, "http_status", r->http_status);
  cJSON_AddNumberToObject(body, "attempts", r->attempts);
  cJSON_AddNumberToObject(extra, "input_tokens", (double)r->input_tokens);
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

/* Replay: the recorded answer into c->res. A journal's vectors are
 * checked like a provider's: the file may have been edited. */
static int effect_replay(struct lc_embed_call *c) {
  const cJSON *res = lc_effect_result(c->eff), *err = lc_effect_error(c->eff);
  struct lc_embed_result *r = &c->res;
  char msg[700];
  if (err && cJSON_IsObject(err)) {
    const char *kind = jstr(err, "kind"), *m = jstr(err, "message"), *t = jstr(err, "type");
    r->err = LC_LLM_ESERVER;
    for (int k = 1; kind && k < LC_LLM_E__COUNT; k++)
      if (!strcmp(lc_llm_err_name((enum lc_llm_err)k), kind)) r->err = (enum lc_llm_err)k;
    if (m && !(r->err_message = lc_strdup(m))) return LC_ENOMEM;
    if (t && !(r->err_type = lc_strdup(t))) return LC_ENOMEM;
    return 0;
  }
  const char *v = jstr(res, "vectors_f32le");
  const cJSON *n = cJSON_GetObjectItemCaseSensitive(res, "n");
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(res, "dims");
  if (!v || !cJSON_IsNumber(n) || !cJSON_IsNumber(d) || n->valuedouble != (double)c->q.n_input ||
      d->valuedouble < 1 || d->valuedouble > LC_EMBED_MAX_DIMS) {
    snprintf(msg, sizeof msg, "replay: effect %s has no usable recorded vectors", c->eff->id);
    lc_journal_fail(c->eff->j, LC_JOURNAL_MISMATCH, msg);
    return LC_EINVAL;
  }
  size_t dims = (size_t)d->valuedouble, len = strlen(v);
  unsigned char *raw = lc_malloc(len / 4 * 3 + 3);
  if (!raw) return LC_ENOMEM;
  long nb = lc_embed_b64_decode(v, len, raw);
  int rc = 0;
  if (nb != (long)(c->q.n_input * dims * 4)) {
    snprintf(msg, sizeof msg, "replay: effect %s: recorded vectors are cut", c->eff->id);
    lc_journal_fail(c->eff->j, LC_JOURNAL_MISMATCH, msg);
    rc = LC_EINVAL;
  } else if (!(r->rows = lc_malloc(nb ? (size_t)nb : 1))) {
    rc = LC_ENOMEM;
  } else {
    for (size_t i = 0; i < (size_t)nb / 4; i++) {
      uint32_t u = (uint32_t)raw[i * 4] | (uint32_t)raw[i * 4 + 1] << 8 |
                   (uint32_t)raw[i * 4 + 2] << 16 | (uint32_t)raw[i * 4 + 3] << 24;
      memcpy(&r->rows[i], &u, 4);
      if ((u & 0x7f800000u) == 0x7f800000u) {
        snprintf(msg, sizeof msg, "replay: effect %s: recorded vector holds NaN or inf",
                 c->eff->id);
        lc_journal_fail(c->eff->j, LC_JOURNAL_MISMATCH, msg);
        rc = LC_EINVAL;
        break;
      }
    }
    r->n = c->q.n_input;
    r->dims = dims;
  }
  lc_free(raw);
  const char *m = jstr(res, "model");
  if (!rc && m && !(r->model = lc_strdup(m))) rc = LC_ENOMEM;
  const cJSON *tok = lc_effect_member(c->eff, "input_tokens");
  long t; /* the journal's number, range-checked (a crafted 1e300) */
  if (cJSON_IsNumber(tok) && lc_dbl_to_long(tok->valuedouble, 0, 1000000000000000L, &t) == 0)
    r->input_tokens = t;
  return rc;
}

/* ---- the transfer ---- */

static void finish(struct lc_embed_call *c) {
  c->finished = 1;
  lc_llm_http_free(&c->http);
  c->res.latency_ms = lc_now_ms() - c->first_ms;
  c->res.attempts = c->requests;
  if (c->res.err != LC_LLM_OK) {
    lc_free(c->res.rows);
    c->res.rows = NULL;
    c->res.n = c->res.dims = 0;
  }
  if (c->journaled) {
    c->journaled = 0;
    effect_end(c);
  }
  c->done(c, c->ud);
}

static void on_replayed(struct lc_journal_deferred *d) {
  struct lc_embed_call *c =
      (struct lc_embed_call *)((char *)d - offsetof(struct lc_embed_call, replay));
  c->finished = 1;
  c->done(c, c->ud);
}

static void on_finish_timer(struct lc_loop *loop, struct lc_timer *t) { finish(t->ud); }

static void fail_later(struct lc_embed_call *c, enum lc_llm_err e, const char *msg) {
  set_err(&c->res, e, msg);
  c->timer.cb = on_finish_timer;
  if (lc_timer_start(c->loop, &c->timer, 0) < 0) finish(c);
}

static void send_now(struct lc_embed_call *c);
static void next_batch(struct lc_embed_call *c);
static void on_http_done(struct lc_http_op *op, void *ud);

static void on_governed(struct lc_loop *loop, struct lc_timer *t) {
  struct lc_embed_call *c = t->ud;
  c->gov_waiting = 0;
  send_now(c);
}

static void attempt(struct lc_embed_call *c) {
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

static void send_now(struct lc_embed_call *c) {
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
static void next_batch(struct lc_embed_call *c) {
  if (c->from >= c->q.n_input) {
    finish(c);
    return;
  }
  char err[256] = "";
  lc_llm_http_free(&c->http);
  c->batch = lc_embed_next_batch(&c->q, c->from);
  int rc = lc_embed_build(&c->q, c->from, c->batch, &c->http, err, sizeof err);
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
  struct lc_embed_call *c = ud;
  struct lc_embed_result *r = &c->res;
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
    lc_embed_parse(&c->q, op->body.data ? op->body.data : "", op->body.len, c->batch, r);
  } else {
    lc_embed_parse_error(&c->q, (int)op->status, op->body.data ? op->body.data : "",
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
      /* Say which inputs failed: earlier batches were fine. */
      snprintf(msg, sizeof msg, "inputs %zu..%zu: %s", c->from + 1, c->from + c->batch,
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

int lc_embed_call_start(struct lc_loop *loop, struct lc_embed_request *q,
                        const struct lc_llm_opts *o, lc_embed_done_fn done, void *ud,
                        struct lc_embed_call **out) {
  struct lc_embed_call *c = lc_calloc(1, sizeof *c);
  if (!c) {
    lc_embed_request_free(q);
    return LC_ENOMEM;
  }
  c->loop = loop;
  c->q = *q;
  memset(q, 0, sizeof *q);
  lc_embed_result_init(&c->res);
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
  /* Endpoint and key resolve exactly as chat's do. */
  struct lc_llm_request tmp = {.provider = c->q.provider, .base_url = c->q.base_url,
                               .api_key = c->q.api_key};
  if (tmp.api_key) lc_secret_add(tmp.api_key, strlen(tmp.api_key));
  char err[512] = "";
  int rc = lc_llm_resolve_endpoint(&tmp, err, sizeof err);
  c->q.base_url = tmp.base_url;
  c->q.api_key = tmp.api_key;
  if (rc == LC_ENOMEM) goto nomem;
  if (rc) {
    set_err(&c->res, LC_LLM_ECONFIG, err);
    if (lc_timer_start(loop, &c->timer, 0) < 0) goto nomem;
    *out = c;
    return 0;
  }
  c->gov = lc_governor_for(lc_embed_provider_name(c->q.provider), c->q.base_url, c->q.api_key);
  if (c->q.n_input == 0) {
    if (lc_timer_start(loop, &c->timer, 0) < 0) goto nomem; /* done: no rows */
  } else {
    c->timer.cb = on_next;
    if (lc_timer_start(loop, &c->timer, 0) < 0) goto nomem;
  }
  *out = c;
  return 0;
nomem:
  lc_embed_call_free(c);
  return LC_ENOMEM;
}

const struct lc_embed_result *lc_embed_call_result(const struct lc_embed_call *c) {
  return &c->res;
}

int lc_embed_call_requests(const struct lc_embed_call *c) { return c->requests; }

void lc_embed_call_free(struct lc_embed_call *c) {
  if (!c) return;
  if (c->journaled) lc_effect_cancel(c->eff, "cancelled");
  if (c->replay.queued) lc_journal_undefer(c->opts.effect.j, &c->replay);
  if (c->loop) lc_timer_stop(c->loop, &c->timer);
  if (c->gov_waiting) lc_governor_refund(c->gov, &c->ticket);
  lc_http_op_cleanup(&c->op);
  lc_llm_http_free(&c->http);
  lc_embed_result_free(&c->res);
  lc_embed_request_free(&c->q);
  lc_free(c->eff);
  lc_free(c);
}
