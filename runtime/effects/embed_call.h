/* embed_call.h: one embeddings call on the loop: the inputs go out in
 * batches the provider accepts (embed.h), one after the other, each
 * through the same rate governor, timeouts and retries as a chat call
 * (llm_call.h), and the whole call is one journaled effect (kind "embed",
 * pure): in replay no batch is sent and the recorded vectors come back.
 *
 * Ownership: start takes ownership of q, also on failure. The call object
 * is the caller's (lc_embed_call_free cancels a running call: done then
 * never runs). done runs from the loop, exactly once, after start returned
 * 0; a call that cannot be sent still completes through done (ECONFIG). */
#ifndef LC_EMBED_CALL_H
#define LC_EMBED_CALL_H

#include "embed.h"
#include "llm_call.h"

struct lc_loop;
struct lc_embed_call;
typedef void (*lc_embed_done_fn)(struct lc_embed_call *c, void *ud);

int lc_embed_call_start(struct lc_loop *loop, struct lc_embed_request *q,
                        const struct lc_llm_opts *o, lc_embed_done_fn done, void *ud,
                        struct lc_embed_call **out);
const struct lc_embed_result *lc_embed_call_result(const struct lc_embed_call *c);
/* HTTP requests sent so far (batches and their retries). */
int lc_embed_call_requests(const struct lc_embed_call *c);
void lc_embed_call_free(struct lc_embed_call *c);

#endif
