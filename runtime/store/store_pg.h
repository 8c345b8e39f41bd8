/* store_pg.h: the run store on PostgreSQL (libpq), behind store.h's API.
 *
 * lc_store_open with a "postgres://" or "postgresql://" URL (or a libpq
 * key=value string starting "postgres") makes one of these; store.c hands
 * every public call to it. Same semantics as the SQLite store: schema and
 * versioned migrations at first use (a newer schema is refused), runs,
 * journal lines with CRC-32 and no gaps, status changes committed before
 * they return, journal lines through one writer thread and its own
 * connection, one transaction per group.
 *
 * Fencing (a fleet of daemons, docs/serve.md): lc_pgstore_fence records
 * the lease epoch this process holds for a run; from then on every line
 * and status change of that run is written only while the row's epoch is
 * still that one. A run taken over by another daemon makes the writes of
 * the old owner fail (the writer reports EPERM to the run's client).
 *
 * libpq calls block: they happen on the writer thread and on the callers'
 * threads (which already block off the event loop, as with SQLite). */
#ifndef LC_STORE_PG_H
#define LC_STORE_PG_H

#include <stddef.h>

#include "store.h"

struct lc_pgstore;

/* Is path a PostgreSQL connection string? */
int lc_store_is_pg(const char *path);
/* url with its password (if any) as ***, for messages and logs. */
void lc_pgstore_redact(const char *url, char *out, size_t n);

/* Is c connected through a proxy (PgBouncer, ...) rather than to the
 * server itself? 1: yes, 0: no, -1: the query failed. Behind a proxy in
 * transaction mode the server connection changes between transactions,
 * so nothing may be left in its session (docs/serve.md, "Connections"). */
struct pg_conn;
int lc_pgstore_proxied(struct pg_conn *c);
/* PQconnectdb(url) whose sessions say which of luact's connections they
 * are (application_name, unless url sets one): "luact store" (journal
 * writes), "luact daemon" (runs table), "luact fleet" (claims, leases),
 * "luact listen" (wake-ups), for pg_stat_activity and the server's log. */
struct pg_conn *lc_pg_connect_as(const char *url, const char *name);

int lc_pgstore_open(const char *url, struct lc_pgstore **out, char *err, size_t errlen);
int lc_pgstore_connect(struct lc_pgstore *s, char *err, size_t errlen);
void lc_pgstore_close(struct lc_pgstore *s);
int lc_pgstore_run_create(struct lc_pgstore *s, const struct lc_run_row *r, const char *header,
                          size_t header_len, char *err, size_t errlen);
int lc_pgstore_run_get(struct lc_pgstore *s, const char *id, struct lc_run_row *out, char *err,
                       size_t errlen);
int lc_pgstore_run_set_status(struct lc_pgstore *s, const char *id, const char *status,
                              const char *result, const char *error, const char *question,
                              long pid, char *err, size_t errlen);
int lc_pgstore_run_cancel(struct lc_pgstore *s, const char *id, char *was, size_t waslen,
                          char *err, size_t errlen);
int lc_pgstore_run_list(struct lc_pgstore *s, long limit,
                        int (*fn)(void *ud, const struct lc_run_row *r), void *ud, char *err,
                        size_t errlen);
int lc_pgstore_journal_read(struct lc_pgstore *s, const char *run_id,
                            int (*fn)(void *ud, long seq, const char *text, size_t len), void *ud,
                            long *last, char *err, size_t errlen);
int lc_pgstore_journal_append_now(struct lc_pgstore *s, const char *run_id, long seq,
                                  const char *text, size_t len, char *err, size_t errlen);
int lc_pgstore_append_run(struct lc_pgstore *s, const struct lc_store_client *c,
                          const struct lc_run_row *r, unsigned long ticket, const char *header,
                          size_t len);
int lc_pgstore_append(struct lc_pgstore *s, const struct lc_store_client *c, long seq,
                      unsigned long ticket, const char *text, size_t len);
void lc_pgstore_flush(struct lc_pgstore *s);
void lc_pgstore_stats(const struct lc_pgstore *s, long *lines, long *commits);
long lc_pgstore_writer_trips(const struct lc_pgstore *s);

/* Fencing: this process holds run_id under lease epoch (0: unfenced, as a
 * single daemon or the CLI). Writes of run_id carry it from now on. */
int lc_pgstore_fence(struct lc_pgstore *s, const char *run_id, long epoch);
/* Every fence also requires the lease's owner to be owner (this daemon's
 * name in the fleet; NULL or "": the epoch alone). Epochs are raised by
 * claims that commit without waiting for the WAL flush (fleet.c): after
 * a server crash lost such a claim, another daemon's claim may give the
 * run that same epoch again, and only the owner tells the two apart. */
void lc_pgstore_fence_owner(struct lc_pgstore *s, const char *owner);
/* run_id's fence epoch here (0: none). */
long lc_pgstore_fence_of(struct lc_pgstore *s, const char *run_id);
/* Forgets run_id's fence (the run ended or was handed back). */
void lc_pgstore_unfence(struct lc_pgstore *s, const char *run_id);

#endif
