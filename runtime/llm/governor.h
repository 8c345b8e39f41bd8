/* governor.h: one rate governor per provider and key, shared by every agent
 * in the process (all worker threads), so thousands of agents queue
 * politely instead of storming a provider into 429s.
 *
 * Mechanism: virtual scheduling (GCRA). Requests-per-minute and
 * tokens-per-minute are two "next free" instants; a request reserves its
 * slot under a mutex and is told how long to wait. No thread wakes another:
 * each caller waits on a timer of its own loop, and FIFO order follows from
 * the reservations. Burst allows that many requests (or tokens) at once.
 *
 * Ownership: governors live in a process-wide registry until
 * lc_governor_reset_all (tests, shutdown). Keys are hashed, never stored. */
#ifndef LC_GOVERNOR_H
#define LC_GOVERNOR_H

struct lc_governor;

struct lc_governor_limits {
  double rpm;       /* requests per minute; 0 = unlimited */
  double tpm;       /* tokens per minute; 0 = unlimited */
  double burst_req; /* requests allowed at once (default 1 when rpm set) */
  double burst_tok; /* tokens allowed at once (default tpm / 6: 10 s worth) */
};

/* The governor for (provider, base_url, api_key); created on first use.
 * Returns NULL when no limits are configured for it. */
struct lc_governor *lc_governor_for(const char *provider, const char *base_url,
                                    const char *api_key);
/* Sets limits for a provider (all its endpoints and keys), e.g. from
 * luact.llm.limits{openai = {rpm = 500, tpm = 200000}}. */
int lc_governor_configure(const char *provider, const struct lc_governor_limits *l);
/* Reserves one request of est_tokens; returns the delay in ms before it may
 * be sent (0 = now). */
double lc_governor_reserve(struct lc_governor *g, double est_tokens, double now_ms);
/* What one reservation took from the schedule, so that it can be given
 * back exactly even if the limits change meanwhile. */
struct lc_governor_ticket {
  double req_ms, tok_ms;
};
/* lc_governor_reserve that also fills *t (may be NULL). */
double lc_governor_reserve_ticket(struct lc_governor *g, double est_tokens, double now_ms,
                                  struct lc_governor_ticket *t);
/* Gives back a reservation whose request was never sent (the call was
 * cancelled while it waited for its turn), so the calls after it are not
 * held back by a slot nobody uses. Calls already told their delay keep it;
 * a later one may share their instant, which keeps the rate per window. */
void lc_governor_refund(struct lc_governor *g, const struct lc_governor_ticket *t);
/* After the answer: corrects the token reservation by actual - estimated. */
void lc_governor_settle(struct lc_governor *g, double est_tokens, double actual_tokens);
/* The schedule as it stands (tests): the next free request and token
 * instants. */
void lc_governor_state(struct lc_governor *g, double *next_req_ms, double *next_tok_ms);
void lc_governor_reset_all(void);

#endif
