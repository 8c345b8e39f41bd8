/* l_sandbox.h: Lua binding of the PAL sandbox, later luact.sandbox. */
#ifndef LC_L_SANDBOX_H
#define LC_L_SANDBOX_H

#include <lua.h>

/* [-0, +1, m] Pushes the module table { run = function(code [, opts]) }.
 *
 * run(code [, opts]) runs code in a fresh sandbox (sandbox.h) and returns
 *   { ok = true, value = <decoded JSON; absent for null>, output = "...",
 *     memory = <peak bytes>, instructions = n, elapsed_ms = t }
 * or nil, message, code, details with code one of "syntax", "error",
 * "memory", "instructions", "timeout", "output", "bad_result" and details
 * { output, traceback, memory, instructions, elapsed_ms }.
 * opts: mem_limit, instr_limit, wall_ms, output_limit, result_limit (numbers)
 * and input (any JSON-able value, visible as the global `input`).
 * Misuse (bad types, unconvertible input) raises. The call blocks the
 * calling thread for at most about wall_ms. */
int lc_open_sandbox(lua_State *L);

#endif
