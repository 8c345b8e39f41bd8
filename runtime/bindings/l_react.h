/* l_react.h: luact.react, the binding of the ReAct engine (react.h).
 *
 * luact.react{model=, question=, tools={...}, instructions=, examples=,
 *   mode="native"|"text", limits={steps=, tokens=, cost=, wall_time=,
 *   max_invalid=, repeat=, tool_calls=}, prices=, on_step=, verbose=, ...
 *   llm options as luact.llm.chat}
 * -> {answer=, status=, reason=, limit=, steps={...}, usage={...}, cost=,
 *     cost_known=}
 * A run that ends at a limit or fails is a result; misuse raises. Waits
 * (must run in a task). The command line's settings (quiet, trace) are
 * l_engine.h's lc_run_opts, shared with luact.pal. */
#ifndef LC_L_REACT_H
#define LC_L_REACT_H

#include <lua.h>

/* [-0, +1, e] Pushes the luact.react function. */
int lc_open_react(lua_State *L);

#endif
