/* llm_call.h: the non-blocking LLM client: one call = build the provider
 * request, run it on the loop (curl_multi), stream or buffer the answer,
 * classify errors, retry the retryable ones with backoff, and complete once.
 *
 * Ownership: lc_llm_call_start takes ownership of req, also on failure.
 * lc_llm_call_start_borrowed only borrows it: the caller keeps it valid and
 * unchanged until done has run, or until lc_llm_call_free when the call is
 * freed before that; afterwards it may change or go (the call built the
 * HTTP body up front and retries resend those bytes; the journal reads the
 * request inside start). The call never writes the borrowed request except
 * its caches (llm.h, cache_wire): a body built through the prefix cache is
 * the request's buffer, lent to the call and given back when the call
 * completes (before done runs) or is freed. A base URL or key it resolves
 * from the environment is its own copy. The call object is the caller's:
 * lc_llm_call_free cancels a running call (the done callback then never
 * runs) and frees everything it owns. The response stays owned by the call
 * unless taken with lc_llm_call_take_response.
 *
 * Callbacks: on_delta runs from inside the transfer's write callback: it
 * must only copy the delta and mark progress (no Lua, no curl calls). done
 * runs from the loop, exactly once, after start returned 0. A call that
 * cannot be sent (unknown provider, missing key) still completes through
 * done, with err = LC_LLM_ECONFIG, on the next loop pass. */
#ifndef LC_LLM_CALL_H
#define LC_LLM_CALL_H

#include "effect.h"
#include "llm.h"
#include "retry.h"

struct lc_loop;
struct lc_llm_call;

/* Progress of a call, for a live display (l_status.c). */
enum lc_llm_status_kind {
  LC_LLM_ST_SEND,   /* an attempt went out */
  LC_LLM_ST_WAIT,   /* once a second while it is in flight */
  LC_LLM_ST_TOKENS, /* the first token of the attempt streamed in */
  LC_LLM_ST_RETRY,  /* the attempt failed; the next starts in delay_s */
  LC_LLM_ST_END     /* the call completed or was freed: the last event */
};

struct lc_llm_status {
  enum lc_llm_status_kind kind;
  const char *model;  /* may be NULL */
  int attempt;        /* 1-based: the attempt in flight (RETRY: that failed) */
  int max_attempts;
  double waited_s;    /* since the attempt went out */
  long tokens;        /* deltas streamed in this attempt */
  double delay_s;     /* RETRY: backoff before the next attempt */
  const char *error;  /* RETRY: the error kind ("rate_limit", "timeout") */
  int http_status;    /* RETRY: 0 when no response came */
};

/* Runs from the loop, except TOKENS, which runs from inside the transfer's
 * write callback: it may only note or print (no Lua, no curl). */
typedef void (*lc_llm_status_fn)(void *ud, const struct lc_llm_status *s);

struct lc_llm_opts {
  struct lc_retry_policy retry;
  double connect_timeout_ms; /* default 10 s */
  double idle_timeout_ms;    /* no byte for this long ends the attempt; 60 s */
  double request_timeout_ms; /* one attempt, whole transfer; 600 s */
  size_t max_response_bytes; /* default 16 MiB */
  /* Journal the call as an effect (effect.h); zero = not journaled. In
   * replay the call never touches the network: done runs on the next loop
   * pass with the recorded response, after on_delta has been handed the
   * recorded deltas, one per delta the original call streamed. */
  struct lc_effect_src effect;
  /* Optional progress reports (never in replay); status_ud is theirs. */
  lc_llm_status_fn status;
  void *status_ud;
};

void lc_llm_opts_default(struct lc_llm_opts *o);

typedef void (*lc_llm_done_fn)(struct lc_llm_call *c, void *ud);

int lc_llm_call_start(struct lc_loop *loop, struct lc_llm_request *req,
                      const struct lc_llm_opts *o, lc_llm_delta_fn on_delta,
                      void *delta_ud, lc_llm_done_fn done, void *ud,
                      struct lc_llm_call **out);
/* Same, on a borrowed request (see above). Fails with LC_ENOMEM only. */
int lc_llm_call_start_borrowed(struct lc_loop *loop,
                               const struct lc_llm_request *req,
                               const struct lc_llm_opts *o,
                               lc_llm_delta_fn on_delta, void *delta_ud,
                               lc_llm_done_fn done, void *ud,
                               struct lc_llm_call **out);
const struct lc_llm_response *lc_llm_call_response(const struct lc_llm_call *c);
/* Moves the response out (caller frees with lc_llm_response_free + lc_free). */
struct lc_llm_response *lc_llm_call_take_response(struct lc_llm_call *c);
/* The request as sent (endpoint resolved). For a borrowed request, valid
 * only while the caller's request is. */
const struct lc_llm_request *lc_llm_call_request(const struct lc_llm_call *c);
void lc_llm_call_free(struct lc_llm_call *c);
/* Stops a call in flight (a person pressed Ctrl-C): the transfer, backoff
 * or governor wait ends and the call completes through done on the next
 * loop pass with err LC_LLM_ECANCEL and message why, journaled like any
 * failed call. Returns 1 if it did; 0 for a call that is done, already
 * completing, or answered from a journal (a replay must get what was
 * recorded). */
int lc_llm_call_interrupt(struct lc_llm_call *c, const char *why);

/* Resolves base URL and key from the request, then the environment, then
 * the provider default. Fills req->base_url / req->api_key. Returns 0, or
 * LC_EINVAL with a message naming the missing variable. */
int lc_llm_resolve_endpoint(struct lc_llm_request *req, char *err, size_t errlen);

#endif
