/* batch_call.c: a batched call on the loop (embeddings, rerank): governor,
 * retries, journal framing (batch_call.h). */
#include "batch_call.h"

#include <stdio.h>
#include <string.h>

#include "call_turn.h"
#include "lc.h"
#include "secrets.h"

void lc_batch_call_set_err(struct lc_batch_call *c, enum lc_llm_err e, const char *msg) {
  *c->res.err = e;
  lc_free(*c->res.err_message);
  *c->res.err_message = lc_strdup(msg);
}

int lc_batch_call_replay_bad(struct lc_batch_call *c, const char *why) {
  char msg[1024];
  snprintf(msg, sizeof msg, "replay: effect %s: %s", c->eff->id, why);
  lc_journal_fail(c->eff->j, LC_JOURNAL_MISMATCH, msg);
  return LC_EINVAL;
}

/* ---- journal ---- */

static int effect_begin(struct lc_batch_call *c) {
  cJSON *req = c->kind->request_json(c);
  if (!req) {
    lc_journal_fail(c->opts.effect.j, LC_JOURNAL_EIO, "journal: out of memory");
    return LC_ENOMEM;
  }
  char name[300];
  snprintf(name, sizeof name, "%s:%.250s", c->provider, c->model ? c->model : "");
  struct lc_effect_who w;
  c->opts.effect.next(c->opts.effect.ud, &w);
  struct lc_effect_desc d = {
      .kind = c->kind->effect, .name = name, .request = req, .cls = LC_EFFECT_PURE};
  int rc = lc_effect_begin(c->opts.effect.j, &w, &d, c->eff);
  cJSON_Delete(req);
  return rc;
}

static void effect_end(struct lc_batch_call *c) {
  const struct lc_batch_res *r = &c->res;
  cJSON *body = cJSON_CreateObject(), *extra = cJSON_CreateObject();
  if (!body || !extra) goto nomem;
  if (*r->err != LC_LLM_OK) {
    cJSON_AddStringToObject(body, "kind", lc_llm_err_name(*r->err));
    if (*r->err_message) cJSON_AddStringToObject(body, "message", *r->err_message);
    if (*r->err_type) cJSON_AddStringToObject(body, "type", *r->err_type);
  } else if (c->kind->record(c, body)) {
    goto nomem;
  }
  cJSON_AddNumberToObject(body, "http_status", *r->http_status);
  cJSON_AddNumberToObject(body, "attempts", *r->attempts);
  cJSON_AddNumberToObject(extra, c->kind->tokens_key, (double)*r->tokens);
  cJSON_AddNumberToObject(extra, "latency_ms", *r->latency_ms);
  if (*r->err != LC_LLM_OK) lc_effect_end(c->eff, NULL, body, extra);
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

/* Replay: a recorded error here, a recorded answer by the kind. */
static int effect_replay(struct lc_batch_call *c) {
  const cJSON *res = lc_effect_result(c->eff), *err = lc_effect_error(c->eff);
  const struct lc_batch_res *r = &c->res;
  if (err && cJSON_IsObject(err)) {
    const char *kind = jstr(err, "kind"), *m = jstr(err, "message"), *t = jstr(err, "type");
    *r->err = LC_LLM_ESERVER;
    for (int k = 1; kind && k < LC_LLM_E__COUNT; k++)
      if (!strcmp(lc_llm_err_name((enum lc_llm_err)k), kind)) *r->err = (enum lc_llm_err)k;
    if (m && !(*r->err_message = lc_strdup(m))) return LC_ENOMEM;
    if (t && !(*r->err_type = lc_strdup(t))) return LC_ENOMEM;
    return 0;
  }
  return c->kind->replay(c, res);
}

/* ---- the transfer ---- */

static void finish(struct lc_batch_call *c) {
  c->finished = 1;
  lc_llm_http_free(&c->http);
  *c->res.latency_ms = lc_now_ms() - c->first_ms;
  *c->res.attempts = c->requests;
  c->kind->settle(c);
  if (c->journaled) {
    c->journaled = 0;
    effect_end(c);
  }
  c->kind->done(c);
}

static void on_replayed(struct lc_journal_deferred *d) {
  struct lc_batch_call *c =
      (struct lc_batch_call *)((char *)d - offsetof(struct lc_batch_call, replay));
  c->finished = 1;
  c->kind->done(c);
}

static void on_finish_timer(struct lc_loop *loop, struct lc_timer *t) { finish(t->ud); }

static void fail_later(struct lc_batch_call *c, enum lc_llm_err e, const char *msg) {
  lc_batch_call_set_err(c, e, msg);
  c->timer.cb = on_finish_timer;
  if (lc_timer_start(c->loop, &c->timer, 0) < 0) finish(c);
}

static void send_now(struct lc_batch_call *c);
static void next_batch(struct lc_batch_call *c);
static void on_http_done(struct lc_http_op *op, void *ud);

static void on_governed(struct lc_loop *loop, struct lc_timer *t) {
  struct lc_batch_call *c = t->ud;
  c->gov_waiting = 0;
  send_now(c);
}

static void attempt(struct lc_batch_call *c) {
  if (lc_call_gov_turn(c->gov, c->est_tokens, c->loop, &c->timer, on_governed, &c->ticket)) {
    c->gov_waiting = 1;
    return;
  }
  send_now(c);
}

static void on_backoff(struct lc_loop *loop, struct lc_timer *t) { attempt(t->ud); }
static void on_next(struct lc_loop *loop, struct lc_timer *t) { next_batch(t->ud); }

static void send_now(struct lc_batch_call *c) {
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
  int rc = lc_http_start(c->loop, &c->op, &hr, NULL, NULL, on_http_done, c);
  if (rc)
    fail_later(c, LC_LLM_ENETWORK, rc == LC_ENOMEM ? "out of memory starting the HTTP transfer"
                                                   : "could not start the HTTP transfer");
}

/* Builds and starts the batch at c->from, or finishes when none is left. */
static void next_batch(struct lc_batch_call *c) {
  if (c->from >= c->total) {
    finish(c);
    return;
  }
  char err[256] = "";
  lc_llm_http_free(&c->http);
  c->batch = c->kind->next_batch(c, c->from);
  int rc = c->kind->build(c, c->from, c->batch, &c->http, err, sizeof err);
  if (rc) {
    lc_batch_call_set_err(c, rc == LC_ENOMEM ? LC_LLM_EBADRESP : LC_LLM_ECONFIG, err);
    finish(c);
    return;
  }
  c->attempts = 0;
  c->est_tokens = (double)c->http.body_len / 4.0;
  attempt(c);
}

static void on_http_done(struct lc_http_op *op, void *ud) {
  struct lc_batch_call *c = ud;
  const struct lc_batch_res *r = &c->res;
  *r->http_status = (int)op->status;
  lc_free(*r->err_message);
  lc_free(*r->err_type);
  *r->err_message = *r->err_type = NULL;
  *r->err = LC_LLM_OK;
  *r->retry_after_s = -1;
  char msg[512];
  if (op->err) {
    snprintf(msg, sizeof msg, "%s%s", op->err == LC_ETIMEOUT ? "timeout: " : "network error: ",
             op->errmsg);
    lc_batch_call_set_err(c,
                          op->err == LC_ETIMEOUT   ? LC_LLM_ETIMEOUT
                          : op->err == LC_ETOOBIG ? LC_LLM_EBADRESP
                                                  : LC_LLM_ENETWORK,
                          msg);
  } else if (op->status >= 200 && op->status < 300) {
    c->kind->parse(c, op->body.data ? op->body.data : "", op->body.len);
  } else {
    c->kind->parse_error(c, (int)op->status, op->body.data ? op->body.data : "", op->body.len);
  }
  if (c->gov) lc_governor_settle(c->gov, c->est_tokens, c->est_tokens);
  double ra = lc_call_retry_after_s(op);
  if (ra >= 0) *r->retry_after_s = ra;
  if (*r->err != LC_LLM_OK && lc_llm_err_retryable(*r->err)) {
    const char *why = NULL;
    if (lc_call_backoff(&c->opts.retry, c->attempts, *r->retry_after_s, c->first_ms, c->loop,
                        &c->timer, on_backoff, &why) >= 0)
      return;
    if (why && c->attempts > 1) {
      char m2[1024];
      snprintf(m2, sizeof m2, "%s (gave up after %d attempts: %s)",
               *r->err_message ? *r->err_message : lc_llm_err_name(*r->err), c->attempts, why);
      lc_batch_call_set_err(c, *r->err, m2);
    }
  }
  if (*r->err != LC_LLM_OK) {
    if (c->from) {
      /* Say which items failed: earlier batches were fine. */
      snprintf(msg, sizeof msg, "%s %zu..%zu: %s", c->kind->items, c->from + 1,
               c->from + c->batch, *r->err_message ? *r->err_message : lc_llm_err_name(*r->err));
      lc_batch_call_set_err(c, *r->err, msg);
    }
    lc_secrets_scrub_str(*r->err_message);
    finish(c);
    return;
  }
  c->from += c->batch;
  /* The next batch starts from a timer, never inside this callback. */
  c->timer.cb = on_next;
  if (lc_timer_start(c->loop, &c->timer, 0) < 0) next_batch(c);
}

int lc_batch_call_start(struct lc_batch_call *c, struct lc_loop *loop,
                        const struct lc_llm_opts *o) {
  c->loop = loop;
  if (o) c->opts = *o;
  else lc_llm_opts_default(&c->opts);
  if (c->opts.retry.max_attempts < 1) c->opts.retry.max_attempts = 1;
  lc_http_op_init(&c->op);
  lc_timer_init(&c->timer, on_finish_timer, c);
  c->first_ms = lc_now_ms();
  if (c->opts.effect.j) {
    if (!(c->eff = lc_calloc(1, sizeof *c->eff))) return LC_ENOMEM;
    int erc = effect_begin(c);
    if (erc == LC_EFFECT_REPLAYED) {
      erc = effect_replay(c);
      if (erc == LC_ENOMEM) return LC_ENOMEM;
      if (erc == 0) {
        c->replay.fire = on_replayed;
        lc_journal_defer(c->opts.effect.j, c->eff, &c->replay);
        return 0;
      }
    }
    if (erc < 0) {
      lc_batch_call_set_err(c, LC_LLM_ECONFIG, lc_journal_error(c->opts.effect.j));
      return lc_timer_start(loop, &c->timer, 0) < 0 ? LC_ENOMEM : 0;
    }
    c->journaled = c->eff->recording;
  }
  char err[512] = "";
  int rc = c->kind->resolve(c, err, sizeof err);
  if (rc == LC_ENOMEM) return LC_ENOMEM;
  if (rc) {
    lc_batch_call_set_err(c, LC_LLM_ECONFIG, err);
    return lc_timer_start(loop, &c->timer, 0) < 0 ? LC_ENOMEM : 0;
  }
  if (c->total) c->timer.cb = on_next; /* else done at once, with no rows */
  return lc_timer_start(loop, &c->timer, 0) < 0 ? LC_ENOMEM : 0;
}

void lc_batch_call_cleanup(struct lc_batch_call *c) {
  if (c->journaled) lc_effect_cancel(c->eff, "cancelled");
  if (c->replay.queued) lc_journal_undefer(c->opts.effect.j, &c->replay);
  if (c->loop) lc_timer_stop(c->loop, &c->timer);
  if (c->gov_waiting) lc_governor_refund(c->gov, &c->ticket);
  lc_http_op_cleanup(&c->op);
  lc_llm_http_free(&c->http);
  lc_free(c->eff);
  c->eff = NULL;
}
