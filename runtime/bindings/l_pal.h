/* l_pal.h: luact.pal, the binding of the PAL engine (pal.h).
 *
 * luact.pal{model=, question=, instructions=, examples={...}, repairs=2,
 *   sandbox={memory=, instructions=, time=, output=}, input=<value>,
 *   limits={tokens=, cost=, wall_time=}, prices=, on_attempt=, verbose=,
 *   ...llm options as luact.llm.chat}
 * -> {answer=, status="finished"|"failed", reason=, limit=, attempts={...},
 *     usage={input, output, cached, total, llm_calls, runs}, cost=,
 *     cost_known=}
 * A failed run is a result; misuse raises. Waits (must run in a task). */
#ifndef LC_L_PAL_H
#define LC_L_PAL_H

#include <lua.h>

/* luact.pal.run(code [, {memory=, instructions=, time=, output=, input=,
 *   allow_nil=}]) runs one program the way luact.pal does (no model):
 * {ok=true, value=, output=, ...} or nil, message, code, details, with the
 * codes of luact.sandbox.run. */

/* [-0, +1, e] Pushes luact.pal: a table callable as luact.pal{...}. */
int lc_open_pal(lua_State *L);

#endif
