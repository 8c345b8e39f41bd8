/* batch_call.h: the part an embeddings call (embed_call.c) and a rerank
 * call (rerank_call.c) share: a list of items sent in batches, one after
 * the other, each through the rate governor, timeouts and retries of a chat
 * call (llm_call.h), the whole call one journaled effect (pure). The kind
 * builds and parses its batches, records and replays its answer, and owns
 * its request and result; this file owns the transfer, the timers and the
 * journal's framing (error kinds, http_status, attempts, latency).
 *
 * A kind embeds struct lc_batch_call as the first member of its call
 * object, fills kind, res, total, provider and model, and calls
 * lc_batch_call_start. Ownership: the kind's object stays the kind's; it
 * calls lc_batch_call_cleanup before freeing its request and result. */
#ifndef LC_BATCH_CALL_H
#define LC_BATCH_CALL_H

#include <stddef.h>

#include "effect.h"
#include "governor.h"
#include "http.h"
#include "llm_call.h"
#include "loop.h"

struct lc_batch_call;

/* The fields of the kind's result that the shared part writes. */
struct lc_batch_res {
  enum lc_llm_err *err;
  char **err_message, **err_type;
  int *http_status, *attempts;
  double *latency_ms, *retry_after_s;
  const long *tokens; /* recorded in the journal's extra under tokens_key */
};
/* The view of a kind's result r (a pointer) whose tokens field is tok. */
#define LC_BATCH_RES(r, tok)                                                                 \
  ((struct lc_batch_res){&(r)->err, &(r)->err_message, &(r)->err_type, &(r)->http_status,  \
                         &(r)->attempts, &(r)->latency_ms, &(r)->retry_after_s, &(r)->tok})

struct lc_batch_kind {
  const char *effect;     /* the effect kind: "embed", "rerank" */
  const char *items;      /* names a failed batch: "inputs", "documents" */
  const char *tokens_key; /* "input_tokens", "tokens" */
  /* The request as the journal records it (NULL: out of memory). */
  cJSON *(*request_json)(struct lc_batch_call *c);
  /* The answer's own members of a successful result; 0 or LC_ENOMEM. */
  int (*record)(struct lc_batch_call *c, cJSON *body);
  /* A recorded successful answer into the result; 0, LC_EINVAL (the
   * journal failed with the reason) or LC_ENOMEM. */
  int (*replay)(struct lc_batch_call *c, const cJSON *res);
  /* Endpoint and key; sets c->gov. 0, LC_EINVAL (err) or LC_ENOMEM. */
  int (*resolve)(struct lc_batch_call *c, char *err, size_t cap);
  size_t (*next_batch)(struct lc_batch_call *c, size_t from);
  int (*build)(struct lc_batch_call *c, size_t from, size_t n, struct lc_llm_http *h, char *err,
               size_t cap);
  void (*parse)(struct lc_batch_call *c, const char *body, size_t len);
  void (*parse_error)(struct lc_batch_call *c, int status, const char *body, size_t len);
  /* The result once the last batch is in (or failed): err says which. */
  void (*settle)(struct lc_batch_call *c);
  /* The kind's done callback; runs exactly once. */
  void (*done)(struct lc_batch_call *c);
};

struct lc_batch_call {
  const struct lc_batch_kind *kind;
  struct lc_batch_res res;
  size_t total; /* items in the request */
  const char *provider, *model; /* the effect's name: borrowed from the request */
  struct lc_loop *loop;
  struct lc_llm_opts opts;
  struct lc_llm_http http; /* the current batch, sent on every attempt */
  struct lc_http_op op;
  struct lc_timer timer;
  struct lc_governor *gov;
  struct lc_governor_ticket ticket;
  int gov_waiting;
  double est_tokens;
  double first_ms;
  size_t from, batch; /* the batch in flight: items [from, from + batch) */
  int attempts;       /* of the current batch */
  int requests;       /* all HTTP requests */
  int finished;
  struct lc_effect_op *eff;
  int journaled;
  struct lc_journal_deferred replay;
};

/* Sets the result's error and its message (a copy). */
void lc_batch_call_set_err(struct lc_batch_call *c, enum lc_llm_err e, const char *msg);
/* Fails the journal with "replay: effect ID: why"; returns LC_EINVAL. */
int lc_batch_call_replay_bad(struct lc_batch_call *c, const char *why);
/* Starts c (filled as above; o may be NULL). 0: kind->done will run from
 * the loop exactly once; LC_ENOMEM: it never runs, and the kind frees. */
int lc_batch_call_start(struct lc_batch_call *c, struct lc_loop *loop,
                        const struct lc_llm_opts *o);
/* Stops what runs (done then never runs) and frees what c owns. */
void lc_batch_call_cleanup(struct lc_batch_call *c);

#endif
