/* rerank_call.h: one rerank call on the loop: the documents go out in
 * batches the provider accepts (rerank.h), one after the other, each
 * through the same rate governor, timeouts and retries as a chat call
 * (llm_call.h); the scores are merged, sorted and cut to top_n, and the
 * whole call is one journaled effect (kind "rerank", pure): in replay no
 * batch is sent and the recorded scores come back.
 *
 * Ownership: start takes ownership of q, also on failure. The call object
 * is the caller's (lc_rerank_call_free cancels a running call: done then
 * never runs). done runs from the loop, exactly once, after start
 * returned 0; a call that cannot be sent still completes through done
 * (ECONFIG). */
#ifndef LC_RERANK_CALL_H
#define LC_RERANK_CALL_H

#include "llm_call.h"
#include "rerank.h"

struct lc_loop;
struct lc_rerank_call;
typedef void (*lc_rerank_done_fn)(struct lc_rerank_call *c, void *ud);

int lc_rerank_call_start(struct lc_loop *loop, struct lc_rerank_request *q,
                         const struct lc_llm_opts *o, lc_rerank_done_fn done, void *ud,
                         struct lc_rerank_call **out);
const struct lc_rerank_result *lc_rerank_call_result(const struct lc_rerank_call *c);
/* HTTP requests sent so far (batches and their retries). */
int lc_rerank_call_requests(const struct lc_rerank_call *c);
void lc_rerank_call_free(struct lc_rerank_call *c);

#endif
