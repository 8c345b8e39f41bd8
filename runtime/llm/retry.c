/* retry.c: backoff with jitter, Retry-After, attempt and time caps. */
#include "retry.h"

#include <math.h>

void lc_retry_policy_default(struct lc_retry_policy *p) {
  p->max_attempts = 4;
  p->base_delay_ms = 500;
  p->max_delay_ms = 30000;
  p->max_retry_after_ms = 60000;
  p->total_ms = 300000;
}

double lc_retry_delay(const struct lc_retry_policy *p, int attempts,
                      double retry_after_ms, double elapsed_ms, uint64_t rnd,
                      const char **why) {
  const char *dummy;
  if (!why) why = &dummy;
  if (attempts >= p->max_attempts) {
    *why = "attempt limit reached";
    return -1;
  }
  double delay;
  if (retry_after_ms >= 0) {
    if (retry_after_ms > p->max_retry_after_ms) {
      *why = "server asked to wait longer than max_retry_after";
      return -1;
    }
    /* A little spread on top so clients told the same instant don't
     * arrive together; never earlier than asked. */
    double spread = fmin(retry_after_ms * 0.1, 1000.0);
    delay = retry_after_ms + spread * ((double)(rnd >> 11) / 9007199254740992.0);
  } else {
    double cap = p->base_delay_ms * pow(2.0, attempts - 1);
    if (cap > p->max_delay_ms) cap = p->max_delay_ms;
    double u = (double)(rnd >> 11) / 9007199254740992.0; /* [0,1) */
    delay = cap / 2 + u * cap / 2;
  }
  if (p->total_ms > 0 && elapsed_ms + delay >= p->total_ms) {
    *why = "retry budget (total time) exhausted";
    return -1;
  }
  return delay;
}
