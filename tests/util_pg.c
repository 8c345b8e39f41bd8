/* util_pg.c: a throwaway PostgreSQL for the suites (util_pg.h). */
#include "util_pg.h"

#include <libpq-fe.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util_common.h"

int lc_pg_start(struct lc_pg *pg) {
  memset(pg, 0, sizeof *pg);
  FILE *p = popen(LC_SOURCE_DIR "/scripts/pg-tmp start", "r");
  if (!p) {
    perror("pg-tmp");
    return -1;
  }
  char line[600] = "";
  if (!fgets(line, sizeof line, p)) line[0] = '\0';
  int st = pclose(p);
  if (st != 0 || sscanf(line, "%255s %255s", pg->dir, pg->url) != 2) {
    fprintf(stderr, "util_pg: scripts/pg-tmp start failed (%d): %s\n", st, line);
    return -1;
  }
  return 0;
}

void lc_pg_stop(struct lc_pg *pg) {
  if (!pg->dir[0]) return;
  char cmd[400];
  snprintf(cmd, sizeof cmd, LC_SOURCE_DIR "/scripts/pg-tmp stop '%s'", pg->dir);
  if (system(cmd) != 0) fprintf(stderr, "util_pg: stopping %s failed\n", pg->dir);
  pg->dir[0] = '\0';
}

int lc_pg_sql(const char *url, const char *sql, char *err, size_t errlen) {
  PGconn *c = PQconnectdb(url);
  int rc = 0;
  if (PQstatus(c) != CONNECTION_OK) {
    if (err) snprintf(err, errlen, "%s", PQerrorMessage(c));
    rc = -1;
  } else {
    PGresult *r = PQexec(c, sql);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
      if (err) snprintf(err, errlen, "%s", PQerrorMessage(c));
      rc = -1;
    }
    PQclear(r);
  }
  PQfinish(c);
  return rc;
}

char *lc_pg_value(const char *url, const char *sql) {
  PGconn *c = PQconnectdb(url);
  char *v = NULL;
  if (PQstatus(c) == CONNECTION_OK) {
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
      v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
  }
  PQfinish(c);
  return v;
}

int lc_pg_newdb(const struct lc_pg *pg, char *url, size_t n) {
  static int counter;
  char name[64], sql[128], e[512];
  snprintf(name, sizeof name, "t%ld_%d", (long)getpid(), ++counter);
  snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
  if (lc_pg_sql(pg->url, sql, e, sizeof e)) {
    fprintf(stderr, "util_pg: %s: %s\n", sql, e);
    return -1;
  }
  /* the server URL with its database name replaced */
  const char *slash = strrchr(pg->url, '/');
  snprintf(url, n, "%.*s/%s", (int)(slash - pg->url), pg->url, name);
  return 0;
}

int lc_pg_daemon_start(const char *url, const char *args, const char *agents_dir,
                       const char *log, const char *const *env, pid_t *pid, int *port) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "exec %s/luact serve --listen 127.0.0.1:0 --no-auth --store '%s' %s %s", LC_BINARY_DIR,
           url, args ? args : "", agents_dir);
  unlink(log); /* an older daemon's listening line is not this one's */
  pid_t p = fork();
  if (p < 0) return -1;
  if (p == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) dup2(fd, 2);
    for (const char *const *e = env; e && *e; e++) putenv((char *)*e);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  static const char line[] = "listening on 127.0.0.1:";
  for (;;) {
    char *t = lc_test_read_file(log, NULL);
    const char *at = t ? strstr(t, line) : NULL;
    if (at) {
      *pid = p;
      *port = atoi(at + strlen(line));
      free(t);
      return 0;
    }
    free(t);
    int st;
    if (waitpid(p, &st, WNOHANG) == p) return -1;
    lc_test_nap_ms(20);
  }
}
