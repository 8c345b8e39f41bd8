/* store_rows.h: what the SQLite store (store.c) and the PostgreSQL store
 * (store_pg.c) share above their SQL: the journal line's checksum, the
 * clock of a row's times, a run row from its columns, the copy of a run
 * row that waits in a writer's queue, and the journal's integrity checks
 * with their messages. The statements, the connections and the writer
 * threads stay each store's own. */
#ifndef LC_STORE_ROWS_H
#define LC_STORE_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* The columns of a run row, in lc_store_row_fill's order. */
#define LC_STORE_RUN_COLS \
  "id, script, script_sha256, args, cwd, status, result, error, question, created, updated, " \
  "pid, cancel_requested"

/* CRC-32 (IEEE 802.3, as zlib's crc32) of a journal line. */
uint32_t lc_store_crc32(const char *p, size_t n);
/* Whether lc_store_crc32 may use the CPU's carry-less multiply (where it
 * has one: the default); returns the previous setting (tests). */
int lc_store_crc32_set_hw(int on);
/* Wall-clock seconds since the epoch: a row's created and updated. */
double lc_store_now_s(void);

/* Is status one a run never leaves (finished, failed, cancelled)? */
int lc_store_status_terminal(const char *status);
/* Is pid a live process here (one we may not signal counts)? */
int lc_store_pid_alive(long pid);

/* Fills r from a row's columns: text[0..8] are id to question (NULL: SQL
 * NULL), copied with strdup (a failed copy leaves the field NULL). */
void lc_store_row_fill(struct lc_run_row *r, const char *const text[9], double created,
                       double updated, long pid, int cancel_requested);
/* A copy (calloc'd, freed with lc_run_row_free and free) of what creating
 * r writes: id, script, script_sha256, args, cwd, status, pid. NULL when
 * out of memory. */
struct lc_run_row *lc_store_row_for_create(const struct lc_run_row *r);

/* Checks line seq of run_id's journal, read where want was due, against
 * its recorded crc: 0, or LC_EINVAL with "store WHERE: integrity error:
 * ..." in err. text NULL: a line with no text. */
int lc_store_line_check(const char *where, const char *run_id, long want, long seq,
                        const char *text, size_t len, uint32_t crc, char *err, size_t errlen);
/* LC_ENOTFOUND with "store WHERE: run ID has no journal" in err. */
int lc_store_no_journal(const char *where, const char *run_id, char *err, size_t errlen);

#endif
