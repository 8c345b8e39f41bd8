/* dstore.h: the daemon's own tables (threads, runs' requests, store items)
 * beside the run store's, in the same SQLite file, through a connection of
 * their own. The run store keeps a run's status and journal; these tables
 * keep what the Agent Protocol adds: the thread a run belongs to, its
 * tenant, agent, input and Idempotency-Key, and the key-value store.
 *
 * Queries take a bind spec: one letter per parameter, s (const char *,
 * NULL binds NULL), d (double), i (long). Rows come back as a cJSON array
 * of objects keyed by column name (the caller's, cJSON_Delete). Thread
 * safe. Errors: 0 / LC_E*, text in err.
 *
 * Durability: a writing statement returns once it is committed (with the
 * file's synchronous mode), but writes from many threads are grouped: one
 * committer thread runs every write queued by then in one transaction,
 * one fsync for the group. Reads run at once on a connection of their
 * own and see committed rows only. */
#ifndef LC_DSTORE_H
#define LC_DSTORE_H

#include <cjson/cJSON.h>
#include <stddef.h>

struct lc_dstore;

/* name: the PostgreSQL session's application_name (lc_pgstore_connect). */
int lc_dstore_open(const char *path, const char *name, int sync_full, struct lc_dstore **out,
                   char *err, size_t errlen);
void lc_dstore_close(struct lc_dstore *d);
/* Runs sql (one statement) with its parameters; *rows (may be NULL) gets
 * the result rows. LC_ESTATE for a constraint violation (a taken key). */
int lc_dstore_exec(struct lc_dstore *d, cJSON **rows, char *err, size_t errlen, const char *sql,
                   const char *spec, ...);
/* A write that a run's execution makes (its thread's values, its marks,
 * its luact.store items), on a fleet (docs/serve.md): on PostgreSQL with
 * epoch > 0 it changes rows only while the run's lease still has that
 * epoch, so a daemon that lost the run (stalled past its lease) writes
 * nothing. sql holds LC_DSTORE_FENCE once, where that condition goes (a
 * WHERE term: an INSERT is written INSERT ... SELECT ... WHERE); on SQLite
 * or epoch 0 it reads "1 = 1". A fenced-out write is no error: it matches
 * no row (RETURNING tells the caller). */
#define LC_DSTORE_FENCE "{fence}"
int lc_dstore_exec_fenced(struct lc_dstore *d, const char *run_id, long epoch, cJSON **rows,
                          char *err, size_t errlen, const char *sql, const char *spec, ...);
/* PostgreSQL: fenced writes also require the lease's owner to be owner
 * (lc_store_fence_owner says why; NULL: the epoch alone). */
void lc_dstore_fence_owner(struct lc_dstore *d, const char *owner);
/* Groups committed and writes in them, since the open (bench, metrics). */
void lc_dstore_stats(struct lc_dstore *d, long *groups, long *writes);
/* PostgreSQL: sql (SET statements) runs now and on every connection made
 * again later. Behind a proxy (lc_dstore_proxied) nothing is set in the
 * session: local (one SELECT of set_config(name, value, true) calls, the
 * same settings) runs before each statement, in its transaction and
 * round trip. SQLite: nothing. */
int lc_dstore_session(struct lc_dstore *d, const char *sql, const char *local);
/* PostgreSQL through a proxy (PgBouncer, ...), not to the server itself:
 * no session settings and no prepared statements there (each statement
 * is planned at its run). */
int lc_dstore_proxied(struct lc_dstore *d);
/* lc_dstore_exec_prepared's statements sent unprepared so far (behind a
 * proxy, or after the server refused a prepared one). */
long lc_dstore_unprepared(struct lc_dstore *d);
/* lc_dstore_exec of a statement run often (the fleet's claims): on
 * PostgreSQL, a prepared statement of this connection (slot 0 to
 * LC_DSTORE_SLOTS - 1 names it), planned once instead of at every run
 * (with plan_cache_mode = force_generic_plan in the session; the plan is
 * made at its first run after a prepare), and prepared again once it is
 * replan_s old or after lc_dstore_replan: a plan is made for the tables'
 * sizes at the time, and one made while they were small reads them
 * sequentially once they have grown. A connection made again prepares
 * it again; a server that lacks or refuses it (a transaction pooler
 * taken for a session one) gets them unprepared from then on, and so
 * does a connection through a proxy from the start (lc_dstore_proxied).
 * On SQLite: lc_dstore_exec. */
#define LC_DSTORE_SLOTS 16
int lc_dstore_exec_prepared(struct lc_dstore *d, int slot, double replan_s, cJSON **rows,
                            char *err, size_t errlen, const char *sql, const char *spec, ...);
/* Every prepared statement is prepared (planned) again at its next run
 * (the caller saw the tables grow). */
void lc_dstore_replan(struct lc_dstore *d);
/* The name of slot's prepared statement on the connection now ("" when
 * none): tests EXPLAIN EXECUTE it on the same connection. */
void lc_dstore_prepared_name(struct lc_dstore *d, int slot, char *name, size_t n);
/* Is the file reachable and answering (readyz)? */
int lc_dstore_ping(struct lc_dstore *d);

#endif
