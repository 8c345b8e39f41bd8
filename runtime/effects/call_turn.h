/* call_turn.h: what an LLM call (llm_call.c) and an embeddings or rerank
 * batch (batch_call.c) do alike between their HTTP attempts: take a turn
 * at the provider's rate governor, read the server's Retry-After, and wait
 * out the retry's backoff on a timer of their loop.
 *
 * Nothing is allocated: the caller owns the timer and the ticket, and the
 * timer's ud is the caller's. */
#ifndef LC_CALL_TURN_H
#define LC_CALL_TURN_H

#include "governor.h"
#include "http.h"
#include "loop.h"
#include "retry.h"

/* Takes this attempt's turn at gov (est tokens; ticket filled): 1 when the
 * turn is later and t was started with cb for it, 0 to send now (no wait,
 * or no timer could be started). */
int lc_call_gov_turn(struct lc_governor *gov, double est, struct lc_loop *loop,
                     struct lc_timer *t, lc_timer_fn cb, struct lc_governor_ticket *ticket);
/* The server's Retry-After in seconds (retry-after-ms first), -1 for none. */
double lc_call_retry_after_s(const struct lc_http_op *op);
/* The next attempt's backoff (lc_retry_delay, the server's retry_after_s
 * first when >= 0) started on t with cb: its delay in ms, or -1 when there
 * is no next attempt (*why says why, may be NULL) or no timer. */
double lc_call_backoff(const struct lc_retry_policy *p, int attempts, double retry_after_s,
                       double first_ms, struct lc_loop *loop, struct lc_timer *t, lc_timer_fn cb,
                       const char **why);

#endif
