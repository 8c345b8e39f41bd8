/* sandbox.h: runs model-written Lua (PAL) in a fresh, capped lua_State.
 *
 * Each lc_sandbox_run creates its own lua_State with a counting allocator
 * (memory cap), a count hook (instruction cap and a monotonic wall-clock
 * deadline), a bounded print buffer and an allowlisted global table with only
 * base/table/string/math/utf8/coroutine. Data crosses only as JSON (conv.h):
 * `input` in, the chunk's return value(s) out. Nothing of any host state is
 * visible; host functions (the later PAL tool proxy) are C callbacks that see
 * JSON only. No global state: runs on different threads are independent.
 *
 * Deliberate choices:
 *  - math.random/math.randomseed are removed, not seeded: randomness, like
 *    time, comes from the runtime as a journaled effect so a replayed run
 *    sees the same values. os.time/os.clock do not exist either.
 *  - A stop (memory cap hit twice in a row, i.e. after Lua's emergency
 *    collection; instruction cap; deadline; print past the cap) is sticky:
 *    every later hook call raises again, pcall cannot swallow it, and the
 *    run's status is the stop even if the chunk then returns.
 *  - setmetatable refuses metatables with a __gc field: Lua runs finalizers
 *    with hooks disabled, so a finalizer could never be stopped.
 *  - Instructions are counted in steps of LC_SANDBOX_HOOK_STEP per thread;
 *    each coroutine.create/wrap is charged one step because a thread that
 *    dies between two hook calls leaves its remainder uncounted.
 *  - After a stop, xpcall message handlers and the __close handlers of a
 *    coroutine the stop killed do not run: Lua would run them with hooks
 *    off (the stop is raised from inside the hook).
 *  - C loops that arguments could make unbounded without allocating are
 *    bounded: string.rep with empty strings, table.move/insert/remove over
 *    ranges larger than the memory cap could hold.
 *  - One library call can run long without allocating or running Lua code
 *    (backtracking patterns such as s:find(".-.-.-b") on a few KB, a plain
 *    find of a long near-match), out of reach of both the hook and the
 *    clock checks. So each run happens in a child process that the caller
 *    kills at the deadline (+250 ms for start-up and the result): the
 *    wall-clock cap holds for every program, and a crash of the Lua state
 *    is LC_SANDBOX_DIED. The child is posix_spawn'ed from /proc/self/exe
 *    with an empty environment, no inherited descriptors, rlimits,
 *    PR_SET_PDEATHSIG and a seccomp filter (sandbox.c, docs/pal.md). Runs
 *    with host functions (they need this process's state) and
 *    opts.in_process runs stay in this process, with the hook and clock
 *    checks only.
 *  - Not deterministic across runs: pairs() order over string keys and
 *    tostring(table) (Lua 5.4.4 seeds its string hash from the time and
 *    addresses, with no API to fix the seed).
 *
 * Ownership: lc_sandbox_run fills *out; the caller releases it with
 * lc_sandbox_result_free (also safe on a zeroed or half-filled result). */
#ifndef LC_SANDBOX_H
#define LC_SANDBOX_H

#include <cjson/cJSON.h>
#include <stddef.h>

#define LC_SANDBOX_DEFAULT_MEM (16u << 20)          /* 16 MiB */
#define LC_SANDBOX_DEFAULT_INSTR 10000000L          /* 10M VM instructions */
#define LC_SANDBOX_DEFAULT_WALL_MS 2000.0
#define LC_SANDBOX_DEFAULT_OUTPUT (64u << 10)       /* 64 KiB of print */
#define LC_SANDBOX_DEFAULT_RESULT (1u << 20)        /* ~1 MiB of JSON */
#define LC_SANDBOX_HOOK_STEP 100

enum lc_sandbox_status {
  LC_SANDBOX_OK = 0,
  LC_SANDBOX_SYNTAX,       /* the code does not compile */
  LC_SANDBOX_ERROR,        /* runtime error (message in result.error) */
  LC_SANDBOX_MEMORY,       /* memory cap */
  LC_SANDBOX_INSTRUCTIONS, /* instruction cap */
  LC_SANDBOX_TIMEOUT,      /* wall-clock cap */
  LC_SANDBOX_OUTPUT,       /* print output over output_limit */
  LC_SANDBOX_BAD_RESULT,   /* return value not serialisable / too large */
  LC_SANDBOX_DIED,         /* the sandbox process died without a result
                              (a crash: e.g. a C-stack overflow in Lua) */
  LC_SANDBOX_VIOLATION     /* the system-call filter killed the process */
};

/* A host function visible in the sandbox as a global taking one table.
 * Called on the thread running lc_sandbox_run. Return 0 and set *result
 * (ownership passes to the sandbox; NULL means nil), or a negative LC_E*
 * with a message in err: the Lua call then returns nil, err, code where code
 * is "timeout", "invalid", "not_found" or "error". args is borrowed for the
 * call only. The callback must not longjmp. */
struct lc_sandbox_fn {
  const char *name; /* a Lua identifier not already a global */
  int (*fn)(void *ud, const cJSON *args, cJSON **result, char *err,
            size_t errlen);
  void *ud;
};

/* Zero fields mean the defaults above. */
struct lc_sandbox_opts {
  size_t mem_limit;    /* bytes the sandbox state may hold at once */
  long instr_limit;    /* VM instructions (granularity LC_SANDBOX_HOOK_STEP) */
  double wall_ms;      /* from entry to lc_sandbox_run */
  size_t output_limit; /* bytes of print output */
  size_t result_limit; /* estimated bytes of the JSON result */
  const char *chunkname; /* for messages; default "=pal" ("pal:3: ...") */
  const struct lc_sandbox_fn *fns;
  size_t nfns;
  long fail_alloc_after; /* tests only: refuse the Nth Lua allocation */
  /* Runs go to a child process, killed at the deadline, so that even one
   * long library call cannot overrun the wall-clock cap. Set to run in this
   * process instead (runs with host functions always do). */
  int in_process;
  /* Tests only: the child makes this system call (a number, SYS_*) once
   * its filter is installed, before the program runs. 0 = none. */
  long test_syscall;
};

struct lc_sandbox_result {
  enum lc_sandbox_status status;
  cJSON *value;      /* on OK: the return value; null if none, an array if
                        several. Owned by the result. */
  char *output;      /* print output, NUL-terminated (lc_malloc'd) */
  size_t output_len;
  char *error;       /* clean message for every non-OK status */
  char *traceback;   /* Lua traceback for runtime errors, else NULL */
  size_t mem_peak;   /* highest bytes held by the state (<= mem_limit) */
  size_t mem_after_close; /* bytes still counted after lua_close: 0 */
  long instructions; /* VM instructions, in hook steps */
  double elapsed_ms;
};

/* Fills o with the defaults. */
void lc_sandbox_opts_init(struct lc_sandbox_opts *o);

/* Runs code (text only; len bytes, may contain NULs) with input visible as
 * the global `input` (JSON -> Lua via conv.h; NULL -> nil). o may be NULL.
 * Returns 0 when the run took place (out->status says how it ended, even for
 * hostile or failing programs), LC_EINVAL for bad arguments (bad host
 * function name; out->error says why), LC_ENOMEM if the host itself ran out
 * of memory (never for a child that died: that is LC_SANDBOX_DIED). In
 * every case *out must be released with lc_sandbox_result_free. Never
 * raises; never calls back into any other lua_State. Waits for the child
 * on the calling thread (on a private loop): a loop thread uses
 * lc_sandbox_start instead. */
int lc_sandbox_run(const char *code, size_t len,
                   const struct lc_sandbox_opts *o, const cJSON *input,
                   struct lc_sandbox_result *out);

void lc_sandbox_result_free(struct lc_sandbox_result *r);

/* "ok", "syntax", "error", "memory", "instructions", "timeout", "output",
 * "bad_result", "died", "violation": the codes the Lua binding returns. */
const char *lc_sandbox_status_code(enum lc_sandbox_status s);

/* ---- runs driven by an event loop ----
 *
 * lc_sandbox_start spawns the child and returns at once; the child's result
 * pipe and its pidfd are watched by loop, and a timer kills it at the
 * deadline. Nothing here blocks the loop thread. done runs exactly once,
 * from the loop, unless lc_sandbox_job_free comes first (then never). Runs
 * that need this process (host functions, in_process, fail_alloc_after)
 * cannot be started this way (LC_EINVAL). */
struct lc_loop;
struct lc_sandbox_job;
typedef void (*lc_sandbox_done_fn)(struct lc_sandbox_job *j, void *ud);

/* Copies code, opts and input. Returns 0 (done will run), LC_EINVAL,
 * LC_ENOMEM or LC_EIO (the child could not be spawned); then no callback. */
int lc_sandbox_start(struct lc_loop *loop, const char *code, size_t len,
                     const struct lc_sandbox_opts *o, const cJSON *input,
                     lc_sandbox_done_fn done, void *ud,
                     struct lc_sandbox_job **out);
/* After done: the return code lc_sandbox_run would have given, and the
 * result (the job owns it; the caller may take its fields, leaving NULLs). */
int lc_sandbox_job_rc(const struct lc_sandbox_job *j);
struct lc_sandbox_result *lc_sandbox_job_result(struct lc_sandbox_job *j);
/* The child's pid (tests); its filter is in place once started is set. */
int lc_sandbox_job_pid(const struct lc_sandbox_job *j);
int lc_sandbox_job_started(const struct lc_sandbox_job *j);
/* Kills a running child (SIGKILL, then reaps it: bounded by the kernel's
 * teardown of a killed process) and frees the job. NULL is fine. */
void lc_sandbox_job_free(struct lc_sandbox_job *j);
/* Jobs whose child is alive, in this process (tests and leak checks). */
long lc_sandbox_live(void);

#endif
