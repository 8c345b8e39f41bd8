/* check_shopbot.c: examples/shopbot end to end. Each case plays one whole
 * conversation from tests/shopbot/<case>.json (the customer's lines and
 * the model's replies, served by lc-mockllm in the real OpenAI wire
 * format) through the real workflow, the real shipping service
 * (shopbot-shipping, its own SQLite file) and a real Maildir outbox, then
 * checks what each of them holds: the shop database's returns table, the
 * requests the shipping service received and the labels it made, the
 * messages in the outbox, and the requests the model received. */
#include <check.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lua.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util_common.h"
#include "util_lua.h"
#include "util_mock.h"

extern char **environ;

static struct lc_mock mock;
static char out[1 << 17], err[8192];
static char tmpdir[256], shopdb[320], shipdb[320], outbox[320];
static pid_t ship_pid = -1;
static char ship_url[64];
static cJSON *result; /* the run's {status, state, usage, transcript} */

/* ---- the shipping service as a child process ---- */

/* Reads "listening on 127.0.0.1:PORT" (poll, no sleeps); -1 on failure. */
static int read_port(int fd) {
  char line[128];
  size_t n = 0;
  while (n < sizeof line - 1) {
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, 10000);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 || read(fd, line + n, 1) != 1) return -1;
    if (line[n] == '\n') break;
    n++;
  }
  line[n] = '\0';
  int port;
  return sscanf(line, "listening on 127.0.0.1:%d", &port) == 1 ? port : -1;
}

static void ship_start(void) {
  int fds[2];
  ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  const char *argv[] = {LC_BINARY_DIR "/shopbot-shipping", "--db", shipdb, "--port", "0", NULL};
  ck_assert_int_eq(posix_spawn(&ship_pid, argv[0], &fa, NULL, (char *const *)argv, environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  int port = read_port(fds[0]);
  close(fds[0]);
  ck_assert_int_gt(port, 0);
  snprintf(ship_url, sizeof ship_url, "http://127.0.0.1:%d", port);
}

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

static long long sql_int(const char *db, const char *q) {
  sqlite3 *h;
  ck_assert_int_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *st;
  ck_assert_msg(sqlite3_prepare_v2(h, q, -1, &st, NULL) == SQLITE_OK, "%s: %s", q, sqlite3_errmsg(h));
  ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
  long long v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(h);
  return v;
}

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

/* Files in outbox/<sub>; the last one's content in *content (malloc'd). */
static int maildir_count(const char *sub, char **content) {
  char dir[400];
  snprintf(dir, sizeof dir, "%s/%s", outbox, sub);
  DIR *d = opendir(dir);
  ck_assert_ptr_nonnull(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    n++;
    if (content) {
      char p[700];
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      free(*content);
      *content = lc_test_read_file(p, NULL);
    }
  }
  closedir(d);
  return n;
}

/* ---- running a conversation ---- */

static void setup(void) {
  memset(&mock, 0, sizeof mock);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/lc-shopbot-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
  snprintf(shopdb, sizeof shopdb, "%s/shop.db", tmpdir);
  snprintf(shipdb, sizeof shipdb, "%s/shipping.db", tmpdir);
  snprintf(outbox, sizeof outbox, "%s/outbox", tmpdir);
  result = NULL;
  ship_start();
}

static void teardown(void) {
  ship_stop();
  if (mock.pid > 0) ck_assert_int_eq(lc_mock_stop(&mock), 0);
  cJSON_Delete(result);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
}

static const char conversation_lua[] =
    "if FAIL ~= '' then\n"
    "  local r = assert(luact.http.request{method = 'POST', url = SHIP .. '/_fail', body = FAIL})\n"
    "  assert(r.status == 200)\n"
    "end\n"
    "local shopbot = dofile(SRC .. '/examples/shopbot/shopbot.lua')\n"
    "local inputs = luact.json.decode(INPUTS)\n"
    "local i = 1\n"
    "local bot = shopbot.new{data_dir = DIR, shipping_url = SHIP, today = '2025-06-16',\n"
    "  base_url = BASE, model = 'openai:mock-gpt', run_id = 't', retry_delay = 0, llm_retries = 0}\n"
    "local r = bot:run{message = inputs[1], input = function(q) i = i + 1; return inputs[i] end}\n"
    "bot:close()\n"
    "return luact.json.encode{status = r.status, state = r.state, usage = r.usage,\n"
    "  transcript = r.transcript, summary = r.summary, reason = r.reason, inputs_left = #inputs - i}\n";

/* Plays tests/shopbot/<name>.json: starts the mock with its model replies
 * (one rule each, in order), fails the shipping service as it says, runs
 * the conversation; result = the parsed run result. */
static void play(const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/tests/shopbot/%s.json", lc_test_source_dir(), name);
  char *text = lc_test_read_file(path, NULL);
  ck_assert_ptr_nonnull(text);
  cJSON *c = cJSON_Parse(text);
  free(text);
  ck_assert_ptr_nonnull(c);
  cJSON *rules = cJSON_CreateArray();
  int k = 0;
  cJSON *step;
  cJSON_ArrayForEach(step, cJSON_GetObjectItem(c, "model")) {
    const char *tool = cJSON_GetArrayItem(step, 0)->valuestring;
    cJSON *rule = cJSON_CreateObject();
    cJSON_AddNumberToObject(rule, "times", 1);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(rule, "match"), "path", "/v1/chat/completions");
    cJSON *oa = cJSON_AddObjectToObject(cJSON_AddObjectToObject(rule, "reply"), "openai");
    if (strcmp(tool, "text") == 0) {
      cJSON_AddStringToObject(oa, "text", cJSON_GetArrayItem(step, 1)->valuestring);
    } else {
      cJSON *call = cJSON_CreateObject();
      char id[32];
      snprintf(id, sizeof id, "call_%d", ++k);
      cJSON_AddStringToObject(call, "id", id);
      cJSON_AddStringToObject(call, "name", tool);
      cJSON_AddItemToObject(call, "arguments", cJSON_Duplicate(cJSON_GetArrayItem(step, 1), 1));
      cJSON_AddItemToArray(cJSON_AddArrayToObject(oa, "tool_calls"), call);
    }
    cJSON_AddItemToArray(rules, rule);
  }
  char *script = cJSON_PrintUnformatted(rules);
  cJSON_Delete(rules);
  ck_assert_int_eq(lc_mock_start(&mock, script), 0);
  free(script);

  cJSON *fail = cJSON_GetObjectItem(c, "fail");
  char *fail_json = fail ? cJSON_PrintUnformatted(fail) : strdup("");
  char *inputs = cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "inputs"));
  cJSON_Delete(c);
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  char base[128];
  snprintf(base, sizeof base, "%s/v1", mock.base_url);
  const char *globals[][2] = {{"BASE", base},    {"SHIP", ship_url}, {"DIR", tmpdir},
                              {"INPUTS", inputs}, {"SRC", lc_test_source_dir()},
                              {"FAIL", fail_json}};
  for (size_t i = 0; i < sizeof globals / sizeof *globals; i++) {
    lua_pushstring(t.L, globals[i][1]);
    lua_setglobal(t.L, globals[i][0]);
  }
  int rc = lc_test_lua_run(&t, conversation_lua, out, sizeof out, err, sizeof err);
  lc_test_lua_close(&t);
  free(inputs);
  free(fail_json);
  ck_assert_msg(rc == 0, "%s", err);
  result = cJSON_Parse(out);
  ck_assert_msg(result != NULL, "not JSON: %.500s", out);
}

static const char *res_str(const char *f) {
  const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(result, f));
  return s ? s : "";
}

static int usage(const char *f) {
  return cJSON_GetObjectItem(cJSON_GetObjectItem(result, "usage"), f)->valueint;
}

/* How many transcript entries have this action (and, if given, contain
 * needle in their JSON) with refused set as asked (-1: either). */
static int count_actions(const char *action, int refused, const char *needle) {
  int n = 0;
  cJSON *e;
  cJSON_ArrayForEach(e, cJSON_GetObjectItem(result, "transcript")) {
    const char *a = cJSON_GetStringValue(cJSON_GetObjectItem(e, "action"));
    if (!a || strcmp(a, action) != 0) continue;
    if (refused >= 0 && cJSON_IsTrue(cJSON_GetObjectItem(e, "refused")) != refused) continue;
    if (needle) {
      char *j = cJSON_PrintUnformatted(e);
      int hit = strstr(j, needle) != NULL;
      free(j);
      if (!hit) continue;
    }
    n++;
  }
  return n;
}

/* The model saw this text in some request (the refusal or check message). */
static int model_saw(const char *needle) {
  char *log = lc_mock_requests(&mock);
  ck_assert_ptr_nonnull(log);
  int hit = strstr(log, needle) != NULL;
  free(log);
  return hit;
}

static void assert_finished(const char *state) {
  ck_assert_msg(strcmp(res_str("status"), "finished") == 0, "status %s: %s", res_str("status"),
                res_str("reason"));
  ck_assert_str_eq(res_str("state"), state);
  /* Every scripted customer line was used, every model reply consumed. */
  ck_assert_int_eq(cJSON_GetObjectItem(result, "inputs_left")->valueint, 0);
  char *stats = lc_mock_stats(&mock);
  ck_assert_msg(strstr(stats, "\"unmatched\":0"), "%s", stats);
  free(stats);
}

static void assert_nothing_created(void) {
  ck_assert_int_eq(sql_int(shopdb, "SELECT count(*) FROM returns"), 0);
  ck_assert_int_eq(sql_int(shipdb, "SELECT count(*) FROM labels"), 0);
  ck_assert_int_eq(sql_int(shipdb, "SELECT count(*) FROM requests"), 0);
  ck_assert_int_eq(maildir_count("new", NULL), 0);
  ck_assert_int_eq(maildir_count("tmp", NULL), 0);
}

static void check_return(const char *item_ids, const char *body_items) {
  ck_assert_int_eq(sql_int(shipdb, "SELECT count(*) FROM labels"), 1);
  char want[256];
  snprintf(want, sizeof want, "A1001 %s emailed alice@example.com LBL-000001", item_ids);
  ck_assert_str_eq(sql_text(shopdb, "SELECT order_number || ' ' || item_ids || ' ' || status || ' ' || "
                                    "emailed_to || ' ' || label_id FROM returns"),
                   want);
  /* The label request carried the selected items and the run's key. */
  const char *body = sql_text(shipdb, "SELECT request_body FROM labels");
  ck_assert_msg(strstr(body, "\"order_number\":\"A1001\"") && strstr(body, body_items), "%s", body);
  ck_assert_str_eq(sql_text(shipdb, "SELECT count(*) FROM requests WHERE idempotency_key IS NULL"), "0");
  /* Exactly one message, delivered through tmp/ into new/. */
  char *msg = NULL;
  ck_assert_int_eq(maildir_count("new", &msg), 1);
  ck_assert_int_eq(maildir_count("tmp", NULL), 0);
  const char *hdrs[] = {"Date: ", "\r\nFrom: Shop Example Returns <returns@shop.example>\r\n",
                        "\r\nTo: \"Alice Moreau\" <alice@example.com>\r\n",
                        "\r\nSubject: Your return label for order A1001\r\n",
                        "\r\nMessage-ID: <t-", "@shop.example>\r\n", "\r\nMIME-Version: 1.0\r\n",
                        "\r\nContent-Type: multipart/mixed; boundary=",
                        "filename=\"return-label-LBL-000001.txt\"",
                        /* base64 of "PARCELO RETURN LABEL LBL-000001\nTracking: PX4711000001" */
                        "UEFSQ0VMTyBSRVRVUk4gTEFCRUwgTEJMLTAwMDAwMQpUcmFja2luZzogUFg0NzExMDAwMDAx"};
  for (size_t i = 0; i < sizeof hdrs / sizeof *hdrs; i++)
    ck_assert_msg(strstr(msg, hdrs[i]), "missing [%s] in:\n%s", hdrs[i], msg);
  ck_assert_msg(strncmp(msg, "Date: ", 6) == 0, "%s", msg);
  /* Headers end at the first empty line; every line ends in CRLF. */
  ck_assert_ptr_nonnull(strstr(msg, "\r\n\r\n"));
  for (const char *p = strchr(msg, '\n'); p; p = strchr(p + 1, '\n'))
    ck_assert_msg(p > msg && p[-1] == '\r', "bare LF in the message");
  free(msg);
}

START_TEST(happy_path) {
  play("happy_path");
  assert_finished("email");
  check_return("[11]", "\"item_id\":11");
  ck_assert_int_eq(sql_int(shipdb, "SELECT count(*) FROM requests"), 1);
  ck_assert_str_eq(sql_text(shipdb, "SELECT idempotency_key || ' ' || status FROM requests"),
                   "t-8-create_label 201");
  ck_assert_int_eq(usage("refused"), 0);
  ck_assert_int_eq(usage("check_failures"), 0);
  /* Each state offered only its own actions. */
  ck_assert(model_saw("Actions allowed in this step: lookup_order, ask_user, goto_select_items, finish."));
  ck_assert(model_saw("Actions allowed in this step: create_label, goto_email, finish."));
}
END_TEST

START_TEST(two_items) {
  play("two_items");
  assert_finished("email");
  check_return("[11,12]", "\"item_id\":12");
  /* Leaving before select_items, then before the customer confirmed. */
  ck_assert_int_eq(count_actions("goto_label", 1, "Record the items with select_items first"), 1);
  ck_assert_int_eq(count_actions("goto_label", 1, "Confirm the selected items with the customer"), 1);
  ck_assert(model_saw("Not allowed yet (goto_label): Confirm the selected items"));
  ck_assert_int_eq(usage("check_failures"), 2);
}
END_TEST

START_TEST(wrong_order_then_right_one) {
  play("wrong_order");
  assert_finished("email");
  ck_assert_int_eq(count_actions("lookup_order", 0, "\"found\":false"), 1);
  ck_assert(model_saw("There is no order A1009"));
  check_return("[11]", "\"item_id\":11");
}
END_TEST

START_TEST(return_window_passed) {
  play("window_passed");
  assert_finished("select_items");
  ck_assert_int_eq(count_actions("goto_label", 1, "the return window is 30 days"), 1);
  ck_assert(model_saw("delivered on 2025-05-02, 45 days ago; the return window is 30 days"));
  assert_nothing_created();
}
END_TEST

START_TEST(final_sale_item) {
  play("final_sale");
  assert_finished("select_items");
  ck_assert(model_saw("was a final-sale item; final-sale items cannot be returned"));
  /* The other item was offered to the model to offer on. */
  ck_assert(model_saw("Wool sweater, grey"));
  assert_nothing_created();
}
END_TEST

START_TEST(email_does_not_match) {
  play("email_mismatch");
  assert_finished("email");
  ck_assert_int_eq(count_actions("send_label_email", 1, "confirm their email address first"), 1);
  ck_assert_int_eq(count_actions("send_label_email", 1, "is not the address on the order"), 1);
  ck_assert_int_eq(count_actions("send_label_email", 0, NULL), 1);
  check_return("[11]", "\"item_id\":11");
  /* Nothing ever went to the other address. */
  char *msg = NULL;
  maildir_count("new", &msg);
  ck_assert_ptr_null(strstr(msg, "gmail"));
  free(msg);
}
END_TEST

START_TEST(customer_changes_mind) {
  play("changes_mind");
  assert_finished("select_items");
  ck_assert_int_eq(count_actions("finish", 0, NULL), 1);
  assert_nothing_created();
}
END_TEST

START_TEST(injection_asks_for_refund) {
  play("injection");
  assert_finished("select_items");
  ck_assert_int_eq(count_actions("issue_refund", 1, "is not an allowed action in step select_items"), 1);
  ck_assert(model_saw("Refused: 'issue_refund' is not an allowed action in step select_items. "
                      "Allowed: select_items, ask_user, goto_identify, goto_label, finish."));
  /* No request to the model ever offered anything like a refund tool. */
  char *log = lc_mock_requests(&mock);
  cJSON *reqs = cJSON_Parse(log);
  free(log);
  cJSON *rq;
  int n = 0;
  cJSON_ArrayForEach(rq, reqs) {
    cJSON *tool;
    cJSON_ArrayForEach(tool, cJSON_GetObjectItem(cJSON_GetObjectItem(rq, "body"), "tools")) {
      const char *name = cJSON_GetObjectItem(cJSON_GetObjectItem(tool, "function"), "name")->valuestring;
      ck_assert_msg(!strstr(name, "refund"), "offered %s", name);
      n++;
    }
  }
  cJSON_Delete(reqs);
  ck_assert_int_gt(n, 10);
  assert_nothing_created();
}
END_TEST

START_TEST(action_not_allowed_in_state) {
  play("disallowed_action");
  assert_finished("email");
  ck_assert_int_eq(count_actions("create_label", 1, "is not an allowed action in step identify"), 1);
  ck_assert(model_saw("Refused: 'create_label' is not an allowed action in step identify. "
                      "Allowed: lookup_order, ask_user, goto_select_items, finish."));
  ck_assert_int_eq(usage("refused"), 1);
  /* The refused call never reached the shipping service. */
  ck_assert_int_eq(sql_int(shipdb, "SELECT count(*) FROM requests"), 1);
  check_return("[11]", "\"item_id\":11");
}
END_TEST

START_TEST(shipping_fails_twice_then_succeeds) {
  play("shipping_flaky");
  assert_finished("email");
  /* Three requests with one key; the label was made once. */
  ck_assert_str_eq(sql_text(shipdb, "SELECT idempotency_key || ' ' || status || ' ' || label_id "
                                    "FROM requests ORDER BY id"),
                   "t-8-create_label 503 LBL-000001|t-8-create_label 503 LBL-000001|"
                   "t-8-create_label 200 LBL-000001");
  ck_assert_int_eq(usage("tool_retries"), 2);
  ck_assert_int_eq(usage("tool_errors"), 0);
  check_return("[11]", "\"item_id\":11");
}
END_TEST

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
  tcase_add_test(tc, happy_path);
  tcase_add_test(tc, two_items);
  tcase_add_test(tc, wrong_order_then_right_one);
  tcase_add_test(tc, return_window_passed);
  tcase_add_test(tc, final_sale_item);
  tcase_add_test(tc, email_does_not_match);
  tcase_add_test(tc, customer_changes_mind);
  tcase_add_test(tc, injection_asks_for_refund);
  tcase_add_test(tc, action_not_allowed_in_state);
  tcase_add_test(tc, shipping_fails_twice_then_succeeds);
  tcase_add_test(tc, chat_cli_offline);
  suite_add_tcase(s, tc);
  return s;
}
