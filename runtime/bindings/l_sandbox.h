/* l_sandbox.h: Lua binding of the PAL sandbox, later luact.sandbox. */
#ifndef LC_L_SANDBOX_H
#define LC_L_SANDBOX_H

#include <lua.h>

#include "sandbox.h"
#include "sched.h"

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

/* The box of one sandbox run from Lua: luact.sandbox.run here and
 * luact.pal.run (l_pal.c). It holds the run's C resources so that a raise
 * while results are pushed leaks nothing (STYLE 3: owned by Lua before any
 * lua_*). Inside a task the run is a child the loop watches while the
 * task waits (yields); o is luact.pal.run's copy of its options, which
 * must outlive the caller's stack. */
struct lc_l_sbox {
  struct lc_sandbox_result res;
  cJSON *input;
  struct lc_sandbox_job *job;
  struct lc_task *task;
  struct lc_wait wait;
  struct lc_sandbox_opts o;
  int rc, nil_ok;
};
/* Frees what the box holds; idempotent. Kills a child still running. */
void lc_l_sbox_release(struct lc_l_sbox *b);
/* wait.cancel: the task was killed while waiting (from sched.c). */
void lc_l_sbox_cancel(struct lc_wait *w);
/* The job's done callback (ud: the box), from the loop when the child
 * ended: takes the job's result and wakes the task. */
void lc_l_sbox_done(struct lc_sandbox_job *j, void *ud);

#endif
