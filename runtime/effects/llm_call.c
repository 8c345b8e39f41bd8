/* llm_call.c: one LLM call on the loop: attempts, retries, streaming. */
#include "llm_call.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call_turn.h"
#include "governor.h"
#include "http.h"
#include "lc.h"
#include "llm_bedrock.h"
#include "loop.h"
#include "secrets.h"

struct lc_llm_call {
  struct lc_loop *loop;
  /* The request: the caller's own when owned; else &view, a shallow copy
   * of the borrowed one whose endpoint strings may be ours (own_*). */
  struct lc_llm_request *req;
  /* The caller's request (req itself when owned): a body built through
   * its prefix cache is lent by it and given back (llm.h). */
  struct lc_llm_request *src;
  int owned;
  struct lc_llm_request view;
  char *own_base_url, *own_api_key;
  const struct lc_llm_adapter *ad;
  struct lc_llm_opts opts;
  struct lc_llm_http http; /* built once, sent on every attempt */
  struct lc_http_op op;
  struct lc_llm_stream *st;
  struct lc_llm_response *resp;
  struct lc_timer timer; /* backoff between attempts, or config failure */
  struct lc_timer tick;  /* status reports while an attempt is in flight */
  double sent_ms;        /* when the current attempt went out */
  int status_live;       /* a SEND was reported and END is owed */
  lc_llm_delta_fn on_delta;
  void *delta_ud;
  lc_llm_done_fn done;
  void *ud;
  struct lc_governor *gov; /* NULL when no rate limit is configured */
  struct lc_governor_ticket ticket; /* the reservation being waited out */
  int gov_waiting;                  /* ... and not yet sent: refund on cancel */
  double est_tokens;
  double first_ms;
  int attempts;
  long deltas; /* delivered in the current attempt */
  /* Streamed bytes of the current attempt: max_response_bytes caps their
   * total (a non-streamed body is capped by the HTTP layer). */
  size_t streamed;
  int stream_over;
  int finished;
  /* Journal state, allocated when opts.effect.j is set: 672 bytes that
   * every waiting agent would otherwise carry for nothing. */
  struct lc_effect_op *eff;
  int journaled;        /* a result line is owed (record mode) */
  cJSON *rec_deltas;    /* deltas of the current attempt, for the journal */
  struct lc_journal_deferred replay; /* replay: released in recorded order */
};

void lc_llm_opts_default(struct lc_llm_opts *o) {
  lc_retry_policy_default(&o->retry);
  o->connect_timeout_ms = 10000;
  o->idle_timeout_ms = 60000;
  o->request_timeout_ms = 600000;
  o->max_response_bytes = 16u << 20;
  o->effect = (struct lc_effect_src){0};
  o->status = NULL;
  o->status_ud = NULL;
}

#define TICK_MS 1000.0

/* One progress report (opts.status); kind END also ends the ticks. */
static void report(struct lc_llm_call *c, enum lc_llm_status_kind kind, double delay_ms) {
  if (!c->opts.status) return;
  if (kind == LC_LLM_ST_END) {
    if (c->loop) lc_timer_stop(c->loop, &c->tick);
    if (!c->status_live) return;
    c->status_live = 0;
  }
  if (kind == LC_LLM_ST_SEND) c->status_live = 1;
  struct lc_llm_status st = {
      .kind = kind,
      .model = c->req ? c->req->model : NULL,
      .attempt = c->attempts,
      .max_attempts = c->opts.retry.max_attempts,
      .waited_s = (lc_now_ms() - c->sent_ms) / 1000.0,
      .tokens = c->deltas,
      .delay_s = delay_ms / 1000.0,
      .error = c->resp && c->resp->err ? lc_llm_err_name(c->resp->err) : NULL,
      .http_status = c->resp ? c->resp->http_status : 0,
  };
  c->opts.status(c->opts.status_ud, &st);
}

/* Tick timer (from the loop): how long the attempt has waited so far. */
static void on_tick(struct lc_loop *loop, struct lc_timer *t) {
  struct lc_llm_call *c = t->ud;
  report(c, LC_LLM_ST_WAIT, 0);
  lc_timer_start(loop, &c->tick, TICK_MS); /* no slot: no more ticks */
}

static int has_scheme(const char *u) { return strstr(u, "://") != NULL; }

int lc_llm_resolve_endpoint(struct lc_llm_request *req, char *err, size_t errlen) {
  const struct lc_llm_adapter *ad = lc_llm_adapter_for(req->provider);
  if (!ad) {
    snprintf(err, errlen, "unknown provider");
    return LC_EINVAL;
  }
  int custom_base = 1;
  if (!req->base_url || !*req->base_url) {
    lc_free(req->base_url);
    const char *env = ad->base_url_env ? getenv(ad->base_url_env) : NULL;
    if (!env || !*env) {
      env = ad->default_base_url;
      custom_base = 0;
    }
    /* OLLAMA_HOST is often "host:port" without a scheme. */
    if (has_scheme(env)) req->base_url = lc_strdup(env);
    else {
      size_t n = strlen(env) + 8;
      req->base_url = lc_malloc(n);
      if (req->base_url) snprintf(req->base_url, n, "http://%s", env);
    }
    if (!req->base_url) return LC_ENOMEM;
  }
  if ((!req->api_key || !*req->api_key) && ad->api_key_env) {
    /* Registered as it is read: a provider may echo it back (secrets.h). */
    const char *k = lc_secret_getenv(ad->api_key_env);
    if ((!k || !*k) && ad->api_key_env2) k = lc_secret_getenv(ad->api_key_env2);
    if (k && *k) {
      lc_free(req->api_key);
      if (!(req->api_key = lc_strdup(k))) return LC_ENOMEM;
    } else if (!custom_base || req->provider == LC_PROV_ANTHROPIC) {
      /* Local OpenAI-compatible servers take no key; the real services do. */
      if (ad->api_key_env2)
        snprintf(err, errlen, "neither %s nor %s is set (needed for %s at %s)", ad->api_key_env,
                 ad->api_key_env2, ad->name, req->base_url);
      else
        snprintf(err, errlen, "%s is not set (needed for %s at %s)", ad->api_key_env, ad->name,
                 req->base_url);
      return LC_EINVAL;
    }
  }
  return 0;
}

/* Gives a body lent by the request's prefix cache back to it: once no
 * attempt will send it again, while the request is still the caller's to
 * keep valid (llm_call.h). */
static void body_back(struct lc_llm_call *c) {
  if (c->src && c->http.body)
    lc_llm_prefix_give_back(c->src, &c->http.body);
}

static void finish(struct lc_llm_call *c) {
  c->finished = 1;
  /* Last line before the journal, the caller and Lua: whatever error text
   * was formed on the way (adapter, transport, retries) loses the key. */
  lc_llm_response_scrub(c->resp);
  body_back(c);
  c->resp->latency_ms = lc_now_ms() - c->first_ms;
  c->resp->attempts = c->attempts;
  report(c, LC_LLM_ST_END, 0);
  if (c->journaled) {
    /* Before the result reaches the caller (and so Lua). */
    c->journaled = 0;
    lc_effect_llm_end(c->eff, c->resp, c->rec_deltas);
    c->rec_deltas = NULL;
  }
  c->done(c, c->ud);
}

/* Replay: the recorded deltas, then the recorded response; from the
 * scheduler when every task waits (lc_journal_idle), in recorded order. */
static void on_replayed(struct lc_journal_deferred *d) {
  struct lc_llm_call *c = (struct lc_llm_call *)((char *)d - offsetof(struct lc_llm_call, replay));
  if (c->on_delta) lc_effect_llm_each_delta(c->eff, c->on_delta, c->delta_ud);
  c->finished = 1;
  c->done(c, c->ud);
}

static void set_err(struct lc_llm_response *r, enum lc_llm_err e, const char *msg) {
  r->err = e;
  lc_free(r->err_message);
  r->err_message = lc_strdup(msg);
}

static void on_config_failure(struct lc_loop *loop, struct lc_timer *t) { finish(t->ud); }

static void delta_cb(void *ud, const struct lc_llm_delta *d) {
  struct lc_llm_call *c = ud;
  c->deltas++;
  if (c->deltas == 1) report(c, LC_LLM_ST_TOKENS, 0);
  if (c->journaled) {
    lc_effect_llm_add_delta(&c->rec_deltas, d);
    lc_journal_delta(c->eff->j, c->eff->id, d);
  }
  if (c->on_delta) c->on_delta(c->delta_ud, d);
}

/* http sink: feeds the provider's stream parser from the write callback. */
static size_t response_cap(const struct lc_llm_call *c) {
  return c->opts.max_response_bytes ? c->opts.max_response_bytes : 16u << 20;
}

/* The HTTP layer's sink (curl's write callback, from the loop). Every byte
 * the response accumulates (text, reasoning, each tool call's name and
 * arguments) comes from these, so one count over them is the one total
 * cap, checked before the parser sees the bytes; the accumulator's own
 * per-buffer caps are far larger. */
static int stream_sink(void *ud, const char *p, size_t n) {
  struct lc_llm_call *c = ud;
  if (n > response_cap(c) - c->streamed) {
    c->stream_over = 1;
    return LC_EINVAL;
  }
  c->streamed += n;
  /* LC_EINVAL whatever the parser's code: its message says why (http.c
   * would read LC_ENOMEM as its own) */
  return c->ad->stream_feed(c->st, p, n, delta_cb, c) < 0 ? LC_EINVAL : 0;
}

/* Completes from the loop on the next pass, never from inside start. */
static void fail_later(struct lc_llm_call *c, const char *msg) {
  set_err(c->resp, LC_LLM_ENETWORK, msg);
  c->timer.cb = on_config_failure;
  if (lc_timer_start(c->loop, &c->timer, 0) < 0) finish(c);
}

static void on_http_done(struct lc_http_op *op, void *ud);
static void attempt(struct lc_llm_call *c);

static void send_now(struct lc_llm_call *c);
static void on_backoff(struct lc_loop *loop, struct lc_timer *t) { attempt(t->ud); }
static void on_governed(struct lc_loop *loop, struct lc_timer *t) {
  struct lc_llm_call *c = t->ud;
  c->gov_waiting = 0;
  send_now(c);
}

static void reset_response(struct lc_llm_call *c) {
  lc_llm_response_free(c->resp);
  lc_llm_response_init(c->resp);
}

/* Every attempt, retries included, takes its turn at the rate governor. */
static void attempt(struct lc_llm_call *c) {
  if (lc_call_gov_turn(c->gov, c->est_tokens, c->loop, &c->timer, on_governed, &c->ticket)) {
    c->gov_waiting = 1;
    return;
  }
  send_now(c);
}

static void send_now(struct lc_llm_call *c) {
  c->attempts++;
  c->deltas = 0;
  c->streamed = 0;
  c->stream_over = 0;
  cJSON_Delete(c->rec_deltas);
  c->rec_deltas = NULL;
  reset_response(c);
  if (c->st) {
    c->ad->stream_free(c->st);
    c->st = NULL;
  }
  if (c->req->stream && !(c->st = c->ad->stream_new())) {
    fail_later(c, "out of memory creating the stream parser");
    return;
  }
  struct lc_http_req hr = {
      .method = "POST",
      .url = c->http.url,
      .headers = (const char *const *)c->http.headers,
      .n_headers = c->http.n_headers,
      .body = c->http.body,
      .body_len = c->http.body_len,
      .body_borrowed = 1, /* c->http lives as long as the call */
      .no_compress = 1, /* see http.h */
      .connect_timeout_ms = c->opts.connect_timeout_ms,
      .idle_timeout_ms = c->opts.idle_timeout_ms,
      .total_timeout_ms = c->opts.request_timeout_ms,
      .max_body = c->opts.max_response_bytes,
      .aws_sigv4 = c->http.aws_sigv4,
      .aws_userpwd = c->http.aws_userpwd,
  };
  int rc = lc_http_start(c->loop, &c->op, &hr, c->st ? stream_sink : NULL, c,
                         on_http_done, c);
  if (rc) {
    fail_later(c, rc == LC_ENOMEM ? "out of memory starting the HTTP transfer"
                                  : "could not start the HTTP transfer");
    return;
  }
  c->sent_ms = lc_now_ms();
  if (c->opts.status) {
    report(c, LC_LLM_ST_SEND, 0);
    lc_timer_start(c->loop, &c->tick, TICK_MS); /* no slot: no ticks */
  }
}

static void classify_transport(struct lc_llm_call *c, struct lc_http_op *op) {
  struct lc_llm_response *r = c->resp;
  char msg[512];
  switch (op->err) {
    case LC_ETIMEOUT: {
      const char *kind = op->timeout_kind == LC_HTTP_TO_CONNECT ? "connect"
                         : op->timeout_kind == LC_HTTP_TO_IDLE  ? "idle"
                                                                : "total";
      snprintf(msg, sizeof msg, "%s timeout: %s", kind, op->errmsg);
      set_err(r, LC_LLM_ETIMEOUT, msg);
      break;
    }
    case LC_ETOOBIG:
      snprintf(msg, sizeof msg, "%s", op->errmsg);
      set_err(r, LC_LLM_EBADRESP, msg);
      break;
    case LC_EINVAL:
      if (c->stream_over) {
        snprintf(msg, sizeof msg, "streamed response over %zu bytes (max_response_bytes)",
                 response_cap(c));
        set_err(r, LC_LLM_EBADRESP, msg);
        break;
      }
      /* The stream parser refused the bytes: it holds the reason. */
      if (c->st && c->ad->stream_end(c->st, r) == 0) set_err(r, LC_LLM_EBADRESP, op->errmsg);
      if (r->err == LC_LLM_OK) set_err(r, LC_LLM_EBADRESP, op->errmsg);
      break;
    default:
      snprintf(msg, sizeof msg, "network error: %s", op->errmsg);
      set_err(r, LC_LLM_ENETWORK, msg);
  }
}

static void on_http_done(struct lc_http_op *op, void *ud) {
  struct lc_llm_call *c = ud;
  struct lc_llm_response *r = c->resp;
  r->http_status = (int)op->status;
  lc_timer_stop(c->loop, &c->tick);
  if (op->err) {
    classify_transport(c, op);
  } else if (op->status >= 200 && op->status < 300) {
    if (c->st) c->ad->stream_end(c->st, r);
    else c->ad->parse(op->body.data ? op->body.data : "", op->body.len, r);
  } else {
    c->ad->parse_error((int)op->status, op->body.data ? op->body.data : "",
                       op->body.len, r);
    /* AWS names the error only in a header (llm_bedrock.h). */
    if (c->ad == &lc_llm_bedrock && op->amzn_error_type[0])
      lc_llm_bedrock_error_type(op->amzn_error_type, r);
    if (r->err == LC_LLM_OK) r->err = lc_llm_err_from_status((int)op->status);
  }
  if (c->gov)
    lc_governor_settle(c->gov, c->est_tokens,
                       r->err ? c->est_tokens : (double)(r->usage.input + r->usage.output));
  if (op->request_id[0] && !r->request_id) r->request_id = lc_strdup(op->request_id);
  double ra = lc_call_retry_after_s(op);
  if (ra >= 0) r->retry_after_s = ra;

  /* A stream that already handed text to the caller is not replayed: a
   * retry would deliver the same deltas twice. */
  if (r->err != LC_LLM_OK && lc_llm_err_retryable(r->err) && c->deltas == 0) {
    const char *why = NULL;
    double delay = lc_call_backoff(&c->opts.retry, c->attempts, r->retry_after_s, c->first_ms,
                                   c->loop, &c->timer, on_backoff, &why);
    if (delay >= 0) {
      report(c, LC_LLM_ST_RETRY, delay);
      return;
    }
    if (why && c->attempts > 1) {
      char msg[1024];
      snprintf(msg, sizeof msg, "%s (gave up after %d attempts: %s)",
               r->err_message ? r->err_message : lc_llm_err_name(r->err), c->attempts, why);
      set_err(r, r->err, msg);
    }
  }
  finish(c);
}

/* Takes ownership of req when owned (also on failure); else borrows it. */
static int start(struct lc_loop *loop, struct lc_llm_request *req, int owned,
                 const struct lc_llm_opts *o, lc_llm_delta_fn on_delta,
                 void *delta_ud, lc_llm_done_fn done, void *ud,
                 struct lc_llm_call **out) {
  struct lc_llm_request *src = req; /* the caller's, owned or not */
  struct lc_llm_call *c = lc_calloc(1, sizeof *c);
  struct lc_llm_response *resp = lc_calloc(1, sizeof *resp);
  if (!c || !resp) {
    lc_free(c);
    lc_free(resp);
    if (owned) lc_llm_request_delete(req);
    return LC_ENOMEM;
  }
  lc_llm_response_init(resp);
  c->loop = loop;
  c->owned = owned;
  if (!owned) {
    /* Endpoint resolution writes base_url / api_key: into our view, never
     * into the caller's request. Empty strings count as unset there and
     * would be freed, so the view starts from NULL instead. */
    c->view = *req;
    if (c->view.base_url && !*c->view.base_url) c->view.base_url = NULL;
    if (c->view.api_key && !*c->view.api_key) c->view.api_key = NULL;
    req = &c->view;
  }
  c->req = req;
  c->src = src;
  c->resp = resp;
  c->on_delta = on_delta;
  c->delta_ud = delta_ud;
  c->done = done;
  c->ud = ud;
  if (o) c->opts = *o;
  else lc_llm_opts_default(&c->opts);
  if (c->opts.retry.max_attempts < 1) c->opts.retry.max_attempts = 1;
  lc_http_op_init(&c->op);
  lc_timer_init(&c->timer, on_config_failure, c);
  lc_timer_init(&c->tick, on_tick, c);
  c->first_ms = lc_now_ms();
  c->ad = lc_llm_adapter_for(req->provider);

  char err[512] = "";
  if (c->opts.effect.j) {
    if (!(c->eff = lc_calloc(1, sizeof *c->eff))) goto nomem;
    int erc = lc_effect_llm_begin(&c->opts.effect, req, c->eff);
    if (erc == LC_EFFECT_REPLAYED) {
      erc = lc_effect_llm_replay(c->eff, resp);
      if (erc == LC_ENOMEM) goto nomem;
      if (erc == 0) {
        c->replay.fire = on_replayed;
        lc_journal_defer(c->opts.effect.j, c->eff, &c->replay);
        *out = c;
        return 0;
      }
    }
    if (erc < 0) {
      /* Mismatch, missing effect or a failed journal: never sent. */
      set_err(resp, LC_LLM_ECONFIG, lc_journal_error(c->opts.effect.j));
      if (lc_timer_start(loop, &c->timer, 0) < 0) goto nomem;
      *out = c;
      return 0;
    }
    c->journaled = c->eff->recording;
  }
  const char *base0 = req->base_url, *key0 = req->api_key;
  /* A key from the script's options (the environment's is registered as
   * it is read): known before anything can echo it. */
  if (req->api_key) lc_secret_add(req->api_key, strlen(req->api_key));
  int rc = c->ad ? lc_llm_resolve_endpoint(req, err, sizeof err) : LC_EINVAL;
  if (!owned) {
    /* What resolution put in the view is ours to free. */
    if (req->base_url != base0) c->own_base_url = req->base_url;
    if (req->api_key != key0) c->own_api_key = req->api_key;
  }
  if (rc == LC_ENOMEM) goto nomem;
  if (rc == 0) {
    rc = c->ad->build(req, &c->http, err, sizeof err);
    /* The view's caches are a copy of the caller's: what build kept (or
     * lent, or dropped) there belongs to the caller's request. */
    if (!owned) {
      src->tools_wire = c->view.tools_wire;
      src->prefix = c->view.prefix;
    }
    if (rc == LC_ENOMEM) goto nomem;
    /* The body waits with the agent for the whole call: give back the
     * builder's slack (a shrinking realloc stays in place). A body lent
     * by the prefix cache is already trimmed, and must keep its address. */
    char *fit = rc || c->http.body == src->prefix.lent
                    ? NULL
                    : lc_realloc(c->http.body, c->http.body_len + 1);
    if (fit) c->http.body = fit;
  }
  if (rc) {
    set_err(resp, LC_LLM_ECONFIG, err[0] ? err : "cannot build the request");
    if (lc_timer_start(loop, &c->timer, 0) < 0) goto nomem;
    *out = c;
    return 0;
  }
  c->gov = lc_governor_for(c->ad->name, req->base_url, req->api_key);
  /* Providers count max_tokens against TPM up front; so do we. */
  c->est_tokens = (double)c->http.body_len / 4.0 +
                  ((req->set & LC_SET_MAX_TOKENS) ? req->max_tokens : 256);
  attempt(c);
  *out = c;
  return 0;
nomem:
  lc_llm_call_free(c);
  return LC_ENOMEM;
}

int lc_llm_call_start(struct lc_loop *loop, struct lc_llm_request *req,
                      const struct lc_llm_opts *o, lc_llm_delta_fn on_delta,
                      void *delta_ud, lc_llm_done_fn done, void *ud,
                      struct lc_llm_call **out) {
  return start(loop, req, 1, o, on_delta, delta_ud, done, ud, out);
}

int lc_llm_call_start_borrowed(struct lc_loop *loop,
                               const struct lc_llm_request *req,
                               const struct lc_llm_opts *o,
                               lc_llm_delta_fn on_delta, void *delta_ud,
                               lc_llm_done_fn done, void *ud,
                               struct lc_llm_call **out) {
  /* Never written through: start() works on a copy of the struct. The
   * wire caches are the exception llm.h allows for cache_wire requests. */
  return start(loop, (struct lc_llm_request *)req, 0, o, on_delta, delta_ud,
               done, ud, out);
}

const struct lc_llm_response *lc_llm_call_response(const struct lc_llm_call *c) {
  return c->resp;
}

const struct lc_llm_request *lc_llm_call_request(const struct lc_llm_call *c) {
  return c->req;
}

struct lc_llm_response *lc_llm_call_take_response(struct lc_llm_call *c) {
  struct lc_llm_response *r = c->resp;
  c->resp = NULL;
  return r;
}

int lc_llm_call_interrupt(struct lc_llm_call *c, const char *why) {
  /* Done, or a replay: the journal answers it, and must answer the same. */
  if (!c || c->finished || c->replay.fire) return 0;
  if (c->timer.cb == on_config_failure && lc_timer_active(&c->timer)) return 0; /* ending */
  lc_http_cancel(&c->op); /* no completion from the transfer now */
  lc_timer_stop(c->loop, &c->timer);
  if (c->gov_waiting) {
    lc_governor_refund(c->gov, &c->ticket);
    c->gov_waiting = 0;
  }
  if (!c->resp) return 0;
  reset_response(c);
  set_err(c->resp, LC_LLM_ECANCEL, why ? why : "interrupted");
  c->timer.cb = on_config_failure; /* finish on the next pass, journaled */
  if (lc_timer_start(c->loop, &c->timer, 0) < 0) finish(c);
  return 1;
}

void lc_llm_call_free(struct lc_llm_call *c) {
  if (!c) return;
  if (c->journaled) lc_effect_cancel(c->eff, "cancelled");
  if (c->replay.queued) lc_journal_undefer(c->opts.effect.j, &c->replay);
  cJSON_Delete(c->rec_deltas);
  report(c, LC_LLM_ST_END, 0); /* cancelled in flight: the display's end */
  if (c->loop) lc_timer_stop(c->loop, &c->timer);
  /* Cancelled while waiting its turn: the request was never sent, so the
   * slot goes back to the governor for the calls after it. */
  if (c->gov_waiting) lc_governor_refund(c->gov, &c->ticket);
  lc_http_op_cleanup(&c->op);
  /* Cancelled: the transfer is gone, the request still valid. */
  if (!c->finished) body_back(c);
  if (c->st) c->ad->stream_free(c->st);
  lc_llm_http_free(&c->http);
  if (c->resp) {
    lc_llm_response_free(c->resp);
    lc_free(c->resp);
  }
  if (c->owned) lc_llm_request_delete(c->req);
  lc_free(c->own_base_url);
  lc_free(c->own_api_key);
  lc_free(c->eff);
  lc_free(c);
}
