/* util_stall.h: the ticker harness for "nothing blocks the loop thread".
 *
 * lc_stall_run runs a case's operation as a luact task (op() from the
 * case's Lua chunk) beside a ticker task on the same loop. Once the case
 * says the operation is in flight (a hold it controls has been reached:
 * lc_stall_in_flight), the ticker optionally calls after_in_flight(task)
 * (e.g. to cancel it), then must complete LC_STALL_TICKS passes through the
 * loop; only then is the hold released (the case's release callback). If
 * the loop thread is stuck in the operation, the ticker never finishes, the
 * hold is never released and the case never ends: Check's timeout fails
 * it. After the release and the operation's end, after_release() runs
 * when the script defines it. No duration is asserted anywhere. A hold that finds itself on the
 * loop thread (lc_stall_on_loop_thread) can report that at once instead
 * (lc_stall_blocked_loop), so that case fails fast with a clear message.
 *
 * To add a case (SQL, sandbox, ...): fill a struct lc_stall (script with
 * op() and maybe after_in_flight(task), setup to attach what the script
 * needs, release to let the operation end), call lc_stall_run, then
 * lc_stall_assert_ok. The hold calls lc_stall_in_flight from any thread,
 * or op() calls stall.mark() when the hold is its own state (e.g. input
 * that has not been written yet). */
#ifndef LC_TEST_UTIL_STALL_H
#define LC_TEST_UTIL_STALL_H

#include <lua.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#define LC_STALL_TICKS 20

struct lc_stall {
  /* Filled by the case. */
  const char *name;
  const char *script; /* Lua defining op() and optionally after_in_flight(task) */
  void (*setup)(struct lc_stall *s, lua_State *L); /* may be NULL */
  void (*release)(struct lc_stall *s);             /* let the held operation end */
  void *ud;
  /* Set by the harness and the holds. */
  atomic_int in_flight;    /* the operation reached its hold */
  atomic_int released;     /* the ticker finished and released it */
  atomic_int blocked_loop; /* a hold ran on the loop thread */
  long ticks;              /* passes the ticker completed */
  pthread_t loop_thread;
  char result[512]; /* what the ticker returned: "ok <op's results>" / "err <msg>" */
};

/* Runs the case to the end (see above). Returns the script's status (0 =
 * returned normally); err gets its error. */
int lc_stall_run(struct lc_stall *s, char *err, size_t errlen);
/* Asserts the ticker completed every tick while the operation was held,
 * and no hold ran on the loop thread. */
void lc_stall_assert_ok(const struct lc_stall *s);

/* For holds: the operation has reached the hold (any thread). */
void lc_stall_in_flight(struct lc_stall *s);
/* For holds: 1 when called on the thread that runs the loop. */
int lc_stall_on_loop_thread(const struct lc_stall *s);
/* For holds that found themselves on the loop thread: records it (the
 * case fails) and marks the operation in flight so the run can end. */
void lc_stall_blocked_loop(struct lc_stall *s);

#endif
