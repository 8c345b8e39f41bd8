/* check_serve_crons.c: LangGraph's crons on `luact serve`
 * (runtime/daemon/crons.c): the expression parser against known next
 * times, bad expressions, tenants, a tick fired once across a SIGKILL and
 * a restart, a fleet of two daemons on one PostgreSQL firing each tick
 * once, and the LangGraph JS SDK's client.crons.*. The daemon's cron clock
 * is a file the test writes ($LUACT_CRON_CLOCK_FILE): a tick fires when
 * the test moves the clock, never by waiting for real time. */
#include <check.h>
#include <cjson/cJSON.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util_common.h"
#include "util_pg.h"
#include "util_serve.h"

static const char echo_agent[] =
    "return function(input, ctx) luact.now() return {echo = input} end\n";

static time_t at(const char *iso) { /* "2030-01-01T00:00:30" (UTC) */
  struct tm tm = {0};
  ck_assert_ptr_nonnull(strptime(iso, "%Y-%m-%dT%H:%M:%S", &tm));
  return timegm(&tm);
}

static void set_clock(struct lc_sd *d, time_t t) {
  char p[400], tmp[420];
  snprintf(p, sizeof p, "%s/clock", d->dir);
  snprintf(tmp, sizeof tmp, "%s.tmp", p);
  FILE *f = fopen(tmp, "w");
  ck_assert_ptr_nonnull(f);
  fprintf(f, "%lld\n", (long long)t);
  fclose(f);
  ck_assert_int_eq(rename(tmp, p), 0); /* the daemon never reads half a number */
}

/* TCase "pg": the cases again with the store on a real PostgreSQL. */
static struct lc_pg cron_pg;
static int use_pg;
static void on_pg(void) {
  ck_assert_msg(cron_pg.url[0], "no PostgreSQL server (scripts/pg-tmp start failed)");
  use_pg = 1;
}

/* A daemon whose cron clock is the test's, looking every 20 ms. */
static void setup(struct lc_sd *d, time_t now) {
  lc_sd_setup(d);
  if (use_pg) ck_assert_int_eq(lc_pg_newdb(&cron_pg, d->store, sizeof d->store), 0);
  lc_sd_agent(d, "echo", echo_agent);
  snprintf(d->env[0], sizeof d->env[0], "LUACT_CRON_CLOCK_FILE=%.170s/clock", d->dir);
  snprintf(d->env[1], sizeof d->env[1], "LUACT_CRON_POLL_MS=20");
  set_clock(d, now);
}

static const char *js(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItem(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Polls GET /runs/crons/ID until its next_run_date is want (NULL: null). */
static void wait_next(struct lc_sd *d, const char *id, const char *want) {
  char path[200];
  snprintf(path, sizeof path, "/runs/crons/%s", id);
  double until = lc_test_mono_s() + 60;
  for (;;) {
    cJSON *c = lc_sd_expect(d, "GET", path, NULL, 200);
    const char *n = js(c, "next_run_date");
    int ok = want ? n && !strcmp(n, want) : !n;
    char got[64];
    snprintf(got, sizeof got, "%s", n ? n : "null");
    cJSON_Delete(c);
    if (ok) return;
    ck_assert_msg(lc_test_mono_s() < until, "cron %s: next_run_date %s, want %s", id, got,
                  want ? want : "null");
    lc_test_nap_ms(10); /* polling the daemon: nothing else tells */
  }
}

/* The runs a cron made (its id is in their metadata). */
static int cron_runs(struct lc_sd *d, const char *id, const char *token) {
  char body[200];
  snprintf(body, sizeof body, "{\"metadata\": {\"cron_id\": \"%s\"}, \"limit\": 1000}", id);
  struct lc_sresp r = lc_sd_req(d, "POST", "/runs/search", body, token, NULL);
  ck_assert_int_eq(r.code, 200);
  cJSON *a = cJSON_Parse(r.body);
  lc_sresp_free(&r);
  ck_assert(cJSON_IsArray(a));
  int n = cJSON_GetArraySize(a);
  cJSON_Delete(a);
  return n;
}

static char *create(struct lc_sd *d, const char *body) {
  cJSON *c = lc_sd_expect(d, "POST", "/runs/crons", body, 200);
  char *id = strdup(js(c, "cron_id"));
  cJSON_Delete(c);
  return id;
}

/* Next fire times, UTC: now, schedule, the expected next_run_date. */
static const struct {
  const char *now, *sched, *next;
} table[] = {
    {"2030-01-01T00:00:30", "* * * * *", "2030-01-01T00:01:00.000Z"},
    {"2030-01-01T00:01:00", "* * * * *", "2030-01-01T00:02:00.000Z"}, /* strictly after */
    {"2030-01-01T10:07:00", "*/15 * * * *", "2030-01-01T10:15:00.000Z"},
    {"2030-01-01T10:50:00", "0 9-17/2 * * *", "2030-01-01T11:00:00.000Z"},
    {"2030-01-01T18:00:00", "0 9-17/2 * * *", "2030-01-02T09:00:00.000Z"},
    {"2030-01-01T00:00:00", "30 4 1,15 * *", "2030-01-01T04:30:00.000Z"},
    {"2030-01-02T00:00:00", "30 4 1,15 * *", "2030-01-15T04:30:00.000Z"},
    {"2027-03-01T00:00:00", "0 0 29 2 *", "2028-02-29T00:00:00.000Z"}, /* Feb 29 */
    {"2028-02-28T23:59:00", "0 0 29 2 *", "2028-02-29T00:00:00.000Z"},
    {"2028-02-29T00:00:00", "0 0 29 2 *", "2032-02-29T00:00:00.000Z"},
    {"2030-01-01T00:00:00", "0 12 * * 7", "2030-01-06T12:00:00.000Z"}, /* 7 is Sunday */
    {"2030-01-01T00:00:00", "0 12 * * 0", "2030-01-06T12:00:00.000Z"},
    {"2030-01-01T00:00:00", "0 12 * * SUN", "2030-01-06T12:00:00.000Z"},
    {"2030-01-01T00:00:00", "0 0 * * 5-7", "2030-01-04T00:00:00.000Z"},
    {"2030-01-04T12:00:00", "0 0 * * mon-fri", "2030-01-07T00:00:00.000Z"},
    /* Vixie's OR: the 13th, or a Friday */
    {"2030-01-01T00:00:00", "0 0 13 * 5", "2030-01-04T00:00:00.000Z"},
    {"2030-01-11T00:00:01", "0 0 13 * 5", "2030-01-13T00:00:00.000Z"},
    /* a day field that begins with '*' is unrestricted: AND (odd days
     * that are Fridays) */
    {"2030-01-01T00:00:00", "0 0 */2 * 5", "2030-01-11T00:00:00.000Z"},
    {"2030-02-01T00:00:00", "0 0 1 JAN,mar *", "2030-03-01T00:00:00.000Z"},
    {"2030-12-31T23:59:00", "59 23 31 12 *", "2031-12-31T23:59:00.000Z"},
    {"2030-01-01T10:30:00", "@hourly", "2030-01-01T11:00:00.000Z"},
    {"2030-01-01T00:00:00", "@weekly", "2030-01-06T00:00:00.000Z"},
    {"2030-05-17T08:00:00", "@yearly", "2031-01-01T00:00:00.000Z"},
    {"2030-01-31T00:00:00", "0 0 31 * *", "2030-03-31T00:00:00.000Z"}, /* no Feb 31 */
    {"2030-01-01T00:00:00", "5,10-12/2,50 3 * * *", "2030-01-01T03:05:00.000Z"},
    {"2030-01-01T03:06:00", "5,10-12/2,50 3 * * *", "2030-01-01T03:10:00.000Z"},
    {"2030-01-01T03:11:00", "5,10-12/2,50 3 * * *", "2030-01-01T03:12:00.000Z"},
    {"2030-01-01T03:13:00", "5,10-12/2,50 3 * * *", "2030-01-01T03:50:00.000Z"},
    {"2030-01-01T00:00:00", "30/10 * * * *", "2030-01-01T00:30:00.000Z"}, /* N/STEP */
};

START_TEST(next_times) {
  struct lc_sd d;
  setup(&d, at("2030-01-01T00:00:00"));
  lc_sd_start(&d);
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    set_clock(&d, at(table[i].now));
    char body[300];
    snprintf(body, sizeof body, "{\"assistant_id\": \"echo\", \"schedule\": \"%s\"}",
             table[i].sched);
    cJSON *c = lc_sd_expect(&d, "POST", "/runs/crons", body, 200);
    const char *n = js(c, "next_run_date");
    ck_assert_msg(n && !strcmp(n, table[i].next), "%s from %s: %s, want %s", table[i].sched,
                  table[i].now, n ? n : "null", table[i].next);
    ck_assert_str_eq(js(c, "schedule"), table[i].sched);
    char path[200];
    snprintf(path, sizeof path, "/runs/crons/%s", js(c, "cron_id"));
    cJSON_Delete(lc_sd_expect(&d, "DELETE", path, NULL, 204));
    cJSON_Delete(c);
  }
  lc_sd_stop_clean(&d);
  lc_sd_rm(&d);
}
END_TEST

START_TEST(bad_requests) {
  static const char *const bad[] = {
      "",          "* * * *",     "* * * * * *", "60 * * * *",  "* 24 * * *", "* * 0 * *",
      "* * 32 * *", "* * * 13 *", "* * * 0 *",   "* * * * 8",   "*/0 * * * *", "5-1 * * * *",
      "foo * * * *", "1,,2 * * * *", "-1 * * * *", "@reboot",   "* * * jnu *", "0 0 30 2 *",
      "0 0 31 4,6,9,11 *", "*/61 * * * *"};
  struct lc_sd d;
  setup(&d, at("2030-01-01T00:00:00"));
  lc_sd_start(&d);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char body[200];
    snprintf(body, sizeof body, "{\"assistant_id\": \"echo\", \"schedule\": \"%s\"}", bad[i]);
    struct lc_sresp r = lc_sd_req(&d, "POST", "/runs/crons", body, LC_SD_TOKEN, NULL);
    ck_assert_msg(r.code == 422, "'%s': %ld %s", bad[i], r.code, r.body);
    ck_assert_ptr_nonnull(strstr(r.body, "\"detail\""));
    lc_sresp_free(&r);
  }
  cJSON_Delete(lc_sd_expect(&d, "POST", "/runs/crons", "{\"assistant_id\": \"echo\"}", 422));
  cJSON_Delete(lc_sd_expect(&d, "POST", "/runs/crons",
                            "{\"assistant_id\": \"echo\", \"schedule\": 5}", 422));
  cJSON_Delete(lc_sd_expect(&d, "POST", "/runs/crons",
                            "{\"assistant_id\": \"nope\", \"schedule\": \"* * * * *\"}", 404));
  cJSON_Delete(lc_sd_expect(
      &d, "POST", "/runs/crons",
      "{\"assistant_id\": \"echo\", \"schedule\": \"* * * * *\", \"timezone\": \"Europe/Paris\"}",
      422));
  cJSON_Delete(lc_sd_expect(
      &d, "POST", "/runs/crons",
      "{\"assistant_id\": \"echo\", \"schedule\": \"* * * * *\", \"end_time\": \"tomorrow\"}",
      422));
  cJSON_Delete(lc_sd_expect(
      &d, "POST", "/runs/crons",
      "{\"assistant_id\": \"echo\", \"schedule\": \"* * * * *\", \"multitask_strategy\": "
      "\"rollback\"}",
      422));
  cJSON_Delete(lc_sd_expect(&d, "POST", "/runs/crons/search", "{\"sort_by\": \"x\"}", 422));
  cJSON_Delete(lc_sd_expect(
      &d, "POST", "/runs/crons",
      "{\"assistant_id\": \"echo\", \"schedule\": \"* * * * *\", \"enabled\": false}", 422));
  struct lc_sresp r = lc_sd_req(&d, "POST", "/runs/crons", "{nope", LC_SD_TOKEN, NULL);
  ck_assert_int_eq(r.code, 400);
  lc_sresp_free(&r);
  /* UTC by its names is fine; an end_time before the first tick: never */
  cJSON *c = lc_sd_expect(&d, "POST", "/runs/crons",
                          "{\"assistant_id\": \"echo\", \"schedule\": \"0 * * * *\", "
                          "\"timezone\": \"UTC\", \"end_time\": \"2030-01-01T00:30:00Z\"}",
                          200);
  ck_assert(cJSON_IsNull(cJSON_GetObjectItem(c, "next_run_date")));
  ck_assert_str_eq(js(c, "end_time"), "2030-01-01T00:30:00.000Z");
  cJSON_Delete(c);
  lc_sd_stop_clean(&d);
  lc_sd_rm(&d);
}
END_TEST

/* One tick, one run; a daemon SIGKILLed over eight ticks fires once at
 * its restart; a tick whose run was made before a crash (the cron not
 * moved on) is not made again. */
START_TEST(fire_once_across_restart) {
  struct lc_sd d;
  setup(&d, at("2030-01-01T00:00:30"));
  lc_sd_start(&d);
  char *id = create(&d, "{\"assistant_id\": \"echo\", \"schedule\": \"* * * * *\", "
                        "\"input\": {\"a\": 1}, \"metadata\": {\"m\": 2}}");
  wait_next(&d, id, "2030-01-01T00:01:00.000Z");
  set_clock(&d, at("2030-01-01T00:01:10"));
  wait_next(&d, id, "2030-01-01T00:02:00.000Z");
  ck_assert_int_eq(cron_runs(&d, id, LC_SD_TOKEN), 1);
  /* the run is the payload's: its input, and it finishes */
  cJSON *runs = lc_sd_expect(&d, "POST", "/runs/search", "{\"limit\": 10}", 200);
  ck_assert_int_eq(cJSON_GetArraySize(runs), 1);
  char path[200];
  snprintf(path, sizeof path, "/runs/%s/wait",
           js(cJSON_GetArrayItem(runs, 0), "run_id"));
  cJSON_Delete(runs);
  cJSON *w = lc_sd_expect(&d, "GET", path, NULL, 200);
  cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(w, "values"), "echo");
  ck_assert_int_eq(cJSON_GetObjectItem(v, "a")->valueint, 1);
  cJSON_Delete(w);
  /* down from 00:01:10 to 00:10:30: eight ticks missed, fired once */
  lc_sd_stop(&d, SIGKILL);
  set_clock(&d, at("2030-01-01T00:10:30"));
  lc_sd_start(&d);
  wait_next(&d, id, "2030-01-01T00:11:00.000Z");
  ck_assert_int_eq(cron_runs(&d, id, LC_SD_TOKEN), 2);
  /* A crash after the run of the tick 00:02 was committed, before the
   * cron moved on: the same tick is due again at the restart. */
  lc_sd_stop(&d, SIGKILL);
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open(d.store, &db), SQLITE_OK);
  char sql[300];
  snprintf(sql, sizeof sql, "UPDATE d_crons SET next_run_at=%lld WHERE id='%s'",
           (long long)at("2030-01-01T00:02:00"), id);
  ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  lc_sd_start(&d);
  wait_next(&d, id, "2030-01-01T00:11:00.000Z");
  ck_assert_int_eq(cron_runs(&d, id, LC_SD_TOKEN), 2);
  /* and the next tick after it fires as usual */
  set_clock(&d, at("2030-01-01T00:11:00"));
  wait_next(&d, id, "2030-01-01T00:12:00.000Z");
  ck_assert_int_eq(cron_runs(&d, id, LC_SD_TOKEN), 3);
  free(id);
  lc_sd_stop_clean(&d);
  lc_sd_rm(&d);
}
END_TEST

/* Bob never sees, changes or deletes Alice's crons (404, not 403), nor
 * makes one on her thread; her cron's runs are hers. */
START_TEST(tenants) {
  struct lc_sd d;
  setup(&d, at("2030-01-01T00:00:30"));
  lc_sd_start(&d);
  cJSON *t = lc_sd_expect(&d, "POST", "/threads", "{}", 200);
  char tid[64];
  snprintf(tid, sizeof tid, "%s", js(t, "thread_id"));
  cJSON_Delete(t);
  char path[200], body[300];
  snprintf(path, sizeof path, "/threads/%s/runs/crons", tid);
  cJSON *c = lc_sd_expect(&d, "POST", path,
                          "{\"assistant_id\": \"echo\", \"schedule\": \"*/5 * * * *\"}", 200);
  ck_assert_str_eq(js(c, "thread_id"), tid);
  char id[64];
  snprintf(id, sizeof id, "%s", js(c, "cron_id"));
  cJSON_Delete(c);
  struct lc_sresp r = lc_sd_req(&d, "POST", path,
                                "{\"assistant_id\": \"echo\", \"schedule\": \"* * * * *\"}",
                                LC_SD_TOKEN_B, NULL);
  ck_assert_int_eq(r.code, 404);
  lc_sresp_free(&r);
  snprintf(path, sizeof path, "/runs/crons/%s", id);
  const char *methods[] = {"GET", "DELETE", "PATCH"};
  for (int i = 0; i < 3; i++) {
    r = lc_sd_req(&d, methods[i], path, i == 2 ? "{\"schedule\": \"* * * * *\"}" : NULL,
                  LC_SD_TOKEN_B, NULL);
    ck_assert_msg(r.code == 404, "%s: %ld", methods[i], r.code);
    lc_sresp_free(&r);
  }
  r = lc_sd_req(&d, "POST", "/runs/crons/search", "{}", LC_SD_TOKEN_B, NULL);
  ck_assert_int_eq(r.code, 200);
  ck_assert_str_eq(r.body, "[]");
  lc_sresp_free(&r);
  r = lc_sd_req(&d, "POST", "/runs/crons/count", "{}", LC_SD_TOKEN_B, NULL);
  ck_assert_str_eq(r.body, "0");
  lc_sresp_free(&r);
  r = lc_sd_req(&d, "POST", "/runs/crons/count", "{}", LC_SD_TOKEN, NULL);
  ck_assert_str_eq(r.body, "1");
  lc_sresp_free(&r);
  /* it fires on her thread; Bob's search does not find the run */
  set_clock(&d, at("2030-01-01T00:05:00"));
  wait_next(&d, id, "2030-01-01T00:10:00.000Z");
  ck_assert_int_eq(cron_runs(&d, id, LC_SD_TOKEN), 1);
  ck_assert_int_eq(cron_runs(&d, id, LC_SD_TOKEN_B), 0);
  snprintf(body, sizeof body, "/threads/%s/runs", tid);
  cJSON *runs = lc_sd_expect(&d, "GET", body, NULL, 200);
  ck_assert_int_eq(cJSON_GetArraySize(runs), 1);
  cJSON_Delete(runs);
  /* PATCH: a new schedule moves the next time; search and count filter */
  c = lc_sd_expect(&d, "PATCH", path, "{\"schedule\": \"0 3 * * *\", \"metadata\": {\"k\": 1}}",
                   200);
  ck_assert_str_eq(js(c, "next_run_date"), "2030-01-01T03:00:00.000Z");
  ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "metadata"), "k")->valueint, 1);
  cJSON_Delete(c);
  cJSON_Delete(lc_sd_expect(&d, "PATCH", path, "{\"schedule\": \"61 * * * *\"}", 422));
  snprintf(body, sizeof body, "{\"thread_id\": \"%s\"}", tid);
  cJSON *n = lc_sd_expect(&d, "POST", "/runs/crons/count", body, 200);
  ck_assert_int_eq(n->valueint, 1);
  cJSON_Delete(n);
  n = lc_sd_expect(&d, "POST", "/runs/crons/count", "{\"assistant_id\": \"other\"}", 200);
  ck_assert_int_eq(n->valueint, 0);
  cJSON_Delete(n);
  cJSON_Delete(lc_sd_expect(&d, "DELETE", path, NULL, 204));
  cJSON_Delete(lc_sd_expect(&d, "GET", path, NULL, 404));
  lc_sd_stop_clean(&d);
  lc_sd_rm(&d);
}
END_TEST

/* The official LangGraph JS SDK's client.crons.* (tests/daemon/js). */
START_TEST(sdk_crons_js) {
  char jsdir[600];
  lc_sd_js_dir(jsdir, sizeof jsdir);
  struct lc_sd d;
  setup(&d, at("2030-01-01T00:00:30"));
  lc_sd_start(&d);
  char cmd[2000];
  snprintf(cmd, sizeof cmd,
           "cd %s && LUACT_URL=http://127.0.0.1:%d LUACT_TOKEN=%s LUACT_CLOCK=%s/clock "
           "node crons_test.mjs >&2",
           jsdir, d.port, LC_SD_TOKEN, d.dir);
  int st = system(cmd);
  lc_sd_stop_clean(&d);
  lc_sd_rm(&d);
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the SDK checks failed (stderr above)");
}
END_TEST

/* Two daemons on one PostgreSQL, both looking every 20 ms and pausing
 * 60 ms between a look and its firing (so both see each tick due): each
 * tick makes one run. */
static void pg_up(void) { ck_assert_int_eq(lc_pg_start(&cron_pg), 0); }
static void pg_down(void) { lc_pg_stop(&cron_pg); }

START_TEST(fleet_fires_once) {
  struct lc_sd a, b;
  setup(&a, at("2030-01-01T00:00:30")); /* on_pg: a new database */
  snprintf(a.env[2], sizeof a.env[2], "LUACT_CRON_TEST_PAUSE_MS=60");
  lc_sd_start(&a);
  /* b: the same database and clock file, its own folder for its log */
  setup(&b, at("2030-01-01T00:00:30"));
  snprintf(b.store, sizeof b.store, "%s", a.store); /* not the one setup made */
  snprintf(b.env[0], sizeof b.env[0], "LUACT_CRON_CLOCK_FILE=%.170s/clock", a.dir);
  snprintf(b.env[2], sizeof b.env[2], "LUACT_CRON_TEST_PAUSE_MS=60");
  lc_sd_start(&b);
  char *id = create(&a, "{\"assistant_id\": \"echo\", \"schedule\": \"* * * * *\"}");
  enum { TICKS = 15 };
  for (int i = 1; i <= TICKS; i++) {
    set_clock(&a, at("2030-01-01T00:00:30") + 60 * i);
    char want[40];
    time_t nx = at("2030-01-01T00:01:00") + 60 * i;
    struct tm tm;
    gmtime_r(&nx, &tm);
    strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
    wait_next(i % 2 ? &a : &b, id, want);
  }
  ck_assert_int_eq(cron_runs(&a, id, LC_SD_TOKEN), TICKS);
  ck_assert_int_eq(cron_runs(&b, id, LC_SD_TOKEN), TICKS);
  free(id);
  lc_sd_stop_clean(&b);
  lc_sd_stop_clean(&a);
  lc_sd_rm(&b);
  lc_sd_rm(&a);
}
END_TEST

/* A run of a fleet daemon hands its lease back after it left the active
 * list; a SIGTERM's stop, which waits only for that list, freed the fleet
 * under it (ASan: heap-use-after-free in lc_fleet_run_done; these cases
 * hit it now and then). The hook pauses there, with the fleet in hand,
 * and logs when the pause is over. */
START_TEST(fleet_stop_waits_for_lease_release) {
  struct lc_sd d;
  setup(&d, at("2030-01-01T00:00:30"));
  snprintf(d.env[2], sizeof d.env[2], "LUACT_FLEET_TEST_DONE_PAUSE_MS=1500");
  lc_sd_start(&d);
  cJSON *r = lc_sd_expect(&d, "POST", "/runs/wait", "{\"assistant_id\": \"echo\", \"input\": 1}",
                          200);
  cJSON_Delete(r);
  /* The run ended; its thread now pauses before handing the lease back.
   * The stop must wait for it (before, it freed the fleet and the process
   * exited in the middle of the pause, or used freed memory after it). */
  lc_sd_stop_clean(&d);
  char *log = lc_test_read_file(d.log, NULL);
  ck_assert_ptr_nonnull(log);
  ck_assert_msg(strstr(log, "fleet_test_pause") != NULL,
                "the daemon exited while a run was handing its lease back");
  free(log);
  lc_sd_rm(&d);
}
END_TEST

Suite *serve_crons_suite(void) {
  Suite *s = suite_create("serve_crons");
  TCase *tc = tcase_create("crons");
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, next_times);
  tcase_add_test(tc, bad_requests);
  tcase_add_test(tc, fire_once_across_restart);
  tcase_add_test(tc, tenants);
  tcase_add_test(tc, sdk_crons_js);
  suite_add_tcase(s, tc);
  TCase *pg = tcase_create("pg");
  tcase_set_timeout(pg, 240);
  tcase_add_unchecked_fixture(pg, pg_up, pg_down);
  tcase_add_checked_fixture(pg, on_pg, NULL);
  tcase_add_test(pg, fleet_fires_once);
  tcase_add_test(pg, fleet_stop_waits_for_lease_release);
  tcase_add_test(pg, next_times);
  tcase_add_test(pg, bad_requests);
  tcase_add_test(pg, tenants);
  suite_add_tcase(s, pg);
  return s;
}
