/* l_task.c: luact.sleep, luact.spawn, luact.wait: the waiting primitives
 * that every control-flow helper is built from. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "l_luact.h"
#include "l_state.h"
#include "lc.h"
#include "loop.h"
#include "sched.h"

#define SLEEP_MT "luact.Sleep"
#define TASK_MT "luact.Task"
#define TIMEOUT_MT "luact.Timeout"
/* Its metatable also under a pointer key: every tool call makes one timeout
 * op and closes it (and collects it), and looking the metatable up by name
 * interned and compared the name each time. */
static char timeout_mt_key;

struct sleep_op {
  struct lc_loop *loop;
  struct lc_task *task;
  struct lc_wait wait;
  struct lc_timer timer;
  int fired;
};

static void sleep_stop(struct sleep_op *op) {
  if (op->loop) lc_timer_stop(op->loop, &op->timer);
  op->loop = NULL;
}

static int sleep_gc(lua_State *L) {
  sleep_stop(luaL_checkudata(L, 1, SLEEP_MT));
  return 0;
}

static void sleep_cancel(struct lc_wait *w) {
  sleep_stop((struct sleep_op *)((char *)w - offsetof(struct sleep_op, wait)));
}

static void sleep_fire(struct lc_loop *loop, struct lc_timer *t) {
  struct sleep_op *op = t->ud;
  op->fired = 1;
  lc_task_wake(op->task, &op->wait);
}

static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
  struct sleep_op *op = luaL_checkudata(L, 2, SLEEP_MT);
  sleep_stop(op);
  return 0;
}

/* sleep(seconds): yields the task; other tasks run meanwhile. */
static int l_sleep(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  luaL_argcheck(L, s >= 0 && s < 1e9, 1, "seconds must be >= 0 and < 1e9");
  lua_settop(L, 1);
  struct lc_task *task = lc_task_check(L, "luact.sleep");
  struct sleep_op *op = lua_newuserdatauv(L, sizeof *op, 0);
  memset(op, 0, sizeof *op);
  luaL_setmetatable(L, SLEEP_MT);
  op->task = task;
  op->wait.cancel = sleep_cancel;
  lc_timer_init(&op->timer, sleep_fire, op);
  op->loop = lc_sched_loop(lc_sched_get(L));
  if (lc_timer_start(op->loop, &op->timer, s * 1000.0) < 0)
    return luaL_error(L, "out of memory");
  lua_toclose(L, 2);
  lc_task_wait(task, &op->wait);
  return lua_yieldk(L, 0, 0, sleep_k);
}

/* A handle on a spawned task. The parent waits; the task is released when
 * the handle is waited on or collected. */
struct task_ref {
  struct lc_task *task;
  struct lc_task *waiter; /* task blocked in wait() on it */
  struct lc_wait wait;
  int waited;
  struct select_op *sel; /* a select() waiting on this handle, if any */
  struct group *group;   /* the group that spawned it, if any */
  lua_Integer gid;       /* its id in that group */
};

/* group(): spawn many, collect them in the order they finish. The ids of
 * finished tasks queue in a FIFO, so taking the next one costs O(1) however
 * many are running (select() scans its list: fine for a few branches,
 * quadratic for ten thousand). */
struct group {
  struct lc_task *owner;
  struct lc_wait wait;
  lua_Integer *fifo;
  size_t head, tail, cap;
  lua_Integer next_id;
  lua_Integer pending; /* spawned, not yet returned by next() */
};

/* select(handles) waits on several handles at once. */
struct select_op {
  struct lc_task *task;
  struct lc_wait wait;
};

static void ref_release(struct task_ref *r) {
  if (r->task) {
    lc_task_on_done(r->task, NULL, NULL);
    lc_task_release(r->task); /* kills it if still running */
    r->task = NULL;
  }
}

/* A collected handle only lets go: the task runs on (the scheduler holds
 * it) and is freed when it ends. Killing it here would depend on when the
 * collector runs, and the collector may run inside that very task. */
static int task_gc(lua_State *L) {
  struct task_ref *r = luaL_checkudata(L, 1, TASK_MT);
  /* A handle that outlives the scheduler (lua_close after lc_sched_free):
   * its task went with the scheduler. */
  if (!lc_sched_get(L)) r->task = NULL;
  if (r->task) lc_task_detach(r->task);
  r->task = NULL;
  return 0;
}

/* Makes room in the FIFO for one more pending id: called before a spawn,
 * where running out of memory can still be reported, so that a completion
 * (group_push) never allocates. The FIFO never holds more than pending
 * ids. Returns 0 or LC_ENOMEM. */
static int group_reserve(struct group *g) {
  if ((lua_Integer)g->cap > g->pending) return 0;
  size_t cap = g->cap ? g->cap * 2 : 64;
  lua_Integer *f = lc_realloc(g->fifo, cap * sizeof *f);
  if (!f) return LC_ENOMEM;
  g->fifo = f;
  g->cap = cap;
  return 0;
}

static void group_push(struct group *g, lua_Integer id) {
  if (g->tail == g->cap) { /* room was reserved: compacting finds it */
    memmove(g->fifo, g->fifo + g->head, (g->tail - g->head) * sizeof *g->fifo);
    g->tail -= g->head;
    g->head = 0;
  }
  g->fifo[g->tail++] = id;
}

/* Scheduler callback: the task of handle r finished. The waiter and the
 * group's owner are t's parent: when that parent is gone (freed after it
 * ended, t orphaned) there is nobody to wake, and the pointer is stale.
 * A select's task is alive while it is linked (its close unlinks). */
static void ref_on_done(struct lc_task *t, void *ud) {
  struct task_ref *r = ud;
  struct lc_task *parent = lc_task_parent(t);
  if (r->waiter && r->waiter == parent) lc_task_wake(r->waiter, &r->wait);
  if (r->sel) lc_task_wake(r->sel->task, &r->sel->wait);
  if (r->group) {
    group_push(r->group, r->gid);
    if (r->group->owner == parent) lc_task_wake(r->group->owner, &r->group->wait);
  }
}

static void ref_cancel(struct lc_wait *w) {
  struct task_ref *r = (struct task_ref *)((char *)w - offsetof(struct task_ref, wait));
  r->waiter = NULL;
}

/* spawn(fn, ...) -> handle: runs fn(...) as a child task. */
static int l_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  struct lc_task *parent = lc_task_check(L, "luact.spawn");
  int nargs = lua_gettop(L) - 1;
  struct task_ref *r = lua_newuserdatauv(L, sizeof *r, 0);
  memset(r, 0, sizeof *r);
  luaL_setmetatable(L, TASK_MT);
  lua_insert(L, 1); /* handle fn args */
  struct lc_task *t;
  if (lc_sched_spawn(lc_sched_get(L), L, nargs, parent, &t))
    return luaL_error(L, "out of memory");
  r->task = t;
  r->wait.cancel = ref_cancel;
  lc_task_on_done(t, ref_on_done, r);
  return 1; /* handle */
}

/* [-0, +n, m] Pushes ok, results... (or false, error) of a finished task
 * and releases it. */
static int push_outcome(lua_State *L, struct task_ref *r) {
  lua_State *co = lc_task_thread(r->task);
  int n = lua_gettop(co);
  r->waited = 1;
  luaL_checkstack(L, n + 2, "luact.wait");
  if (lc_task_status(r->task) == LUA_OK) {
    lua_pushboolean(L, 1);
    lua_xmove(co, L, n);
    ref_release(r);
    return n + 1;
  }
  lua_pushboolean(L, 0);
  lua_xmove(co, L, n > 0 ? 1 : 0);
  ref_release(r);
  return n > 0 ? 2 : 1;
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  struct task_ref *r = luaL_checkudata(L, 1, TASK_MT);
  r->waiter = NULL;
  if (!r->task) { /* another task killed it (luact.kill) while we waited */
    lua_pushnil(L);
    lua_pushliteral(L, "already waited or killed");
    return 2;
  }
  return push_outcome(L, r);
}

/* wait(handle) -> true, results... | false, error */
static int l_wait(lua_State *L) {
  struct task_ref *r = luaL_checkudata(L, 1, TASK_MT);
  lua_settop(L, 1);
  struct lc_task *self = lc_task_check(L, "luact.wait");
  if (r->waited || !r->task) {
    lua_pushnil(L);
    lua_pushliteral(L, "already waited or killed");
    return 2;
  }
  if (lc_task_parent(r->task) != self)
    return luaL_error(L, "luact.wait: only the task that spawned it may wait");
  if (lc_task_state(r->task) == LC_TASK_DONE) return wait_k(L, LUA_OK, 0);
  r->waiter = self;
  lc_task_wait(self, &r->wait);
  return lua_yieldk(L, 0, 0, wait_k);
}

/* kill(handle [, reason]): stops a child and everything it spawned. */
static int l_kill(lua_State *L) {
  struct task_ref *r = luaL_checkudata(L, 1, TASK_MT);
  const char *why = luaL_optstring(L, 2, "killed");
  if (!r->task || r->waited) {
    lua_pushnil(L);
    lua_pushliteral(L, "already waited or killed");
    return 2;
  }
  lc_task_kill(r->task, why);
  ref_release(r);
  r->waited = 1;
  lua_pushboolean(L, 1);
  return 1;
}

static void select_cancel(struct lc_wait *w) { (void)w; }

#define SELECT_MT "luact.Select"

/* The handles select() links to itself (r->sel) are its own copy of the
 * list (user value 1), taken before the first link: the script may change
 * its table while select waits. */

/* [-0, +0, -] Unlinks every handle of op's list (op at idx) still linked
 * to op. The one close (__close and __gc): select returns, raises (a bad
 * item, found on a later pass too) or its task is killed; a link left
 * behind would point into a collected userdata. */
static int select_close(lua_State *L) {
  struct select_op *op = luaL_checkudata(L, 1, SELECT_MT);
  if (lua_getiuservalue(L, 1, 1) == LUA_TTABLE) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      struct task_ref *r = luaL_testudata(L, -1, TASK_MT);
      if (r && r->sel == op) r->sel = NULL;
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return 0;
}

/* Index (1-based) of the first handle in op's list (op at index 1 of L)
 * whose task is done, or 0. Every item is checked before any is linked. */
static lua_Integer select_scan(lua_State *L, struct select_op *op) {
  lua_getiuservalue(L, 1, 1); /* op list */
  int idx = lua_gettop(L);
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx), found = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    struct task_ref *r = luaL_testudata(L, -1, TASK_MT);
    lua_pop(L, 1);
    if (!r) luaL_error(L, "luact.select: item %d is not a task handle", (int)i);
    if (!r->task || r->waited) luaL_error(L, "luact.select: item %d was already waited or killed", (int)i);
    if (lc_task_parent(r->task) != op->task)
      luaL_error(L, "luact.select: item %d was spawned by another task", (int)i);
    if (!found && lc_task_state(r->task) == LC_TASK_DONE) found = i;
  }
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    struct task_ref *r = lua_touserdata(L, -1);
    r->sel = found ? NULL : op;
    lua_pop(L, 1);
  }
  lua_pop(L, 1); /* op */
  return found;
}

static int select_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  struct select_op *op = lua_touserdata(L, 1);
  lua_Integer i = select_scan(L, op);
  if (!i) {
    lc_task_wait(op->task, &op->wait);
    return lua_yieldk(L, 0, 0, select_k);
  }
  lua_pushinteger(L, i);
  return 1; /* closing op (index 1) unlinks what is left */
}

/* select(handles) -> index of the first finished one (its results stay
 * for wait()). Lets parallel/race react to the first failure at once. */
static int l_select(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  luaL_argcheck(L, n > 0, 1, "empty list");
  struct lc_task *task = lc_task_check(L, "luact.select");
  struct select_op *op = lua_newuserdatauv(L, sizeof *op, 1); /* list op */
  op->task = task;
  op->wait.cancel = select_cancel;
  luaL_setmetatable(L, SELECT_MT);
  lua_createtable(L, (int)(n < 1024 ? n : 1024), 0); /* list op copy */
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    lua_rawseti(L, -2, i);
  }
  lua_setiuservalue(L, 2, 1); /* list op */
  lua_replace(L, 1);          /* op */
  lua_toclose(L, 1);
  return select_k(L, LUA_OK, 0);
}

/* ---- timeout ---- */

/* luact.timeout's state, a to-be-closed userdata at index 1 of the waiting
 * task's stack: the work task (a child) and a plain loop timer. Every tool
 * call runs under it, so it costs one task and, only when the work waits,
 * one timer: no timer task, no select. */
struct timeout_op {
  struct lc_loop *loop;  /* set while the timer is armed */
  struct lc_timer timer;
  struct lc_task *task;  /* the task waiting in timeout */
  struct lc_task *work;  /* the child running fn, until released */
  struct lc_wait wait;
  double seconds;
  int fired;
};

static void timeout_disarm(struct timeout_op *op) {
  if (op->loop) lc_timer_stop(op->loop, &op->timer);
  op->loop = NULL;
}

/* The one close (__close, __gc, and the normal ends): stops the timer,
 * releases the work (killing it if it still runs). Idempotent. */
static void timeout_close(struct timeout_op *op, const char *why) {
  timeout_disarm(op);
  if (op->work) {
    struct lc_task *w = op->work;
    op->work = NULL;
    lc_task_on_done(w, NULL, NULL);
    if (lc_task_state(w) != LC_TASK_DONE) lc_task_kill(w, why);
    lc_task_release(w);
  }
}

static int timeout_gc(lua_State *L) {
  struct timeout_op *op = lc_lua_checkud(L, 1, &timeout_mt_key, TIMEOUT_MT);
  if (!lc_sched_get(L)) { /* as task_gc: the scheduler took both along */
    op->work = NULL;
    op->loop = NULL;
  }
  timeout_close(op, "cancelled");
  return 0;
}

/* Loop callback (lc_loop_run_once): the time is up. */
static void timeout_fire(struct lc_loop *loop, struct lc_timer *t) {
  struct timeout_op *op = t->ud;
  (void)loop;
  op->loop = NULL; /* fired: no longer armed */
  op->fired = 1;
  lc_task_wake(op->task, &op->wait);
}

/* Scheduler callback: the work task finished. */
static void timeout_done(struct lc_task *t, void *ud) {
  struct timeout_op *op = ud;
  (void)t;
  lc_task_wake(op->task, &op->wait);
}

/* The waiting task is killed: its children (the work) die first; the
 * close comes with its to-be-closed variables right after. */
static void timeout_cancel(struct lc_wait *w) {
  timeout_disarm((struct timeout_op *)((char *)w - offsetof(struct timeout_op, wait)));
}

/* [-0, +n, e] Continuation (and the eager path's end): the work's results,
 * its error raised again, or nil, msg, "timeout" once the timer fired. The
 * work wins a tie, as select over {work, timer} did. */
static int timeout_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  struct timeout_op *op = lua_touserdata(L, 1); /* l_timeout put it there */
  lua_settop(L, 1); /* op */
  if (op->work && lc_task_state(op->work) == LC_TASK_DONE) {
    lua_State *co = lc_task_thread(op->work);
    int n = lua_gettop(co);
    int st = lc_task_status(op->work);
    luaL_checkstack(L, n + 1, "luact.timeout");
    lua_xmove(co, L, n); /* op results... | op err */
    timeout_close(op, "done");
    if (st != LUA_OK) {
      if (n == 0) lua_pushliteral(L, "the task failed");
      return lua_error(L);
    }
    return n;
  }
  if (op->fired) {
    timeout_close(op, "timeout");
    char msg[64];
    snprintf(msg, sizeof msg, "timed out after %g s", op->seconds);
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushliteral(L, "timeout");
    return 3;
  }
  lc_task_wait(op->task, &op->wait);
  return lua_yieldk(L, 0, 0, timeout_k);
}

/* timeout(seconds, fn, ...) -> fn's results | nil, "timed out after N s",
 * "timeout". fn(...) runs as a child task, started at once (a body that
 * never waits finishes before timeout returns, and no timer is armed);
 * when it waits, a loop timer is armed, and when that fires first the
 * child is killed, with everything it has in flight (to-be-closed
 * variables, transfers, its own children). Its errors are raised again.
 * It takes two spawn numbers, the work's and the one the timer task of
 * the Lua version had, so effects keep the names journals recorded. */
static int l_timeout(lua_State *L) {
  double secs = lua_type(L, 1) == LUA_TNUMBER ? lua_tonumber(L, 1) : -1;
  if (!(secs >= 0)) return luaL_error(L, "luact.timeout: seconds must be >= 0");
  if (lua_type(L, 2) != LUA_TFUNCTION) return luaL_error(L, "luact.timeout: expected a function");
  struct lc_task *task = lc_task_check(L, "luact.timeout");
  struct lc_sched *s = lc_sched_get(L);
  int nargs = lua_gettop(L) - 2;
  struct timeout_op *op = lua_newuserdatauv(L, sizeof *op, 0); /* secs fn args op */
  memset(op, 0, sizeof *op);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &timeout_mt_key);
  lua_setmetatable(L, -2);
  lua_insert(L, 1);  /* op secs fn args */
  lua_toclose(L, 1);
  op->task = task;
  op->seconds = secs;
  op->wait.cancel = timeout_cancel;
  lc_timer_init(&op->timer, timeout_fire, op);
  if (lc_sched_spawn(s, L, nargs, task, &op->work)) /* op secs */
    return luaL_error(L, "out of memory");
  lc_task_skip(task, 0, 1);
  lc_task_on_done(op->work, timeout_done, op);
  lc_task_start(op->work);
  if (lc_task_state(op->work) != LC_TASK_DONE && secs < 1e9) {
    /* Not armed for "forever": a timer must fit the loop's clock. */
    struct lc_loop *loop = lc_sched_loop(s);
    if (lc_timer_start(loop, &op->timer, secs * 1000.0) < 0)
      return luaL_error(L, "out of memory");
    op->loop = loop;
  }
  return timeout_k(L, LUA_OK, 0);
}

#define GROUP_MT "luact.Group"

/* The handles table (id -> handle) is the group's user value 1. */
static void group_detach_all(lua_State *L, int gidx) {
  if (lua_getiuservalue(L, gidx, 1) != LUA_TTABLE) { /* half-built group */
    lua_pop(L, 1);
    return;
  }
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    struct task_ref *r = lua_touserdata(L, -1);
    if (r) r->group = NULL;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

static int group_gc(lua_State *L) {
  struct group *g = luaL_checkudata(L, 1, GROUP_MT);
  group_detach_all(L, 1); /* handles may outlive us within this GC cycle */
  lc_free(g->fifo);
  g->fifo = NULL;
  g->cap = g->head = g->tail = 0;
  return 0;
}

/* group() -> g */
static int l_group(lua_State *L) {
  struct lc_task *owner = lc_task_check(L, "luact.group");
  struct group *g = lua_newuserdatauv(L, sizeof *g, 1);
  memset(g, 0, sizeof *g);
  g->owner = owner;
  g->wait.cancel = select_cancel;
  lua_newtable(L); /* before the metatable: __gc never sees it missing */
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, GROUP_MT);
  return 1;
}

/* g:spawn(fn, ...) -> id: fn(...) as a child task of the group's owner. */
static int group_spawn(lua_State *L) {
  struct group *g = luaL_checkudata(L, 1, GROUP_MT);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (lc_task_check(L, "group:spawn") != g->owner)
    return luaL_error(L, "group:spawn: only the task that made the group may spawn in it");
  if (group_reserve(g)) return luaL_error(L, "not enough memory");
  int nargs = lua_gettop(L) - 2;
  struct task_ref *r = lua_newuserdatauv(L, sizeof *r, 0); /* g fn args handle */
  memset(r, 0, sizeof *r);
  luaL_setmetatable(L, TASK_MT);
  lua_insert(L, 2); /* g handle fn args */
  struct lc_task *t;
  if (lc_sched_spawn(lc_sched_get(L), L, nargs, g->owner, &t)) /* g handle */
    return luaL_error(L, "out of memory");
  r->task = t;
  r->wait.cancel = ref_cancel;
  r->group = g;
  r->gid = ++g->next_id;
  g->pending++;
  lc_task_on_done(t, ref_on_done, r);
  lua_getiuservalue(L, 1, 1); /* g handle handles */
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, r->gid); /* handles[id] = handle */
  lua_pushinteger(L, r->gid);
  return 1;
}

static int group_next_k(lua_State *L, int status, lua_KContext ctx) {
  struct group *g = luaL_checkudata(L, 1, GROUP_MT);
  if (g->head == g->tail) {
    if (g->pending == 0) { /* g:kill() from a member while we waited */
      lua_settop(L, 0);
      lua_pushnil(L);
      return 1;
    }
    lc_task_wait(g->owner, &g->wait);
    return lua_yieldk(L, 0, 0, group_next_k);
  }
  lua_Integer id = g->fifo[g->head++];
  g->pending--;
  lua_settop(L, 1);
  lua_getiuservalue(L, 1, 1);          /* g handles */
  lua_rawgeti(L, 2, id);               /* g handles handle */
  struct task_ref *r = luaL_checkudata(L, 3, TASK_MT);
  lua_pushnil(L);
  lua_rawseti(L, 2, id);               /* handles[id] = nil; handle kept at 3 */
  r->group = NULL;
  r->waited = 1;
  lua_pushinteger(L, id);              /* g handles handle id */
  int n = push_outcome(L, r);
  return n + 1;
}

/* g:next() -> id, ok, results... in completion order; nil when nothing is
 * pending. Only the owner may call it. */
static int group_next(lua_State *L) {
  struct group *g = luaL_checkudata(L, 1, GROUP_MT);
  lua_settop(L, 1);
  if (lc_task_check(L, "group:next") != g->owner)
    return luaL_error(L, "group:next: only the task that made the group may wait on it");
  if (g->pending == 0) {
    lua_pushnil(L);
    return 1;
  }
  return group_next_k(L, LUA_OK, 0);
}

/* g:kill([reason]): kills every task still pending in the group. */
static int group_kill(lua_State *L) {
  struct group *g = luaL_checkudata(L, 1, GROUP_MT);
  const char *why = luaL_optstring(L, 2, "killed");
  /* The one allocation first: an out-of-memory raise after the members
   * were detached would leave the owner waiting in g:next() for ever. */
  lua_newtable(L);
  int fresh = lua_gettop(L);
  lua_getiuservalue(L, 1, 1);
  int handles = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, handles)) {
    struct task_ref *r = lua_touserdata(L, -1);
    if (r && r->task && !r->waited) {
      r->group = NULL;
      lc_task_kill(r->task, why);
      ref_release(r);
      r->waited = 1;
    }
    lua_pop(L, 1);
  }
  lua_pushvalue(L, fresh);
  lua_setiuservalue(L, 1, 1);
  g->pending = 0;
  g->head = g->tail = 0;
  /* Called by a member, the owner may be waiting in g:next(): nothing is
   * pending any more, so it gets nil. The owner may also have ended and
   * been freed while the group lives on: wake it only if it is still a
   * task of the scheduler. */
  if (lc_sched_has_task(lc_sched_get(L), g->owner)) lc_task_wake(g->owner, &g->wait);
  return 0;
}

static int group_pending(lua_State *L) {
  lua_pushinteger(L, ((struct group *)luaL_checkudata(L, 1, GROUP_MT))->pending);
  return 1;
}

static const luaL_Reg group_methods[] = {{"spawn", group_spawn},
                                          {"next", group_next},
                                          {"kill", group_kill},
                                          {"pending", group_pending},
                                          {NULL, NULL}};

static const luaL_Reg task_funcs[] = {
    {"sleep", l_sleep}, {"spawn", l_spawn}, {"wait", l_wait}, {"kill", l_kill},
    {"select", l_select}, {"group", l_group}, {"timeout", l_timeout}, {NULL, NULL}};

int lc_open_task(lua_State *L) {
  if (luaL_newmetatable(L, SLEEP_MT)) {
    lua_pushcfunction(L, sleep_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, sleep_gc);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, TASK_MT)) {
    lua_pushcfunction(L, task_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushliteral(L, "luact.Task");
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, TIMEOUT_MT)) {
    lua_pushcfunction(L, timeout_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, timeout_gc);
    lua_setfield(L, -2, "__close");
  }
  lua_rawsetp(L, LUA_REGISTRYINDEX, &timeout_mt_key);
  if (luaL_newmetatable(L, SELECT_MT)) {
    lua_pushcfunction(L, select_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, select_close);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, GROUP_MT)) {
    lua_pushcfunction(L, group_gc);
    lua_setfield(L, -2, "__gc");
    luaL_newlib(L, group_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_newlib(L, task_funcs);
  return 1;
}
