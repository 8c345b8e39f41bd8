/* check_effect.c: the effect journal. SHA-256 against the FIPS 180-4
 * vectors; canonical JSON diffs; a run with every kind of effect recorded
 * against lc-mockllm and replayed with the mock stopped (same output, no
 * effect run for real, same idempotency keys, parallel branches finishing
 * in another order); an edited prompt and a changed tool schema caught at
 * the right effect; a cut journal replayed by the in-doubt rules (pure and
 * idempotent run again, the latter with the same key on the wire;
 * at-most-once stops "in_doubt"); the API key never in the file; malformed
 * lines; and `luact run --record/--replay` on every example.
 *
 * Nothing here asserts a duration. */
#include <check.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "effect.h"
#include "jcanon.h"
#include "jsonw.h"
#include "l_effect.h"
#include "lc.h"
#include "loop.h"
#include "sha256.h"
#include "util_common.h"
#include "util_lua.h"
#include "util_toolsrv.h"
#include "util_mock.h"

#define KEY "sk-test-SECRET-4242"

static const char mock_script[] =
    "[{\"match\": {\"path\": \"/v1/chat/completions\", \"body_contains\": \"\\\"A\\\"\"},"
    "  \"reply\": {\"openai\": {\"text\": \"answer A\"}}},"
    " {\"match\": {\"path\": \"/v1/chat/completions\", \"body_contains\": \"\\\"B\\\"\"},"
    "  \"reply\": {\"openai\": {\"text\": \"answer B\"}}},"
    " {\"match\": {\"path\": \"/v1/chat/completions\"},"
    "  \"reply\": {\"openai\": {\"text\": \"hello there, cyclist\", \"fragment_bytes\": 6}}},"
    " {\"match\": {\"path\": \"/charge\"}, \"reply\": {\"json\": {\"ok\": true}}},"
    " {\"match\": {\"path\": \"/items\"}, \"reply\": {\"json\": {\"n\": 3}}}]";

static struct lc_mock mock;
static char base[128]; /* the mock's root URL, kept after it stops */
static char out[16384], err[8192];
static long count_pure, count_idem, count_once;

static void tmp_path(char *p, size_t n, const char *what) {
  snprintf(p, n, "/tmp/lc_effect_%ld_%s.jsonl", (long)getpid(), what);
}

/* Runs tests/lua/effect_run.lua with a journal in mode at path. Globals:
 * BASE, KEY, and the optional PROMPT / SLOW / DESC. Returns the script's
 * status (0 = ok); out/err hold its result or error; *failed the journal's
 * failure state; counts[3] how many times each tool body ran. */
static int run_script(enum lc_journal_mode mode, const char *path, const char *prompt,
                      const char *slow, const char *desc, enum lc_journal_fail *failed,
                      long *ran) {
  struct lc_journal *j;
  char jerr[512];
  ck_assert_msg(lc_journal_open(mode, path, NULL, &j, jerr, sizeof jerr) == 0, "%s", jerr);
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  lc_l_journal_attach(t.L, j);
  lua_pushstring(t.L, base);
  lua_setglobal(t.L, "BASE");
  lua_pushstring(t.L, KEY);
  lua_setglobal(t.L, "KEY");
  if (prompt) lua_pushstring(t.L, prompt), lua_setglobal(t.L, "PROMPT");
  if (slow) lua_pushstring(t.L, slow), lua_setglobal(t.L, "SLOW");
  if (desc) lua_pushstring(t.L, desc), lua_setglobal(t.L, "DESC");
  char file[512];
  snprintf(file, sizeof file, "%s/tests/lua/effect_run.lua", lc_test_source_dir());
  char *code = lc_test_read_file(file, NULL);
  ck_assert_ptr_nonnull(code);
  int rc = lc_test_lua_run(&t, code, out, sizeof out, err, sizeof err);
  free(code);
  lua_getglobal(t.L, "COUNT");
  count_pure = count_idem = count_once = -1;
  if (lua_istable(t.L, -1)) {
    lua_getfield(t.L, -1, "pure");
    lua_getfield(t.L, -2, "idem");
    lua_getfield(t.L, -3, "once");
    count_pure = (long)lua_tointeger(t.L, -3);
    count_idem = (long)lua_tointeger(t.L, -2);
    count_once = (long)lua_tointeger(t.L, -1);
    lua_pop(t.L, 3);
  }
  lua_pop(t.L, 1);
  lc_test_lua_close(&t);
  if (failed) *failed = lc_journal_failed(j);
  if (ran) lc_journal_counts(j, NULL, NULL, ran);
  lc_journal_free(j);
  return rc;
}

static void start_mock(void) {
  ck_assert_int_eq(lc_mock_start(&mock, mock_script), 0);
  snprintf(base, sizeof base, "%s", mock.base_url);
}

/* Records one run into path (mock up, branch a slower); leaves the mock
 * running. Returns the recorded output (malloc'd). */
static char *record(const char *path) {
  start_mock();
  enum lc_journal_fail f;
  int rc = run_script(LC_JOURNAL_RECORD, path, NULL, "a", NULL, &f, NULL);
  ck_assert_msg(rc == 0, "record failed: %s", err);
  ck_assert_int_eq(f, LC_JOURNAL_OK);
  ck_assert_int_eq(count_pure, 1);
  ck_assert_int_eq(count_idem, 1);
  ck_assert_int_eq(count_once, 1);
  return strdup(out);
}

/* ---- SHA-256 and canonical JSON ---- */

/* The SHA-NI path and the portable one agree on every length around the
 * block and padding boundaries, and on the vectors below (run both ways). */
START_TEST(sha256_hw_matches_portable) {
  static unsigned char buf[700];
  unsigned seed = 3;
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)rand_r(&seed);
  int had = lc_sha256_set_hw(1);
  for (size_t n = 0; n <= sizeof buf; n += n < 200 ? 1 : 37) {
    char a[65], b[65];
    lc_sha256_set_hw(1);
    lc_sha256_hex(buf, n, a);
    lc_sha256_set_hw(0);
    lc_sha256_hex(buf, n, b);
    ck_assert_msg(!strcmp(a, b), "length %zu: %s / %s", n, a, b);
  }
  lc_sha256_set_hw(had);
}
END_TEST

static void sha256_vectors_once(void);

START_TEST(sha256_vectors) {
  int had = lc_sha256_set_hw(0);
  sha256_vectors_once(); /* portable */
  lc_sha256_set_hw(1);
  sha256_vectors_once(); /* SHA-NI where the CPU has it */
  lc_sha256_set_hw(had);
}
END_TEST

static void sha256_vectors_once(void) {
  char h[65];
  lc_sha256_hex("abc", 3, h);
  ck_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  lc_sha256_hex("", 0, h);
  ck_assert_str_eq(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  lc_sha256_hex(m448, strlen(m448), h);
  ck_assert_str_eq(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                     "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
  lc_sha256_hex(m896, strlen(m896), h);
  ck_assert_str_eq(h, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  /* One million 'a', fed in uneven pieces to cross block boundaries. */
  struct lc_sha256 s;
  unsigned char d[32], a[1000];
  memset(a, 'a', sizeof a);
  lc_sha256_init(&s);
  size_t left = 1000000, step = 1;
  while (left) {
    size_t n = step < left ? step : left;
    if (n > sizeof a) n = sizeof a;
    lc_sha256_update(&s, a, n);
    left -= n;
    step = step % 997 + 13;
  }
  lc_sha256_final(&s, d);
  lc_sha256_to_hex(d, h);
  ck_assert_str_eq(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

START_TEST(canonical_json) {
  cJSON *a = cJSON_Parse("{\"b\":1,\"a\":{\"y\":[1,2],\"x\":\"s\"}}");
  cJSON *b = cJSON_Parse("{\"a\":{\"x\":\"s\",\"y\":[1,2]},\"b\":1}");
  char *pa = lc_jcanon_print(a), *pb = lc_jcanon_print(b);
  ck_assert_str_eq(pa, "{\"a\":{\"x\":\"s\",\"y\":[1,2]},\"b\":1}");
  ck_assert_str_eq(pa, pb);
  char d[512];
  ck_assert_int_eq(lc_jcanon_diff(a, b, "request", d, sizeof d), 0);
  cJSON *c = cJSON_Parse("{\"b\":1,\"a\":{\"y\":[1,3],\"x\":\"s\"}}");
  ck_assert_int_eq(lc_jcanon_diff(a, c, "request", d, sizeof d), 1);
  ck_assert_str_eq(d, "request.a.y[1]: recorded 2 / now 3");
  cJSON *e = cJSON_Parse("{\"b\":1}");
  ck_assert_int_eq(lc_jcanon_diff(a, e, "request", d, sizeof d), 1);
  ck_assert_str_eq(d, "request.a: recorded {\"x\":\"s\",\"y\":[1,2]} / now (absent)");
  cJSON_free(pa);
  cJSON_free(pb);
  cJSON_Delete(a);
  cJSON_Delete(b);
  cJSON_Delete(c);
  cJSON_Delete(e);
}
END_TEST

/* ---- record and replay ---- */

START_TEST(record_replay_offline) {
  char path[256];
  tmp_path(path, sizeof path, "full");
  char *rec = record(path);
  /* Every part of the script produced what the mock said. */
  ck_assert_ptr_nonnull(strstr(rec, "llm hello there, cyclist 4 hello |there,| cycli|st"));
  ck_assert_ptr_nonnull(strstr(rec, "pure 42"));
  ck_assert_ptr_nonnull(strstr(rec, "once true"));
  ck_assert_ptr_nonnull(strstr(rec, "http 200 3 application/json"));
  ck_assert_ptr_nonnull(strstr(rec, "parallel answer A answer B"));
  /* The idempotent tool's key went out on the wire. */
  const char *k = strstr(rec, "idem 200 ");
  ck_assert_ptr_nonnull(k);
  char key[64];
  ck_assert_int_eq(sscanf(k + 9, "%63s", key), 1);
  ck_assert_int_eq((int)strlen(key), 32);
  char *log = lc_mock_requests(&mock);
  ck_assert_ptr_nonnull(strstr(log, key));
  free(log);
  ck_assert_int_eq(lc_mock_stop(&mock), 0);

  /* The mock is gone: any real effect would fail. Branch b is the slow
   * one now, so the branches finish in the other order. */
  enum lc_journal_fail f;
  long ran = -1;
  int rc = run_script(LC_JOURNAL_REPLAY, path, NULL, "b", NULL, &f, &ran);
  ck_assert_msg(rc == 0, "replay failed: %s", err);
  ck_assert_int_eq(f, LC_JOURNAL_OK);
  ck_assert_str_eq(out, rec); /* same output, same key, same clock and dice */
  ck_assert_int_eq(ran, 0);   /* nothing ran for real */
  ck_assert_int_eq(count_pure + count_idem + count_once, 0);

  /* The API key is nowhere in the journal. */
  size_t n;
  char *text = lc_test_read_file(path, &n);
  ck_assert_ptr_nonnull(text);
  ck_assert_ptr_null(strstr(text, "SECRET"));
  ck_assert_ptr_nonnull(strstr(text, "\"idempotency_key\":\""));
  free(text);
  free(rec);
  unlink(path);
}
END_TEST

/* Runs code as a task with a journal in mode at path; out holds its
 * result. */
static int run_code(enum lc_journal_mode mode, const char *path, const char *code) {
  struct lc_journal *j;
  char jerr[512];
  ck_assert_msg(lc_journal_open(mode, path, NULL, &j, jerr, sizeof jerr) == 0, "%s", jerr);
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  lc_l_journal_attach(t.L, j);
  int rc = lc_test_lua_run(&t, code, out, sizeof out, err, sizeof err);
  lc_test_lua_close(&t);
  lc_journal_free(j);
  return rc;
}

/* Tools whose answers came back out of program order in the recording
 * (branch a's tool finished after b's, as a file read or a query done off
 * the loop may) answer a replay in that order too: the branches log what
 * the recording logged. Before, a replayed tool answered at once, in
 * program order, and a logged before b. */
START_TEST(replayed_tools_and_http_answer_in_recorded_order) {
  /* (a's tool waits for b's flag itself: sleep(0) yields one pass of the
   * loop, no time involved) */
  static const char code[] =
      "local log, done = {}, {}\n"
      "local function add(v) log[#log + 1] = v end\n"
      "local t = luact.tool{name = 'slow', description = 'Waits for the other branch.',\n"
      "  fn = function(a)\n"
      "    if a.wait then while not done[a.wait] do luact.sleep(0) end end\n"
      "    done[a.me] = true\n"
      "    return {me = a.me}\n"
      "  end}\n"
      "luact.parallel{\n"
      "  a = function() add(assert(t{me = 'a', wait = 'b'}).me) end,\n"
      "  b = function() add(assert(t{me = 'b'}).me) end,\n"
      "}\n"
      "return table.concat(log, ' ')\n";
  char path[256];
  tmp_path(path, sizeof path, "turns");
  ck_assert_msg(run_code(LC_JOURNAL_RECORD, path, code) == 0, "record: %s", err);
  ck_assert_str_eq(out, "b a");
  ck_assert_msg(run_code(LC_JOURNAL_REPLAY, path, code) == 0, "replay: %s", err);
  ck_assert_str_eq(out, "b a");
  unlink(path);
  /* The same with HTTP answers: a's request is answered once b has
   * logged (its second request opens a's gate). */
  struct lc_toolsrv *ts;
  int port;
  ck_assert_int_eq(lc_toolsrv_start(&ts, &port), 0);
  char http[1024];
  snprintf(http, sizeof http,
           "local log = {}\n"
           "local function add(v) log[#log + 1] = v end\n"
           "local function post(p) return assert(luact.http.request{method = 'POST',\n"
           "  url = 'http://127.0.0.1:%d' .. p}).status end\n"
           "luact.parallel{\n"
           "  a = function() post('/wait/x'); add('a') end,\n"
           "  b = function() post('/open/y'); add('b'); post('/open/x') end,\n"
           "}\n"
           "return table.concat(log, ' ')\n",
           port);
  ck_assert_msg(run_code(LC_JOURNAL_RECORD, path, http) == 0, "record: %s", err);
  ck_assert_str_eq(out, "b a");
  lc_toolsrv_stop(ts);
  ck_assert_msg(run_code(LC_JOURNAL_REPLAY, path, http) == 0, "replay: %s", err);
  ck_assert_str_eq(out, "b a");
  unlink(path);
}
END_TEST

/* Tasks waiting for their lines to be durable wake in the order the
 * lines were written (the order a replay gives back), whatever the order
 * they began to wait in. Before, the last to wait woke first. */
struct fired {
  struct lc_journal_waiter w;
  int *log, *n;
  int id;
};

static void on_fired(struct lc_journal_waiter *w) {
  struct fired *f = (struct fired *)w;
  f->log[(*f->n)++] = f->id;
}

START_TEST(durable_waiters_wake_in_line_order) {
  char path[256], jerr[512];
  tmp_path(path, sizeof path, "waiters");
  struct lc_loop *loop;
  ck_assert_int_eq(lc_loop_new(&loop), 0);
  struct lc_journal *j;
  ck_assert_msg(lc_journal_open(LC_JOURNAL_RECORD, path, NULL, &j, jerr, sizeof jerr) == 0, "%s",
                jerr);
  lc_journal_set_loop(j, loop);
  struct lc_effect_op op[3];
  int log[3], n = 0;
  struct fired f[3];
  for (int i = 0; i < 3; i++) {
    struct lc_effect_who w = {&op[i], "1", (unsigned long)i + 1};
    struct lc_effect_desc d = {.kind = "tool", .name = "t", .cls = LC_EFFECT_AT_MOST_ONCE,
                               .waits = 1};
    ck_assert_int_eq(lc_effect_begin(j, &w, &d, &op[i]), LC_EFFECT_RUN);
    f[i] = (struct fired){.w = {.ticket = op[i].ticket, .fire = on_fired}, .log = log, .n = &n,
                          .id = i};
  }
  ck_assert(op[0].ticket < op[1].ticket && op[1].ticket < op[2].ticket);
  static const int waits[] = {1, 2, 0}; /* begun out of line order */
  for (int i = 0; i < 3; i++) ck_assert_int_eq(lc_journal_wait(j, &f[waits[i]].w), 0);
  while (n < 3) lc_loop_run_once(loop, -1);
  ck_assert_int_eq(log[0], 0);
  ck_assert_int_eq(log[1], 1);
  ck_assert_int_eq(log[2], 2);
  for (int i = 0; i < 3; i++) lc_effect_cancel(&op[i], "done");
  lc_journal_set_loop(j, NULL);
  lc_journal_free(j);
  lc_loop_free(loop);
  unlink(path);
}
END_TEST

START_TEST(edited_prompt_is_caught) {
  char path[256];
  tmp_path(path, sizeof path, "prompt");
  free(record(path));
  ck_assert_int_eq(lc_mock_stop(&mock), 0);
  enum lc_journal_fail f;
  int rc = run_script(LC_JOURNAL_REPLAY, path, "Hello", "a", NULL, &f, NULL);
  ck_assert_int_eq(rc, 1);
  ck_assert_int_eq(f, LC_JOURNAL_MISMATCH);
  ck_assert_msg(strstr(err, "effect 1#1 (llm openai:mock-gpt)") &&
                    strstr(err, "request.messages[0].content: differs at character 1: recorded \"Hi\" / now \"Hello\""),
                "%s", err);
  unlink(path);
}
END_TEST

START_TEST(changed_tool_schema_is_caught) {
  char path[256];
  tmp_path(path, sizeof path, "schema");
  free(record(path));
  ck_assert_int_eq(lc_mock_stop(&mock), 0);
  enum lc_journal_fail f;
  int rc = run_script(LC_JOURNAL_REPLAY, path, NULL, "a", "Doubles x, carefully.", &f, NULL);
  ck_assert_int_eq(rc, 1);
  ck_assert_int_eq(f, LC_JOURNAL_MISMATCH);
  ck_assert_msg(strstr(err, "effect 1#2 (tool double)") && strstr(err, "hashes.tools: recorded "),
                "%s", err);
  ck_assert_int_eq(count_pure, 0);
  unlink(path);
}
END_TEST

/* Keeps the lines of src up to and including the intent of id. */
static void cut_after_intent(const char *src, const char *dst, const char *id) {
  size_t n;
  char *text = lc_test_read_file(src, &n);
  ck_assert_ptr_nonnull(text);
  char needle[96];
  snprintf(needle, sizeof needle, "\"type\":\"intent\",\"id\":\"%s\"", id);
  char *at = strstr(text, needle);
  ck_assert_ptr_nonnull(at);
  char *eol = strchr(at, '\n');
  ck_assert_ptr_nonnull(eol);
  FILE *f = fopen(dst, "w");
  fwrite(text, 1, (size_t)(eol + 1 - text), f);
  fclose(f);
  free(text);
}

/* j as the journal prints it (malloc'd). */
static char *print_exact(const cJSON *j) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  struct lc_jsonw w;
  lc_jsonw_init(&w, &b);
  lc_jsonw_cjson(&w, j);
  ck_assert_int_eq(lc_jsonw_finish(&w), 0);
  char *t = strndup(b.data, b.len);
  lc_buf_free(&b);
  return t;
}

/* The two lines an older luact wrote for a one-line effect's line l (a
 * result line with the intent's members): its intent, then its result.
 * Both cJSON_PrintUnformatted'd into *intent / *result (cJSON_free). */
static void split_line(const cJSON *l, char **intent, char **result) {
  cJSON *in = cJSON_CreateObject(), *res = cJSON_CreateObject();
  const cJSON *c;
  cJSON_ArrayForEach(c, l) {
    int to_intent = !strcmp(c->string, "kind") || !strcmp(c->string, "name") ||
                    !strcmp(c->string, "class") || !strcmp(c->string, "request") ||
                    !strcmp(c->string, "hashes");
    if (!strcmp(c->string, "type")) {
      cJSON_AddStringToObject(in, "type", "intent");
      cJSON_AddStringToObject(res, "type", "result");
    } else if (!strcmp(c->string, "id")) {
      cJSON_AddItemToObject(in, "id", cJSON_Duplicate(c, 1));
      cJSON_AddItemToObject(res, "id", cJSON_Duplicate(c, 1));
    } else {
      cJSON_AddItemToObject(to_intent ? in : res, c->string, cJSON_Duplicate(c, 1));
    }
  }
  /* jsonw, as the journal writes: cJSON's printer can drop a float's last
   * bit (a recorded luact.random would come back another number) */
  *intent = print_exact(in);
  *result = print_exact(res);
  cJSON_Delete(in);
  cJSON_Delete(res);
}

/* 1 when line l is a one-line effect's (a result with the intent's kind). */
static int one_line(const cJSON *l) {
  const cJSON *t = cJSON_GetObjectItem(l, "type");
  return cJSON_IsString(t) && !strcmp(t->valuestring, "result") && cJSON_GetObjectItem(l, "kind");
}

/* Writes src to dst as an older luact wrote it: every one-line effect's
 * line as an intent and a result line. With cut_id: stops at that
 * effect's line, writing only its intent (a crash while it ran). Returns
 * how many lines were split. */
static int as_old_journal(const char *src, const char *dst, const char *cut_id) {
  size_t n;
  char *text = lc_test_read_file(src, &n);
  ck_assert_ptr_nonnull(text);
  FILE *f = fopen(dst, "w");
  ck_assert_ptr_nonnull(f);
  int split = 0;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    cJSON *l = cJSON_Parse(line);
    ck_assert_ptr_nonnull(l);
    if (!one_line(l)) {
      fprintf(f, "%s\n", line);
      cJSON_Delete(l);
      continue;
    }
    char *in, *res;
    split_line(l, &in, &res);
    const char *id = cJSON_GetObjectItem(l, "id")->valuestring;
    int cut = cut_id && !strcmp(id, cut_id);
    fprintf(f, "%s\n", in);
    if (!cut) fprintf(f, "%s\n", res);
    free(in);
    free(res);
    cJSON_Delete(l);
    split++;
    if (cut) break;
  }
  fclose(f);
  free(text);
  return split;
}

/* How many lines of path have id: *intents of them intents, *results
 * results, *one of the results one-line ones. */
static void lines_of(const char *path, const char *id, int *intents, int *results, int *one) {
  size_t n;
  char *text = lc_test_read_file(path, &n);
  ck_assert_ptr_nonnull(text);
  *intents = *results = *one = 0;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    cJSON *l = cJSON_Parse(line);
    const cJSON *x = cJSON_GetObjectItem(l, "id"), *t = cJSON_GetObjectItem(l, "type");
    if (cJSON_IsString(x) && !strcmp(x->valuestring, id)) {
      *intents += !strcmp(t->valuestring, "intent");
      *results += !strcmp(t->valuestring, "result");
      *one += one_line(l);
    }
    cJSON_Delete(l);
  }
  free(text);
}

/* A pure effect (a tool, the clock, dice, a GET) is one line: its result,
 * carrying its intent's members; an LLM call, an idempotent and an
 * at-most-once effect keep their intent lines. Replayed, the journal
 * answers everything: nothing runs. */
START_TEST(pure_effect_is_one_line) {
  char path[256];
  tmp_path(path, sizeof path, "oneline");
  char *rec = record(path);
  ck_assert_int_eq(lc_mock_stop(&mock), 0);
  int in, res, one;
  const char *pure_ids[] = {"1#2" /* double */, "1#5" /* GET */, "1#6" /* now */, "1#8" /* random */};
  for (size_t i = 0; i < sizeof pure_ids / sizeof *pure_ids; i++) {
    lines_of(path, pure_ids[i], &in, &res, &one);
    ck_assert_msg(in == 0 && res == 1 && one == 1, "%s: %d intents, %d results, %d one-line",
                  pure_ids[i], in, res, one);
  }
  const char *two_ids[] = {"1#1" /* llm */, "1#3" /* charge */, "1#4" /* send */};
  for (size_t i = 0; i < sizeof two_ids / sizeof *two_ids; i++) {
    lines_of(path, two_ids[i], &in, &res, &one);
    ck_assert_msg(in == 1 && res == 1 && one == 0, "%s: %d intents, %d results, %d one-line",
                  two_ids[i], in, res, one);
  }
  enum lc_journal_fail f;
  long ran = -1;
  int rc = run_script(LC_JOURNAL_REPLAY, path, NULL, "a", NULL, &f, &ran);
  ck_assert_msg(rc == 0, "replay failed: %s", err);
  ck_assert_str_eq(out, rec);
  ck_assert_int_eq(ran, 0);
  ck_assert_int_eq(count_pure + count_idem + count_once, 0);
  free(rec);
  unlink(path);
}
END_TEST

/* A journal an older luact wrote (every effect an intent and a result
 * line) still replays: nothing runs, same output. */
START_TEST(old_journal_with_intents_replays) {
  char path[256], old[256];
  tmp_path(path, sizeof path, "new");
  tmp_path(old, sizeof old, "old");
  char *rec = record(path);
  ck_assert_int_eq(lc_mock_stop(&mock), 0);
  ck_assert_int_ge(as_old_journal(path, old, NULL), 4);
  int in, res, one;
  lines_of(old, "1#2", &in, &res, &one);
  ck_assert_int_eq(in, 1);
  ck_assert_int_eq(one, 0);
  enum lc_journal_fail f;
  long ran = -1;
  int rc = run_script(LC_JOURNAL_REPLAY, old, NULL, "b", NULL, &f, &ran);
  ck_assert_msg(rc == 0, "replay failed: %s", err);
  ck_assert_str_eq(out, rec);
  ck_assert_int_eq(ran, 0);
  ck_assert_int_eq(count_pure, 0);
  free(rec);
  unlink(path);
  unlink(old);
}
END_TEST

START_TEST(in_doubt_by_class) {
  char path[256], cut[256];
  tmp_path(path, sizeof path, "doubt");
  tmp_path(cut, sizeof cut, "doubt_cut");
  char *rec = record(path); /* the mock stays up: in-doubt effects may run */
  char key[64];
  ck_assert_int_eq(sscanf(strstr(rec, "idem 200 ") + 9, "%63s", key), 1);
  enum lc_journal_fail f;

  /* pure (1#2): run again; then the journal ends. An older luact's
   * journal: this luact writes a pure effect's intent in its result line
   * (pure_effect_is_one_line). */
  as_old_journal(path, cut, "1#2");
  run_script(LC_JOURNAL_REPLAY, cut, NULL, "a", NULL, &f, NULL);
  ck_assert_int_eq(count_pure, 1);
  ck_assert_int_eq(f, LC_JOURNAL_MISMATCH);
  ck_assert_msg(strstr(err, "no recorded effect 1#3 (tool charge)"), "%s", err);

  /* idempotent (1#3): run again, with the same key on the wire. */
  cut_after_intent(path, cut, "1#3");
  ck_assert_int_eq(lc_mock_reset(&mock), 0);
  run_script(LC_JOURNAL_REPLAY, cut, NULL, "a", NULL, &f, NULL);
  ck_assert_int_eq(count_pure, 0); /* answered from the journal */
  ck_assert_int_eq(count_idem, 1);
  char *log = lc_mock_requests(&mock);
  ck_assert_ptr_nonnull(log);
  cJSON *reqs = cJSON_Parse(log);
  free(log);
  int charges = 0;
  cJSON *r;
  cJSON_ArrayForEach(r, reqs) {
    cJSON *h = cJSON_GetObjectItem(r, "headers");
    cJSON *ik = h ? cJSON_GetObjectItem(h, "idempotency-key") : NULL;
    if (strcmp(cJSON_GetObjectItem(r, "path")->valuestring, "/charge") == 0) {
      charges++;
      ck_assert_ptr_nonnull(ik);
      ck_assert_str_eq(ik->valuestring, key);
    }
  }
  cJSON_Delete(reqs);
  ck_assert_int_eq(charges, 1); /* once in the record, once now: same key */

  /* at_most_once (1#4): never run again; the run stops in doubt. */
  cut_after_intent(path, cut, "1#4");
  int rc = run_script(LC_JOURNAL_REPLAY, cut, NULL, "a", NULL, &f, NULL);
  ck_assert_int_eq(rc, 1);
  ck_assert_int_eq(f, LC_JOURNAL_IN_DOUBT);
  ck_assert_int_eq(count_once, 0);
  ck_assert_int_eq(count_idem, 0);
  ck_assert_msg(strstr(err, "in_doubt: effect 1#4 (tool send, at_most_once"), "%s", err);
  ck_assert_int_eq(lc_mock_stop(&mock), 0);
  free(rec);
  unlink(path);
  unlink(cut);
}
END_TEST

/* A tool whose fn is marked as one that never reads its ctx (tool.lua's
 * _noctx: an MCP tool's body) gets none when journaled either (it got
 * tok:ctx(), a table per call); the call is still one journaled effect
 * with its number, and a fn put in its place gets its ctx again. */
START_TEST(noctx_tool_journaled_gets_no_ctx) {
  char path[256], e[512];
  tmp_path(path, sizeof path, "noctx");
  struct lc_journal *j;
  ck_assert_int_eq(lc_journal_open(LC_JOURNAL_RECORD, path, NULL, &j, e, sizeof e), 0);
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  lc_l_journal_attach(t.L, j);
  int rc = lc_test_lua_run(&t,
      "local seen = {}\n"
      "local tool = luact.tool{name = 't', fn = function(a, ctx)\n"
      "  seen[#seen + 1] = tostring(ctx and ctx.effect_id)\n"
      "  return a.x end}\n"
      "tool._noctx = tool.fn\n"
      "local r1 = tool{x = 'a'}\n"
      "local r2 = tool({x = 'b'}, {extra = 1})\n"
      "tool.fn = function(a, ctx) seen[#seen + 1] = ctx.effect_id return a.x end\n"
      "local r3 = tool{x = 'c'}\n"
      "return r1 .. r2 .. r3 .. '|' .. table.concat(seen, ',')",
      out, sizeof out, err, sizeof err);
  lc_test_lua_close(&t);
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_str_eq(out, "abc|nil,nil,1#3");
  long begun, ran;
  lc_journal_counts(j, &begun, NULL, &ran);
  ck_assert_int_eq(begun, 3);
  ck_assert_int_eq(ran, 3);
  lc_journal_free(j);
  int in, res, one;
  lines_of(path, "1#2", &in, &res, &one);
  ck_assert_int_eq(one, 1);
  /* Replayed: answered from the journal, the fn not called. */
  rc = run_code(LC_JOURNAL_REPLAY, path,
      "local calls = 0\n"
      "local tool = luact.tool{name = 't', fn = function(a) calls = calls + 1 return a.x end}\n"
      "tool._noctx = tool.fn\n"
      "local r = tool{x = 'a'} .. tool({x = 'b'}, {extra = 1})\n"
      "tool.fn = function(a) calls = calls + 1 return a.x end\n"
      "return r .. tool{x = 'c'} .. calls");
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_str_eq(out, "abc0");
  unlink(path);
}
END_TEST

/* The effect token's methods and close compare self with the metatable
 * they hold as an upvalue: anything else (a table, another userdata, a
 * table wearing the token's metatable) is still refused, and a token
 * still works (a recorded effect, then one the journal answers). */
START_TEST(token_methods_refuse_a_wrong_self) {
  char path[256];
  tmp_path(path, sizeof path, "tokself");
  int rc = run_code(LC_JOURNAL_RECORD, path,
      "local mt = debug.getregistry()['luact.Effect']\n"
      "local M = mt.__index\n"
      "local function refused(f, self)\n"
      "  local ok, m = pcall(f, self)\n"
      "  if ok or not tostring(m):find('luact.Effect expected', 1, true) then\n"
      "    error('not refused: ' .. tostring(m)) end\n"
      "end\n"
      "for _, name in ipairs{'finish', 'fail', 'ctx', 'results', 'replayed'} do\n"
      "  refused(M[name], {})\n"
      "  refused(M[name], io.stdout)\n"
      "  refused(M[name], setmetatable({}, mt))\n"
      "end\n"
      "refused(mt.__gc, io.stdout)\n"
      "refused(mt.__close, setmetatable({}, mt))\n"
      "return luact.effect('k', 'n', {a = 1}, 'pure', function(ctx) return ctx.effect_id end)");
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_str_eq(out, "1#1");
  rc = run_code(LC_JOURNAL_REPLAY, path,
      "return luact.effect('k', 'n', {a = 1}, 'pure', function() error('ran') end)");
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_str_eq(out, "1#1");
  unlink(path);
}
END_TEST

/* Journal off (every CLI run without --record/--replay): no token, no
 * hash up front, but the same names and the same key, derived when read. */
START_TEST(off_mode_names_and_lazy_key) {
  struct lc_journal *j;
  char jerr[256];
  ck_assert_int_eq(lc_journal_open(LC_JOURNAL_OFF, NULL, NULL, &j, jerr, sizeof jerr), 0);
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  lc_l_journal_attach(t.L, j);
  int rc = lc_test_lua_run(&t,
      "local function id() return luact.effect('k', 'n', nil, 'pure', function(ctx) return ctx.effect_id end) end\n"
      "local ids = { id(), luact.timeout(1, id) }\n"
      /* The timeout took two spawn numbers: this child is the third. */
      "ids[3] = select(2, luact.wait(luact.spawn(id)))\n"
      "local raw, key, n = luact.effect('k', 'n', nil, 'pure', function(ctx)\n"
      "  local raw = rawget(ctx, 'idempotency_key')\n"
      "  local n = 0\n"
      "  for _ in pairs(ctx) do n = n + 1 end\n"
      "  return tostring(raw), ctx.idempotency_key, n\n"
      "end)\n"
      "local tool = luact.tool{name = 't', fn = function(a, ctx)\n"
      "  return ctx.effect_id .. ' ' .. ctx.idempotency_key .. ' ' .. tostring(ctx.extra) end}\n"
      "local plain = tool{}\n"
      "local with = tool({}, { extra = 'x', effect_id = 'mine' })\n"
      "local own = tool({}, { idempotency_key = 'k1', effect_id = 'e1' })\n"
      "return table.concat(ids, ',') .. '|' .. raw .. '|' .. n .. '|' .. key .. '|' .. plain ..\n"
      "  '|' .. with .. '|' .. own",
      out, sizeof out, err, sizeof err);
  lc_test_lua_close(&t);
  ck_assert_msg(rc == 0, "%s", err);
  /* The keys: sha256(run id .. "/" .. effect id), 32 hex digits. */
  char want[3][96], full[65], src[256];
  const char *idn[] = {"1#2", "1#3", "1#4"};
  for (int i = 0; i < 3; i++) {
    snprintf(src, sizeof src, "%s/%s", lc_journal_run_id(j), idn[i]);
    lc_sha256_hex(src, strlen(src), full);
    snprintf(want[i], sizeof want[i], "%.32s", full);
  }
  char expect[1024];
  snprintf(expect, sizeof expect, "1#1,1.1#1,1.3#1|nil|2|%s|1#3 %s nil|1#4 %s x|e1 k1 nil", want[0],
           want[1], want[2]);
  ck_assert_str_eq(out, expect);
  long begun, ran;
  lc_journal_counts(j, &begun, NULL, &ran);
  ck_assert_int_eq(begun, 7);
  ck_assert_int_eq(ran, 7);
  lc_journal_free(j);
}
END_TEST

START_TEST(malformed_journal) {
  char path[256];
  tmp_path(path, sizeof path, "bad");
  FILE *f = fopen(path, "w");
  fputs("{\"type\":\"header\",\"format\":1,\"run\":\"r1\"}\n"
        "{\"type\":\"intent\",\"id\":\"1#1\",\"kind\":\"clock\",\"name\":\"now\",\"class\":\"pure\"}\n"
        "{\"type\":\"result\",\"id\":\"1#1\",\"result\": 12.5\n"
        "{\"type\":\"intent\",\"id\":\"1#2\",\"kind\":\"clock\",\"name\":\"now\",\"class\":\"pure\"}\n",
        f);
  fclose(f);
  struct lc_journal *j;
  char e[512];
  ck_assert_int_eq(lc_journal_open(LC_JOURNAL_REPLAY, path, NULL, &j, e, sizeof e), LC_EINVAL);
  ck_assert_msg(strstr(e, "line 3: invalid JSON at byte"), "%s", e);
  /* No header. */
  f = fopen(path, "w");
  fputs("{\"type\":\"intent\",\"id\":\"1#1\"}\n", f);
  fclose(f);
  ck_assert_int_eq(lc_journal_open(LC_JOURNAL_REPLAY, path, NULL, &j, e, sizeof e), LC_EINVAL);
  ck_assert_msg(strstr(e, "line 1: expected the header line"), "%s", e);
  /* A torn last line (a crash mid-write) is not an error: that effect
   * simply has no result. */
  f = fopen(path, "w");
  fputs("{\"type\":\"header\",\"format\":1,\"run\":\"r1\"}\n"
        "{\"type\":\"intent\",\"id\":\"1#1\",\"kind\":\"clock\",\"name\":\"now\",\"class\":\"pure\"}\n"
        "{\"type\":\"result\",\"id\":\"1#1\",\"res",
        f);
  fclose(f);
  ck_assert_int_eq(lc_journal_open(LC_JOURNAL_REPLAY, path, NULL, &j, e, sizeof e), 0);
  ck_assert_str_eq(lc_journal_run_id(j), "r1");
  lc_journal_free(j);
  /* Ids: a second intent, a result without intent, a second result. */
  static const char *const bad[][2] = {
      {"{\"type\":\"intent\",\"id\":\"1#1\"}\n{\"type\":\"intent\",\"id\":\"1#1\"}\n",
       "line 3: effect 1#1 already has an intent (line 2)"},
      {"{\"type\":\"result\",\"id\":\"1#1\"}\n", "line 2: result for 1#1 has no intent before it"},
      {"{\"type\":\"intent\",\"id\":\"1#1\"}\n{\"type\":\"result\",\"id\":\"1#1\"}\n"
       "{\"type\":\"result\",\"id\":\"1#1\"}\n",
       "line 4: result for 1#1 appears twice"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    f = fopen(path, "w");
    fprintf(f, "{\"type\":\"header\",\"format\":1,\"run\":\"r1\"}\n%s", bad[i][0]);
    fclose(f);
    ck_assert_int_eq(lc_journal_open(LC_JOURNAL_REPLAY, path, NULL, &j, e, sizeof e), LC_EINVAL);
    ck_assert_msg(strstr(e, bad[i][1]), "%s", e);
  }
  unlink(path);
}
END_TEST

/* ---- replay checks an effect's identity ---- */

/* Records one effect (tool "double", pure) then replays effect 1#1 as
 * kind/name/cls. Returns begin's code; msg gets the journal's error. */
static int replay_as(const char *kind, const char *name, enum lc_effect cls, char *msg,
                     size_t n) {
  char path[256], e[512];
  tmp_path(path, sizeof path, "ident");
  struct lc_journal *j;
  struct lc_effect_op op;
  struct lc_effect_who w = {&op, "1", 1};
  struct lc_effect_desc d = {.kind = "tool", .name = "double", .cls = LC_EFFECT_PURE};
  ck_assert_int_eq(lc_journal_open(LC_JOURNAL_RECORD, path, NULL, &j, e, sizeof e), 0);
  ck_assert_int_eq(lc_effect_begin(j, &w, &d, &op), LC_EFFECT_RUN);
  ck_assert_int_eq(lc_effect_end(&op, cJSON_CreateNumber(4), NULL, NULL), 0);
  lc_journal_free(j);
  ck_assert_int_eq(lc_journal_open(LC_JOURNAL_REPLAY, path, NULL, &j, e, sizeof e), 0);
  struct lc_effect_desc now = {.kind = kind, .name = name, .cls = cls};
  int rc = lc_effect_begin(j, &w, &now, &op);
  snprintf(msg, n, "%s", lc_journal_error(j));
  if (rc < 0) ck_assert_int_eq(lc_journal_failed(j), LC_JOURNAL_MISMATCH);
  lc_journal_free(j);
  unlink(path);
  return rc;
}

START_TEST(replay_compares_kind_name_class) {
  char m[2048];
  ck_assert_int_eq(replay_as("tool", "double", LC_EFFECT_PURE, m, sizeof m), LC_EFFECT_REPLAYED);
  ck_assert_int_lt(replay_as("tool", "triple", LC_EFFECT_PURE, m, sizeof m), 0);
  ck_assert_msg(strstr(m, "effect 1#1 (tool triple)") &&
                    strstr(m, "name: recorded \"double\" / now \"triple\""), "%s", m);
  ck_assert_int_lt(replay_as("http", "double", LC_EFFECT_PURE, m, sizeof m), 0);
  ck_assert_msg(strstr(m, "effect 1#1 (http double)") &&
                    strstr(m, "kind: recorded \"tool\" / now \"http\""), "%s", m);
  ck_assert_int_lt(replay_as("tool", "double", LC_EFFECT_AT_MOST_ONCE, m, sizeof m), 0);
  ck_assert_msg(strstr(m, "class: recorded \"pure\" / now \"at_most_once\""), "%s", m);
}
END_TEST

/* A one-line effect's line is built from literal pieces (effect.c's
 * PUT_LIT): each of its forms (request as text or tree, both hashes, a
 * text result, a tree result, an error, a cancellation) is the bytes
 * cJSON prints for the same object, with hostile kind, name and id
 * escaped, and replays against the same description. */
START_TEST(one_line_pieces_print_as_cjson) {
  char path[256], e[512];
  tmp_path(path, sizeof path, "pieces");
  const char *kind = "k\"\\\n\x01\xc3\xa9", *name = "n</x>\t\"\x1f\xe2\x80\xa8";
  const char *path_id = "1.\"2\\\n";
  cJSON *tree = cJSON_Parse("{\"a\":[1,2.5,\"q\\\"\\u0001\"],\"b\":null}");
  const char *text = "{\"a\":[1,2.5,\"q\\\"\\u0001\"],\"b\":null}";
  struct lc_journal *j;
  ck_assert_int_eq(lc_journal_open(LC_JOURNAL_RECORD, path, NULL, &j, e, sizeof e), 0);
  for (int i = 0; i < 5; i++) {
    struct lc_effect_op op;
    struct lc_effect_who w = {&op, path_id, (unsigned long)i + 1};
    struct lc_effect_desc d = {.kind = kind, .name = i == 4 ? NULL : name,
                               .cls = LC_EFFECT_PURE,
                               .prompt_hash = i & 1 ? "p\"h" : NULL,
                               .tools_hash = i < 2 ? "t\\h" : NULL};
    if (i & 2) d.request = tree;
    else d.request_text = text, d.request_len = strlen(text);
    ck_assert_int_eq(lc_effect_begin(j, &w, &d, &op), LC_EFFECT_RUN);
    if (i == 0) ck_assert_int_eq(lc_effect_end_text(&op, "[\"r\\n\"]", 7, 3, 4), 0);
    else if (i == 1) ck_assert_int_eq(lc_effect_end(&op, cJSON_CreateString("x\"y"), NULL,
                                                    cJSON_Parse("{\"z\":[true]}")), 0);
    else if (i == 2) ck_assert_int_eq(lc_effect_end(&op, NULL, cJSON_CreateString("bad\n"),
                                                    cJSON_Parse("{\"latency_ms\":1.5}")), 0);
    else if (i == 3) lc_effect_cancel(&op, "killed \"now\"");
    else ck_assert_int_eq(lc_effect_end(&op, NULL, NULL, NULL), 0);
  }
  lc_journal_free(j);
  char *all = lc_test_read_file(path, NULL);
  ck_assert_ptr_nonnull(all);
  int n = 0;
  for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n")) {
    cJSON *l = cJSON_Parse(line);
    ck_assert_msg(l != NULL, "not JSON: %s", line);
    char *again = cJSON_PrintUnformatted(l);
    ck_assert_str_eq(line, again);
    const cJSON *ty = cJSON_GetObjectItem(l, "type");
    if (cJSON_IsString(ty) && !strcmp(ty->valuestring, "result")) {
      n++;
      ck_assert_str_eq(cJSON_GetObjectItem(l, "kind")->valuestring, kind);
      ck_assert_msg(strncmp(cJSON_GetObjectItem(l, "id")->valuestring, path_id,
                            strlen(path_id)) == 0, "%s", line);
    }
    cJSON_free(again);
    cJSON_Delete(l);
  }
  free(all);
  ck_assert_int_eq(n, 5);
  /* Replayed with the same descriptions: each matches (3 answered, the
   * cancelled one runs again). */
  ck_assert_int_eq(lc_journal_open(LC_JOURNAL_REPLAY, path, NULL, &j, e, sizeof e), 0);
  for (int i = 0; i < 5; i++) {
    struct lc_effect_op op;
    struct lc_effect_who w = {&op, path_id, (unsigned long)i + 1};
    struct lc_effect_desc d = {.kind = kind, .name = i == 4 ? "" : name, /* NULL was written as "" */
                               .cls = LC_EFFECT_PURE,
                               .prompt_hash = i & 1 ? "p\"h" : NULL,
                               .tools_hash = i < 2 ? "t\\h" : NULL, .request = tree};
    int rc = lc_effect_begin(j, &w, &d, &op);
    ck_assert_msg(rc == (i == 3 ? LC_EFFECT_RUN : LC_EFFECT_REPLAYED), "effect %d: %d %s", i, rc,
                  lc_journal_error(j));
    if (rc == LC_EFFECT_RUN) lc_effect_cancel(&op, "again");
  }
  lc_journal_free(j);
  cJSON_Delete(tree);
  unlink(path);
}
END_TEST

/* A pure effect abandoned while it ran (its task killed) is one line too,
 * {"cancelled":...} with the intent's members. Resumed, it runs again and
 * its result line follows; replayed after that, it is answered. The loader
 * keeps the one line as the effect's intent when the result comes (the
 * one line used to be both: freed twice under ASan had it not). */
START_TEST(cancelled_pure_effect_resumes_and_replays) {
  char path[256], e[512];
  tmp_path(path, sizeof path, "cancel1");
  struct lc_journal *j;
  struct lc_effect_op op;
  struct lc_effect_who w = {&op, "1", 1};
  cJSON *req = cJSON_Parse("{\"q\":\"x\"}");
  struct lc_effect_desc d = {.kind = "tool", .name = "look", .request = req,
                             .cls = LC_EFFECT_PURE};
  ck_assert_int_eq(lc_journal_open(LC_JOURNAL_RECORD, path, NULL, &j, e, sizeof e), 0);
  ck_assert_int_eq(lc_effect_begin(j, &w, &d, &op), LC_EFFECT_RUN);
  lc_effect_cancel(&op, "killed");
  lc_journal_free(j);
  int in, res, one;
  lines_of(path, "1#1", &in, &res, &one);
  ck_assert_int_eq(in, 0);
  ck_assert_int_eq(one, 1);
  /* Resumed: not answered (cancelled): it runs; only its result is owed. */
  struct lc_journal_opts o = {.mode = LC_JOURNAL_RECORD, .path = path, .resume = 1};
  ck_assert_msg(lc_journal_open_with(&o, &j, e, sizeof e) == 0, "%s", e);
  ck_assert_int_eq(lc_effect_begin(j, &w, &d, &op), LC_EFFECT_RUN);
  ck_assert_int_eq(lc_effect_end(&op, cJSON_CreateNumber(7), NULL, NULL), 0);
  lc_journal_free(j);
  lines_of(path, "1#1", &in, &res, &one);
  ck_assert_int_eq(in, 0);
  ck_assert_int_eq(res, 2);
  ck_assert_int_eq(one, 1);
  ck_assert_int_eq(lc_journal_open(LC_JOURNAL_REPLAY, path, NULL, &j, e, sizeof e), 0);
  ck_assert_int_eq(lc_effect_begin(j, &w, &d, &op), LC_EFFECT_REPLAYED);
  ck_assert_int_eq(lc_effect_result(&op)->valueint, 7);
  /* Still compared by its recorded request. */
  lc_journal_free(j);
  ck_assert_int_eq(lc_journal_open(LC_JOURNAL_REPLAY, path, NULL, &j, e, sizeof e), 0);
  cJSON *other = cJSON_Parse("{\"q\":\"y\"}");
  struct lc_effect_desc d2 = d;
  d2.request = other;
  ck_assert_int_lt(lc_effect_begin(j, &w, &d2, &op), 0);
  ck_assert_msg(strstr(lc_journal_error(j), "request.q"), "%s", lc_journal_error(j));
  lc_journal_free(j);
  cJSON_Delete(other);
  cJSON_Delete(req);
  unlink(path);
}
END_TEST

/* An effect's id is "path#seq" cut to LC_EFFECT_ID_MAX - 1 bytes as
 * snprintf cuts it (written without printf now), and the ctx key of an
 * effect that is not idempotent, derived only when read, is the one
 * lc_effect_key gives (pairs shows it too). */
START_TEST(effect_id_cut_and_lazy_key_in_record) {
  char path[256], e[512];
  tmp_path(path, sizeof path, "idcut");
  struct lc_journal *j;
  ck_assert_int_eq(lc_journal_open(LC_JOURNAL_RECORD, path, NULL, &j, e, sizeof e), 0);
  static char tp[700];
  const size_t lens[] = {1, 590, 596, 598, 599, 650};
  for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
    memset(tp, 'x', lens[i]);
    tp[lens[i]] = '\0';
    struct lc_effect_op op;
    struct lc_effect_who w = {&op, tp, 1234567};
    struct lc_effect_desc d = {.kind = "tool", .name = "t", .cls = LC_EFFECT_PURE};
    ck_assert_int_eq(lc_effect_begin(j, &w, &d, &op), LC_EFFECT_RUN);
    char want[800]; /* what snprintf into LC_EFFECT_ID_MAX bytes kept */
    snprintf(want, sizeof want, "%s#%lu", tp, 1234567UL);
    want[LC_EFFECT_ID_MAX - 1] = '\0';
    ck_assert_str_eq(op.id, want);
    ck_assert_str_eq(op.key, ""); /* not derived: not idempotent */
    lc_effect_cancel(&op, "test");
  }
  lc_journal_free(j);
  ck_assert_int_eq(lc_journal_open(LC_JOURNAL_RECORD, path, NULL, &j, e, sizeof e), 0);
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  lc_l_journal_attach(t.L, j);
  int rc = lc_test_lua_run(&t,
      "local k1, id1, n = luact.effect('tool', 'p', nil, 'pure', function(ctx)\n"
      "  local n = 0\n"
      "  for _ in pairs(ctx) do n = n + 1 end\n"
      "  return ctx.idempotency_key, ctx.effect_id, n end)\n"
      "local k2 = luact.effect('tool', 'o', nil, 'at_most_once', function(ctx)\n"
      "  return ctx.idempotency_key end)\n"
      "local k3 = luact.effect('tool', 'i', nil, 'idempotent', function(ctx)\n"
      "  return rawget(ctx, 'idempotency_key') end)\n"
      "return table.concat({k1, id1, n, k2, k3}, ' ')",
      out, sizeof out, err, sizeof err);
  ck_assert_msg(rc == 0, "%s", err);
  char k1[33], k2[33], k3[33], want[256];
  lc_effect_key(j, "1#1", k1);
  lc_effect_key(j, "1#2", k2);
  lc_effect_key(j, "1#3", k3);
  snprintf(want, sizeof want, "%s 1#1 2 %s %s", k1, k2, k3);
  ck_assert_str_eq(out, want);
  lc_test_lua_close(&t);
  lc_journal_free(j);
  unlink(path);
}
END_TEST

/* The "request" member of line n (1-based) of path, as text (malloc'd). */
static char *request_text_of(const char *path, int n) {
  size_t len;
  char *text = lc_test_read_file(path, &len);
  ck_assert_ptr_nonnull(text);
  char *line = text;
  for (int i = 1; i < n; i++) {
    line = strchr(line, '\n');
    ck_assert_ptr_nonnull(line);
    line++;
  }
  char *r = strstr(line, "\"request\":"), *end = strstr(line, ",\"hashes\"");
  char *eol = strchr(line, '\n');
  ck_assert_ptr_nonnull(r);
  if (!end || (eol && end > eol)) end = strstr(line, ",\"idempotency_key\"");
  if (!end || (eol && end > eol)) end = strstr(line, ",\"result\"");
  if (!end || (eol && end > eol)) end = eol - 1; /* the line's own closing brace */
  char *res = strndup(r, (size_t)(end - r));
  free(text);
  return res;
}

/* Recording, luact.effect hands the request over as canonical text (no
 * tree): a pure effect's one line holds the same bytes as an intent line
 * made from the tree, the journal replays and resumes without a mismatch,
 * and a request that cannot be journaled is refused with the same words. */
START_TEST(request_text_same_bytes_as_tree) {
  char path[256], e[512];
  tmp_path(path, sizeof path, "reqtext");
  const char *code =
      "local req = {zeta = {3, 2.5, 0.1 + 0.2, 2^53, -0.0}, Alpha = 'caf\\u{e9} \"q\"\\n',\n"
      "  b = {}, a = {y = true, x = luact.json.null, [\"k\\t\"] = 1}, n = 1e300, i = -7}\n"
      "local p = luact.effect('tool', 'p', req, 'pure', function() return 1 end)\n"
      "local o = luact.effect('tool', 'o', req, 'at_most_once', function() return 2 end)\n"
      "return tostring(p + o)";
  for (int pass = 0; pass < 3; pass++) {
    struct lc_journal *j;
    struct lc_journal_opts o = {.mode = pass == 1 ? LC_JOURNAL_REPLAY : LC_JOURNAL_RECORD,
                                .path = path, .resume = pass == 2};
    ck_assert_msg(lc_journal_open_with(&o, &j, e, sizeof e) == 0, "%s", e);
    struct lc_test_lua t;
    lc_test_lua_open(&t);
    lc_l_journal_attach(t.L, j);
    int rc = lc_test_lua_run(&t, code, out, sizeof out, err, sizeof err);
    ck_assert_msg(rc == 0, "pass %d: %s", pass, err);
    ck_assert_str_eq(out, "3");
    ck_assert_msg(lc_journal_failed(j) == LC_JOURNAL_OK, "%s", lc_journal_error(j));
    long ran;
    lc_journal_counts(j, NULL, NULL, &ran);
    ck_assert_int_eq(ran, pass ? 0 : 2);
    lc_test_lua_close(&t);
    lc_journal_free(j);
  }
  char *one = request_text_of(path, 2), *intent = request_text_of(path, 3);
  ck_assert_str_eq(one, intent);
  ck_assert_msg(strstr(one, "\"request\":{\"Alpha\":"), "%s", one);
  free(one);
  free(intent);
  struct lc_journal *j;
  ck_assert_int_eq(lc_journal_open(LC_JOURNAL_RECORD, path, NULL, &j, e, sizeof e), 0);
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  lc_l_journal_attach(t.L, j);
  int rc = lc_test_lua_run(&t, "return luact.effect('tool', 'p', {f = print}, 'pure', function() end)",
                           out, sizeof out, err, sizeof err);
  ck_assert_int_ne(rc, 0);
  ck_assert_msg(strstr(err, "luact.effect: the request cannot be journaled: ") && strstr(err, "$.f"),
                "%s", err);
  lc_test_lua_close(&t);
  lc_journal_free(j);
  unlink(path);
}
END_TEST

/* The member of a result line from `"result":` or `"error":` to `,"order"`
 * (malloc'd; NULL when the line has neither). */
static char *result_member(const char *line) {
  const char *a = strstr(line, ",\"result\":");
  if (!a) a = strstr(line, ",\"error\":");
  const char *z = a ? strstr(a, ",\"order\":") : NULL;
  return a && z ? strndup(a, (size_t)(z - a)) : NULL;
}

/* tok:finish writes a one-line effect's result list from values that JSON
 * holds as they are (nil, booleans, valid UTF-8 strings) without a tree and
 * returns the values given. The same values through the general path (an
 * at_most_once effect's result line, made from the tree): the same
 * "result" and "nested" bytes, the same values back, the same errors for
 * values that cannot be journaled; and a replay returns what the recording
 * returned. */
START_TEST(finish_as_given_writes_the_general_line) {
  char path[256], e[512];
  tmp_path(path, sizeof path, "asgiven");
  const char *code =
      "local cases = {\n"
      "  {n = 1, 'x'}, {n = 0}, {n = 1}, {n = 2, nil, 'a'}, {n = 3, 'a', nil, nil},\n"
      "  {n = 3, 'caf\\u{e9}', true, false}, {n = 1, '\"q\"\\\\\\n\\t\\1\\127 </x> \\u{2028}'},\n"
      "  {n = 1, '\\u{1F600}\\u{7FF}\\u{800}'}, {n = 1, ('y'):rep(5000)}, {n = 1, ''},\n"
      "  {n = 1, 'a\\0b'}, {n = 2, 'ok', '\\xff'}, {n = 1, '\\xed\\xa0\\x80'},\n"
      "  {n = 2, 'a', 1}, {n = 2, 'a', {1}}, {n = 1, 2.5}, {n = 1, print},\n"
      "}\n"
      "local function desc(r)\n"
      "  local o = {tostring(r.n)}\n"
      "  for i = 1, r.n do o[#o + 1] = type(r[i]) .. ':' .. (type(r[i]) == 'string' and\n"
      "    string.format('%q', r[i]) or tostring(type(r[i]) == 'table' and #r[i] or r[i])) end\n"
      "  return table.concat(o, ',')\n"
      "end\n"
      "local all = {}\n"
      "for i, c in ipairs(cases) do\n"
      "  local function fn() luact.now() return table.unpack(c, 1, c.n) end\n"
      "  local p = table.pack(pcall(luact.effect, 'tool', 'p' .. i, {}, 'pure', fn))\n"
      "  local o = table.pack(pcall(luact.effect, 'tool', 'o' .. i, {}, 'at_most_once', fn))\n"
      "  if desc(p) ~= desc(o) then error('case ' .. i .. ': ' .. desc(p) .. ' vs ' .. desc(o)) end\n"
      "  all[#all + 1] = desc(p)\n"
      "end\n"
      "return table.concat(all, '\\n')";
  char *recorded = NULL;
  for (int pass = 0; pass < 2; pass++) {
    struct lc_journal *j;
    struct lc_journal_opts o = {.mode = pass ? LC_JOURNAL_REPLAY : LC_JOURNAL_RECORD,
                                .path = path};
    ck_assert_msg(lc_journal_open_with(&o, &j, e, sizeof e) == 0, "%s", e);
    struct lc_test_lua t;
    lc_test_lua_open(&t);
    lc_l_journal_attach(t.L, j);
    int rc = lc_test_lua_run(&t, code, out, sizeof out, err, sizeof err);
    ck_assert_msg(rc == 0, "pass %d: %s", pass, err);
    if (!pass) {
      recorded = strdup(out);
    } else { /* the values, and the errors of values that could not be
              * journaled: a replay raises the very text the run saw */
      char *a = recorded, *b = out;
      for (int k = 0; *a && *b; k++) {
        size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
        ck_assert_msg(la == lb && !memcmp(a, b, la), "case %d: %.*s vs %.*s", k + 1, (int)la, a,
                      (int)lb, b);
        a += la + (a[la] != 0);
        b += lb + (b[lb] != 0);
      }
      ck_assert_msg(!*a && !*b, "not as many cases");
    }
    lc_test_lua_close(&t);
    lc_journal_free(j);
  }
  ck_assert_msg(!strncmp(recorded, "2,boolean:true,string:\"x\"\n", 24), "%.200s", recorded);
  ck_assert(strstr(recorded, "luact.effect: result 1 cannot be journaled: string contains a NUL"));
  ck_assert(strstr(recorded, "result 2 cannot be journaled: string is not valid UTF-8"));
  free(recorded);
  /* Each pN's one line and oN's result line: the same members. */
  char *text = lc_test_read_file(path, NULL);
  ck_assert_ptr_nonnull(text);
  char *members[2][32] = {{0}};
  char names[64][16] = {{0}}, ids[64][24] = {{0}};
  int nn = 0;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    cJSON *l = cJSON_Parse(line);
    ck_assert_ptr_nonnull(l);
    const cJSON *id = cJSON_GetObjectItem(l, "id"), *nm = cJSON_GetObjectItem(l, "name");
    const cJSON *ty = cJSON_GetObjectItem(l, "type");
    if (cJSON_IsString(nm) && cJSON_IsString(id) && nn < 64 &&
        (nm->valuestring[0] == 'p' || nm->valuestring[0] == 'o')) {
      snprintf(names[nn], sizeof names[nn], "%s", nm->valuestring);
      snprintf(ids[nn++], sizeof ids[0], "%s", id->valuestring);
    }
    if (cJSON_IsString(ty) && !strcmp(ty->valuestring, "result") && cJSON_IsString(id)) {
      for (int k = 0; k < nn; k++) {
        if (strcmp(ids[k], id->valuestring)) continue;
        int which = names[k][0] == 'o', i = atoi(names[k] + 1);
        ck_assert_int_lt(i, 32);
        members[which][i] = result_member(line);
      }
    }
    cJSON_Delete(l);
  }
  free(text);
  int compared = 0;
  for (int i = 1; i < 32; i++) {
    if (!members[0][i] && !members[1][i]) continue;
    ck_assert_msg(members[0][i] && members[1][i], "case %d: a line is missing", i);
    ck_assert_msg(!strcmp(members[0][i], members[1][i]), "case %d:\n %s\n %s", i, members[0][i],
                  members[1][i]);
    ck_assert_msg(strstr(members[0][i], ",\"nested\":{\"effects\":1,\"spawned\":0}"), "%s",
                  members[0][i]);
    compared++;
    free(members[0][i]);
    free(members[1][i]);
  }
  ck_assert_int_eq(compared, 17);
  unlink(path);
}
END_TEST

/* Crafted one-line lines: one for an effect that is not pure, and one for
 * an effect that has an intent already, are refused naming the line. */
START_TEST(crafted_one_line_refused) {
  static const char *const bad[][2] = {
      {"{\"type\":\"result\",\"id\":\"1#1\",\"kind\":\"tool\",\"name\":\"pay\","
       "\"class\":\"at_most_once\",\"result\":[1]}\n",
       "line 2: effect 1#1 has its intent in its result line, which only a pure effect has"},
      {"{\"type\":\"result\",\"id\":\"1#1\",\"kind\":\"tool\",\"name\":\"pay\","
       "\"result\":[1]}\n",
       "line 2: effect 1#1 has its intent in its result line, which only a pure effect has"},
      {"{\"type\":\"intent\",\"id\":\"1#1\",\"kind\":\"tool\",\"name\":\"a\",\"class\":"
       "\"pure\"}\n{\"type\":\"result\",\"id\":\"1#1\",\"kind\":\"tool\",\"name\":\"a\","
       "\"class\":\"pure\",\"result\":[1]}\n",
       "line 3: effect 1#1 already has an intent (line 2)"},
      {"{\"type\":\"result\",\"id\":\"1#1\",\"kind\":\"tool\",\"name\":\"a\","
       "\"class\":\"pure\",\"result\":[1]}\n{\"type\":\"result\",\"id\":\"1#1\","
       "\"result\":[2]}\n",
       "line 3: result for 1#1 appears twice"},
  };
  char path[256], e[512];
  tmp_path(path, sizeof path, "crafted1");
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"type\":\"header\",\"format\":1,\"run\":\"r1\"}\n%s", bad[i][0]);
    fclose(f);
    struct lc_journal *j = NULL;
    ck_assert_int_eq(lc_journal_open(LC_JOURNAL_REPLAY, path, NULL, &j, e, sizeof e), LC_EINVAL);
    ck_assert_msg(strstr(e, bad[i][1]), "%zu: %s", i, e);
  }
  unlink(path);
}
END_TEST

/* A tool error whose text is not valid UTF-8 (a message cut mid-character
 * by a "%.200s") is recorded, and the journal replays: raised through
 * luact.effect, and returned (nil, msg, "tool_error") by a luact.tool,
 * whose recording used to fail ("result 2 cannot be journaled"). */
START_TEST(error_message_not_utf8_records_and_replays) {
  char path[256], e[512];
  tmp_path(path, sizeof path, "utf8");
  const char *code =
      "local r = {}\n"
      "for i = 1, 2 do\n"
      "  local ok, m = pcall(luact.effect, 'tool', 'cut', nil, 'pure', function()\n"
      "    error('caf\\xC3', 0) end)\n"
      "  r[#r + 1] = tostring(ok) .. ' ' .. tostring(utf8.len(m))\n"
      "end\n"
      "local t = luact.tool{name = 'cut', fn = function() error('caf\\xC3', 0) end}\n"
      "local u = luact.tool{name = 'cut2', fn = function() return nil, 'na\\xEFve' end}\n"
      "for _, tool in ipairs({t, u}) do\n"
      "  local v, m, code = tool:call({})\n"
      "  r[#r + 1] = tostring(v) .. ' ' .. tostring(utf8.len(m)) .. ' ' .. code\n"
      "end\n"
      "return table.concat(r, ',') .. ' ' .. luact.now()\n";
  char o1[256] = "", o2[256] = "";
  for (int pass = 0; pass < 2; pass++) {
    struct lc_journal *j;
    ck_assert_msg(lc_journal_open(pass ? LC_JOURNAL_REPLAY : LC_JOURNAL_RECORD, path, NULL, &j,
                                  e, sizeof e) == 0, "%s", e);
    struct lc_test_lua t;
    lc_test_lua_open(&t);
    lc_l_journal_attach(t.L, j);
    int rc = lc_test_lua_run(&t, code, pass ? o2 : o1, sizeof o1, err, sizeof err);
    ck_assert_msg(rc == 0, "pass %d: %s", pass, err);
    lc_test_lua_close(&t);
    ck_assert_msg(lc_journal_failed(j) == LC_JOURNAL_OK, "%s", lc_journal_error(j));
    lc_journal_free(j);
  }
  ck_assert_str_eq(o1, o2);
  /* The message Lua saw, valid UTF-8, is the one the journal holds: the
   * cut byte became U+FFFD ("caf" + 1 character). */
  ck_assert_msg(strncmp(o1, "false 4,false 4,nil 21 tool_error,nil 23 tool_error ", 52) == 0,
                "%s", o1);
  unlink(path);
}
END_TEST

/* Loading is linear in the number of effects: 200k intents load in about
 * the time of 20k times ten. Checked by counting, not timing: the loader
 * reports how many id comparisons it made. */
START_TEST(journal_load_is_linear) {
  char path[256], e[512];
  tmp_path(path, sizeof path, "big");
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs("{\"type\":\"header\",\"format\":1,\"run\":\"r1\"}\n", f);
  long n = 80000;
  for (long i = 1; i <= n; i++) {
    fprintf(f, "{\"type\":\"intent\",\"id\":\"1#%ld\",\"kind\":\"clock\",\"name\":\"now\","
               "\"class\":\"pure\"}\n", i);
    if (i % 2) fprintf(f, "{\"type\":\"result\",\"id\":\"1#%ld\",\"result\":%ld}\n", i, i);
  }
  /* Results of early intents at the end: a backwards search walks far. */
  for (long i = 2; i <= n; i += 2)
    fprintf(f, "{\"type\":\"result\",\"id\":\"1#%ld\",\"result\":%ld}\n", i, i);
  fclose(f);
  struct lc_journal *j;
  ck_assert_msg(lc_journal_open(LC_JOURNAL_REPLAY, path, NULL, &j, e, sizeof e) == 0, "%s", e);
  long cmps = lc_journal_load_compares(j);
  ck_assert_msg(cmps < 8 * n, "%ld id comparisons for %ld effects", cmps, n);
  struct lc_effect_op op;
  struct lc_effect_who w = {&op, "1", 2};
  struct lc_effect_desc d = {.kind = "clock", .name = "now", .cls = LC_EFFECT_PURE};
  ck_assert_int_eq(lc_effect_begin(j, &w, &d, &op), LC_EFFECT_REPLAYED);
  ck_assert_int_eq(lc_effect_result(&op)->valueint, 2);
  lc_journal_free(j);
  unlink(path);
}
END_TEST

/* A crafted journal's numbers are range-checked before they become
 * integers: a result's "order" of 1e300 (or -1e300, or NaN-free junk) is
 * ignored, never cast (undefined; the sanitizer build stops at the cast
 * before the fix), and the effect still replays. */
START_TEST(journal_huge_order_is_ignored) {
  static const char *const orders[] = {"1e300", "-1e300", "1e19", "3.5"};
  for (size_t i = 0; i < sizeof orders / sizeof orders[0]; i++) {
    char path[256], e[512];
    tmp_path(path, sizeof path, "order");
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "{\"type\":\"header\",\"format\":1,\"run\":\"r1\"}\n"
               "{\"type\":\"intent\",\"id\":\"1#1\",\"kind\":\"clock\",\"name\":\"now\","
               "\"class\":\"pure\"}\n"
               "{\"type\":\"result\",\"id\":\"1#1\",\"result\":7,\"order\":%s}\n",
            orders[i]);
    fclose(f);
    struct lc_journal *j;
    ck_assert_msg(lc_journal_open(LC_JOURNAL_REPLAY, path, NULL, &j, e, sizeof e) == 0, "%s", e);
    struct lc_effect_op op;
    struct lc_effect_who w = {&op, "1", 1};
    struct lc_effect_desc d = {.kind = "clock", .name = "now", .cls = LC_EFFECT_PURE};
    ck_assert_int_eq(lc_effect_begin(j, &w, &d, &op), LC_EFFECT_REPLAYED);
    ck_assert_int_eq(lc_effect_result(&op)->valueint, 7);
    lc_journal_free(j);
    unlink(path);
  }
}
END_TEST

/* ---- the CLI on the examples ---- */

/* Runs a shell command; returns its exit status. */
static int sh(const char *cmd) {
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Records examples/<name>/agent.lua against its mock.json, then replays it
 * with the mock stopped: same exit code and stdout; no key in the file. */
static void example_round_trip(const char *name) {
  const char *src = lc_test_source_dir();
  char script[512], mockfile[512], jpath[256], o1[256], o2[256], e2[256], cmd[4096];
  snprintf(script, sizeof script, "%s/examples/%s/agent.lua", src, name);
  snprintf(mockfile, sizeof mockfile, "%s/examples/%s/mock.json", src, name);
  snprintf(jpath, sizeof jpath, "/tmp/lc_effect_%ld_%s.jsonl", (long)getpid(), name);
  snprintf(o1, sizeof o1, "/tmp/lc_effect_%ld_%s.out1", (long)getpid(), name);
  snprintf(o2, sizeof o2, "/tmp/lc_effect_%ld_%s.out2", (long)getpid(), name);
  snprintf(e2, sizeof e2, "/tmp/lc_effect_%ld_%s.err2", (long)getpid(), name);
  ck_assert_int_eq(lc_mock_start_file(&mock, mockfile, NULL), 0);
  snprintf(cmd, sizeof cmd,
           "cd %s && OPENAI_API_KEY=%s OPENAI_BASE_URL='%s/v1' LUACT_MODEL=openai:mock-gpt "
           "%s/luact run --quiet --record %s %s > %s 2>/dev/null",
           src, KEY, mock.base_url, LC_BINARY_DIR, jpath, script, o1);
  int rc1 = sh(cmd);
  ck_assert_int_eq(lc_mock_stop(&mock), 0);
  snprintf(cmd, sizeof cmd,
           "cd %s && OPENAI_API_KEY=%s OPENAI_BASE_URL='%s/v1' LUACT_MODEL=openai:mock-gpt "
           "%s/luact run --quiet --replay %s %s > %s 2>%s",
           src, KEY, mock.base_url, LC_BINARY_DIR, jpath, script, o2, e2);
  int rc2 = sh(cmd);
  char *a = lc_test_read_file(o1, NULL), *b = lc_test_read_file(o2, NULL);
  char *e = lc_test_read_file(e2, NULL);
  char *j = lc_test_read_file(jpath, NULL);
  ck_assert_ptr_nonnull(a);
  ck_assert_ptr_nonnull(b);
  ck_assert_ptr_nonnull(j);
  ck_assert_msg(rc1 == rc2, "%s: record exit %d, replay exit %d: %s", name, rc1, rc2, e ? e : "");
  ck_assert_msg(strcmp(a, b) == 0, "%s: replay printed\n%s\ninstead of\n%s\n(stderr: %s)", name, b,
                a, e ? e : "");
  ck_assert_ptr_null(strstr(j, "SECRET"));
  ck_assert_ptr_nonnull(strstr(j, "\"kind\":\"llm\""));
  free(a);
  free(b);
  free(e);
  free(j);
  unlink(jpath);
  unlink(o1);
  unlink(o2);
  unlink(e2);
}

/* Every LLM intent in a journal holds its request in canonical order and
 * the hashes of that request's messages and tools (lc_jcanon_hash). The
 * intent is now written from one sorted tree instead of three sorted
 * copies: the journal must not change (older journals replay). */
static void llm_intents_canonical(const char *jpath) {
  char *t = lc_test_read_file(jpath, NULL);
  ck_assert_ptr_nonnull(t);
  int n = 0;
  for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
    cJSON *o = cJSON_Parse(line);
    ck_assert_ptr_nonnull(o);
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "kind");
    if (!cJSON_IsString(k) || strcmp(k->valuestring, "llm")) {
      cJSON_Delete(o);
      continue;
    }
    n++;
    const cJSON *rq = cJSON_GetObjectItemCaseSensitive(o, "request");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "hashes");
    char want[65], *canon = lc_jcanon_print(rq), *as_is = cJSON_PrintUnformatted(rq);
    ck_assert_str_eq(canon, as_is);
    ck_assert_int_eq(lc_jcanon_hash(cJSON_GetObjectItemCaseSensitive(rq, "messages"), want), 0);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(h, "prompt")->valuestring, want);
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(rq, "tools");
    if (tools) {
      ck_assert_int_eq(lc_jcanon_hash(tools, want), 0);
      ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(h, "tools")->valuestring, want);
    }
    cJSON_free(canon);
    cJSON_free(as_is);
    cJSON_Delete(o);
  }
  ck_assert_int_gt(n, 0);
  free(t);
}

/* A one-line effect's values written as given, with --journal-sync all:
 * its line must be durable before the values come back, so the task waits
 * for the writer thread (the file journal's, and the store's) and then
 * gets the values it gave, nil and booleans included; a replay gives the
 * same. */
START_TEST(cli_finish_as_given_waits_with_sync_all) {
  char script[256], jpath[256], db[256], opath[256], cmd[2048];
  long pid = (long)getpid();
  snprintf(script, sizeof script, "/tmp/lc_effect_%ld_sa.lua", pid);
  snprintf(jpath, sizeof jpath, "/tmp/lc_effect_%ld_sa.jsonl", pid);
  snprintf(db, sizeof db, "/tmp/lc_effect_%ld_sa.db", pid);
  snprintf(opath, sizeof opath, "/tmp/lc_effect_%ld_sa.out", pid);
  FILE *f = fopen(script, "w");
  ck_assert_ptr_nonnull(f);
  fputs("local out = {}\n"
        "for i = 1, 3 do\n"
        "  local h = luact.spawn(function()\n"
        "    local a, b, c = luact.effect('tool', 'p', {i = i}, 'pure',\n"
        "      function() luact.sleep(0) return 'v' .. i, nil, true end)\n"
        "    return a .. tostring(b) .. tostring(c)\n"
        "  end)\n"
        "  local ok, v = luact.wait(h)\n"
        "  out[#out + 1] = tostring(v)\n"
        "end\n"
        "print(table.concat(out, ','))\n", f);
  fclose(f);
  const char *runs[] = {"--no-store --record %s --journal-sync all", "--no-store --replay %s",
                        "--store %s --journal-sync all"};
  for (int i = 0; i < 3; i++) {
    char opts[512];
    snprintf(opts, sizeof opts, runs[i], i < 2 ? jpath : db);
    snprintf(cmd, sizeof cmd, "%s/luact run --quiet %s %s >%s 2>&1", LC_BINARY_DIR, opts, script,
             opath);
    int rc = sh(cmd);
    char *o = lc_test_read_file(opath, NULL);
    ck_assert_ptr_nonnull(o);
    ck_assert_msg(rc == 0 && !strcmp(o, "v1niltrue,v2niltrue,v3niltrue\n"), "%s: %d %s", opts, rc, o);
    free(o);
  }
  unlink(script);
  unlink(jpath);
  unlink(opath);
  char x[300];
  unlink(db);
  snprintf(x, sizeof x, "%s-wal", db);
  unlink(x);
  snprintf(x, sizeof x, "%s-shm", db);
  unlink(x);
}
END_TEST

START_TEST(cli_weather) {
  example_round_trip("weather");
  /* Replaying with another question: exit 3, the difference on stderr. */
  const char *src = lc_test_source_dir();
  char jpath[256], epath[256], cmd[4096];
  snprintf(jpath, sizeof jpath, "/tmp/lc_effect_%ld_w3.jsonl", (long)getpid());
  snprintf(epath, sizeof epath, "/tmp/lc_effect_%ld_w3.err", (long)getpid());
  char mockfile[512];
  snprintf(mockfile, sizeof mockfile, "%s/examples/weather/mock.json", src);
  ck_assert_int_eq(lc_mock_start_file(&mock, mockfile, NULL), 0);
  snprintf(cmd, sizeof cmd,
           "OPENAI_BASE_URL='%s/v1' LUACT_MODEL=openai:mock-gpt OPENAI_API_KEY=%s %s/luact run "
           "--quiet --record %s %s/examples/weather/agent.lua >/dev/null 2>&1",
           mock.base_url, KEY, LC_BINARY_DIR, jpath, src);
  ck_assert_int_eq(sh(cmd), 0);
  ck_assert_int_eq(lc_mock_stop(&mock), 0);
  llm_intents_canonical(jpath);
  snprintf(cmd, sizeof cmd,
           "OPENAI_BASE_URL='%s/v1' LUACT_MODEL=openai:mock-gpt %s/luact run --quiet --replay %s "
           "%s/examples/weather/agent.lua 'Should I cycle in Tromso?' >/dev/null 2>%s",
           mock.base_url, LC_BINARY_DIR, jpath, src, epath);
  ck_assert_int_eq(sh(cmd), 3);
  char *e = lc_test_read_file(epath, NULL);
  ck_assert_ptr_nonnull(e);
  ck_assert_msg(strstr(e, "effect 1#1 (llm openai:mock-gpt)") &&
                    strstr(e, "request.messages[1].content: differs at character 18: recorded \"Should I cycle in Oslo or "
                              "Bergen tomorrow?\" / now \"Should I cycle in Tromso?\""),
                "%s", e);
  free(e);
  unlink(jpath);
  unlink(epath);
}
END_TEST

/* luact.ask from --input (one answer, then eof), recorded, then replayed
 * without the input file. */
START_TEST(cli_ask) {
  const char *src = lc_test_source_dir();
  char in[256], jpath[256], o1[256], o2[256], cmd[2048];
  long pid = (long)getpid();
  snprintf(in, sizeof in, "/tmp/lc_effect_%ld_ask.in", pid);
  snprintf(jpath, sizeof jpath, "/tmp/lc_effect_%ld_ask.jsonl", pid);
  snprintf(o1, sizeof o1, "/tmp/lc_effect_%ld_ask.out1", pid);
  snprintf(o2, sizeof o2, "/tmp/lc_effect_%ld_ask.out2", pid);
  FILE *f = fopen(in, "w");
  fputs("Ada\n", f);
  fclose(f);
  snprintf(cmd, sizeof cmd, "%s/luact run --record %s --input %s %s/tests/lua/effect_ask.lua > %s",
           LC_BINARY_DIR, jpath, in, src, o1);
  ck_assert_int_eq(sh(cmd), 0);
  snprintf(cmd, sizeof cmd, "%s/luact run --replay %s %s/tests/lua/effect_ask.lua < /dev/null > %s",
           LC_BINARY_DIR, jpath, src, o2);
  ck_assert_int_eq(sh(cmd), 0);
  char *a = lc_test_read_file(o1, NULL), *b = lc_test_read_file(o2, NULL);
  ck_assert_str_eq(a, "Ada\tnil\tno input\teof\n");
  ck_assert_str_eq(b, a);
  free(a);
  free(b);
  unlink(in);
  unlink(jpath);
  unlink(o1);
  unlink(o2);
}
END_TEST

/* Two asks waiting at once, then a third: each gets the next line, in the
 * order they asked, from a pipe (the second used to read stdin with a
 * blocking fgetc whose buffer swallowed the first ask's line), with and
 * without recording; the journal replays them. */
START_TEST(cli_concurrent_asks) {
  char script[256], jpath[256], o1[256], o2[256], cmd[2048];
  long pid = (long)getpid();
  snprintf(script, sizeof script, "/tmp/lc_effect_%ld_asks.lua", pid);
  snprintf(jpath, sizeof jpath, "/tmp/lc_effect_%ld_asks.jsonl", pid);
  snprintf(o1, sizeof o1, "/tmp/lc_effect_%ld_asks.out1", pid);
  snprintf(o2, sizeof o2, "/tmp/lc_effect_%ld_asks.out2", pid);
  FILE *f = fopen(script, "w");
  fputs("local a = luact.spawn(function() return luact.ask('1? ') end)\n"
        "local b = luact.spawn(function() return luact.ask('2? ') end)\n"
        "local _, x = luact.wait(a)\nlocal _, y = luact.wait(b)\n"
        "print(x, y, luact.ask('3? '), luact.ask('4? '))\n", f);
  fclose(f);
  for (int rec = 0; rec < 2; rec++) {
    snprintf(cmd, sizeof cmd, "printf 'one\\ntwo\\r\\nthree\\nfour' | %s/luact run %s%s %s > %s",
             LC_BINARY_DIR, rec ? "--record " : "", rec ? jpath : "", script, o1);
    ck_assert_int_eq(sh(cmd), 0);
    char *a = lc_test_read_file(o1, NULL);
    ck_assert_str_eq(a, "one\ttwo\tthree\tfour\n");
    free(a);
  }
  snprintf(cmd, sizeof cmd, "%s/luact run --replay %s %s < /dev/null > %s", LC_BINARY_DIR, jpath,
           script, o2);
  ck_assert_int_eq(sh(cmd), 0);
  char *b = lc_test_read_file(o2, NULL);
  ck_assert_str_eq(b, "one\ttwo\tthree\tfour\n");
  free(b);
  unlink(script);
  unlink(jpath);
  unlink(o1);
  unlink(o2);
}
END_TEST

/* Reads the pty master into buf (NUL terminated) until it holds want. */
static void pty_until(int fd, char *buf, size_t cap, size_t *len, const char *want) {
  while (!strstr(buf, want)) {
    struct pollfd p = {fd, POLLIN, 0};
    ck_assert_int_eq(poll(&p, 1, -1), 1);
    ssize_t n = read(fd, buf + *len, cap - 1 - *len);
    ck_assert_msg(n > 0, "pty closed before \"%s\": %s", want, buf);
    *len += (size_t)n;
    buf[*len] = '\0';
  }
}

/* On a terminal: two asks at once prompt in turn (the second prompt only
 * once the first ask has its line) and each gets its own line. */
START_TEST(cli_concurrent_asks_on_a_terminal) {
  char script[256];
  snprintf(script, sizeof script, "/tmp/lc_effect_%ld_tty.lua", (long)getpid());
  FILE *f = fopen(script, "w");
  fputs("local a = luact.spawn(function() return luact.ask('first? ') end)\n"
        "local b = luact.spawn(function() return luact.ask('second? ') end)\n"
        "local _, x = luact.wait(a)\nlocal _, y = luact.wait(b)\n"
        "print('got', x, y)\n", f);
  fclose(f);
  int m = posix_openpt(O_RDWR | O_NOCTTY);
  ck_assert_int_ge(m, 0);
  ck_assert_int_eq(grantpt(m), 0);
  ck_assert_int_eq(unlockpt(m), 0);
  char slave[128];
  ck_assert_int_eq(ptsname_r(m, slave, sizeof slave), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion leaves no luact behind */
    setsid();
    int s = open(slave, O_RDWR);
    if (s < 0) _exit(127);
    dup2(s, 0);
    dup2(s, 1);
    dup2(s, 2);
    char bin[512];
    snprintf(bin, sizeof bin, "%s/luact", LC_BINARY_DIR);
    execl(bin, "luact", "run", script, (char *)NULL);
    _exit(127);
  }
  char buf[4096] = "";
  size_t len = 0;
  pty_until(m, buf, sizeof buf, &len, "first? ");
  ck_assert_ptr_null(strstr(buf, "second? "));
  ck_assert_int_eq(write(m, "one\n", 4), 4);
  pty_until(m, buf, sizeof buf, &len, "second? ");
  ck_assert_int_eq(write(m, "two\n", 4), 4);
  pty_until(m, buf, sizeof buf, &len, "got\tone\ttwo");
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", buf);
  close(m);
  unlink(script);
}
END_TEST

/* Every example in the repository records and replays (those that need
 * `cc` compile as they do in a normal run). */
START_TEST(cli_every_example) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/examples", lc_test_source_dir());
  DIR *d = opendir(dir);
  ck_assert_ptr_nonnull(d);
  struct dirent *de;
  int n = 0;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    char p[1024], m[1024];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s/agent.lua", dir, de->d_name);
    snprintf(m, sizeof m, "%s/%s/mock.json", dir, de->d_name);
    if (stat(p, &st) || stat(m, &st)) continue;
    example_round_trip(de->d_name);
    n++;
  }
  closedir(d);
  ck_assert_int_ge(n, 4);
}
END_TEST

/* The README's main command: the ShopBot return replayed from the journal
 * that ships with the example, with no model, no shipping service and no
 * network; it must reach the end of the return. */
START_TEST(shopbot_demo_journal_replays) {
  const char *src = lc_test_source_dir();
  char opath[256], data[] = "/tmp/lc_shopbot_replay_XXXXXX", cmd[4096];
  ck_assert_ptr_nonnull(mkdtemp(data));
  snprintf(opath, sizeof opath, "/tmp/lc_effect_%ld_shopbot.out", (long)getpid());
  snprintf(cmd, sizeof cmd,
           "cd %s && OPENAI_BASE_URL=http://127.0.0.1:9/v1 LUACT_MODEL=openai:mock-gpt "
           "SHOPBOT_SHIPPING_URL=http://127.0.0.1:9 SHOPBOT_DATA=%s "
           "SHOPBOT_INPUTS=examples/shopbot/offline-inputs.txt SHOPBOT_RUN_ID=offline-demo "
           "%s/luact run --quiet --replay examples/shopbot/demo.journal examples/shopbot/chat.lua > %s 2>&1",
           src, data, LC_BINARY_DIR, opath);
  int rc = sh(cmd);
  char *o = lc_test_read_file(opath, NULL);
  ck_assert_ptr_nonnull(o);
  ck_assert_msg(rc == 0, "replay exit %d: %s", rc, o);
  ck_assert_msg(strstr(o, "lookup_order {\"order_number\":\"A1001\"}") != NULL, "%s", o);
  ck_assert_msg(strstr(o, "create_label") != NULL, "%s", o);
  ck_assert_msg(strstr(o, "Your return label is in your inbox") != NULL, "%s", o);
  ck_assert_msg(strstr(o, "finished in step email") != NULL, "%s", o);
  free(o);
  unlink(opath);
}
END_TEST

Suite *effect_suite(void) {
  Suite *s = suite_create("effect");
  TCase *tc = tcase_create("journal");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, sha256_vectors);
  tcase_add_test(tc, sha256_hw_matches_portable);
  tcase_add_test(tc, canonical_json);
  tcase_add_test(tc, record_replay_offline);
  tcase_add_test(tc, replayed_tools_and_http_answer_in_recorded_order);
  tcase_add_test(tc, durable_waiters_wake_in_line_order);
  tcase_add_test(tc, edited_prompt_is_caught);
  tcase_add_test(tc, changed_tool_schema_is_caught);
  tcase_add_test(tc, in_doubt_by_class);
  tcase_add_test(tc, pure_effect_is_one_line);
  tcase_add_test(tc, old_journal_with_intents_replays);
  tcase_add_test(tc, cancelled_pure_effect_resumes_and_replays);
  tcase_add_test(tc, one_line_pieces_print_as_cjson);
  tcase_add_test(tc, noctx_tool_journaled_gets_no_ctx);
  tcase_add_test(tc, token_methods_refuse_a_wrong_self);
  tcase_add_test(tc, crafted_one_line_refused);
  tcase_add_test(tc, effect_id_cut_and_lazy_key_in_record);
  tcase_add_test(tc, request_text_same_bytes_as_tree);
  tcase_add_test(tc, finish_as_given_writes_the_general_line);
  tcase_add_test(tc, malformed_journal);
  tcase_add_test(tc, off_mode_names_and_lazy_key);
  tcase_add_test(tc, replay_compares_kind_name_class);
  tcase_add_test(tc, error_message_not_utf8_records_and_replays);
  tcase_add_test(tc, journal_load_is_linear);
  tcase_add_test(tc, journal_huge_order_is_ignored);
  suite_add_tcase(s, tc);
  TCase *cli = tcase_create("cli");
  tcase_set_timeout(cli, 300);
  tcase_add_test(cli, cli_weather);
  tcase_add_test(cli, cli_finish_as_given_waits_with_sync_all);
  tcase_add_test(cli, cli_ask);
  tcase_add_test(cli, cli_concurrent_asks);
  tcase_add_test(cli, cli_concurrent_asks_on_a_terminal);
  tcase_add_test(cli, cli_every_example);
  tcase_add_test(cli, shopbot_demo_journal_replays);
  suite_add_tcase(s, cli);
  return s;
}
