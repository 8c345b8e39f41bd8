/* check_shopbot.c: examples/shopbot end to end through its command line:
 * `luact chat examples/shopbot` with the example's own mock script and
 * customer lines, against the real shipping service and Maildir. The
 * conversations themselves (happy path, refusals, checks, a flaky shipping
 * service, ...) are luact eval scenarios now, one file each in
 * examples/evals/shopbot/ (run by tests/eval/check_eval.c), with the same
 * checks of the shop database, the shipping service and the outbox. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util_common.h"
#include "util_mock.h"
#include "util_ship.h"

static struct lc_mock mock;
static char tmpdir[256], shopdb[320], shipdb[320], outbox[320];
static pid_t ship_pid = -1;
static char ship_url[64];

/* ---- the shipping service as a child process ---- */

static void ship_start(void) { ship_pid = lc_test_ship_start(shipdb, ship_url, sizeof ship_url); }

static void ship_stop(void) {
  if (ship_pid <= 0) return;
  kill(ship_pid, SIGTERM);
  int st;
  while (waitpid(ship_pid, &st, 0) < 0 && errno == EINTR) {
  }
  ship_pid = -1;
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "shipping service did not exit cleanly");
}

/* ---- SQLite and Maildir probes ---- */

/* The first column of every row, joined by '|'. */
static const char *sql_text(const char *db, const char *q) {
  static char buf[4096];
  buf[0] = '\0';
  sqlite3 *h;
  ck_assert_int_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *st;
  ck_assert_msg(sqlite3_prepare_v2(h, q, -1, &st, NULL) == SQLITE_OK, "%s: %s", q, sqlite3_errmsg(h));
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *t = (const char *)sqlite3_column_text(st, 0);
    size_t n = strlen(buf);
    snprintf(buf + n, sizeof buf - n, "%s%s", n ? "|" : "", t ? t : "NULL");
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return buf;
}

/* ---- running a conversation ---- */

static void setup(void) {
  memset(&mock, 0, sizeof mock);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/lc-shopbot-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
  snprintf(shopdb, sizeof shopdb, "%s/shop.db", tmpdir);
  snprintf(shipdb, sizeof shipdb, "%s/shipping.db", tmpdir);
  snprintf(outbox, sizeof outbox, "%s/outbox", tmpdir);
  ship_start();
}

static void teardown(void) {
  ship_stop();
  if (mock.pid > 0) ck_assert_int_eq(lc_mock_stop(&mock), 0);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
}

/* The CLI: luact chat examples/shopbot with the example's own mock script
 * and customer lines; chat.lua starts the shipping service itself. */
START_TEST(chat_cli_offline) {
  char path[512], cmd[2048];
  snprintf(path, sizeof path, "%s/examples/shopbot/mock.json", lc_test_source_dir());
  ck_assert_int_eq(lc_mock_start_file(&mock, path, NULL), 0);
  snprintf(cmd, sizeof cmd,
           "cd '%s' && OPENAI_BASE_URL='%s/v1' LUACT_MODEL=openai:mock-gpt SHOPBOT_DATA='%s/cli' "
           "SHOPBOT_INPUTS=examples/shopbot/offline-inputs.txt SHOPBOT_RUN_ID=cli "
           "SHOPBOT_SHIPPING_BIN='%s/shopbot-shipping' '%s/luact' chat examples/shopbot 2>&1",
           lc_test_source_dir(), mock.base_url, tmpdir, LC_BINARY_DIR, LC_BINARY_DIR);
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  static char buf[32768];
  size_t n = fread(buf, 1, sizeof buf - 1, p);
  buf[n] = '\0';
  ck_assert_msg(pclose(p) == 0, "%s", buf);
  const char *want[] = {"customer> It's A1001", "shopbot> Sure! What's your order number?",
                        "[label] create_label {} -> {", "\"label_id\":\"LBL-000001\"",
                        "shopbot> Done! Your return label is in your inbox.",
                        "(finished in step email: 12 model calls, 12 actions, 0 refused"};
  for (size_t i = 0; i < sizeof want / sizeof *want; i++)
    ck_assert_msg(strstr(buf, want[i]), "missing [%s] in:\n%s", want[i], buf);
  char db[400];
  snprintf(db, sizeof db, "%s/cli/shipping.db", tmpdir);
  ck_assert_str_eq(sql_text(db, "SELECT idempotency_key FROM labels"), "cli-8-create_label");
  snprintf(db, sizeof db, "%s/cli/shop.db", tmpdir);
  ck_assert_str_eq(sql_text(db, "SELECT status FROM returns"), "emailed");
}
END_TEST

Suite *shopbot_suite(void) {
  Suite *s = suite_create("shopbot");
  TCase *tc = tcase_create("conversations");
  tcase_set_timeout(tc, 120);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, chat_cli_offline);
  suite_add_tcase(s, tc);
  return s;
}
