/* util_lua.h: run a Lua chunk as a luact task in a fresh state, for tests. */
#ifndef LC_TEST_UTIL_LUA_H
#define LC_TEST_UTIL_LUA_H

#include <lua.h>

struct lc_sched;

struct lc_test_lua {
  lua_State *L;
  struct lc_sched *s;
  long live_before; /* lc_alloc_live() when the state was made */
};

void lc_test_lua_open(struct lc_test_lua *t);
/* Runs code as a root task to completion. Returns 0 when it returned
 * normally, else 1 with the error in err. The task's first result, when it
 * is a string, is copied into out (may be NULL). */
int lc_test_lua_run(struct lc_test_lua *t, const char *code, char *out, size_t outlen,
                    char *err, size_t errlen);
/* The whole cycle for one script: a fresh state with the global BASE set
 * (when base is not NULL), prelude (may be NULL) and code run as one root
 * task, then the teardown checks of lc_test_lua_close. */
int lc_test_lua_run_once(const char *base, const char *prelude, const char *code, char *out,
                         size_t outlen, char *err, size_t errlen);

/* Asserts nothing is left: no task, timer or transfer; then closes. */
void lc_test_lua_close(struct lc_test_lua *t);

#endif
