/* l_closable.c: the per-state list of objects closed before the loop goes
 * (l_closable.h). */
#include "l_closable.h"

#include "sched.h"

struct closable_reg {
  struct lc_closable *head;
};
static char reg_key;

static void close_all(void *ud) {
  struct closable_reg *r = ud;
  while (r->head) r->head->close(r->head); /* each unlinks itself */
}

void lc_closable_add(lua_State *L, struct lc_closable *c) {
  struct closable_reg *r;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &reg_key) == LUA_TUSERDATA) {
    r = lua_touserdata(L, -1);
  } else {
    r = lua_newuserdatauv(L, sizeof *r, 0);
    r->head = NULL;
    lua_rawsetp(L, LUA_REGISTRYINDEX, &reg_key);
    lc_sched_at_free(lc_sched_get(L), close_all, r);
  }
  lua_pop(L, 1);
  c->next = r->head;
  c->prev = &r->head;
  if (r->head) r->head->prev = &c->next;
  r->head = c;
}

void lc_closable_remove(struct lc_closable *c) {
  if (!c->prev) return;
  *c->prev = c->next;
  if (c->next) c->next->prev = c->prev;
  c->next = NULL;
  c->prev = NULL;
}
