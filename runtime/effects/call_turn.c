/* call_turn.c: the governor's turn and the retry's backoff of a call
 * (call_turn.h). */
#include "call_turn.h"

#include "lc.h"
#include "llm.h"

int lc_call_gov_turn(struct lc_governor *gov, double est, struct lc_loop *loop,
                     struct lc_timer *t, lc_timer_fn cb, struct lc_governor_ticket *ticket) {
  double wait = lc_governor_reserve_ticket(gov, est, lc_now_ms(), ticket);
  if (wait <= 0) return 0;
  t->cb = cb;
  return lc_timer_start(loop, t, wait) == 0;
}

double lc_call_retry_after_s(const struct lc_http_op *op) {
  double ra = lc_llm_retry_after_s("retry-after-ms", op->retry_after_ms, lc_wall_s());
  return ra >= 0 ? ra : lc_llm_retry_after_s("retry-after", op->retry_after, lc_wall_s());
}

double lc_call_backoff(const struct lc_retry_policy *p, int attempts, double retry_after_s,
                       double first_ms, struct lc_loop *loop, struct lc_timer *t, lc_timer_fn cb,
                       const char **why) {
  double delay = lc_retry_delay(p, attempts, retry_after_s >= 0 ? retry_after_s * 1000 : -1,
                                lc_now_ms() - first_ms, lc_rand64(), why);
  if (delay < 0) return -1;
  t->cb = cb;
  return lc_timer_start(loop, t, delay) == 0 ? delay : -1;
}
