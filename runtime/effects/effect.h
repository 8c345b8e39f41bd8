/* effect.h: the effect journal. Every effect of a run (LLM call, tool call,
 * HTTP request, clock, random number, user input) has an identity
 * "<task path>#<seq>" and goes through here: in record mode an intent line
 * (the normalised request) is written and flushed before the effect runs
 * and a result line before its result reaches Lua (most pure effects: the
 * result line only, with the intent's members); in replay mode the
 * effect is answered from the file and never runs, and the first effect
 * that does not match stops the run with the difference. docs/journal.md
 * describes the file format and the rules.
 *
 * One struct lc_journal per scheduler (run). It never sees Lua: bindings
 * name effects through struct lc_effect_src (see l_effect.h).
 *
 * Ownership: the journal owns its file and every loaded line. A struct
 * lc_effect is caller-owned (embedded in the op that runs the effect); its
 * recorded result is borrowed from the journal, valid while it lives.
 *
 * Errors: 0 / LC_E*; text in lc_journal_error. A mismatch, a missing effect,
 * an in-doubt at-most-once effect or a write failure sets the journal's
 * failure state (lc_journal_failed): every later effect then fails too, so a
 * script that catches the error cannot carry on as if nothing happened. */
#ifndef LC_EFFECT_H
#define LC_EFFECT_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "buf.h"
#include "llm.h"

/* What running a tool twice means (DESIGN.md "Effects and the journal"). */
enum lc_effect {
  LC_EFFECT_PURE = 0,     /* safe to run again */
  LC_EFFECT_IDEMPOTENT,   /* run again with the same idempotency key */
  LC_EFFECT_AT_MOST_ONCE  /* never run again; in doubt after a crash */
};
const char *lc_effect_name(enum lc_effect e); /* "pure", "idempotent", ... */

enum lc_journal_mode { LC_JOURNAL_OFF = 0, LC_JOURNAL_RECORD, LC_JOURNAL_REPLAY };

/* When to fsync the journal file (every line is always fflush'ed).
 * EFFECTFUL (default): the intent of an at-most-once effect (so a crash can
 * never forget that it may have run) and the result of every idempotent or
 * at-most-once effect; pure effects (LLM calls, clock, reads) can always run
 * again, so losing their lines in a crash costs only a repeat. */
enum lc_journal_sync { LC_JOURNAL_SYNC_EFFECTFUL = 0, LC_JOURNAL_SYNC_ALL, LC_JOURNAL_SYNC_NONE };

/* Why a journal stopped the run (lc_journal_failed). */
enum lc_journal_fail {
  LC_JOURNAL_OK = 0,
  LC_JOURNAL_MISMATCH, /* replay met an effect that differs or is missing;
                          resume: the script no longer makes the effects
                          it made (nondeterminism) */
  LC_JOURNAL_IN_DOUBT, /* an at-most-once effect has an intent, no result */
  LC_JOURNAL_EIO,      /* the journal could not be written */
  LC_JOURNAL_WAITING,  /* luact.ask found no input: the run waits for a
                          person (lc_journal_question) */
  LC_JOURNAL_CANCELLED /* luact runs cancel asked the run to stop */
};

struct lc_journal;
struct lc_store;

/* Everything lc_journal_open_with can be told. */
struct lc_journal_opts {
  enum lc_journal_mode mode;
  const char *path;        /* the JSONL file (record, replay, resume) */
  struct lc_store *store;  /* instead of path: the run's rows in a store */
  const char *script_path; /* hashed from its content into the header */
  /* The script's text when the caller read it already (a pipe can be
   * read once): hashed instead of script_path's content. */
  const char *script_text;
  size_t script_len;
  const char *run_id;      /* record: the run's id (NULL: a fresh one) */
  const char *args_json;   /* record: the script's arguments, for the header */
  /* With RECORD: continue the journal that is there. Its effects are
   * answered from it (none runs again), an intent without a result is
   * settled by its class (pure, idempotent: run again, with the same key;
   * at-most-once: in doubt, the run stops), and everything after the
   * recorded prefix runs live and is appended. A recorded effect that the
   * script no longer makes the same way ends the run (nondeterminism). A
   * script whose content changed since the recording is refused unless
   * allow_script_change. */
  int resume;
  int allow_script_change;
  /* A store journal's run is created with its first effect's line (a run
   * that makes none never touches the store). create_now creates it at
   * open and waits until it is committed: for a caller that reports the
   * run before it makes an effect (luact serve). Not on the loop thread. */
  int create_now;
};

/* Opens a journal. record: creates/truncates path and writes the header
 * (script_path, if given, is hashed from its content). replay: loads path
 * whole; a malformed line is an error naming its line number (except a torn
 * last line without its newline: a crash mid-write, ignored). off: path may
 * be NULL; still gives a run id, so idempotency keys are always derived.
 * Returns 0, LC_EINVAL / LC_EIO with the message in err, or LC_ENOMEM. */
int lc_journal_open(enum lc_journal_mode mode, const char *path, const char *script_path,
                    struct lc_journal **out, char *err, size_t errlen);
/* The general form (lc_journal_open is it with mode, path, script_path). A
 * store journal writes through the store's writer thread (group commit);
 * the store must outlive the journal. Resume of a file drops a torn last
 * line (a crash mid-write; said on stderr) before appending. */
int lc_journal_open_with(const struct lc_journal_opts *o, struct lc_journal **out, char *err,
                         size_t errlen);
void lc_journal_free(struct lc_journal *j);
/* 1 when a store journal's run exists in the store (created with the
 * first effect's line, committed, or resumed). Waits for the store's
 * writer: call it off the loop, once the run's tasks are done. */
int lc_journal_has_run(struct lc_journal *j);
/* When luact.ask meets the end of its input: 1 makes the run wait for a
 * person (LC_JOURNAL_WAITING, the prompt kept as the question) instead of
 * answering nil. Set for durable runs without --input. */
void lc_journal_set_wait_input(struct lc_journal *j, int on);
int lc_journal_wait_input(const struct lc_journal *j);
/* Puts the run in LC_JOURNAL_WAITING with question (copied). */
void lc_journal_wait_for_input(struct lc_journal *j, const char *question, size_t len);
const char *lc_journal_question(const struct lc_journal *j);
enum lc_journal_mode lc_journal_mode(const struct lc_journal *j);
/* 1 when a pure effect begun now (not an LLM call's or luact.ask's) is
 * recorded fresh as one line that nobody waits for: a recording that is not
 * a resume, with journal-sync other than all. lc_effect_begin then returns
 * LC_EFFECT_RUN (or an error) with no ticket, and the end sets none: a
 * binding's C path can begin and end such an effect without a Lua token
 * (l_mcp.c's journaled plain call). */
int lc_journal_records_fresh(const struct lc_journal *j);
void lc_journal_set_sync(struct lc_journal *j, enum lc_journal_sync s);
/* The run id: fresh when recording, the recorded one when replaying. */
const char *lc_journal_run_id(const struct lc_journal *j);
enum lc_journal_fail lc_journal_failed(const struct lc_journal *j);
/* Asks the run to stop at its next effect (LC_JOURNAL_CANCELLED), as
 * `luact runs cancel` does through the store. Safe from any thread. */
void lc_journal_request_cancel(struct lc_journal *j);
const char *lc_journal_error(const struct lc_journal *j);
/* Live token deltas (luact serve streams them): fn sees each delta of a
 * journaled LLM call as it streams in from the provider, never in replay,
 * with the journal's last line number then (its deltas come after that
 * line) and the call's effect id. It runs on the loop thread inside the
 * transfer's write callback: copy and return. The journal records only the
 * whole result. NULL fn: none. */
typedef void (*lc_journal_delta_fn)(void *ud, long seq, const char *effect_id,
                                    const struct lc_llm_delta *d);
void lc_journal_set_delta_fn(struct lc_journal *j, lc_journal_delta_fn fn, void *ud);
void lc_journal_delta(struct lc_journal *j, const char *effect_id, const struct lc_llm_delta *d);
/* Where luact.ask reads answers from when not replaying (NULL = stdin).
 * The journal takes ownership of f (fclose'd by lc_journal_free). */
void lc_journal_set_input(struct lc_journal *j, FILE *f);
FILE *lc_journal_input(const struct lc_journal *j);
/* Counts, for tests and the CLI: effects begun, answered from the file,
 * run for real. */
/* Replay: id comparisons the loader made (a test keeps loading linear). */
long lc_journal_load_compares(const struct lc_journal *j);
void lc_journal_counts(const struct lc_journal *j, long *begun, long *replayed, long *ran);

/* Who is running an effect: the task (opaque), its path and the effect's
 * sequence number in it. */
struct lc_effect_who {
  const void *task;
  const char *path;
  unsigned long seq;
};

/* How an engine names the effects it runs for a task (filled by the
 * binding that started it; copied with the options). next is called once
 * per effect and takes the task's next sequence number. j == NULL: the
 * effects are not journaled. */
struct lc_effect_src {
  struct lc_journal *j;
  void (*next)(void *ud, struct lc_effect_who *w);
  void *ud;
};

/* What an effect is. request is borrowed (compared in replay, written in
 * record); hashes may be NULL. */
struct lc_effect_desc {
  const char *kind; /* "llm", "tool", "http", "clock", "random", "input" */
  const char *name;
  const cJSON *request;
  enum lc_effect cls;
  const char *prompt_hash; /* hex sha256 or NULL */
  const char *tools_hash;
  /* The caller waits for durability itself (lc_journal_durable /
   * lc_journal_wait on e->ticket) after begin and after end, so the fsync
   * happens off the loop thread. 0: begin and end return with the line
   * already durable (an fsync on the calling thread). */
  int waits;
  /* request is in canonical order already (lc_jcanon_sort, deep) and
   * outlives lc_effect_begin: the intent line refers to it instead of
   * copying and sorting it again (an LLM request is the whole prompt). */
  int request_sorted;
  /* Instead of request (which is then NULL): its canonical JSON text
   * (keys in byte order, numbers as lc_jsonw_num writes them:
   * lc_conv_to_text), borrowed for the call. A one-line effect being
   * recorded copies it into its line; no tree is built. begin parses it
   * where it needs the tree: a replay or a resume compares, an intent
   * line. */
  const char *request_text;
  size_t request_len;
};

#define LC_EFFECT_ID_MAX 600

/* One effect in flight (caller-owned; zero it or let begin fill it). */
struct lc_effect_op {
  struct lc_journal *j;
  char id[LC_EFFECT_ID_MAX];
  enum lc_effect cls;
  int recording; /* a result line is owed: call lc_effect_end or _cancel */
  int live;      /* replay: runs for real (in doubt or nested in one) */
  char key[33];  /* derived idempotency key of an idempotent effect ("": not
                    derived; lc_effect_key gives any effect's) */
  const cJSON *line; /* replayed: the recorded result line */
  double t0;     /* monotonic ms at begin */
  int async;     /* desc.waits */
  char kind[24];    /* desc.kind (cut): for crash points */
  /* With async: the line begin or end wrote that must be durable before
   * the effect runs / its result reaches Lua (0: nothing to wait for). */
  unsigned long ticket;
  /* A one-line effect (pure, recorded: see lc_effect_begin): its intent's
   * members as JSON text, the object left open; lc_effect_end or _cancel
   * completes it into the effect's only line and frees it. */
  struct lc_buf pending;
};

/* begin's outcomes */
#define LC_EFFECT_RUN 0      /* run the effect for real, then end it */
#define LC_EFFECT_REPLAYED 1 /* answer it from lc_effect_result/_error */

/* Begins the effect who/d. Record: writes the intent; a pure effect's
 * (except an LLM call's and luact.ask's) is not written but kept in
 * e->pending and goes into its result line: a pure effect that crashed
 * before its result has no line at all and runs again on resume, which is
 * what an intent without a result would have made it do. Replay: finds and
 * checks the recorded one. Returns LC_EFFECT_RUN, LC_EFFECT_REPLAYED, or a
 * negative code with the message in lc_journal_error (and the journal
 * failed). e is filled in every case. */
int lc_effect_begin(struct lc_journal *j, const struct lc_effect_who *who,
                    const struct lc_effect_desc *d, struct lc_effect_op *e);
/* An effect that a journal in mode off sees: counted like
 * lc_effect_begin counts it, nothing else (no id, no key, no line).
 * Returns 0, or LC_ESTATE when the journal has failed. */
int lc_effect_pass(struct lc_journal *j);
/* The idempotency key of effect id ("1.2#3") in this run: what
 * lc_effect_begin puts in e->key, for callers that derive it only when it
 * is asked for. */
void lc_effect_key(const struct lc_journal *j, const char *id, char out[33]);
/* Writes the result line when recording (else just forgets). Takes
 * ownership of result, error and extra (any may be NULL; extra's members
 * are added to the line, e.g. usage, latency_ms). Returns 0 or LC_EIO. */
int lc_effect_end(struct lc_effect_op *e, cJSON *result, cJSON *error, cJSON *extra);
/* Is a one-line effect's line owed (recorded, pure: see lc_effect_begin)?
 * Only then may lc_effect_end_text end it. */
static inline int lc_effect_one_line_owed(const struct lc_effect_op *e) {
  return e->recording && e->pending.data != NULL;
}
/* lc_effect_end for a one-line effect with a result and no error, from
 * text: result is the result list's JSON text (as lc_jsonw would write it)
 * and the line gets {"nested": {"effects": effects, "spawned": spawned}} as
 * extra: the same bytes lc_effect_end writes for the tree of that text and
 * that extra, without the trees. Returns 0, LC_EIO, or LC_EINVAL (and does
 * nothing) when no one-line effect's line is owed. */
int lc_effect_end_text(struct lc_effect_op *e, const char *result, size_t len,
                       unsigned long effects, unsigned long spawned);
/* The effect was abandoned (task killed, call freed): writes a result line
 * {cancelled: why} when one is owed. Replay treats it like a missing
 * result (by the effect's class). */
void lc_effect_cancel(struct lc_effect_op *e, const char *why);
/* Replayed answer: the "result" / "error" member, or a top-level member of
 * the result line (e.g. "nested"). Borrowed. */
const cJSON *lc_effect_result(const struct lc_effect_op *e);
const cJSON *lc_effect_error(const struct lc_effect_op *e);
const cJSON *lc_effect_member(const struct lc_effect_op *e, const char *name);

/* Live scopes (replay): while an in-doubt effect is run again for real,
 * every effect nested in it runs for real too: effects of the same task,
 * and of tasks it spawns (paths under "<path>.<k>" with k > children, the
 * task's spawn count when the scope opened). Returns 0 or LC_ENOMEM. */
int lc_journal_scope_push(struct lc_journal *j, const void *task, const char *path,
                          unsigned long children);
void lc_journal_scope_pop(struct lc_journal *j, const void *task);

/* Ordered completion (replay). An effect that completes asynchronously
 * (an LLM call) does not complete as soon as its answer is found: it is
 * deferred, and lc_journal_idle releases the deferred one that completed
 * first in the recording (result lines carry their order) whenever every
 * task is blocked. So concurrent branches see their answers in the
 * recorded order and print what the original run printed, whatever the
 * replay's own timing. */
struct lc_journal_deferred {
  double order;
  void (*fire)(struct lc_journal_deferred *d);
  struct lc_journal_deferred *next;
  int queued;
};
/* Queues d (caller-owned, must stay alive until fired or removed). */
void lc_journal_defer(struct lc_journal *j, const struct lc_effect_op *e,
                      struct lc_journal_deferred *d);
void lc_journal_undefer(struct lc_journal *j, struct lc_journal_deferred *d);
/* Fires the first deferred completion; returns 1 if one fired. Called by
 * the scheduler when no task is ready (lc_sched_on_idle). */
int lc_journal_idle(void *journal);

/* ---- durability off the loop thread ----
 * With a loop attached, lines of effects begun with desc.waits are fsynced
 * by a writer thread, one fsync for all the lines written by then (group
 * commit, also across runs' tasks); the loop learns of it through an
 * eventfd and wakes the waiters. Without a loop, every sync is inline. */
struct lc_loop;
struct lc_journal_waiter {
  unsigned long ticket;
  void (*fire)(struct lc_journal_waiter *w); /* from the loop; may wake a task */
  struct lc_journal_waiter *next;
  int queued;
};
/* The loop the journal's waiters are woken on (lc_l_journal_attach sets
 * it; NULL detaches). */
void lc_journal_set_loop(struct lc_journal *j, struct lc_loop *loop);
/* 1 when line ticket is durable (or ticket is 0, or syncing failed: the
 * journal's failure state then says so). */
int lc_journal_durable(struct lc_journal *j, unsigned long ticket);
/* Queues w (caller-owned, alive until fired or unwaited): fire runs once
 * line w->ticket is durable or syncing failed. 0, or LC_ESTATE / LC_EIO
 * when it cannot wait (then use lc_journal_sync_now). */
int lc_journal_wait(struct lc_journal *j, struct lc_journal_waiter *w);
void lc_journal_unwait(struct lc_journal *j, struct lc_journal_waiter *w);
/* Makes line ticket durable on the calling thread (for a caller that
 * cannot yield). 0 or LC_EIO (the journal failed). */
int lc_journal_sync_now(struct lc_journal *j, unsigned long ticket);

/* Stops the run from outside an effect (e.g. a binding found the recorded
 * answer unusable). Keeps the first failure. */
void lc_journal_fail(struct lc_journal *j, enum lc_journal_fail why, const char *msg);

/* Adds bytes to obj as key (a JSON string) when they are valid UTF-8
 * without NUL, else as key_b64 (base64). Returns 0 or LC_ENOMEM. */
int lc_effect_add_bytes(cJSON *obj, const char *key, const char *p, size_t n);
/* Reads what lc_effect_add_bytes wrote: *out is lc_malloc'd (NUL
 * terminated; *n its length). Returns 0, LC_ENOTFOUND or LC_ENOMEM/EINVAL. */
int lc_effect_get_bytes(const cJSON *obj, const char *key, char **out, size_t *n);

/* ---- LLM calls (effect_llm.c): the normalised request and response as
 * JSON. The request never carries the API key, auth headers or the base
 * URL (which changes between a recording and its replay). */
cJSON *lc_effect_llm_request_json(const struct lc_llm_request *r);
/* Begins an LLM call's effect (kind "llm", name "provider:model", pure,
 * hashes of the prompt and the tool schemas). Same returns as begin. */
int lc_effect_llm_begin(const struct lc_effect_src *src, const struct lc_llm_request *r,
                        struct lc_effect_op *e);
/* Fills resp (initialised, empty) from a replayed effect. 0, LC_EINVAL
 * (the recorded answer is unusable: the journal fails) or LC_ENOMEM. */
int lc_effect_llm_replay(struct lc_effect_op *e, struct lc_llm_response *resp);
/* Records the result: the response, and the deltas (taken) that were
 * streamed, so a replay hands the same pieces to the same callback. */
int lc_effect_llm_end(struct lc_effect_op *e, const struct lc_llm_response *resp, cJSON *deltas);
/* Appends one delta to *deltas (created on first use). */
int lc_effect_llm_add_delta(cJSON **deltas, const struct lc_llm_delta *d);
/* The recorded deltas: calls cb for each, in order. */
void lc_effect_llm_each_delta(const struct lc_effect_op *e, lc_llm_delta_fn cb, void *ud);

#endif
