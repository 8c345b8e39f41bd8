/* sched.h: tasks (Lua coroutines) on one loop, the ready queue, spawn / wait /
 * kill. The only caller of lua_resume.
 *
 * A task's coroutine is pinned by a registry ref and carries its struct
 * lc_task * in lua_getextraspace; the main thread's slot stays NULL, so a
 * coroutine that a script creates itself carries NULL and waiting bindings
 * refuse to yield from it (lc_task_check raises).
 *
 * Waiting: a binding fills a struct lc_wait (usually inside a userdata it
 * keeps on its own stack), calls lc_task_wait, then lua_yieldk with a
 * continuation. Whoever completes the operation calls lc_task_wake; the
 * scheduler resumes the task on its next pass (never from inside a libcurl
 * callback) and the continuation reads the op's result.
 *
 * Ownership: the scheduler owns tasks. A finished task stays (a zombie with
 * its results on its coroutine stack) until lc_task_release or
 * lc_task_detach; a detached task that is still live runs on and is freed
 * when it ends. A task whose coroutine is on the C stack (running, or an
 * ancestor that started the running one inline) is never closed or freed
 * there: kills and releases of it wait until control is back in the
 * scheduler. */
#ifndef LC_SCHED_H
#define LC_SCHED_H

#include <lua.h>

struct lc_loop;
struct lc_sched;
struct lc_task;

struct lc_wait {
  /* Stops the operation and releases what it holds; after it returns the
   * task will not be woken by it. Called when the task is killed. */
  void (*cancel)(struct lc_wait *w);
};

enum lc_task_state { LC_TASK_READY, LC_TASK_WAITING, LC_TASK_DONE };

/* [-0, +0, m] Creates a scheduler for the main state L (caller-owned) and a
 * fresh loop it owns. Stores itself in L's registry. */
int lc_sched_new(lua_State *L, struct lc_sched **out);
/* [-0, +0, m] The same on a loop the caller owns and drives (a daemon
 * worker runs many schedulers, one per run's Lua state, on one loop: one
 * epoll and one curl multi, so connections are reused across runs). The
 * caller runs passes with lc_sched_step between lc_loop_run_once calls
 * instead of lc_sched_run, and frees the loop after every scheduler on it
 * (lc_sched_free leaves a borrowed loop alone). */
int lc_sched_new_on(lua_State *L, struct lc_loop *loop, struct lc_sched **out);
/* Kills every task, frees the loop if it made it. L stays the caller's. */
void lc_sched_free(struct lc_sched *s);
/* fn(ud) runs in lc_sched_free after the tasks are gone and before the
 * loop is freed: objects that hold loop watchers but belong to no task
 * (MCP sessions, held by script variables that outlive the scheduler until
 * lua_close) let go of them there. One hook per scheduler; NULL removes. */
void lc_sched_at_free(struct lc_sched *s, void (*fn)(void *), void *ud);
struct lc_sched *lc_sched_get(lua_State *L);
/* Whether any task of s has yielded (waited) yet. */
int lc_sched_has_waited(const struct lc_sched *s);
struct lc_loop *lc_sched_loop(struct lc_sched *s);
/* 1 when s made its loop (lc_sched_new), 0 when it shares one with other
 * schedulers (lc_sched_new_on: luact serve's runs on a worker's loop). */
int lc_sched_owns_loop(const struct lc_sched *s);
lua_State *lc_sched_state(struct lc_sched *s);

/* [-(nargs+1), +0, m] Spawns a task that calls the function below the nargs
 * arguments on top of L's stack (L is any thread of this scheduler).
 * The task is queued ready; parent may be NULL (a root task). */
int lc_sched_spawn(struct lc_sched *s, lua_State *L, int nargs,
                   struct lc_task *parent, struct lc_task **out);

/* Starts a task that has not run yet at once, inside the caller's own
 * resume, instead of on the next pass: it runs up to its first wait (or to
 * its end; then its on_done has run when this returns). Its path, its
 * number and what it computes are those it would have had queued; only
 * when it runs changes. Call it from the task that spawned it, right after
 * lc_sched_spawn and lc_task_on_done. When starts are already nested too
 * deep (every level is a lua_resume on the C stack) the task just stays
 * queued. Runs the task's Lua; never raises (the task's errors end it). */
void lc_task_start(struct lc_task *t);

/* Runs passes until task t is done (or, with t NULL, until no task is
 * left). Returns 0, or LC_ESTATE if every remaining task waits on nothing
 * that can happen (a deadlock), with the message in lc_sched_error. */
int lc_sched_run(struct lc_sched *s, struct lc_task *t);
const char *lc_sched_error(struct lc_sched *s);
/* One pass of a scheduler whose loop the caller drives: resumes the tasks
 * that were ready (at most one slice, as lc_sched_run's passes), then, if
 * none is ready, lets the idle hook make progress. Returns 1 when tasks
 * are ready again (the caller polls its loop without waiting before the
 * next step), 0 when every task waits on the loop. Never raises. */
int lc_sched_step(struct lc_sched *s);
/* Whether a task is queued ready. */
int lc_sched_ready(const struct lc_sched *s);
/* fn(ud) runs when s's ready queue goes from empty to not empty (a task
 * spawned or woken), so that a caller driving many schedulers on one loop
 * (a daemon worker) steps only those with work: a scheduler whose step
 * returned 0 has nothing to do until fn runs. It runs inside the spawn or
 * the wake (a loop callback, another task's resume): it may only note
 * the scheduler, never step it. NULL removes. */
void lc_sched_on_ready(struct lc_sched *s, void (*fn)(void *), void *ud);

/* The task running on L, or NULL for the main thread / a plain coroutine. */
struct lc_task *lc_task_current(lua_State *L);
/* Is t (maybe a stale pointer, never dereferenced) a task of s? O(tasks):
 * for rare paths that hold a task pointer without a handle. */
int lc_sched_has_task(const struct lc_sched *s, const struct lc_task *t);
/* Like lc_task_current but raises "<what>: must run inside a luact task
 * (use luact.spawn/parallel, not coroutine.*)" when there is none. */
struct lc_task *lc_task_check(lua_State *L, const char *what);

void lc_task_wait(struct lc_task *t, struct lc_wait *w);
/* Makes t ready if it is still waiting on w; otherwise does nothing (the op
 * keeps its result and the binding finds it when it next looks). Safe from
 * any loop callback, including libcurl write callbacks: it only queues. */
void lc_task_wake(struct lc_task *t, struct lc_wait *w);
/* Is t waiting on w right now? */
int lc_task_waiting_on(const struct lc_task *t, const struct lc_wait *w);
enum lc_task_state lc_task_state(const struct lc_task *t);
lua_State *lc_task_thread(const struct lc_task *t);
/* After DONE: LUA_OK or the error status; results / error object are the
 * values on the task thread's stack. */
int lc_task_status(const struct lc_task *t);
/* Kills a task that is not done: cancels its wait, closes its coroutine
 * (running to-be-closed variables), marks it DONE with status LUA_ERRRUN and
 * the given reason as the error value. Children are killed first. A task
 * whose coroutine is on the C stack (the running task, or an ancestor that
 * started it inline, or one whose close handlers are running) is never
 * closed there: it is marked, runs on to its next yield (or its end) and
 * is killed then, with the same reason and status. */
void lc_task_kill(struct lc_task *t, const char *reason);
/* The holder lets go of t: a DONE task is freed now (unrefs its
 * coroutine); a live one keeps running, held by the scheduler, and is
 * freed when it finishes. Clears its on_done. Never kills. */
void lc_task_detach(struct lc_task *t);
/* Kills t if it is not done (see lc_task_kill: maybe deferred), then
 * detaches it. Frees a DONE task at once. */
void lc_task_release(struct lc_task *t);
/* Called when the task finishes (after its last resume). */
void lc_task_on_done(struct lc_task *t, void (*fn)(struct lc_task *, void *), void *ud);
struct lc_task *lc_task_parent(const struct lc_task *t);
/* Deterministic identity for the effect journal: "1" for a root task, the
 * parent's path plus "." plus the child's spawn number ("1.2.1") for
 * children. It depends only on the order in which each task spawns its
 * children, never on the order in which they finish, so a replay finds the
 * same effect under the same name however branches were scheduled. */
const char *lc_task_path(const struct lc_task *t);
/* Sequence number for the next effect of this task (1, 2, ...). */
unsigned long lc_task_next_seq(struct lc_task *t);
/* Effects numbered and children spawned so far. A replayed effect whose
 * body is not run again skips what that body used (lc_task_skip), so the
 * effects and branches after it keep their recorded names. */
void lc_task_counters(const struct lc_task *t, unsigned long *seq, unsigned long *children);
void lc_task_skip(struct lc_task *t, unsigned long seqs, unsigned long children);
long lc_sched_live_tasks(const struct lc_sched *s);
/* Called when no task is ready, before the loop blocks; returns 1 when it
 * made progress (woke a task). The journal's replay uses it to hand out
 * recorded completions in their recorded order. NULL removes it. */
void lc_sched_on_idle(struct lc_sched *s, int (*fn)(void *), void *ud);

/* [-nargs-1, +(nresults|1), -] Calls a function from C with a traceback
 * message handler (the one way C enters Lua outside a lua_CFunction).
 * Returns the lua_pcall status; on error the message (with traceback) is on
 * the stack. */
int lc_lua_pcall(lua_State *L, int nargs, int nresults);

#endif
