/* l_worker.c: luact.worker: id, count, barrier, sum, max.
 *
 * The table is made on first use, through the luact table's __index: that
 * first use, on worker 1, is what starts the other workers (workers.h).
 * It must come before the script's first wait, or the others would repeat
 * everything the script did until then; later, the run stays on one
 * worker and says so on stderr. */
#include <lauxlib.h>
#include <string.h>

#define LC_STR_(x) #x
#define LC_STR(x) LC_STR_(x)

#include "l_effect.h"
#include "l_luact.h"
#include "lc.h"
#include "sched.h"
#include "workers.h"

/* [-0, +0, e] Raises: the workers can no longer all meet. */
static int gone(lua_State *L, const char *what, int id) {
  return luaL_error(L, "luact.worker.%s: worker %d has ended (it failed, or never calls %s), "
                    "so the workers cannot all meet", what, id, what);
}

static int l_barrier(lua_State *L) {
  int id = lc_worker_barrier();
  return id ? gone(L, "barrier", id) : 0;
}

/* sum(name, x) / max(name, x): process-wide reductions; every worker must
 * call with the same name; all get the combined value. Blocks the thread;
 * raises when a worker has ended before meeting. */
static int reduce(lua_State *L, int is_max) {
  const char *what = is_max ? "max" : "sum";
  size_t len;
  const char *name = luaL_checklstring(L, 1, &len);
  double v = luaL_checknumber(L, 2);
  /* A longer name was cut to fit its slot and then never matched it: the
   * workers' values silently stayed apart. */
  luaL_argcheck(L, len <= LC_WORKER_NAME_MAX && !memchr(name, 0, len), 1,
                "name must be 1-" LC_STR(LC_WORKER_NAME_MAX) " bytes without NUL");
  luaL_argcheck(L, len > 0, 1, "name must not be empty");
  double r;
  int id = lc_worker_reduce(name, v, is_max, &r);
  if (id == LC_ETOOBIG)
    return luaL_error(L, "luact.worker.%s: a run combines at most %d names", what,
                      LC_WORKER_NAMES);
  if (id) return gone(L, what, id);
  lua_pushnumber(L, r);
  return 1;
}

static int l_sum(lua_State *L) { return reduce(L, 0); }
static int l_max(lua_State *L) { return reduce(L, 1); }

static const luaL_Reg worker_funcs[] = {
    {"barrier", l_barrier}, {"sum", l_sum}, {"max", l_max}, {NULL, NULL}};

/* __index(luact, key): makes luact.worker on first use (called from the
 * luact table's __index, l_luact.c). */
int lc_l_worker_index(lua_State *L) {
  if (lua_type(L, 2) != LUA_TSTRING || strcmp(lua_tostring(L, 2), "worker") != 0) return 0;
  struct lc_sched *s = lc_sched_get(L);
  struct lc_journal *j = lc_l_journal(L);
  /* One journal is one run's effects in one order of identities: a
   * recorded (durable) run stays on the worker that holds it. */
  lc_workers_spread(j && lc_journal_mode(j) != LC_JOURNAL_OFF
                        ? "a recorded or durable run is journaled on one worker (pass "
                          "--no-store to use every core)"
                    : s && lc_sched_has_waited(s)
                        ? "luact.worker was first used after the script's first wait (use it "
                          "at the top, before any call that waits)"
                        : NULL);
  luaL_newlib(L, worker_funcs);
  lua_pushinteger(L, lc_worker_id());
  lua_setfield(L, -2, "id");
  lua_pushinteger(L, lc_worker_count());
  lua_setfield(L, -2, "count");
  lua_pushvalue(L, -1);
  lua_setfield(L, 1, "worker"); /* the module table has no __newindex */
  return 1;
}
