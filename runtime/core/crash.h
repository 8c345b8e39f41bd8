/* crash.h: named crash points, for the crash tests of durable runs.
 *
 * LUACT_CRASH_AT=point[@kind][#n] makes the process SIGKILL itself the n-th
 * time (default 1) it reaches point (for an effect of kind, when given),
 * the way a power cut or the OOM killer would end it: no cleanup, no
 * flush. Points: after_intent, before_result, after_result (effects.c),
 * waiting_input, before_final_status (luact run), before_run_ctx,
 * before_end_writes (luact serve). LUACT_CRASH_AT=stop:point... stops the
 * process with SIGSTOP instead (a stall past a fleet's lease, check_fleet);
 * SIGCONT resumes it there. Unset: a load and a compare per call. */
#ifndef LC_CRASH_H
#define LC_CRASH_H

void lc_crash_point(const char *point, const char *kind);
/* The two halves, for a point that must first finish what it names
 * (after_intent / after_result: the line durable, as the caller's wait
 * would make it): due counts the hit and says whether to crash now. */
int lc_crash_due(const char *point, const char *kind);
void lc_crash_now(void);

#endif
