/* sched.c: tasks as coroutines, the ready queue, and the run loop driver. */
#include "sched.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#include "lc.h"
#include "loop.h"

/* Lua 5.4.4 (Debian 12) names it lua_resetthread; 5.4.6 added the from. */
#if LUA_VERSION_RELEASE_NUM < 50406
#define lua_closethread(L, from) lua_resetthread(L)
#endif

struct lc_task {
  struct lc_sched *s;
  lua_State *co;
  int ref;
  enum lc_task_state state;
  int status;
  struct lc_wait *wait;
  struct lc_task *parent;
  struct lc_task *next_ready, *prev_ready; /* O(1) dequeue (kill, start) */
  int queued;
  int nargs; /* arguments for the first resume */
  int started;
  struct lc_task *prev_all, *next_all; /* every live task, for kill-all */
  /* Children, so that kill and release touch only their own family: with
   * thousands of tasks a scan of every task per operation is quadratic. */
  struct lc_task *first_child, *prev_sibling, *next_sibling;
  void (*on_done)(struct lc_task *, void *);
  void *on_done_ud;
  char *path;              /* "1.2.1": see lc_task_path; points at path_buf */
  size_t path_len;
  unsigned long children;  /* spawned so far, numbers the next child */
  unsigned long seq;       /* effects so far */
  /* Its coroutine is executing (inside lua_resume, or lua_closethread
   * running its to-be-closed variables): it, and every task that started
   * it inline, is on the C stack and must not be closed or freed. */
  int active;
  int kill_pending; /* killed while active: ends when control is back */
  char *kill_reason;  /* lc_malloc'd; NULL means "killed" */
  int detached;       /* no holder left: freed as soon as it is done */
  int yielded; /* queued by a plain coroutine.yield: runs next pass */
  /* The path lives in the task's own block: a task per tool call made
   * a second allocation (and a strlen of the parent's) per spawn. */
  char path_buf[];
};

struct lc_sched {
  lua_State *L;
  struct lc_loop *loop;
  struct lc_task *ready_head, *ready_tail;
  struct lc_task *all;
  long live;
  unsigned long roots; /* root tasks spawned, numbers the next root */
  char err[256];
  int (*idle)(void *);
  void *idle_ud;
  void (*on_ready)(void *); /* lc_sched_on_ready */
  void *on_ready_ud;
  int nest; /* tasks being started inside another task's resume */
  int waited; /* some task has yielded */
  void (*at_free)(void *); /* lc_sched_at_free */
  void *at_free_ud;
  int own_loop; /* lc_sched_new made the loop; lc_sched_new_on borrows it */
};

/* How deep lc_task_start nests resumes before it queues instead: every
 * level adds a lua_resume (and the caller's C frames) to the C stack. */
#define MAX_NEST 8

/* A pass over the ready queue ends after this many resumes, and the loop
 * polls (without waiting) before the next pass goes on with the rest. Ten
 * thousand tasks made ready at once (a luact.map over a long list) run for
 * about a second to their first waits: without slices not one of their
 * requests left, and no in-flight transfer, stream or timer was served,
 * until the last had started. A count, not a time: where a pass ends must
 * not depend on how fast the machine is, or a journal's replay (no I/O,
 * only the loop's timers) would interleave parallel branches differently
 * on a slow machine. A poll costs a few microseconds; 64 resumes of the
 * cheapest task cost more. */
#define SLICE_TASKS 64

static char sched_key;

static struct lc_task **task_slot(lua_State *L) {
  return (struct lc_task **)lua_getextraspace(L);
}

static void sched_init(struct lc_sched *s, lua_State *L, struct lc_sched **out) {
  s->L = L;
  *task_slot(L) = NULL;
  lua_pushlightuserdata(L, s);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &sched_key);
  *out = s;
}

int lc_sched_new_on(lua_State *L, struct lc_loop *loop, struct lc_sched **out) {
  struct lc_sched *s = lc_calloc(1, sizeof *s);
  if (!s) return LC_ENOMEM;
  s->loop = loop;
  sched_init(s, L, out);
  return 0;
}

int lc_sched_new(lua_State *L, struct lc_sched **out) {
  struct lc_sched *s = lc_calloc(1, sizeof *s);
  if (!s) return LC_ENOMEM;
  int rc = lc_loop_new(&s->loop);
  if (rc) {
    lc_free(s);
    return rc;
  }
  s->own_loop = 1;
  sched_init(s, L, out);
  return 0;
}

void lc_sched_free(struct lc_sched *s) {
  if (!s) return;
  /* Kill everything first, release after: a task's to-be-closed variables
   * (luact.timeout, luact.react) release its children, and must find them
   * still there. A kill may release any task, so look again from the head
   * after each one. */
  for (;;) {
    struct lc_task *t = s->all;
    while (t && t->state == LC_TASK_DONE) t = t->next_all;
    if (!t) break;
    lc_task_kill(t, "scheduler shut down");
  }
  while (s->all) lc_task_release(s->all);
  if (s->at_free) s->at_free(s->at_free_ud);
  lua_pushnil(s->L);
  lua_rawsetp(s->L, LUA_REGISTRYINDEX, &sched_key);
  if (s->own_loop) lc_loop_free(s->loop);
  lc_free(s);
}

void lc_sched_at_free(struct lc_sched *s, void (*fn)(void *), void *ud) {
  s->at_free = fn;
  s->at_free_ud = ud;
}

struct lc_sched *lc_sched_get(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &sched_key);
  struct lc_sched *s = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return s;
}

struct lc_loop *lc_sched_loop(struct lc_sched *s) { return s->loop; }
int lc_sched_owns_loop(const struct lc_sched *s) { return s->own_loop; }
int lc_sched_has_waited(const struct lc_sched *s) { return s->waited; }
lua_State *lc_sched_state(struct lc_sched *s) { return s->L; }
const char *lc_sched_error(struct lc_sched *s) { return s->err; }
long lc_sched_live_tasks(const struct lc_sched *s) { return s->live; }

void lc_sched_on_idle(struct lc_sched *s, int (*fn)(void *), void *ud) {
  s->idle = fn;
  s->idle_ud = ud;
}

void lc_sched_on_ready(struct lc_sched *s, void (*fn)(void *), void *ud) {
  s->on_ready = fn;
  s->on_ready_ud = ud;
}

static void enqueue(struct lc_task *t) {
  if (t->queued) return;
  struct lc_sched *s = t->s;
  int was_idle = !s->ready_head;
  t->queued = 1;
  t->next_ready = NULL;
  t->prev_ready = s->ready_tail;
  if (s->ready_tail) s->ready_tail->next_ready = t;
  else s->ready_head = t;
  s->ready_tail = t;
  if (was_idle && s->on_ready) s->on_ready(s->on_ready_ud);
}

static void dequeue(struct lc_task *t) {
  if (!t->queued) return;
  struct lc_sched *s = t->s;
  if (t->prev_ready) t->prev_ready->next_ready = t->next_ready;
  else s->ready_head = t->next_ready;
  if (t->next_ready) t->next_ready->prev_ready = t->prev_ready;
  else s->ready_tail = t->prev_ready;
  t->next_ready = t->prev_ready = NULL;
  t->queued = 0;
}

/* Writes n in decimal (no NUL); returns the length. snprintf costs ~1k
 * instructions, and every spawn (every tool call: two) names a task. */
static size_t fmt_ulong(unsigned long n, char *out) {
  char tmp[24];
  size_t k = 0;
  do tmp[k++] = (char)('0' + n % 10);
  while ((n /= 10) != 0);
  for (size_t i = 0; i < k; i++) out[i] = tmp[k - 1 - i];
  return k;
}

/* A task with room for its path, "<parent path>.<n>" or "<n>" for a
 * root, written there: lc_calloc'd, NULL when out of memory. */
static struct lc_task *task_new(const struct lc_task *parent, unsigned long n) {
  size_t pl = parent ? parent->path_len + 1 : 0;
  struct lc_task *t = lc_calloc(1, sizeof *t + pl + 24);
  if (!t) return NULL;
  t->path = t->path_buf;
  if (parent) {
    memcpy(t->path, parent->path, pl - 1);
    t->path[pl - 1] = '.';
  }
  t->path_len = pl + fmt_ulong(n, t->path + pl);
  t->path[t->path_len] = '\0';
  return t;
}

int lc_sched_spawn(struct lc_sched *s, lua_State *L, int nargs,
                   struct lc_task *parent, struct lc_task **out) {
  /* The thread first: lua_newthread may raise, and nothing of ours may be
   * live when it does. */
  lua_State *co = lua_newthread(L); /* fn args co */
  /* luaL_ref may raise too (the registry grows): still nothing of ours. */
  int ref = luaL_ref(L, LUA_REGISTRYINDEX); /* fn args; luaL_ref pops co */
  /* A new thread has room for about 40 values; more arguments would be
   * written past its stack. lua_checkstack does not raise. */
  unsigned long n = parent ? parent->children + 1 : s->roots + 1;
  struct lc_task *t = lua_checkstack(co, nargs + 1) ? task_new(parent, n) : NULL;
  if (!t) {
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    return LC_ENOMEM;
  }
  if (parent) parent->children = n;
  else s->roots = n;
  t->ref = ref;
  lua_xmove(L, co, nargs + 1); /* moved to co */
  *task_slot(co) = t;
  t->s = s;
  t->co = co;
  t->nargs = nargs;
  t->parent = parent;
  if (parent) {
    t->next_sibling = parent->first_child;
    if (parent->first_child) parent->first_child->prev_sibling = t;
    parent->first_child = t;
  }
  t->state = LC_TASK_READY;
  t->next_all = s->all;
  if (s->all) s->all->prev_all = t;
  s->all = t;
  s->live++;
  enqueue(t);
  *out = t;
  return 0;
}

struct lc_task *lc_task_current(lua_State *L) { return *task_slot(L); }

int lc_sched_has_task(const struct lc_sched *s, const struct lc_task *t) {
  /* Compares addresses only: t may point to freed memory. */
  for (struct lc_task *a = s->all; a; a = a->next_all)
    if (a == t) return 1;
  return 0;
}

struct lc_task *lc_task_check(lua_State *L, const char *what) {
  struct lc_task *t = *task_slot(L);
  if (!t)
    luaL_error(L, "%s: must run inside a luact task (use luact.spawn or "
                  "luact.parallel, not coroutine.*)", what);
  return t;
}

void lc_task_wait(struct lc_task *t, struct lc_wait *w) {
  t->wait = w;
  t->state = LC_TASK_WAITING;
}

void lc_task_wake(struct lc_task *t, struct lc_wait *w) {
  if (t->state != LC_TASK_WAITING || t->wait != w) return;
  t->wait = NULL;
  t->state = LC_TASK_READY;
  enqueue(t);
}

int lc_task_waiting_on(const struct lc_task *t, const struct lc_wait *w) {
  return t->state == LC_TASK_WAITING && t->wait == w;
}

enum lc_task_state lc_task_state(const struct lc_task *t) { return t->state; }
lua_State *lc_task_thread(const struct lc_task *t) { return t->co; }
int lc_task_status(const struct lc_task *t) { return t->status; }
struct lc_task *lc_task_parent(const struct lc_task *t) { return t->parent; }

void lc_task_on_done(struct lc_task *t, void (*fn)(struct lc_task *, void *), void *ud) {
  t->on_done = fn;
  t->on_done_ud = ud;
}

/* Unlinks and frees t (DONE, not active). Its children are orphaned and
 * keep running as roots. */
static void free_task(struct lc_task *t) {
  struct lc_sched *s = t->s;
  for (struct lc_task *c = t->first_child, *next; c; c = next) {
    next = c->next_sibling;
    c->parent = NULL;
    c->prev_sibling = c->next_sibling = NULL;
  }
  t->first_child = NULL;
  if (t->parent) {
    if (t->prev_sibling) t->prev_sibling->next_sibling = t->next_sibling;
    else t->parent->first_child = t->next_sibling;
    if (t->next_sibling) t->next_sibling->prev_sibling = t->prev_sibling;
  }
  if (t->prev_all) t->prev_all->next_all = t->next_all;
  else s->all = t->next_all;
  if (t->next_all) t->next_all->prev_all = t->prev_all;
  s->live--;
  *task_slot(t->co) = NULL;
  luaL_unref(s->L, LUA_REGISTRYINDEX, t->ref);
  lc_free(t->kill_reason);
  lc_free(t);
}

/* Marks t DONE and tells its holder. t is not active. A detached task
 * (nobody holds it) is freed here; otherwise on_done may release it, so
 * t must not be touched after this returns. */
static void finish(struct lc_task *t, int status) {
  t->state = LC_TASK_DONE;
  t->status = status;
  t->wait = NULL;
  t->kill_pending = 0;
  lc_free(t->kill_reason);
  t->kill_reason = NULL;
  dequeue(t);
  if (t->detached) {
    free_task(t);
    return;
  }
  if (t->on_done) t->on_done(t, t->on_done_ud);
}

/* [-0, +1, -] Runs on the main thread under lc_lua_pcall: pushes the
 * string at upvalue-free argument 1 (a light userdata). */
static int push_reason(lua_State *L) {
  lua_pushstring(L, lua_touserdata(L, 1));
  return 1;
}

/* Replaces co's stack by the string reason. co is not executing. Made on
 * the main thread inside a protected call: out of memory there leaves
 * Lua's own "not enough memory" instead (preallocated), never a panic. */
static void set_reason(struct lc_task *t, const char *reason) {
  lua_State *L = t->s->L, *co = t->co;
  lua_settop(co, 0);
  lua_pushcfunction(L, push_reason);
  lua_pushlightuserdata(L, (void *)reason);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK && lua_type(L, -1) != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushliteral(L, "killed"); /* a literal: an interned, fixed string */
  }
  lua_xmove(L, co, 1); /* co's stack is empty: room for one */
}

/* Closes t's coroutine (its to-be-closed variables run now) and ends it
 * with reason. t is neither done nor active. */
static void kill_now(struct lc_task *t, const char *reason) {
  if (t->wait) {
    struct lc_wait *w = t->wait;
    t->wait = NULL;
    w->cancel(w);
  }
  /* Active while the close handlers run: one that kills or releases t
   * again must find it busy, not close it a second time. */
  t->active = 1;
  lua_closethread(t->co, t->s->L);
  t->active = 0;
  set_reason(t, reason);
  finish(t, LUA_ERRRUN);
}

void lc_task_kill(struct lc_task *t, const char *reason) {
  if (t->state == LC_TASK_DONE || t->kill_pending) return;
  /* Children first, so nothing outlives the branch that spawned it. A
   * child's __close handlers may spawn or release tasks: look again from
   * the head after each kill. A child that is active (it started us...
   * or we started it inline) only gets marked, and is skipped after. */
  for (;;) {
    struct lc_task *c = t->first_child;
    while (c && (c->state == LC_TASK_DONE || c->kill_pending)) c = c->next_sibling;
    if (!c) break;
    lc_task_kill(c, reason);
  }
  if (t->state == LC_TASK_DONE) return; /* a child's close ended it */
  if (t->active) {
    /* t is running, or is an ancestor of the task running now (started
     * inline): its coroutine is on the C stack and closing it there would
     * free a running thread. It ends when control is back in resume(). */
    t->kill_pending = 1;
    t->kill_reason = lc_strdup(reason); /* NULL: "killed" */
    return;
  }
  kill_now(t, reason);
}

void lc_task_detach(struct lc_task *t) {
  t->on_done = NULL;
  t->on_done_ud = NULL;
  if (t->state == LC_TASK_DONE && !t->active) free_task(t);
  else t->detached = 1;
}

void lc_task_release(struct lc_task *t) {
  if (t->state != LC_TASK_DONE) lc_task_kill(t, "released");
  lc_task_detach(t);
}

const char *lc_task_path(const struct lc_task *t) { return t->path; }
unsigned long lc_task_next_seq(struct lc_task *t) { return ++t->seq; }

void lc_task_counters(const struct lc_task *t, unsigned long *seq, unsigned long *children) {
  *seq = t->seq;
  *children = t->children;
}

void lc_task_skip(struct lc_task *t, unsigned long seqs, unsigned long children) {
  t->seq += seqs;
  t->children += children;
}

/* [-0, +1, -] Under lc_lua_pcall on the main thread: the traceback of
 * the failed coroutine (argument 1, light userdata) under its message. */
static int traceback(lua_State *L) {
  lua_State *co = lua_touserdata(L, 1);
  luaL_traceback(L, co, lua_tostring(co, -1), 0);
  return 1;
}

static void resume(struct lc_task *t) {
  lua_State *co = t->co;
  int nargs = 0;
  if (!t->started) {
    t->started = 1;
    nargs = t->nargs;
  }
  t->state = LC_TASK_READY;
  int nres = 0;
  t->active = 1;
  int st = lua_resume(co, t->s->L, nargs, &nres);
  t->active = 0;
  if (st == LUA_YIELD) {
    t->s->waited = 1;
    if (t->kill_pending) {
      /* Killed while it ran: it has reached a yield, where it can be closed. */
      t->kill_pending = 0;
      char *why = t->kill_reason;
      t->kill_reason = NULL;
      kill_now(t, why ? why : "killed");
      lc_free(why);
      return;
    }
    if (t->wait == NULL) {
      /* A plain coroutine.yield at task level: hand the yielded values
       * back on the next pass, like a cooperative yield. */
      lua_pop(co, nres);
      t->yielded = 1;
      enqueue(t);
    }
    return;
  }
  if (st != LUA_OK) {
    /* Add a traceback to string errors while the stack is still there.
     * Built on the main thread in a protected call (it allocates: out of
     * memory keeps the bare message); co cannot make calls now. */
    lua_State *L = t->s->L;
    if (lua_type(co, -1) == LUA_TSTRING && lua_checkstack(co, 1)) {
      lua_pushcfunction(L, traceback);
      lua_pushlightuserdata(L, co);
      if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
        lua_xmove(L, co, 1);
        lua_remove(co, -2);
      } else {
        lua_pop(L, 1);
      }
    }
    t->active = 1; /* its to-be-closed variables run now */
    lua_closethread(co, t->s->L); /* keeps the error object on top */
    t->active = 0;
  }
  if (t->kill_pending) {
    /* Killed while it ran, and it ended before it could be stopped: it
     * ends killed, whatever it returned. */
    char *why = t->kill_reason;
    t->kill_reason = NULL;
    set_reason(t, why ? why : "killed");
    lc_free(why);
    st = LUA_ERRRUN;
  }
  finish(t, st);
}

void lc_task_start(struct lc_task *t) {
  struct lc_sched *s = t->s;
  if (t->started || t->state != LC_TASK_READY || s->nest >= MAX_NEST) return;
  dequeue(t);
  s->nest++;
  resume(t);
  s->nest--;
}

static int drain(struct lc_sched *s) {
  int ran = 0;
  /* The tasks that were ready when the pass began, then, within the same
   * slice, the tasks they made ready (a child that ends wakes its parent:
   * luact.timeout's work handing its results back). Without that second
   * part each such hand-over cost a loop pass of its own, a poll that
   * finds nothing. A slice still ends the pass, so neither a busy task nor
   * a crowd of ready ones can starve the loop; the rest keep their place
   * at the head of the queue, ahead of whatever the poll wakes, so the
   * order in which ready tasks run is the same as without slices. A task
   * that yielded plainly (coroutine.yield at task level) waits for the
   * next pass, as it asked: the pass ends at it. A task started inline
   * (lc_task_start) starts inline whatever the slice: a slice ends between
   * two resumes of this loop, never inside one. */
  struct lc_task *end = s->ready_tail;
  int extra = 0; /* past end: running what this pass made ready */
  while (s->ready_head) {
    struct lc_task *t = s->ready_head;
    if (extra && t->yielded) break;
    t->yielded = 0;
    int last = t == end; /* before resume: a detached t is freed when it ends */
    dequeue(t);
    resume(t);
    ran++;
    if (ran == SLICE_TASKS) break;
    if (last) extra = 1;
  }
  return ran;
}

int lc_sched_run(struct lc_sched *s, struct lc_task *until) {
  s->err[0] = '\0';
  for (;;) {
    drain(s);
    if (until ? until->state == LC_TASK_DONE : s->live == 0) return 0;
    if (!until) {
      /* Finished roots count as done for a run-all. */
      int waiting = 0;
      for (struct lc_task *t = s->all; t; t = t->next_all)
        if (t->state != LC_TASK_DONE) waiting = 1;
      if (!waiting) return 0;
    }
    if (!s->ready_head && s->idle && s->idle(s->idle_ud)) continue;
    long pending = lc_loop_run_once(s->loop, s->ready_head ? 0 : -1);
    if (!s->ready_head && pending == 0) {
      snprintf(s->err, sizeof s->err,
               "deadlock: every task is waiting and nothing is pending");
      return LC_ESTATE;
    }
  }
}

int lc_sched_step(struct lc_sched *s) {
  drain(s);
  if (!s->ready_head && s->idle && s->idle(s->idle_ud)) return 1;
  return s->ready_head != NULL;
}

int lc_sched_ready(const struct lc_sched *s) { return s->ready_head != NULL; }

static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

int lc_lua_pcall(lua_State *L, int nargs, int nresults) {
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  int st = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  return st;
}
