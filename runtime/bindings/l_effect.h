/* l_effect.h: the journal seen from Lua: which journal a state's run uses,
 * how bindings name their effects (task path + seq), luact.effect's C half,
 * and the clock / random / input effects (luact.now, luact.random,
 * luact.ask).
 *
 * Ownership: the journal stays the caller's (lc_l_journal_attach only keeps
 * a pointer); it must outlive the Lua state: close the state first. */
#ifndef LC_L_EFFECT_H
#define LC_L_EFFECT_H

#include <lua.h>

#include "effect.h"

struct lc_task;

/* [-0, +0, m] The journal of the run on L's state (NULL detaches). Call it
 * after lc_sched_new: it also hooks the journal's ordered replay into the
 * scheduler's idle point. */
void lc_l_journal_attach(lua_State *L, struct lc_journal *j);
/* [-0, +0, -] NULL when no journal is attached. */
struct lc_journal *lc_l_journal(lua_State *L);
/* [-0, +0, -] Fills src so that an engine's effects are named after task
 * t (t must outlive every effect started with src). src->j is NULL when no
 * journal is attached. */
void lc_l_effect_src(lua_State *L, struct lc_task *t, struct lc_effect_src *src);
/* [-0, +1, m] Pushes a token (what luact._effect_begin returns) that takes
 * over e: an effect a binding's C path began and has not ended (running,
 * recorded, no live scope), begun by task with its counters then (seq0,
 * children0). tok:finish, tok:fail and its close end it as they end any
 * token's. e is left with nothing owed. On a raise (no memory) e is
 * untouched and still the caller's. */
void lc_l_effect_adopt(lua_State *L, struct lc_effect_op *e, struct lc_task *task,
                       unsigned long seq0, unsigned long children0);
/* [-0, +0, -] Ends e, a one-line effect still owed (effect.h), with the
 * values at first..first+n-1 as its result list, written straight from
 * them: each nil, a boolean, or a string JSON holds as it is (valid UTF-8,
 * no NUL); effects and spawned are its nested counts. 1: not such values,
 * no such effect, or no memory, and nothing is done (the caller takes its
 * general path). Else lc_effect_end_text's return: 0 or LC_EIO. */
int lc_l_effect_end_given(lua_State *L, struct lc_effect_op *e, int first, int n,
                          unsigned long effects, unsigned long spawned);
/* [-0, +0, m] The canonical hash (lc_jcanon_hash) of the value at idx as
 * JSON: a tool's schema version. 0; LC_EINVAL with why in err (it cannot
 * be JSON); LC_ENOMEM. */
int lc_l_schema_hash(lua_State *L, int idx, char th[65], char *err, size_t errlen);
/* [-0, +0, e] Sets now, random, ask and _effect_begin in the table at the
 * top of the stack (the luact module). */
void lc_l_effect_register(lua_State *L);

#endif
