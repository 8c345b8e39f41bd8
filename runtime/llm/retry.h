/* retry.h: when to retry a failed call, and how long to wait first.
 *
 * Exponential backoff with "equal jitter" (half fixed, half random, so a
 * retry never fires immediately yet a herd of clients spreads out), capped
 * per delay; a server's Retry-After wins when present; both bounded by the
 * attempt cap and the total time budget. Pure: the random value is passed
 * in, so tests are deterministic. */
#ifndef LC_RETRY_H
#define LC_RETRY_H

#include <stdint.h>

struct lc_retry_policy {
  int max_attempts;          /* total attempts including the first (>= 1) */
  double base_delay_ms;      /* first backoff step */
  double max_delay_ms;       /* cap on one computed backoff */
  double max_retry_after_ms; /* a longer Retry-After is not waited out */
  double total_ms;           /* budget for all attempts and waits; 0 = none */
};

void lc_retry_policy_default(struct lc_retry_policy *p);

/* Delay before attempt number attempts+1, or -1 to stop. attempts is how
 * many were made; retry_after_ms < 0 when the server gave none; elapsed_ms
 * is the time since the first attempt started; rnd is a random value.
 * why (may be NULL) gets a short reason when the answer is -1. */
double lc_retry_delay(const struct lc_retry_policy *p, int attempts,
                      double retry_after_ms, double elapsed_ms, uint64_t rnd,
                      const char **why);

#endif
