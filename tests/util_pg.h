/* util_pg.h: a real PostgreSQL for a Check suite (scripts/pg-tmp): started
 * in a fresh folder on a loopback port, a fresh database per case, stopped
 * (immediate) and removed after.
 *
 * Start it in an unchecked fixture (the suite's parent process) and give
 * each case its own database from a checked one. Failing to start is a
 * test failure, never a skip. Ownership: struct lc_pg is the caller's. */
#ifndef LC_TEST_UTIL_PG_H
#define LC_TEST_UTIL_PG_H

#include <stddef.h>
#include <sys/types.h>

struct lc_pg {
  char dir[256]; /* the server's folder (data, socket, log) */
  char url[256]; /* postgresql://postgres@127.0.0.1:PORT/postgres */
};

/* Starts a server; 0, or -1 with the reason on stderr. */
int lc_pg_start(struct lc_pg *pg);
/* Stops it (pg_ctl stop -m immediate) and removes its folder. */
void lc_pg_stop(struct lc_pg *pg);
/* A new empty database on the server: its URL in url. 0 or -1. */
int lc_pg_newdb(const struct lc_pg *pg, char *url, size_t n);
/* Runs sql (several statements allowed) on url; 0, or -1 with the error
 * in err (may be NULL). */
int lc_pg_sql(const char *url, const char *sql, char *err, size_t errlen);
/* The first column of the first row of a query, as text (malloc'd), or
 * NULL on an error or no row. */
char *lc_pg_value(const char *url, const char *sql);

/* Starts `luact serve --listen 127.0.0.1:0 --no-auth --store URL ARGS
 * AGENTS_DIR` (the build's binary) with its stderr in log and env set
 * (NAME=value strings, NULL-terminated; NULL: none), and waits for its
 * "listening on" line. 0 with *pid and *port; -1 (the child reaped) when
 * it exited first. */
int lc_pg_daemon_start(const char *url, const char *args, const char *agents_dir,
                       const char *log, const char *const *env, pid_t *pid, int *port);

#endif
