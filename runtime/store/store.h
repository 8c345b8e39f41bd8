/* store.h: the run store: runs and their journals in SQLite (or in
 * PostgreSQL for a fleet of daemons: a postgres:// path, store_pg.h).
 *
 * A run is a row (id, script, args, status, timestamps, result, error, the
 * question it waits on); its journal is the same JSON lines a JSONL journal
 * holds (docs/journal.md), one row per line, numbered from 1 (the header)
 * with no gaps, each with a CRC-32 of its text so that a flipped bit is an
 * integrity error, never a different effect.
 *
 * Durability. WAL mode, synchronous=FULL by default (NORMAL on request: a
 * power loss may then lose the last transactions, never corrupt the file).
 * Status changes (lc_store_run_*) are committed before they return.
 * Journal lines (lc_store_append) go through one writer thread per store,
 * that is per process: it takes every line queued by then, from every run,
 * and commits them in one transaction (group commit: one fsync of the WAL
 * per group), then tells each client the newest of its lines that is
 * durable through the client's callback, from the writer thread. The
 * thread that queues never waits.
 *
 * Several processes may share one file (SQLite's locking; the writer
 * retries a busy database for up to 10 s before it reports an error).
 *
 * Ownership: a store owns its connections and thread; rows returned in a
 * struct lc_run_row are the caller's (lc_run_row_free). Errors: 0 or LC_E*,
 * with the text in err (LC_EINVAL for integrity and version problems). */
#ifndef LC_STORE_H
#define LC_STORE_H

#include <stddef.h>

struct lc_store;

enum lc_store_sync { LC_STORE_SYNC_FULL = 0, LC_STORE_SYNC_NORMAL };

/* Where the store lives by default: $LUACT_STORE, else
 * $XDG_DATA_HOME/luact/runs.db, else ~/.local/share/luact/runs.db. Returns
 * buf, or NULL when no location can be made. */
const char *lc_store_default_path(char *buf, size_t n);

/* Makes a store for path. The file is opened (created with its folder and
 * schema when missing) and checked on first use, not here: SQLite's
 * quick_check while it is under 16 MiB, and a schema version this luact
 * knows (a newer one is refused); lc_store_connect does it now and says
 * what is wrong. Every call after a failed check fails the same way. */
int lc_store_open(const char *path, enum lc_store_sync sync, struct lc_store **out, char *err,
                  size_t errlen);
int lc_store_connect(struct lc_store *s, char *err, size_t errlen);
/* Commits what is queued, stops the writer, closes. */
void lc_store_close(struct lc_store *s);
const char *lc_store_path(const struct lc_store *s);

/* Run statuses: running -> waiting_input -> running -> finished | failed |
 * cancelled; in_doubt when an at-most-once effect may or may not have
 * happened (a person decides: luact runs resolve). */
struct lc_run_row {
  char id[65];
  char *script;  /* absolute path */
  char *script_sha256;
  char *args;    /* JSON array of strings */
  char *cwd;
  char *status;
  char *result;  /* JSON, or NULL */
  char *error;
  char *question; /* waiting_input: what the run asked */
  double created, updated; /* seconds since the epoch */
  long pid;      /* the process running it (status running), else 0 */
  int cancel_requested;
};
void lc_run_row_free(struct lc_run_row *r);

/* Creates the run (status running) and its journal's header line (text).
 * LC_ESTATE when the id is taken. */
int lc_store_run_create(struct lc_store *s, const struct lc_run_row *r, const char *header,
                        size_t header_len, char *err, size_t errlen);
/* LC_ENOTFOUND when there is no such run. */
int lc_store_run_get(struct lc_store *s, const char *id, struct lc_run_row *out, char *err,
                     size_t errlen);
/* Sets status (and result, error, question: NULL clears them) and pid. */
int lc_store_run_set_status(struct lc_store *s, const char *id, const char *status,
                            const char *result, const char *error, const char *question,
                            long pid, char *err, size_t errlen);
/* Asks a running run to stop at its next effect (its writer sees it), or
 * cancels a run that no process runs. *was gets the status before. */
int lc_store_run_cancel(struct lc_store *s, const char *id, char *was, size_t waslen, char *err,
                        size_t errlen);
/* Calls fn for each run, newest first (at most limit; 0: all). fn runs
 * with the store's lock held: it must not call back into the store (here
 * and in lc_store_journal_read). */
int lc_store_run_list(struct lc_store *s, long limit,
                      int (*fn)(void *ud, const struct lc_run_row *r), void *ud, char *err,
                      size_t errlen);

/* Reads a run's journal in order: fn gets each line (seq from 1). A gap, a
 * line whose CRC does not match or a run without lines is an integrity
 * error (LC_EINVAL) naming the line. *last gets the last seq. */
int lc_store_journal_read(struct lc_store *s, const char *run_id,
                          int (*fn)(void *ud, long seq, const char *text, size_t len), void *ud,
                          long *last, char *err, size_t errlen);
/* Appends one line now, committed before it returns (for CLI commands that
 * write a run no process is running: luact runs input, resolve). */
int lc_store_journal_append_now(struct lc_store *s, const char *run_id, long seq,
                                const char *text, size_t len, char *err, size_t errlen);

/* A journal writing through the writer thread. committed runs on the
 * writer thread after each group that held lines of this client: ticket is
 * the newest of its lines now durable, err 0 or an errno-like code (then
 * nothing later of this client is written; other clients' lines in the
 * same group are committed unless the store itself failed). cancel runs (writer thread)
 * when `luact runs cancel` asked this run to stop. */
struct lc_store_client {
  void (*committed)(void *ud, unsigned long ticket, int err);
  void (*cancel)(void *ud);
  void *ud;
  char run_id[65];
  /* The store's (start at 0): set, under the store's lock, when a line of
   * this client could not be written (a conflict). Only that client fails:
   * the writer commits the rest of the group without its lines, and its
   * later appends fail with LC_EIO. */
  int failed;
};
/* Queues the creation of run r (copied) and its first line, the header
 * (copied; seq 1, ticket as lc_store_append's), both or neither: the
 * writer commits them in one transaction (and opens the file the first
 * time: the thread that queues never does I/O). A run's row therefore
 * never exists without a journal, whatever flush or crash comes between. */
int lc_store_append_run(struct lc_store *s, const struct lc_store_client *c,
                        const struct lc_run_row *r, unsigned long ticket, const char *header,
                        size_t len);
/* Queues a line (copied) with its seq and ticket (the client's own line
 * counter); never waits. LC_ENOMEM, or LC_EIO once the writer or this
 * client failed (c->failed). A
 * client must stay alive until its lines are committed (lc_store_flush). */
int lc_store_append(struct lc_store *s, const struct lc_store_client *c, long seq,
                    unsigned long ticket, const char *text, size_t len);
/* lc_store_append for a line that nobody waits for (a pure effect's, whose
 * loss in a crash costs only a repeat), taking text (lc_malloc'd, freed
 * whatever the outcome: no copy). The writer may hold such lines for up
 * to LC_STORE_LAZY_MS or LC_STORE_LAZY_MAX lines to commit them in a
 * larger group (fewer commits, WAL writes and fsyncs, and no wake-up of
 * the writer per line); a queue of fewer than LC_STORE_LAZY_LINES such
 * lines waits on, up to LC_STORE_LAZY_LONG_MS after its oldest line: at a
 * slow stream (one caller of a tool behind HTTP) a group of 10 ms held
 * ~5 lines, and each commit's fixed cost went to those few. Any other
 * line, a flush or a close commits them at once ($LUACT_STORE_LAZY_MS
 * and $LUACT_STORE_LAZY_LONG_MS set the waits, for tests; a LAZY_MS of
 * 0: no wait at all). PostgreSQL: as lc_store_append. */
#define LC_STORE_LAZY_MS 10
#define LC_STORE_LAZY_LINES 32
#define LC_STORE_LAZY_LONG_MS 50
#define LC_STORE_LAZY_MAX 1024
int lc_store_append_lazy(struct lc_store *s, const struct lc_store_client *c, long seq,
                         unsigned long ticket, char *text, size_t len);
/* Waits (on the calling thread) until every line queued by c is committed
 * or failed: for the end of a run, off the loop. */
void lc_store_flush(struct lc_store *s);
/* Waits until every line the client with this ud queued is committed or
 * failed, and the writer is done with them (no later callback to ud):
 * unlike lc_store_flush, it does not wait for other clients' lines, so
 * runs that end or start while others keep writing do not wait for the
 * queue to empty. */
void lc_store_flush_client(struct lc_store *s, const void *ud);
/* PostgreSQL (a fleet of daemons, docs/serve.md): this process holds
 * run_id under lease epoch, so its lines and status changes are written
 * only while the run's row still has that epoch (the writer reports EPERM
 * to the client, a status change fails with LC_ESTATE). epoch 0 forgets
 * the fence. The SQLite store has no leases: 0, nothing done. */
int lc_store_fence(struct lc_store *s, const char *run_id, long epoch);
/* PostgreSQL: every fence also requires the lease's owner to be owner
 * (lc_pgstore_fence_owner; NULL: the epoch alone). Nothing on SQLite. */
void lc_store_fence_owner(struct lc_store *s, const char *owner);
/* The epoch run_id is fenced with here (0: none; always 0 on SQLite). */
long lc_store_fence_of(struct lc_store *s, const char *run_id);
/* 1 for a PostgreSQL store. */
int lc_store_is_pg_store(const struct lc_store *s);
/* Lines committed and group commits made by this store's writer (bench). */
void lc_store_stats(const struct lc_store *s, long *lines, long *commits);
/* SQLite with LC_STORE_SYNC_FULL: how many times the writer made the WAL
 * durable (a commit with its fsync, or one for a flush or the close after
 * commits of lazy lines only, which have none); 0 otherwise (tests). */
long lc_store_wal_syncs(const struct lc_store *s);
/* SQLite: how many times the writer asked whether a run was cancelled
 * (once per client of a commit, and only when another connection wrote
 * since its last commit); 0 on PostgreSQL (tests). */
long lc_store_cancel_checks(const struct lc_store *s);
/* PostgreSQL: the writer's round trips to the server since the open (a
 * group is one with libpq's pipeline mode); 0 on SQLite. */
long lc_store_writer_trips(const struct lc_store *s);

#endif
