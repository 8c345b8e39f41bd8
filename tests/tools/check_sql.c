/* check_sql.c: the SQL tool against real SQLite files in a fresh temp dir. */
#include <check.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <unistd.h>

#include "l_sql.h"
#include "sql.h"
#include "util_lua.h"
#include "util_tree.h"

static char dir[256];
static char dbpath[300];

static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/lc_sql_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(dbpath, sizeof dbpath, "%s/t.db", dir);
}

static void teardown(void) { lc_test_tree_rm(dir); }

static const char *seed =
    "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
    "  age INTEGER, score REAL, data BLOB);"
    "INSERT INTO users(name, age, score) VALUES ('ann', 31, 1.5),"
    "  ('bob', 42, 2.25), ('cy', 19, NULL);";

/* Opens dbpath with flags and runs the seed script when asked. */
static void open_db(struct lc_sql_db **db, unsigned flags, int do_seed) {
  char err[256];
  int rc = lc_sql_open(dbpath, flags, NULL, db, err, sizeof err);
  ck_assert_msg(rc == 0, "open: %s", err);
  if (do_seed) {
    rc = lc_sql_exec_script(*db, seed, err, sizeof err);
    ck_assert_msg(rc == 0, "seed: %s", err);
  }
}

/* Runs sql with params given as JSON text; returns the result or NULL. */
static cJSON *q(struct lc_sql_db *db, const char *sql, const char *params,
                const struct lc_sql_opts *opts, int *rc, char *err,
                size_t errlen) {
  cJSON *p = params ? cJSON_Parse(params) : NULL;
  if (params) ck_assert_ptr_nonnull(p);
  cJSON *res = NULL;
  *rc = lc_sql_query(db, sql, p, opts, &res, err, errlen);
  cJSON_Delete(p);
  return res;
}

/* Runs sql that must succeed. */
static cJSON *ok(struct lc_sql_db *db, const char *sql, const char *params) {
  char err[512];
  int rc;
  cJSON *res = q(db, sql, params, NULL, &rc, err, sizeof err);
  ck_assert_msg(rc == 0, "%s: %s", sql, err);
  ck_assert_ptr_nonnull(res);
  return res;
}

/* Runs sql that must fail with want; err gets the message. */
static void bad(struct lc_sql_db *db, const char *sql, const char *params,
                int want, char *err, size_t errlen) {
  int rc;
  cJSON *res = q(db, sql, params, NULL, &rc, err, errlen);
  ck_assert_msg(rc == want, "%s: rc %d (want %d): %s", sql, rc, want, err);
  ck_assert_ptr_null(res);
}

static const cJSON *row(const cJSON *res, int i) {
  return cJSON_GetArrayItem(cJSON_GetObjectItem(res, "rows"), i);
}

static double num(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItem(o, k);
  ck_assert_msg(cJSON_IsNumber(v), "%s is not a number", k);
  return v->valuedouble;
}

static long count_users(struct lc_sql_db *db) {
  cJSON *r = ok(db, "SELECT count(*) AS n FROM users", NULL);
  long n = (long)num(row(r, 0), "n");
  cJSON_Delete(r);
  return n;
}

START_TEST(create_seed_query) {
  struct lc_sql_db *db;
  open_db(&db, LC_SQL_CREATE, 1);
  cJSON *r = ok(db, "SELECT id, name, age FROM users WHERE age > ?1 "
                     "ORDER BY id",
                "[20]");
  ck_assert_int_eq((int)num(r, "row_count"), 2);
  ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "truncated")));
  char *s = cJSON_PrintUnformatted(cJSON_GetObjectItem(r, "columns"));
  ck_assert_str_eq(s, "[\"id\",\"name\",\"age\"]");
  free(s);
  ck_assert_str_eq(cJSON_GetObjectItem(row(r, 1), "name")->valuestring, "bob");
  cJSON_Delete(r);

  /* Named parameters: each prefix, keys with or without it. */
  const char *named[][2] = {
      {"SELECT name FROM users WHERE age = :age", "{\"age\": 42}"},
      {"SELECT name FROM users WHERE age = @age", "{\"age\": 42}"},
      {"SELECT name FROM users WHERE age = $age", "{\"$age\": 42}"},
      {"SELECT name FROM users WHERE age = :age AND name = :n",
       "{\":age\": 42, \"n\": \"bob\"}"},
      {"SELECT name FROM users WHERE age = ? AND name = ?", "[42, \"bob\"]"},
  };
  for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
    r = ok(db, named[i][0], named[i][1]);
    ck_assert_int_eq((int)num(r, "row_count"), 1);
    ck_assert_str_eq(cJSON_GetObjectItem(row(r, 0), "name")->valuestring,
                     "bob");
    cJSON_Delete(r);
  }
  /* A named parameter used twice is one parameter. */
  r = ok(db, "SELECT :x + :x AS v", "{\"x\": 4}");
  ck_assert_int_eq((int)num(row(r, 0), "v"), 8);
  cJSON_Delete(r);
  lc_sql_close(db);
  lc_sql_close(NULL); /* a no-op */
}
END_TEST

START_TEST(changes_and_insert_id) {
  struct lc_sql_db *db;
  open_db(&db, LC_SQL_CREATE, 1);
  cJSON *r = ok(db, "INSERT INTO users(name, age) VALUES (?, ?)",
                "[\"dee\", 50]");
  ck_assert_int_eq((int)num(r, "changes"), 1);
  ck_assert_int_eq((int)num(r, "last_insert_id"), 4);
  ck_assert_int_eq((int)num(r, "row_count"), 0);
  cJSON_Delete(r);
  r = ok(db, "UPDATE users SET age = age + 1 WHERE age > ?", "[20]");
  ck_assert_int_eq((int)num(r, "changes"), 3);
  cJSON_Delete(r);
  /* A read after a write reports 0, not the stale count. */
  r = ok(db, "SELECT 1", NULL);
  ck_assert_int_eq((int)num(r, "changes"), 0);
  cJSON_Delete(r);
  r = ok(db, "INSERT INTO users(name) VALUES ('eve') RETURNING id, name",
         NULL);
  ck_assert_int_eq((int)num(row(r, 0), "id"), 5);
  cJSON_Delete(r);
  /* Repeated column names get a suffix so row keys stay unique. */
  r = ok(db, "SELECT a.id, b.id FROM users a JOIN users b ON a.id = b.id "
              "WHERE a.id = 1", NULL);
  char *s = cJSON_PrintUnformatted(cJSON_GetObjectItem(r, "columns"));
  ck_assert_str_eq(s, "[\"id\",\"id_2\"]");
  free(s);
  ck_assert_int_eq((int)num(row(r, 0), "id_2"), 1);
  cJSON_Delete(r);
  lc_sql_close(db);
}
END_TEST

START_TEST(injection_stays_data) {
  struct lc_sql_db *db;
  open_db(&db, LC_SQL_CREATE, 1);
  const char *evil = "[\"x'); DROP TABLE users; --\"]";
  cJSON *r = ok(db, "INSERT INTO users(name) VALUES (?)", evil);
  cJSON_Delete(r);
  r = ok(db, "SELECT name FROM users WHERE name = ?", evil);
  ck_assert_int_eq((int)num(r, "row_count"), 1);
  ck_assert_str_eq(cJSON_GetObjectItem(row(r, 0), "name")->valuestring,
                   "x'); DROP TABLE users; --");
  cJSON_Delete(r);
  r = ok(db, "SELECT count(*) AS n FROM users WHERE name = :n OR 1=0",
         "{\"n\": \"' OR 1=1 --\"}");
  ck_assert_int_eq((int)num(row(r, 0), "n"), 0);
  cJSON_Delete(r);
  ck_assert_int_eq(count_users(db), 4); /* table still there, 3 + 1 rows */
  lc_sql_close(db);
}
END_TEST

START_TEST(multiple_statements_refused) {
  struct lc_sql_db *db;
  open_db(&db, LC_SQL_CREATE, 1);
  char err[512];
  bad(db, "SELECT 1; DROP TABLE users", NULL, LC_SQL_ESQL, err, sizeof err);
  ck_assert_msg(strstr(err, "multiple statements are not allowed"), "%s", err);
  bad(db, "SELECT 1;;; DELETE FROM users;", NULL, LC_SQL_ESQL, err,
      sizeof err);
  bad(db, "SELECT 1 /* c */ ; x", NULL, LC_SQL_ESQL, err, sizeof err);
  ck_assert_int_eq(count_users(db), 3);
  /* Trailing whitespace, semicolons and comments are fine. */
  cJSON *r = ok(db, "SELECT 1 AS one ;  ; -- done\n /* end */\n", NULL);
  ck_assert_int_eq((int)num(row(r, 0), "one"), 1);
  cJSON_Delete(r);
  bad(db, "   -- nothing\n", NULL, LC_SQL_ESQL, err, sizeof err);
  bad(db, "SELEC 1", NULL, LC_SQL_ESQL, err, sizeof err);
  ck_assert_msg(strstr(err, "syntax error"), "%s", err);
  bad(db, "SELECT * FROM nope", NULL, LC_SQL_ESQL, err, sizeof err);
  ck_assert_msg(strstr(err, "no such table: nope"), "%s", err);
  bad(db, "INSERT INTO users(id, name) VALUES (1, 'dup')", NULL, LC_SQL_ESQL,
      err, sizeof err);
  ck_assert_msg(strstr(err, "UNIQUE"), "%s", err);
  lc_sql_close(db);
}
END_TEST

START_TEST(readonly_refuses_writes) {
  struct lc_sql_db *db;
  open_db(&db, LC_SQL_CREATE, 1);
  lc_sql_close(db);
  /* The file is read-write on disk; the connection is not. */
  open_db(&db, LC_SQL_READONLY, 0);
  char err[512];
  const char *writes[] = {
      "INSERT INTO users(name) VALUES ('x')",
      "UPDATE users SET age = 0",
      "DELETE FROM users",
      "DROP TABLE users",
      "CREATE TABLE t(x)",
      "CREATE TEMP TABLE t(x)",
      "REPLACE INTO users(id, name) VALUES (1, 'x')",
  };
  for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
    bad(db, writes[i], NULL, LC_SQL_EREADONLY, err, sizeof err);
    ck_assert_msg(strstr(err, "read-only database"), "%s", err);
  }
  char other[300], attach[400];
  snprintf(other, sizeof other, "%s/other.db", dir);
  snprintf(attach, sizeof attach, "ATTACH DATABASE '%s' AS o", other);
  bad(db, attach, NULL, LC_SQL_EREADONLY, err, sizeof err);
  ck_assert_msg(strstr(err, "ATTACH is not allowed"), "%s", err);
  ck_assert_int_eq(access(other, F_OK), -1); /* no file was created */
  bad(db, "PRAGMA user_version = 5", NULL, LC_SQL_EREADONLY, err, sizeof err);
  ck_assert_msg(strstr(err, "PRAGMA user_version"), "%s", err);
  bad(db, "PRAGMA foreign_keys = OFF", NULL, LC_SQL_EREADONLY, err,
      sizeof err);
  bad(db, "PRAGMA journal_mode = delete", NULL, LC_SQL_EREADONLY, err,
      sizeof err);
  bad(db, "PRAGMA optimize", NULL, LC_SQL_EREADONLY, err, sizeof err);
  ck_assert_int_eq(lc_sql_exec_script(db, "DELETE FROM users", err,
                                      sizeof err),
                   LC_SQL_EREADONLY);
  /* Reads, including introspection pragmas, still work. */
  cJSON *r = ok(db, "PRAGMA table_info(users)", NULL);
  ck_assert_int_eq((int)num(r, "row_count"), 5);
  cJSON_Delete(r);
  r = ok(db, "SELECT name FROM pragma_table_info('users') ORDER BY cid",
         NULL);
  ck_assert_int_eq((int)num(r, "row_count"), 5);
  cJSON_Delete(r);
  r = ok(db, "PRAGMA user_version", NULL);
  ck_assert_int_eq((int)num(row(r, 0), "user_version"), 0);
  cJSON_Delete(r);
  ck_assert_int_eq(count_users(db), 3);
  lc_sql_close(db);
  /* And nothing changed on disk. */
  open_db(&db, 0, 0);
  ck_assert_int_eq(count_users(db), 3);
  lc_sql_close(db);
}
END_TEST

START_TEST(truncation_is_flagged) {
  struct lc_sql_db *db;
  open_db(&db, LC_SQL_CREATE, 0);
  char err[256];
  ck_assert_int_eq(
      lc_sql_exec_script(db,
                         "CREATE TABLE n(i INTEGER);"
                         "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
                         "SELECT x+1 FROM c WHERE x < 50) "
                         "INSERT INTO n SELECT x FROM c;",
                         err, sizeof err),
      0);
  struct lc_sql_opts o = {.max_rows = 10};
  int rc;
  cJSON *r = q(db, "SELECT i FROM n ORDER BY i", NULL, &o, &rc, err,
               sizeof err);
  ck_assert_int_eq(rc, 0);
  ck_assert_int_eq((int)num(r, "row_count"), 10);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "rows")), 10);
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "truncated")));
  ck_assert_int_eq((int)num(row(r, 9), "i"), 10);
  cJSON_Delete(r);
  /* Exactly at the cap is not truncated. */
  o.max_rows = 50;
  r = q(db, "SELECT i FROM n", NULL, &o, &rc, err, sizeof err);
  ck_assert_int_eq((int)num(r, "row_count"), 50);
  ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "truncated")));
  cJSON_Delete(r);
  /* Byte cap: rows of ~1 KB each stop well before 50. */
  struct lc_sql_opts ob = {.max_bytes = 4096};
  r = q(db, "SELECT i, printf('%.1000c', 'x') AS pad FROM n", NULL, &ob, &rc,
        err, sizeof err);
  ck_assert_int_eq(rc, 0);
  int n = (int)num(r, "row_count");
  ck_assert_msg(n >= 1 && n <= 4, "%d rows", n);
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "truncated")));
  char *s = cJSON_PrintUnformatted(r);
  ck_assert_uint_le(strlen(s), 4096);
  free(s);
  cJSON_Delete(r);
  /* Default cap is 1000 rows. */
  r = ok(db, "SELECT a.i FROM n a, n b", NULL);
  ck_assert_int_eq((int)num(r, "row_count"), LC_SQL_DEFAULT_MAX_ROWS);
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "truncated")));
  cJSON_Delete(r);
  lc_sql_close(db);
}
END_TEST

START_TEST(param_mismatch_messages) {
  struct lc_sql_db *db;
  open_db(&db, LC_SQL_CREATE, 1);
  char err[512];
  bad(db, "SELECT ?, ?", "[1]", LC_SQL_EPARAMS, err, sizeof err);
  ck_assert_msg(strstr(err, "expects 2 positional parameter(s), got 1"), "%s",
                err);
  bad(db, "SELECT ?", "[1, 2]", LC_SQL_EPARAMS, err, sizeof err);
  ck_assert_msg(strstr(err, "expects 1 positional parameter(s), got 2"), "%s",
                err);
  bad(db, "SELECT ?", NULL, LC_SQL_EPARAMS, err, sizeof err);
  ck_assert_msg(strstr(err, "expects 1 parameter(s), got none"), "%s", err);
  bad(db, "SELECT :a, :b", "{\"a\": 1, \"c\": 2}", LC_SQL_EPARAMS, err,
      sizeof err);
  ck_assert_msg(strstr(err, "(:a, :b)") && strstr(err, "missing :b") &&
                    strstr(err, "unexpected 'c'"),
                "%s", err);
  bad(db, "SELECT :a", "[1]", LC_SQL_EPARAMS, err, sizeof err);
  ck_assert_msg(strstr(err, "named parameter :a; pass params as an object"),
                "%s", err);
  bad(db, "SELECT ?", "{\"a\": 1}", LC_SQL_EPARAMS, err, sizeof err);
  ck_assert_msg(strstr(err, "positional parameter"), "%s", err);
  bad(db, "SELECT 1", "{\"a\": 1}", LC_SQL_EPARAMS, err, sizeof err);
  ck_assert_msg(strstr(err, "unexpected 'a'"), "%s", err);
  bad(db, "SELECT ?", "[[1, 2]]", LC_SQL_EPARAMS, err, sizeof err);
  ck_assert_msg(strstr(err, "parameter 1 is an array"), "%s", err);
  bad(db, "SELECT :o", "{\"o\": {\"k\": 1}}", LC_SQL_EPARAMS, err, sizeof err);
  ck_assert_msg(strstr(err, "parameter :o is an object"), "%s", err);
  bad(db, "SELECT ?", "\"str\"", LC_SQL_EPARAMS, err, sizeof err);
  bad(db, "SELECT ?", "[{\"$base64\": \"!!\"}]", LC_SQL_EPARAMS, err,
      sizeof err);
  ck_assert_msg(strstr(err, "not valid base64"), "%s", err);
  /* Nothing given and nothing expected is fine; so are empty containers. */
  cJSON_Delete(ok(db, "SELECT 1", "[]"));
  cJSON_Delete(ok(db, "SELECT 1", "{}"));
  lc_sql_close(db);
}
END_TEST

START_TEST(types_round_trip) {
  struct lc_sql_db *db;
  open_db(&db, LC_SQL_CREATE, 0);
  char err[512];
  ck_assert_int_eq(lc_sql_exec_script(db,
                                      "CREATE TABLE v(i INTEGER, r REAL, "
                                      "t TEXT, b BLOB, n)",
                                      err, sizeof err),
                   0);
  /* int64 extremes only survive cJSON as Raw literals. */
  cJSON *p = cJSON_CreateArray();
  cJSON_AddItemToArray(p, cJSON_CreateRaw("9223372036854775807"));
  cJSON_AddItemToArray(p, cJSON_CreateNumber(-0.25));
  cJSON_AddItemToArray(p, cJSON_CreateString("h\xc3\xa9llo \xe2\x9c\x93 "
                                             "\xe6\x97\xa5\xe6\x9c\xac"));
  cJSON *blob = cJSON_CreateObject();
  cJSON_AddStringToObject(blob, "$base64", "AAH/");
  cJSON_AddItemToArray(p, blob);
  cJSON_AddItemToArray(p, cJSON_CreateNull());
  cJSON *res = NULL;
  ck_assert_int_eq(lc_sql_query(db, "INSERT INTO v VALUES (?, ?, ?, ?, ?)", p,
                                NULL, &res, err, sizeof err),
                   0);
  cJSON_Delete(res);
  cJSON_Delete(p);
  cJSON *r = ok(db, "INSERT INTO v(i, t) VALUES (?, ?)",
                "[-9007199254740992, true]");
  cJSON_Delete(r);
  p = cJSON_CreateArray();
  cJSON_AddItemToArray(p, cJSON_CreateRaw("-9223372036854775808"));
  ck_assert_int_eq(lc_sql_query(db, "INSERT INTO v(i) VALUES (?)", p, NULL,
                                &res, err, sizeof err),
                   0);
  cJSON_Delete(res);
  cJSON_Delete(p);

  r = ok(db, "SELECT i, typeof(i) AS ti, r, t, b, n FROM v ORDER BY rowid",
         NULL);
  char *s = cJSON_PrintUnformatted(cJSON_GetObjectItem(r, "rows"));
  ck_assert_str_eq(
      s, "[{\"i\":9223372036854775807,\"ti\":\"integer\",\"r\":-0.25,"
         "\"t\":\"h\xc3\xa9llo \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac\","
         "\"b\":{\"$base64\":\"AAH/\"},\"n\":null},"
         "{\"i\":-9007199254740992,\"ti\":\"integer\",\"r\":null,\"t\":\"1\","
         "\"b\":null,\"n\":null},"
         "{\"i\":-9223372036854775808,\"ti\":\"integer\",\"r\":null,"
         "\"t\":null,\"b\":null,\"n\":null}]");
  free(s);
  ck_assert(cJSON_IsRaw(cJSON_GetObjectItem(row(r, 0), "i")));
  ck_assert(cJSON_IsRaw(cJSON_GetObjectItem(row(r, 1), "i")));
  cJSON_Delete(r);
  /* Integral JSON numbers bind as INTEGER, others as REAL; bool as 0/1. */
  r = ok(db, "SELECT typeof(?) AS a, typeof(?) AS b, ? AS c, typeof(?) AS d",
         "[3, 3.5, false, 1e300]");
  s = cJSON_PrintUnformatted(row(r, 0));
  ck_assert_str_eq(s, "{\"a\":\"integer\",\"b\":\"real\",\"c\":0,"
                      "\"d\":\"real\"}");
  free(s);
  cJSON_Delete(r);
  /* Text that is not UTF-8 (or holds NUL) comes back as base64, never as
   * broken JSON. */
  r = ok(db, "SELECT CAST(x'ff00' AS TEXT) AS t", NULL);
  s = cJSON_PrintUnformatted(row(r, 0));
  ck_assert_str_eq(s, "{\"t\":{\"$base64\":\"/wA=\"}}");
  free(s);
  cJSON_Delete(r);
  lc_sql_close(db);
}
END_TEST

START_TEST(open_errors) {
  struct lc_sql_db *db = NULL;
  char err[512];
  ck_assert_int_eq(lc_sql_open(dbpath, 0, NULL, &db, err, sizeof err),
                   LC_SQL_ESQL);
  ck_assert_msg(strstr(err, "cannot open"), "%s", err);
  ck_assert_int_eq(lc_sql_open(dbpath, LC_SQL_READONLY, NULL, &db, err, sizeof err),
                   LC_SQL_ESQL);
  ck_assert_int_eq(access(dbpath, F_OK), -1); /* nothing was created */
  ck_assert_int_eq(lc_sql_open(dbpath, LC_SQL_READONLY | LC_SQL_CREATE, NULL,
                               &db, err, sizeof err),
                   LC_EINVAL);
  FILE *f = fopen(dbpath, "w");
  fputs("this is not a database, just text that is long enough to matter\n",
        f);
  fclose(f);
  ck_assert_int_eq(lc_sql_open(dbpath, LC_SQL_READONLY, NULL, &db, err, sizeof err),
                   LC_SQL_ESQL);
  ck_assert_msg(strstr(err, "not a database"), "%s", err);
  ck_assert_ptr_null(db);
  lc_sql_close(db);
  cJSON *res = NULL;
  ck_assert_int_eq(lc_sql_query(db, "SELECT 1", NULL, NULL, &res, err,
                                sizeof err),
                   LC_EINVAL);
  ck_assert_str_eq(lc_sql_errcode(LC_SQL_EREADONLY), "readonly");
  ck_assert_str_eq(lc_sql_errcode(LC_SQL_EPARAMS), "bad_params");
  ck_assert_str_eq(lc_sql_errcode(LC_SQL_ESQL), "sql_error");
}
END_TEST

/* The linear instr/replace/trim replacements give SQLite's own results:
 * random text, BLOB, integer and NULL arguments over an alphabet with
 * multi-byte, invalid and NUL bytes, compared with a plain connection. */
START_TEST(linear_functions_match_sqlite) {
  static const char *const pieces[] = {"61", "62", "C3A9", "80", "C3",
                                       "E282AC", "C3A980", "00", "6161"};
  static const char *const fns[] = {"instr(%s, %s)", "replace(%s, %s, %s)",
                                    "trim(%s, %s)", "ltrim(%s, %s)",
                                    "rtrim(%s, %s)"};
  struct lc_sql_db *db;
  open_db(&db, LC_SQL_CREATE, 0);
  sqlite3 *plain;
  ck_assert_int_eq(sqlite3_open(":memory:", &plain), SQLITE_OK);
  srand(12345);
  for (int iter = 0; iter < 4000; iter++) {
    char arg[3][128];
    for (int a = 0; a < 3; a++) {
      char hex[96] = "";
      int len = rand() % 6;
      for (int k = 0; k < len && strlen(hex) < 80; k++)
        strcat(hex, pieces[rand() % 9]);
      switch (rand() % 6) {
        case 0: snprintf(arg[a], sizeof arg[a], "X'%s'", hex); break;
        case 1: snprintf(arg[a], sizeof arg[a], "%d", rand() % 300); break;
        case 2: snprintf(arg[a], sizeof arg[a], "NULL"); break;
        default:
          snprintf(arg[a], sizeof arg[a], "CAST(X'%s' AS TEXT)", hex);
      }
    }
    char f[512], sql[1200];
    snprintf(f, sizeof f, fns[iter % 5], arg[0], arg[1], arg[2]);
    snprintf(sql, sizeof sql,
             "SELECT typeof(%s) || ':' || coalesce(hex(%s), 'null') AS r", f,
             f);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(plain, sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    char want[512];
    snprintf(want, sizeof want, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    cJSON *r = ok(db, sql, NULL);
    const cJSON *got = cJSON_GetObjectItem(row(r, 0), "r");
    ck_assert_msg(cJSON_IsString(got) && strcmp(got->valuestring, want) == 0,
                  "%s: got %s, want %s", f,
                  cJSON_IsString(got) ? got->valuestring : "?", want);
    cJSON_Delete(r);
  }
  sqlite3_close(plain);
  lc_sql_close(db);
}
END_TEST

/* Runs the Lua chunk with `sql` = the module and `DB` = dbpath; the chunk
 * raises on any failed check. */
static void run_lua(const char *chunk) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  lc_open_sql(L);
  lua_setglobal(L, "sql");
  lua_pushstring(L, dbpath);
  lua_setglobal(L, "DB");
  int rc = luaL_dostring(L, chunk);
  ck_assert_msg(rc == LUA_OK, "lua: %s", lua_tostring(L, -1));
  lua_close(L);
}

START_TEST(lua_binding) {
  run_lua(
      "local db = assert(sql.open(DB, {create = true}))\n"
      "assert(tostring(db):find('read%-write'))\n"
      "assert(db:exec([[CREATE TABLE kv(k TEXT PRIMARY KEY, v);\n"
      "  INSERT INTO kv VALUES ('a', 1), ('b', 2.5), ('c', NULL)]]))\n"
      "local r = assert(db:query('SELECT k, v FROM kv WHERE k >= ? ORDER BY k',"
      " {'b'}))\n"
      "assert(r.row_count == 2 and r.truncated == false)\n"
      "assert(r.columns[1] == 'k' and r.columns[2] == 'v')\n"
      "assert(r.rows[1].k == 'b' and r.rows[1].v == 2.5)\n"
      "assert(r.rows[2].v ~= nil, 'NULL keeps its key as json.null')\n"
      "r = assert(db:query('SELECT v FROM kv WHERE k = :k', {k = 'a'}))\n"
      "assert(math.type(r.rows[1].v) == 'integer' and r.rows[1].v == 1)\n"
      /* int64 extremes round-trip exactly through the binding. */
      "r = assert(db:query('SELECT ? AS hi, ? AS lo, typeof(?) AS t',\n"
      "  {math.maxinteger, math.mininteger, math.maxinteger}))\n"
      "assert(r.rows[1].hi == math.maxinteger, tostring(r.rows[1].hi))\n"
      "assert(r.rows[1].lo == math.mininteger)\n"
      "assert(r.rows[1].t == 'integer')\n"
      "r = assert(db:query('SELECT ? AS s', {'\\u{65E5}\\u{672C}'}))\n"
      "assert(r.rows[1].s == '\\u{65E5}\\u{672C}')\n"
      "r = assert(db:query('WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL '\n"
      "  .. 'SELECT x + 1 FROM c WHERE x < 20) SELECT x FROM c', nil,\n"
      "  {max_rows = 5}))\n"
      "assert(r.row_count == 5 and r.truncated == true and #r.rows == 5)\n"
      /* Outside a task the query blocks, still under its deadline. */
      "local r2, m2, c2 = db:query('WITH RECURSIVE c(x) AS (SELECT 1 UNION '\n"
      "  .. 'ALL SELECT x + 1 FROM c) SELECT count(*) FROM c', nil,\n"
      "  {timeout = 0.2})\n"
      "assert(r2 == nil and c2 == 'timeout', m2)\n"
      "local w = assert(db:query(\"INSERT INTO kv VALUES ('d', 4)\"))\n"
      "assert(w.changes == 1 and w.last_insert_id == 4)\n"
      /* Operational failures: nil, msg, code. */
      "local ok, msg, code = db:query('SELECT ?, ?', {1})\n"
      "assert(ok == nil and code == 'bad_params' and msg:find('got 1'))\n"
      "ok, msg, code = db:query('SELECT 1; SELECT 2')\n"
      "assert(ok == nil and code == 'sql_error' and msg:find('multiple'))\n"
      "ok, msg, code = db:query('SELECT ?', {{1}})\n"
      "assert(code == 'bad_params' and msg:find('array'), msg)\n"
      "ok, msg, code = db:exec('CREATE TABLE kv(x)')\n"
      "assert(ok == nil and code == 'sql_error' and msg:find('already'))\n"
      "db:close(); db:close()\n"
      "assert(tostring(db):find('closed'))\n"
      /* Misuse raises. */
      "assert(not pcall(db.query, db, 'SELECT 1'))\n"
      "assert(not pcall(sql.open))\n"
      "do\n"
      "  local ro <close> = assert(sql.open(DB, {readonly = true}))\n"
      "  assert(not pcall(ro.query, ro, {}))\n"
      "  assert(not pcall(ro.query, ro, 'SELECT 1', nil, {max_rows = -1}))\n"
      "  ok, msg, code = ro:query(\"DELETE FROM kv\")\n"
      "  assert(ok == nil and code == 'readonly', msg)\n"
      "  ok, msg, code = ro:query(\"ATTACH 'x.db' AS x\")\n"
      "  assert(code == 'readonly' and msg:find('ATTACH'), msg)\n"
      "  ok, msg, code = ro:exec('SELECT 1')\n"
      "  assert(code == 'readonly')\n"
      "  assert(ro:query('SELECT count(*) AS n FROM kv').rows[1].n == 4)\n"
      "  CLOSED = ro\n"
      "end\n"
      "assert(tostring(CLOSED):find('closed'), '__close closed it')\n"
      "ok, msg, code = sql.open(DB .. '.missing')\n"
      "assert(ok == nil and code == 'sql_error', msg)\n"
      "local gc = sql.open(DB); gc = nil; collectgarbage()\n");
}
END_TEST

/* Runs chunk as a luact task (scheduler, loop, luact module) with DB =
 * dbpath seeded; the chunk raises on any failed check. */
static void run_task(const char *chunk) {
  struct lc_sql_db *db;
  open_db(&db, LC_SQL_CREATE, 1);
  lc_sql_close(db);
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  lua_pushstring(t.L, dbpath);
  lua_setglobal(t.L, "DB");
  lua_pushstring(t.L, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
                      "SELECT x + 1 FROM c) SELECT count(*) AS n FROM c");
  lua_setglobal(t.L, "ENDLESS");
  char out[64], err[2048];
  int rc = lc_test_lua_run(&t, chunk, out, sizeof out, err, sizeof err);
  ck_assert_msg(rc == 0, "lua: %s", err);
  ck_assert_str_eq(out, "ok");
  lc_test_lua_close(&t);
}

/* Finding 2: a query that never ends must not stall the loop. The ticker
 * must complete its ticks while the query is in flight (the query's own
 * deadline is far away); then it closes the database, which cancels the
 * query. Before, db:query blocked the loop thread and the ticker never ran
 * (the case hung until Check's timeout). */
START_TEST(ticker_runs_beside_slow_query) {
  run_task(
      "local db = assert(luact.sql.open(DB, {readonly = true}))\n"
      "local state = 'running'\n"
      "local q = luact.spawn(function()\n"
      "  local r, msg, code = db:query(ENDLESS, nil, {timeout = 1e6})\n"
      "  state = code or 'finished'\n"
      "  return code, msg\n"
      "end)\n"
      "local ticks = 0\n"
      "local t = luact.spawn(function()\n"
      "  for i = 1, 200 do\n"
      "    luact.sleep(0)\n"
      "    assert(state == 'running', 'the query ended early: ' .. state)\n"
      "    ticks = ticks + 1\n"
      "  end\n"
      "  db:close() -- cancels the query in flight\n"
      "end)\n"
      "assert(luact.wait(t))\n"
      "local ok, code, msg = luact.wait(q)\n"
      "assert(ok and ticks == 200, ticks)\n"
      "assert(code == 'cancelled', tostring(code) .. ' ' .. tostring(msg))\n"
      "return 'ok'\n");
}
END_TEST

/* luact.timeout kills the waiting task; the kill must interrupt the query
 * on the SQL thread (else the next query on the connection, queued behind
 * it, would never run), and the connection stays usable. */
START_TEST(timeout_interrupts_query) {
  run_task(
      "local db = assert(luact.sql.open(DB, {readonly = true}))\n"
      "local r, msg, code = luact.timeout(0.2, function()\n"
      "  return db:query(ENDLESS, nil, {timeout = 1e6})\n"
      "end)\n"
      "assert(r == nil and code == 'timeout', tostring(msg))\n"
      "local n = assert(db:query('SELECT count(*) AS n FROM users'))\n"
      "assert(n.rows[1].n == 3)\n"
      /* A task killed outright (luact.kill) cancels its query the same way. */
      "local q = luact.spawn(function() return db:query(ENDLESS, nil,\n"
      "  {timeout = 1e6}) end)\n"
      "luact.sleep(0)\n"
      "assert(luact.kill(q))\n"
      "n = assert(db:query('SELECT count(*) AS n FROM users'))\n"
      "assert(n.rows[1].n == 3)\n"
      /* The query's own deadline, with no luact.timeout around it. */
      "r, msg, code = db:query(ENDLESS, nil, {timeout = 0.2})\n"
      "assert(r == nil and code == 'timeout', tostring(msg))\n"
      "assert(msg:find('deadline'), msg)\n"
      "assert(not pcall(db.query, db, 'SELECT 1', nil, {timeout = -1}))\n"
      "db:close()\n"
      "return 'ok'\n");
}
END_TEST

/* Several tasks share one connection: their queries queue on its thread
 * (never two threads on one connection) and each gets its own answer. */
START_TEST(parallel_queries_share_connection) {
  run_task(
      "local db = assert(luact.sql.open(DB, {readonly = true}))\n"
      "local hs = {}\n"
      "for i = 1, 8 do\n"
      "  hs[i] = luact.spawn(function()\n"
      "    local r = assert(db:query('SELECT ? + count(*) AS v FROM users',\n"
      "      {i}))\n"
      "    return r.rows[1].v\n"
      "  end)\n"
      "end\n"
      "for i = 1, 8 do\n"
      "  local ok, v = luact.wait(hs[i])\n"
      "  assert(ok and v == i + 3, tostring(v))\n"
      "end\n"
      /* A query in flight when its task is killed is cancelled, not
       * leaked (a dropped handle no longer kills its task: the kill is
       * explicit). */
      "local h = luact.spawn(function() db:query(ENDLESS, nil, {timeout = 1e6}) end)\n"
      "luact.sleep(0)\n"
      "luact.kill(h)\n"
      "return 'ok'\n");
}
END_TEST

/* The sql tool passes its timeout to the query as the deadline. */
START_TEST(tool_timeout_stops_query) {
  run_task(
      "local t = luact.tools.sql{db = DB, timeout = 0.3}\n"
      "local r, msg, code = t{sql = ENDLESS}\n"
      "assert(r == nil and msg:find('timed out'), tostring(msg))\n"
      "r = assert(t{sql = 'SELECT count(*) AS n FROM users'})\n"
      "assert(r.rows[1].n == 3)\n"
      "r, msg = t{sql = 'SELECT hex(fts3_tokenizer(?))', params = {'simple'}}\n"
      "assert(r == nil and msg:find('fts3_tokenizer'), tostring(msg))\n"
      "t.close()\n"
      "return 'ok'\n");
}
END_TEST

Suite *sql_suite(void) {
  Suite *s = suite_create("sql");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, create_seed_query);
  tcase_add_test(tc, changes_and_insert_id);
  tcase_add_test(tc, injection_stays_data);
  tcase_add_test(tc, multiple_statements_refused);
  tcase_add_test(tc, readonly_refuses_writes);
  tcase_add_test(tc, truncation_is_flagged);
  tcase_add_test(tc, param_mismatch_messages);
  tcase_add_test(tc, types_round_trip);
  tcase_add_test(tc, open_errors);
  suite_add_tcase(s, tc);
  TCase *tl = tcase_create("lua");
  tcase_add_checked_fixture(tl, setup, teardown);
  tcase_add_test(tl, lua_binding);
  suite_add_tcase(s, tl);
  /* 4000 queries through the SQL thread: slow under ASan, not stuck. */
  TCase *td = tcase_create("differential");
  tcase_add_checked_fixture(td, setup, teardown);
  tcase_set_timeout(td, 120);
  tcase_add_test(td, linear_functions_match_sqlite);
  suite_add_tcase(s, td);
  TCase *ta = tcase_create("async");
  tcase_add_checked_fixture(ta, setup, teardown);
  tcase_set_timeout(ta, 60);
  tcase_add_test(ta, ticker_runs_beside_slow_query);
  tcase_add_test(ta, timeout_interrupts_query);
  tcase_add_test(ta, parallel_queries_share_connection);
  tcase_add_test(ta, tool_timeout_stops_query);
  suite_add_tcase(s, ta);
  return s;
}
