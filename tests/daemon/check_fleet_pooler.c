/* check_fleet_pooler.c: a fleet behind a real PgBouncer (Debian's
 * pgbouncer, 1.18) in pool_mode = transaction, in front of the test's
 * PostgreSQL (docs/serve.md, "Connections"). Such a proxy hands a server
 * connection to another client after each transaction: a SET, a LISTEN or
 * a prepared statement made there stays for whoever gets it next, and a
 * NOTIFY for us is lost.
 *
 * What must hold: three daemons started at once on an empty database
 * migrate it (under the pooler); a few hundred short runs end exactly once
 * with their outputs, started by the poll alone (no LISTEN is made), while
 * the server ends the pool's sessions a few times (PgBouncer makes new
 * ones; a daemon's statement in flight then fails, its connection is made
 * again and the statement sent again); the
 * claims went unprepared; and afterwards every server connection of the
 * pool (two) still has the server's defaults: synchronous_commit and
 * enable_seqscan on, no lock_timeout or idle-in-transaction timeout, no
 * LISTEN, no prepared statement. With LUACT_PG_POOLER=session (a user
 * who said the proxy keeps sessions when it does not) the prepared
 * claims the server loses fall back to unprepared ones and the runs still
 * end once each.
 *
 * LUACT_POOLER_RUNS sets the number of runs (default 300);
 * LUACT_POOLER_KEEP keeps each case's folder (the daemons' logs). */
#include <check.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util_common.h"
#include "util_durable.h"
#include "util_pg.h"

#define NDAEMONS 3
#define POOL_SIZE 2

static struct lc_pg pg;
static pid_t bouncer;
static int bport;
static char bdir[300];
/* the case's database: directly, and through the pooler */
static char url[300], burl[300], dir[256];
static pid_t pids[NDAEMONS];
static int ports[NDAEMONS];
static char logs[NDAEMONS][300];

/* ---- the pooler ---- */

static int free_port(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t n = sizeof a;
  int port = 0;
  if (s >= 0 && !bind(s, (struct sockaddr *)&a, sizeof a) &&
      !getsockname(s, (struct sockaddr *)&a, &n))
    port = ntohs(a.sin_port);
  if (s >= 0) close(s);
  return port;
}

/* pgbouncer on a free loopback port in front of pg (any database name),
 * as the postgres user when we are root (it refuses root). 0 or -1. */
static int bouncer_start(void) {
  const char *colon = strrchr(pg.url, ':');
  int pgport = colon ? atoi(colon + 1) : 0;
  snprintf(bdir, sizeof bdir, "%s/bouncer", pg.dir);
  mkdir(bdir, 0700);
  struct passwd *pw = getuid() == 0 ? getpwnam("postgres") : NULL;
  if (getuid() == 0 && (!pw || chown(bdir, pw->pw_uid, pw->pw_gid))) return -1;
  char path[400];
  snprintf(path, sizeof path, "%s/users.txt", bdir);
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  fputs("\"postgres\" \"\"\n", f);
  fclose(f);
  for (int attempt = 0; attempt < 5; attempt++) {
    bport = free_port();
    snprintf(path, sizeof path, "%s/pgbouncer.ini", bdir);
    f = fopen(path, "w");
    if (!f) return -1;
    /* server_round_robin: each transaction takes the next server
     * connection, so a client's consecutive statements do land on
     * different ones (what a busy pool does) */
    fprintf(f,
            "[databases]\n* = host=127.0.0.1 port=%d user=postgres\n"
            "[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = %d\nunix_socket_dir =\n"
            "auth_type = trust\nauth_file = %s/users.txt\npool_mode = transaction\n"
            "default_pool_size = %d\nmin_pool_size = 0\nreserve_pool_size = 0\n"
            "max_client_conn = 500\nserver_round_robin = 1\n"
            "logfile = %s/pgbouncer.log\nignore_startup_parameters = extra_float_digits\n",
            pgport, bport, bdir, POOL_SIZE, bdir);
    fclose(f);
    pid_t p = fork();
    if (p < 0) return -1;
    if (p == 0) {
      int fd = open("/dev/null", O_WRONLY);
      if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
      if (pw && (setgid(pw->pw_gid) || setuid(pw->pw_uid))) _exit(126);
      execlp("pgbouncer", "pgbouncer", "-q", path, (char *)NULL);
      execl("/usr/sbin/pgbouncer", "pgbouncer", "-q", path, (char *)NULL);
      _exit(127);
    }
    char u[200];
    snprintf(u, sizeof u, "postgresql://postgres@127.0.0.1:%d/postgres", bport);
    double until = lc_test_mono_s() + 30;
    while (lc_test_mono_s() < until) {
      char *v = lc_pg_value(u, "SELECT 1");
      free(v);
      int st;
      if (waitpid(p, &st, WNOHANG) == p) break; /* its port was taken: another */
      if (v) { /* answered, and still there: it was ours that did */
        bouncer = p;
        return 0;
      }
      lc_test_nap_ms(20);
    }
    if (!bouncer) {
      kill(p, SIGKILL);
      waitpid(p, NULL, 0);
    }
  }
  fprintf(stderr, "check_fleet_pooler: pgbouncer did not start (see %s)\n", bdir);
  return -1;
}

static void up(void) {
  /* every statement in the server's log: the settings' SET LOCALs */
  setenv("PG_TMP_OPTS", "-c log_statement=all", 1);
  int rc = lc_pg_start(&pg);
  unsetenv("PG_TMP_OPTS");
  ck_assert_int_eq(rc, 0);
  ck_assert_msg(bouncer_start() == 0, "pgbouncer did not start (scripts/setup installs it)");
}

static void down(void) {
  if (bouncer) {
    kill(bouncer, SIGTERM);
    waitpid(bouncer, NULL, 0);
    bouncer = 0;
  }
  lc_pg_stop(&pg);
}

/* ---- daemons ---- */

static long count(const char *sql) {
  char *v = lc_pg_value(url, sql);
  long n = v ? atol(v) : -1;
  free(v);
  return n;
}

struct starter {
  int k;
  const char *const *env;
  int rc;
};

static void *start_main(void *ud) {
  struct starter *st = ud;
  int k = st->k;
  snprintf(logs[k], sizeof logs[k], "%s/log%d", dir, k);
  char agents[300];
  snprintf(agents, sizeof agents, "%s/agents", dir);
  st->rc = lc_pg_daemon_start(burl, "--poll-ms 100 --max-runs 8 --lease 5", agents, logs[k],
                              st->env, &pids[k], &ports[k]);
  return NULL;
}

/* The daemons, all at once (the first start migrates the empty
 * database: they take turns under its advisory lock). */
static void start_all(const char *const *env) {
  pthread_t th[NDAEMONS];
  struct starter st[NDAEMONS];
  for (int k = 0; k < NDAEMONS; k++) {
    st[k] = (struct starter){.k = k, .env = env};
    ck_assert_int_eq(pthread_create(&th[k], NULL, start_main, &st[k]), 0);
  }
  for (int k = 0; k < NDAEMONS; k++) pthread_join(th[k], NULL);
  for (int k = 0; k < NDAEMONS; k++) {
    if (st[k].rc) {
      char *t = lc_test_read_file(logs[k], NULL);
      ck_assert_msg(0, "daemon %d exited at start: %s", k, t ? t : "(no log)");
    }
  }
}

/* SIGTERM (its fleet_stats line), its exit; what a sanitizer build of it
 * reported fails the case. Its log (malloc'd). */
static char *stop_k(int k) {
  if (!pids[k]) return NULL;
  kill(pids[k], SIGTERM);
  waitpid(pids[k], NULL, 0);
  pids[k] = 0;
  char *t = lc_test_read_file(logs[k], NULL);
  int bad = t && (strstr(t, "Sanitizer") || strstr(t, "runtime error:"));
  if (bad) fprintf(stderr, "%s\n", t);
  ck_assert_msg(!bad, "daemon %d's log has a sanitizer report", k);
  return t;
}

static void setup(void) {
  ck_assert_msg(bouncer, "no pgbouncer");
  ck_assert_int_eq(lc_pg_newdb(&pg, url, sizeof url), 0);
  /* the same database through the pooler */
  const char *db = strrchr(url, '/');
  ck_assert_ptr_nonnull(db);
  snprintf(burl, sizeof burl, "postgresql://postgres@127.0.0.1:%d%s", bport, db);
  snprintf(dir, sizeof dir, "/tmp/lc_fp_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char p[400];
  snprintf(p, sizeof p, "%s/agents", dir);
  mkdir(p, 0700);
  lc_dur_write(p, "dbl.lua",
               "return function(input, ctx) luact.now() return {n = input.n * 2} end\n");
  memset(pids, 0, sizeof pids);
}

static void teardown(void) {
  for (int k = 0; k < NDAEMONS; k++)
    if (pids[k]) {
      kill(pids[k], SIGKILL);
      waitpid(pids[k], NULL, 0);
      pids[k] = 0;
    }
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (getenv("LUACT_POOLER_KEEP")) fprintf(stderr, "kept %s\n", dir);
  else if (system(cmd)) fprintf(stderr, "cannot remove %s\n", dir);
}

/* ---- runs ---- */

static size_t sink(char *p, size_t sz, size_t n, void *ud) {
  (void)p, (void)ud;
  return sz * n;
}

/* POST /runs of {"n": i} with an Idempotency-Key, to daemon i % 3 (the
 * next one when it does not answer 200): one run. */
static void submit(long i) {
  char body[128], key[64], u[128];
  snprintf(body, sizeof body, "{\"assistant_id\":\"dbl\",\"input\":{\"n\":%ld}}", i);
  snprintf(key, sizeof key, "Idempotency-Key: pool-%ld", i);
  for (int attempt = 0; attempt < 30; attempt++) {
    int k = (int)((i + attempt) % NDAEMONS);
    snprintf(u, sizeof u, "http://127.0.0.1:%d/runs", ports[k]);
    CURL *c = curl_easy_init();
    ck_assert_ptr_nonnull(c);
    struct curl_slist *hs = curl_slist_append(NULL, "Content-Type: application/json");
    hs = curl_slist_append(hs, key);
    curl_easy_setopt(c, CURLOPT_URL, u);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    long code = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(hs);
    curl_easy_cleanup(c);
    if (code == 200) return;
    lc_test_nap_ms(50);
  }
  ck_assert_msg(0, "no daemon took run %ld", i);
}

/* Counts every accepted transition to finished (a run that finished
 * twice shows twice). */
static void log_finished(void) {
  char e[512];
  ck_assert_msg(lc_pg_sql(url,
                          "CREATE TABLE finished_log(run_id TEXT);"
                          "CREATE FUNCTION log_finished() RETURNS trigger AS $$ BEGIN "
                          "INSERT INTO finished_log(run_id) VALUES(NEW.id); RETURN NEW; END $$ "
                          "LANGUAGE plpgsql;"
                          "CREATE TRIGGER runs_finished AFTER UPDATE OF status ON runs FOR EACH ROW "
                          "WHEN (NEW.status = 'finished') EXECUTE FUNCTION log_finished();",
                          e, sizeof e) == 0,
                "%s", e);
}

/* The server ends every session of the pool's (pg_terminate_backend):
 * the daemons' statements in flight fail, PgBouncer drops their clients,
 * they connect again. How many it ended. */
static long end_sessions(void) {
  return count("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
               "datname = current_database() AND pid <> pg_backend_pid() AND "
               "backend_type = 'client backend'");
}

/* n runs through the daemons, to the end: each finished once, with its
 * output, and one journal. faults: the server ends the pool's sessions
 * a few times while the first half runs (the second half then runs on
 * server connections made after them). */
static void run_many(long n, int faults) {
  long ended = 0;
  for (long i = 0; i < n; i++) {
    submit(i);
    if (faults && i > 0 && i % (n / 8 > 0 ? n / 8 : 1) == 0 && i <= n / 2) ended += end_sessions();
  }
  if (faults) ck_assert_int_gt(ended, 0);
  if (faults) fprintf(stderr, "fleet_pooler: the server ended %ld of the pool's sessions\n", ended);
  double until = lc_test_mono_s() + 60 + n * 0.5;
  long done;
  while ((done = count("SELECT count(*) FROM runs WHERE status = 'finished'")) < n) {
    ck_assert_msg(lc_test_mono_s() < until, "%ld of %ld runs finished", done, n);
    lc_test_nap_ms(50);
  }
  ck_assert_int_eq(count("SELECT count(*) FROM d_runs"), n);
  ck_assert_int_eq(count("SELECT count(*) FROM finished_log"), n);
  ck_assert_int_eq(count("SELECT count(DISTINCT run_id) FROM finished_log"), n);
  ck_assert_int_eq(count("SELECT count(*) FROM runs r JOIN d_runs d ON d.id = r.id WHERE "
                         "r.status = 'finished' AND (r.result::json->>'n')::bigint = "
                         "2 * (d.input::json->>'n')::bigint"),
                   n);
  ck_assert_int_eq(count("SELECT count(DISTINCT (input::json->>'n')) FROM d_runs"), n);
  ck_assert_int_eq(count("SELECT count(*) FROM journal WHERE seq = 1"), n);
}

/* What fleet_stats said of unprepared statements in log t (-1: no line). */
static long unprepared_in(const char *t) {
  const char *p = t ? strstr(t, "\"fleet_stats\"") : NULL;
  p = p ? strstr(p, " statements, ") : NULL;
  return p ? atol(p + strlen(" statements, ")) : -1;
}

/* Fails the case with what, daemon k's log on stderr, unless ok. */
static void log_ok(int ok, int k, const char *t, const char *what) {
  if (!ok) fprintf(stderr, "daemon %d's log:\n%s\n", k, t ? t : "(none)");
  ck_assert_msg(ok, "daemon %d: %s", k, what);
}

/* ---- cases ---- */

/* The daemons through the pooler, from an empty database; afterwards
 * both server connections of the pool as a plain client finds them. */
START_TEST(fleet_behind_a_transaction_pooler) {
  long n = getenv("LUACT_POOLER_RUNS") ? atol(getenv("LUACT_POOLER_RUNS")) : 300;
  /* (c) migrations under the pooler, three daemons at once */
  ck_assert_int_eq(count("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"), 0);
  start_all(NULL);
  ck_assert_int_ge(count("SELECT value::int FROM meta WHERE key = 'schema_version'"), 5);
  ck_assert_int_eq(count("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND "
                         "tablename IN ('runs', 'journal', 'leases', 'd_runs', 'd_inbox')"),
                   5);
  log_finished();
  run_many(n, 1);
  char *t[NDAEMONS];
  char *stopped_at = lc_pg_value(url, "SELECT now()::text"); /* the server's clock */
  ck_assert_ptr_nonnull(stopped_at);
  for (int k = 0; k < NDAEMONS; k++) ck_assert_ptr_nonnull(t[k] = stop_k(k));
  /* (a) nothing of ours stayed on the pool's server connections: both
   * held at once (each client in a transaction takes its own) */
  PGconn *c[POOL_SIZE];
  int bpid[POOL_SIZE];
  for (int i = 0; i < POOL_SIZE; i++) {
    c[i] = PQconnectdb(burl);
    ck_assert_int_eq(PQstatus(c[i]), CONNECTION_OK);
    PGresult *r = PQexec(c[i], "BEGIN");
    ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    r = PQexec(c[i],
               "SELECT pg_backend_pid(), current_setting('synchronous_commit'),"
               " current_setting('enable_seqscan'), current_setting('lock_timeout'),"
               " current_setting('plan_cache_mode'),"
               " current_setting('idle_in_transaction_session_timeout'),"
               " (SELECT count(*) FROM pg_listening_channels()),"
               " (SELECT count(*) FROM pg_prepared_statements)");
    ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    bpid[i] = atoi(PQgetvalue(r, 0, 0));
    static const char *const name[] = {NULL, "synchronous_commit", "enable_seqscan",
                                       "lock_timeout", "plan_cache_mode",
                                       "idle_in_transaction_session_timeout", "LISTENs",
                                       "prepared statements"};
    static const char *const want[] = {NULL, "on", "on", "0", "auto", "0", "0", "0"};
    char bad[600] = "";
    for (int col = 1; col < 8; col++)
      if (strcmp(PQgetvalue(r, 0, col), want[col]))
        snprintf(bad + strlen(bad), sizeof bad - strlen(bad), " %s=%s", name[col],
                 PQgetvalue(r, 0, col));
    ck_assert_msg(!bad[0], "server connection %d (pid %d) kept:%s", i, bpid[i], bad);
    PQclear(r);
  }
  ck_assert_int_ne(bpid[0], bpid[1]);
  /* the store's idle-in-transaction timeout went with its transactions
   * instead (SET LOCAL after each BEGIN, in the same round trip) */
  char path[400];
  snprintf(path, sizeof path, "%s/server.log", pg.dir);
  char *slog = lc_test_read_file(path, NULL);
  ck_assert_msg(slog && strstr(slog, "SET LOCAL idle_in_transaction_session_timeout = 2000"),
                "no SET LOCAL of the idle timeout in %s", path);
  free(slog);
  /* and they are the ones the daemons used: there before they stopped */
  char q[300];
  snprintf(q, sizeof q,
           "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
           "pid IN (%d, %d) AND backend_start < '%s'::timestamptz",
           bpid[0], bpid[1], stopped_at);
  free(stopped_at);
  ck_assert_int_eq(count(q), 2);
  for (int i = 0; i < POOL_SIZE; i++) PQfinish(c[i]);
  for (int k = 0; k < NDAEMONS; k++) {
    /* the poll alone started the runs: no LISTEN, and nothing prepared */
    log_ok(strstr(t[k], "\"fleet_proxied\"") != NULL, k, t[k], "did not see the proxy");
    log_ok(!strstr(t[k], "\"fleet_listen\""), k, t[k], "made a LISTEN");
    log_ok(unprepared_in(t[k]) > 0, k, t[k], "its claims were prepared");
    free(t[k]);
  }
}
END_TEST

/* Told the pooler keeps sessions (it does not): the claims are prepared,
 * the server then lacks one on the connection a claim lands on, and the
 * daemon sends them unprepared from then on; every run still ends once. */
START_TEST(a_lost_prepared_claim_goes_unprepared) {
  static const char *const env[] = {"LUACT_PG_POOLER=session", NULL};
  start_all(env);
  log_finished();
  run_many(60, 0);
  for (int k = 0; k < NDAEMONS; k++) {
    char *t = stop_k(k);
    ck_assert_ptr_nonnull(t);
    log_ok(!strstr(t, "\"fleet_proxied\""), k, t, "took the pooler's word as a proxy");
    log_ok(unprepared_in(t) > 0, k, t, "never fell back to unprepared claims");
    log_ok(!strstr(t, "lease_lost") && !strstr(t, "taken by another daemon"), k, t,
           "lost a lease");
    free(t);
  }
}
END_TEST

/* The fleet connection's settings do hold behind the pooler, made local
 * to each statement's transaction: with the queue's table locked by
 * another session, a claim gives up after lock_timeout (1 s) instead of
 * waiting on the lock (the test holds it until the daemon says so, so
 * without the setting the claim would wait for ever and the case fail
 * at its bound). */
START_TEST(claims_keep_their_lock_timeout_behind_the_pooler) {
  struct starter st = {.k = 0};
  start_main(&st);
  ck_assert_msg(st.rc == 0, "the daemon exited at start");
  PGconn *c = PQconnectdb(url); /* directly: the lock is held by this session */
  ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
  PGresult *r = PQexec(c, "BEGIN; LOCK TABLE leases IN ACCESS EXCLUSIVE MODE");
  ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
  PQclear(r);
  double until = lc_test_mono_s() + 60;
  char *t = NULL;
  for (;;) {
    free(t);
    t = lc_test_read_file(logs[0], NULL);
    if (t && strstr(t, "\"fleet_claim_failed\"") && strstr(t, "lock timeout")) break;
    if (lc_test_mono_s() >= until) break;
    lc_test_nap_ms(50);
  }
  int ok = t && strstr(t, "lock timeout");
  r = PQexec(c, "ROLLBACK");
  PQclear(r);
  PQfinish(c);
  log_ok(ok, 0, t, "its claims waited on the lock (no lock_timeout)");
  free(t);
  free(stop_k(0));
}
END_TEST

/* LUACT_PG_POOLER=transaction: a proxy by the user's word (one that
 * passes the server's key on is not seen), here on a direct connection:
 * the proxy's ways (no LISTEN, nothing prepared), and the runs end. */
START_TEST(the_users_word_makes_a_proxy) {
  static const char *const env[] = {"LUACT_PG_POOLER=transaction", NULL};
  snprintf(burl, sizeof burl, "%s", url); /* no pooler this time */
  struct starter st = {.k = 0, .env = env};
  start_main(&st);
  ck_assert_msg(st.rc == 0, "the daemon exited at start");
  for (int k = 1; k < NDAEMONS; k++) ports[k] = ports[0];
  log_finished();
  run_many(20, 0);
  char *t = stop_k(0);
  log_ok(t && strstr(t, "\"fleet_proxied\"") != NULL, 0, t, "did not take the word");
  log_ok(t && !strstr(t, "\"fleet_listen\""), 0, t, "made a LISTEN");
  log_ok(unprepared_in(t) > 0, 0, t, "its claims were prepared");
  free(t);
}
END_TEST

Suite *fleet_pooler_suite(void) {
  Suite *s = suite_create("fleet_pooler");
  TCase *tc = tcase_create("pgbouncer");
  tcase_set_timeout(tc, 300);
  tcase_add_unchecked_fixture(tc, up, down);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, fleet_behind_a_transaction_pooler);
  tcase_add_test(tc, a_lost_prepared_claim_goes_unprepared);
  tcase_add_test(tc, claims_keep_their_lock_timeout_behind_the_pooler);
  tcase_add_test(tc, the_users_word_makes_a_proxy);
  suite_add_tcase(s, tc);
  return s;
}
