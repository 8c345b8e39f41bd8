/* util_stall.c: the ticker harness (util_stall.h). */
#include "util_stall.h"

#include <check.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util_lua.h"

/* The ticker: waits (through the loop) for the hold, then ticks, then
 * releases the hold and collects the operation's outcome. */
static const char driver[] =
    "local task = luact.spawn(op)\n"
    "while not stall.in_flight() do luact.sleep(0.001) end\n"
    "if after_in_flight then after_in_flight(task) end\n"
    "for _ = 1, stall.ticks do luact.sleep(0); stall.tick() end\n"
    "stall.release()\n"
    "local r = table.pack(luact.wait(task))\n"
    "if after_release then after_release() end\n"
    "for i = 1, r.n do r[i] = tostring(r[i]) end\n"
    "return table.concat(r, ' ')\n";

static struct lc_stall *self(lua_State *L) {
  return lua_touserdata(L, lua_upvalueindex(1));
}

static int l_in_flight(lua_State *L) {
  lua_pushboolean(L, atomic_load(&self(L)->in_flight));
  return 1;
}

static int l_mark(lua_State *L) {
  lc_stall_in_flight(self(L));
  return 0;
}

static int l_tick(lua_State *L) {
  self(L)->ticks++;
  return 0;
}

static int l_release(lua_State *L) {
  struct lc_stall *s = self(L);
  atomic_store(&s->released, 1);
  if (s->release) s->release(s);
  return 0;
}

int lc_stall_run(struct lc_stall *s, char *err, size_t errlen) {
  s->loop_thread = pthread_self();
  s->ticks = 0;
  atomic_store(&s->in_flight, 0);
  atomic_store(&s->released, 0);
  atomic_store(&s->blocked_loop, 0);
  s->result[0] = '\0';
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  static const luaL_Reg fns[] = {
      {"in_flight", l_in_flight}, {"mark", l_mark}, {"tick", l_tick},
      {"release", l_release},     {NULL, NULL}};
  lua_createtable(t.L, 0, 4);
  lua_pushlightuserdata(t.L, s);
  luaL_setfuncs(t.L, fns, 1);
  lua_pushinteger(t.L, LC_STALL_TICKS);
  lua_setfield(t.L, -2, "ticks");
  lua_setglobal(t.L, "stall");
  if (s->setup) s->setup(s, t.L);
  size_t n = strlen(s->script) + sizeof driver + 2;
  char *code = malloc(n);
  ck_assert_ptr_nonnull(code);
  snprintf(code, n, "%s\n%s", s->script, driver);
  int rc = lc_test_lua_run(&t, code, s->result, sizeof s->result, err, errlen);
  free(code);
  lc_test_lua_close(&t);
  return rc;
}

void lc_stall_assert_ok(const struct lc_stall *s) {
  ck_assert_msg(!atomic_load(&s->blocked_loop), "%s: the operation blocked the loop thread",
                s->name);
  ck_assert_msg(atomic_load(&s->released), "%s: the hold was never released", s->name);
  ck_assert_msg(s->ticks == LC_STALL_TICKS, "%s: the ticker made %ld of %d ticks", s->name,
                s->ticks, LC_STALL_TICKS);
}

void lc_stall_in_flight(struct lc_stall *s) { atomic_store(&s->in_flight, 1); }

int lc_stall_on_loop_thread(const struct lc_stall *s) {
  return pthread_equal(pthread_self(), s->loop_thread);
}

void lc_stall_blocked_loop(struct lc_stall *s) {
  atomic_store(&s->blocked_loop, 1);
  atomic_store(&s->in_flight, 1);
}
