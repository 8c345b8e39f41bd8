/* check_durable.c: durable runs end to end through the built luact, as a
 * user (or a power cut) would meet them:
 * - a run that waits for a person across a process exit (luact runs input),
 *   and a waiting run cancelled;
 * - the crash-point sweep: the process SIGKILLs itself at every named
 *   boundary (LUACT_CRASH_AT) over ShopBot (lc-mockllm, the real shipping
 *   service, SQLite, a Maildir outbox) and over a script with parallel
 *   branches; `luact runs resume` until the run ends must give the
 *   fault-free output, one label and one email, at-most-once effects at
 *   most once (or the run in doubt), and a journal without gap or
 *   duplicate;
 * - at least 100 random SIGKILLs from the test over 20 concurrent runs
 *   sharing one store, each restarted until it ends.
 * docs/journal.md "Durable runs and resume". */
#include <check.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lc.h"
#include "store.h"
#include "util_common.h"
#include "util_durable.h"
#include "util_ship.h"
#include "util_mock.h"

static char dir[256];
static char *out, *err;

static void setup(void) {
  lc_dur_tmpdir(dir, sizeof dir);
  out = err = NULL;
}

static void teardown(void) {
  free(out);
  free(err);
  lc_dur_rmrf(dir);
}

#define LUACT(...) (free(out), free(err), lc_dur_sh(dir, &out, &err, __VA_ARGS__))

/* A field of `luact runs show RUN --json` (malloc'd, NULL if absent). */
static char *show(const char *run, const char *field) {
  ck_assert_msg(LUACT("\"$LUACT\" runs show %s --json --store s.db", run) == 0, "%s", err);
  return lc_dur_json_str(out, field);
}

static void status_is(const char *run, const char *want) {
  char *st = show(run, "status");
  ck_assert_msg(st && !strcmp(st, want), "run %s: status %s, want %s", run, st, want);
  free(st);
}

/* ---- the journal is whole: loads (CRC, no gap), no duplicate ---- */

struct jcheck {
  cJSON *intents; /* id -> true */
  cJSON *answered;
  int dup;
  char what[200];
};

static int jline(void *ud, long seq, const char *text, size_t len) {
  struct jcheck *c = ud;
  cJSON *o = cJSON_ParseWithLength(text, len);
  ck_assert_msg(o != NULL, "line %ld is not JSON", seq);
  const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(o, "type"));
  const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(o, "id"));
  cJSON *set = NULL;
  if (type && id && !strcmp(type, "intent")) set = c->intents;
  /* A cancelled or not-run result may be followed by the effect's result. */
  if (type && id && !strcmp(type, "result") && !cJSON_GetObjectItem(o, "cancelled") &&
      !cJSON_GetObjectItem(o, "resolved"))
    set = c->answered;
  if (set) {
    if (cJSON_GetObjectItem(set, id)) {
      c->dup = 1;
      snprintf(c->what, sizeof c->what, "%s %s twice (line %ld)", type, id, seq);
    }
    cJSON_AddTrueToObject(set, id);
  }
  cJSON_Delete(o);
  return 0;
}

static void journal_whole_in(struct lc_store *s, const char *run) {
  char e[1024];
  struct jcheck c = {cJSON_CreateObject(), cJSON_CreateObject(), 0, ""};
  long last = 0;
  int rc = lc_store_journal_read(s, run, jline, &c, &last, e, sizeof e);
  ck_assert_msg(rc == 0, "run %s: %s", run, e);
  ck_assert_msg(!c.dup, "run %s: %s", run, c.what);
  cJSON_Delete(c.intents);
  cJSON_Delete(c.answered);
}

static void journal_whole(const char *store, const char *run) {
  struct lc_store *s;
  char e[1024];
  ck_assert_int_eq(lc_store_open(store, LC_STORE_SYNC_FULL, &s, e, sizeof e), 0);
  journal_whole_in(s, run);
  lc_store_close(s);
}

/* ---- waiting for a person ---- */

static const char ask_lua[] =
    "local dir = arg[1]\n"
    "local function bump(name)\n"
    "  local f = assert(io.open(dir .. '/' .. name, 'a')) f:write('x\\n') f:close()\n"
    "end\n"
    "local name = luact.ask('Your name?')\n"
    "local hi = luact.effect('tool', 'greet', {name = name}, 'at_most_once',\n"
    "  function() bump('greet') return 'hi ' .. name end)\n"
    "local color = luact.ask('Favourite colour?')\n"
    "print(hi, color)\n"
    "return {hi = hi, color = color}\n";

START_TEST(waits_for_input_across_exits) {
  lc_dur_write(dir, "ask.lua", ask_lua);
  ck_assert_int_eq(LUACT("\"$LUACT\" run --quiet --run-id w1 --store s.db ask.lua %s", dir), 6);
  ck_assert_msg(strstr(err, "run w1 is waiting for input: luact runs input w1 VALUE"), "%s", err);
  status_is("w1", "waiting_input");
  char *q = show("w1", "question");
  ck_assert_str_eq(q, "Your name?");
  free(q);
  ck_assert_int_eq(lc_dur_lines(dir, "greet"), 0);
  /* The answer resumes the run (a new process); it waits again. */
  ck_assert_msg(LUACT("\"$LUACT\" runs input w1 Ann --store s.db") == 6, "%s", err);
  ck_assert_msg(strstr(out, "run w1: answered"), "%s", out);
  status_is("w1", "waiting_input");
  q = show("w1", "question");
  ck_assert_str_eq(q, "Favourite colour?");
  free(q);
  ck_assert_int_eq(lc_dur_lines(dir, "greet"), 1);
  /* Answered without resuming, then resumed on its own. */
  ck_assert_int_eq(LUACT("\"$LUACT\" runs input w1 teal --no-resume --store s.db"), 0);
  status_is("w1", "interrupted"); /* running, and no process runs it */
  ck_assert_msg(LUACT("\"$LUACT\" runs resume w1 --store s.db") == 0, "%s", err);
  ck_assert_str_eq(out, "hi Ann\tteal\n");
  status_is("w1", "finished");
  char *res = show("w1", "result");
  ck_assert_msg(strstr(res, "\"hi\":\"hi Ann\"") && strstr(res, "\"color\":\"teal\""), "%s", res);
  free(res);
  /* The same answer again is harmless; a different one is refused. */
  ck_assert_int_eq(LUACT("\"$LUACT\" runs input w1 teal --store s.db"), 0);
  ck_assert_msg(strstr(out, "already answered with this value"), "%s", out);
  ck_assert_int_eq(LUACT("\"$LUACT\" runs input w1 red --store s.db"), 2);
  ck_assert_msg(strstr(err, "already answered with a different value"), "%s", err);
  ck_assert_int_eq(lc_dur_lines(dir, "greet"), 1);
  status_is("w1", "finished");
  char store[320];
  snprintf(store, sizeof store, "%s/s.db", dir);
  journal_whole(store, "w1");
}
END_TEST

/* luact runs input --question names the question a value answers. A
 * value meant for the first question, given again after the run asked a
 * second one, used to answer the second (it was the one waiting). */
START_TEST(input_names_its_question) {
  lc_dur_write(dir, "ask.lua", ask_lua);
  ck_assert_int_eq(LUACT("\"$LUACT\" run --quiet --run-id n1 --store s.db ask.lua %s", dir), 6);
  char *qid = show("n1", "question_id");
  ck_assert_ptr_nonnull(qid);
  /* A question it never asked: refused, nothing recorded. */
  ck_assert_int_eq(LUACT("\"$LUACT\" runs input n1 Ann --question 'Your age?' --store s.db"), 2);
  ck_assert_msg(strstr(err, "never asked \"Your age?\"") && strstr(err, "Your name?"), "%s", err);
  status_is("n1", "waiting_input");
  /* Named by its text: answered, resumed; it asks the second question. */
  ck_assert_msg(LUACT("\"$LUACT\" runs input n1 Ann --question 'Your name?' --store s.db") == 6,
                "%s", err);
  char *q = show("n1", "question");
  ck_assert_str_eq(q, "Favourite colour?");
  free(q);
  /* The first question again: never an answer to the second. */
  ck_assert_int_eq(LUACT("\"$LUACT\" runs input n1 Bob --question 'Your name?' --store s.db"), 2);
  ck_assert_msg(strstr(err, "already answered with a different value"), "%s", err);
  ck_assert_int_eq(LUACT("\"$LUACT\" runs input n1 Ann --question %s --store s.db", qid), 0);
  ck_assert_msg(strstr(out, "already answered with this value"), "%s", out);
  status_is("n1", "waiting_input");
  q = show("n1", "question");
  ck_assert_str_eq(q, "Favourite colour?");
  free(q);
  /* The second question, by its id. */
  char *qid2 = show("n1", "question_id");
  ck_assert_ptr_nonnull(qid2);
  ck_assert_str_ne(qid, qid2);
  ck_assert_msg(LUACT("\"$LUACT\" runs input n1 teal --question %s --store s.db", qid2) == 0, "%s",
                err);
  ck_assert_str_eq(out, "run n1: answered\nhi Ann\tteal\n");
  status_is("n1", "finished");
  free(qid);
  free(qid2);
  ck_assert_int_eq(lc_dur_lines(dir, "greet"), 1);
  char store[320];
  snprintf(store, sizeof store, "%s/s.db", dir);
  journal_whole(store, "n1");
}
END_TEST

START_TEST(waiting_run_cancelled) {
  lc_dur_write(dir, "ask.lua", ask_lua);
  ck_assert_int_eq(LUACT("\"$LUACT\" run --quiet --run-id c1 --store s.db ask.lua %s", dir), 6);
  ck_assert_int_eq(LUACT("\"$LUACT\" runs cancel c1 --store s.db"), 0);
  ck_assert_msg(strstr(out, "run c1: cancelled"), "%s", out);
  status_is("c1", "cancelled");
  ck_assert_int_eq(LUACT("\"$LUACT\" runs cancel c1 --store s.db"), 0);
  ck_assert_msg(strstr(out, "already cancelled"), "%s", out);
  ck_assert_int_eq(LUACT("\"$LUACT\" runs input c1 Ann --store s.db"), 2);
  ck_assert_int_eq(LUACT("\"$LUACT\" runs resume c1 --store s.db"), 2);
  ck_assert_msg(strstr(err, "is cancelled"), "%s", err);
  ck_assert_int_eq(lc_dur_lines(dir, "greet"), 0);
  status_is("c1", "cancelled");
}
END_TEST

/* A running run asked to stop (here by itself, so that the cancel
 * surely comes while it runs) stops at one of its next effects. */
START_TEST(running_run_cancelled) {
  lc_dur_write(dir, "loop.lua",
               "local function e(i) return luact.effect('tool', 'e', {i = i}, 'idempotent',\n"
               "  function() local f = io.open(arg[1] .. '/e', 'a') f:write('x\\n') f:close() end) end\n"
               "e(0)\n"
               "os.execute(os.getenv('LUACT') .. ' runs cancel ' .. luact.run_id .. ' --store s.db')\n"
               "for i = 1, 20 do e(i) end\n"
               "return 0\n");
  ck_assert_int_eq(LUACT("\"$LUACT\" run --quiet --run-id r1 --store s.db loop.lua %s", dir), 7);
  ck_assert_msg(strstr(err, "cancelled"), "%s", err);
  ck_assert_msg(strstr(out, "cancel requested"), "%s", out);
  status_is("r1", "cancelled");
  int n = lc_dur_lines(dir, "e");
  ck_assert_msg(n >= 1 && n < 5, "%d effects ran", n);
  ck_assert_int_eq(LUACT("\"$LUACT\" runs resume r1 --store s.db"), 2);
  ck_assert_int_eq(lc_dur_lines(dir, "e"), n);
}
END_TEST

/* ---- ShopBot: the crash-point sweep ---- */

static struct lc_mock mock;
static cJSON *rules; /* examples/shopbot/mock.json's rules */
static pid_t ship_pid = -1;
static char ship_url[64];

static void ship_start(const char *db) {
  ship_pid = lc_test_ship_start(db, ship_url, sizeof ship_url);
}

static void ship_stop(void) {
  if (ship_pid <= 0) return;
  kill(ship_pid, SIGTERM);
  lc_dur_wait(ship_pid);
  ship_pid = -1;
}

static void shop_setup(void) {
  setup();
  char p[512];
  snprintf(p, sizeof p, "%s/examples/shopbot/mock.json", lc_test_source_dir());
  char *t = lc_test_read_file(p, NULL);
  ck_assert_ptr_nonnull(t);
  cJSON *m = cJSON_Parse(t);
  free(t);
  rules = cJSON_DetachItemFromObject(m, "rules");
  cJSON_Delete(m);
  ck_assert_ptr_nonnull(rules);
  memset(&mock, 0, sizeof mock);
  ck_assert_int_eq(lc_mock_start_file(&mock, p, NULL), 0);
}

static void shop_teardown(void) {
  ship_stop();
  if (mock.pid > 0) lc_mock_stop(&mock);
  cJSON_Delete(rules);
  teardown();
}

/* The model answers from rule `from` on: a resumed run asks again only what
 * the journal has no answer for, and gets the answers it would have got. */
static void mock_from(int from) {
  cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "rules");
  for (int i = from; i < cJSON_GetArraySize(rules); i++)
    cJSON_AddItemToArray(a, cJSON_Duplicate(cJSON_GetArrayItem(rules, i), 1));
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  ck_assert_int_eq(lc_mock_set_script(&mock, s), 0);
  free(s);
}

/* LLM calls with an answer in run's journal. */
struct llm_count {
  cJSON *llm_ids;
  int answered;
};

static int count_llm(void *ud, long seq, const char *text, size_t len) {
  (void)seq;
  struct llm_count *c = ud;
  cJSON *o = cJSON_ParseWithLength(text, len);
  const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(o, "type"));
  const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(o, "id"));
  const char *kind = cJSON_GetStringValue(cJSON_GetObjectItem(o, "kind"));
  if (type && id && !strcmp(type, "intent") && kind && !strcmp(kind, "llm"))
    cJSON_AddTrueToObject(c->llm_ids, id);
  if (type && id && !strcmp(type, "result") && cJSON_GetObjectItem(c->llm_ids, id) &&
      !cJSON_GetObjectItem(o, "cancelled"))
    c->answered++;
  cJSON_Delete(o);
  return 0;
}

static int llm_answered(const char *store, const char *run) {
  struct lc_store *s;
  char e[1024];
  ck_assert_int_eq(lc_store_open(store, LC_STORE_SYNC_FULL, &s, e, sizeof e), 0);
  struct llm_count c = {cJSON_CreateObject(), 0};
  long last;
  int rc = lc_store_journal_read(s, run, count_llm, &c, &last, e, sizeof e);
  lc_store_close(s);
  cJSON_Delete(c.llm_ids);
  return rc == 0 ? c.answered : 0; /* no run yet: nothing answered */
}

static long long sql_int(const char *db, const char *q) {
  sqlite3 *h;
  ck_assert_int_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *st;
  ck_assert_msg(sqlite3_prepare_v2(h, q, -1, &st, NULL) == SQLITE_OK, "%s", sqlite3_errmsg(h));
  ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
  long long v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(h);
  return v;
}

static int files_in(const char *sub) {
  DIR *d = opendir(sub);
  if (!d) return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

/* One ShopBot return in data folder sub of dir, killed at crash (NULL:
 * none), resumed until it ends. Returns the last process's stdout. */
static char *shopbot_run(const char *sub, const char *crash, int *crashed) {
  char data[400], db[450];
  snprintf(data, sizeof data, "%s/%s", dir, sub);
  snprintf(db, sizeof db, "%s/shipping.db", data);
  ck_assert_int_eq(LUACT("mkdir -p '%s'", data), 0);
  ship_start(db);
  mock_from(0);
  char envs[2048];
  snprintf(envs, sizeof envs,
           "OPENAI_BASE_URL=%s/v1 LUACT_MODEL=openai:mock-gpt SHOPBOT_SHIPPING_URL=%s "
           "SHOPBOT_DATA='%s' SHOPBOT_INPUTS=examples/shopbot/offline-inputs.txt",
           mock.base_url, ship_url, data);
  char store[450];
  snprintf(store, sizeof store, "%s/s.db", data);
  free(out);
  free(err);
  int rc = lc_dur_sh(NULL, &out, &err,
                     "%s%s%s \"$LUACT\" run --quiet --store '%s' --run-id %s "
                     "examples/shopbot/chat.lua",
                     envs, crash ? " LUACT_CRASH_AT=" : "", crash ? crash : "", store, sub);
  *crashed = rc == 137;
  for (int k = 0; rc == 137 && k < 4; k++) {
    free(out);
    free(err);
    mock_from(llm_answered(store, sub));
    rc = lc_dur_sh(NULL, &out, &err, "%s \"$LUACT\" runs resume %s --quiet --store '%s'", envs,
                   sub, store);
    /* Killed before the writer's first commit (a loaded machine: the mock
     * answered first), the run left nothing in the store: it is started
     * again under its id, as docs/journal.md says. Nothing external ran
     * before that point, and the checks below still hold it to one label. */
    if (rc != 0 && rc != 137 && err && strstr(err, "no run ")) {
      free(out);
      free(err);
      mock_from(0);
      rc = lc_dur_sh(NULL, &out, &err,
                     "%s \"$LUACT\" run --quiet --store '%s' --run-id %s examples/shopbot/chat.lua",
                     envs, store, sub);
    }
  }
  ck_assert_msg(rc == 0, "%s: exit %d: %s", crash ? crash : "no crash", rc, err);
  char *o = out;
  out = NULL;
  free(err);
  err = NULL;
  /* One label, one request that made it... */
  ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM labels"), 1);
  ck_assert_int_eq(sql_int(db, "SELECT count(DISTINCT idempotency_key) FROM requests"), 1);
  /* ...one return recorded, one message in the outbox. */
  char p[500];
  snprintf(p, sizeof p, "%s/shop.db", data);
  ck_assert_int_eq(sql_int(p, "SELECT count(*) FROM returns WHERE status = 'emailed'"), 1);
  snprintf(p, sizeof p, "%s/outbox/new", data);
  ck_assert_int_eq(files_in(p), 1);
  snprintf(p, sizeof p, "%s/outbox/tmp", data);
  ck_assert_int_eq(files_in(p), 0);
  journal_whole(store, sub);
  ship_stop();
  return o;
}

START_TEST(shopbot_crash_point_sweep) {
  int crashed;
  char *want = shopbot_run("base", NULL, &crashed);
  ck_assert_msg(strstr(want, "shopbot> Done! Your return label is in your inbox."), "%s", want);
  /* tool: lookup_order, shop_sql x2, select_items, create_label,
   * send_label_email; http: the label POST; llm: 12 calls (8 and 9 are
   * around the label). */
  static const struct {
    const char *kind;
    int n[6];
  } at[] = {{"tool", {1, 2, 4, 5, 6}}, {"http", {1}}, {"llm", {1, 8, 9, 12}}};
  static const char *const points[] = {"after_intent", "before_result", "after_result"};
  int k = 0, hit = 0;
  for (size_t p = 0; p < 3; p++)
    for (size_t a = 0; a < sizeof at / sizeof *at; a++)
      for (int i = 0; i < 6 && at[a].n[i]; i++) {
        char crash[64], sub[32];
        snprintf(crash, sizeof crash, "%s@%s#%d", points[p], at[a].kind, at[a].n[i]);
        snprintf(sub, sizeof sub, "r%d", k++);
        char *got = shopbot_run(sub, crash, &crashed);
        ck_assert_msg(crashed, "%s: never reached", crash);
        ck_assert_msg(!strcmp(got, want), "%s: output differs:\n%s\n--- want:\n%s", crash, got,
                      want);
        free(got);
        hit++;
      }
  char *got = shopbot_run("final", "before_final_status", &crashed);
  ck_assert(crashed);
  ck_assert_str_eq(got, want);
  free(got);
  ck_assert_int_eq(hit, 30);
  free(want);
}
END_TEST

/* ---- a script with parallel branches ---- */

/* Three branches of pure, idempotent and at-most-once effects (each body
 * appends to a file of its own: the count of real runs), then a question
 * (unless noask) and a last at-most-once effect. */
static const char par_lua[] =
    "local dir, mode, n = arg[1], arg[2], tonumber(arg[3]) or 3\n"
    "local function bump(name, line)\n"
    "  local f = assert(io.open(dir .. '/' .. name, 'a')) f:write(line or 'x', '\\n') f:close()\n"
    "end\n"
    "local function branch(b)\n"
    "  return function()\n"
    "    local acc = {}\n"
    "    for i = 1, n do\n"
    "      local v = luact.effect('tool', 'p', {b = b, i = i}, 'pure',\n"
    "        function() bump('p' .. b .. '_' .. i) return b * 10 + i end)\n"
    "      acc[#acc + 1] = luact.effect('tool', 'i', {b = b, i = i}, 'idempotent',\n"
    "        function(ctx) bump('i' .. b .. '_' .. i, ctx.idempotency_key) return v * 2 end)\n"
    "    end\n"
    "    acc[#acc + 1] = luact.effect('tool', 'm' .. b, {b = b}, 'at_most_once',\n"
    "      function() bump('m' .. b) return 'sent' .. b end)\n"
    "    return table.concat(acc, ',')\n"
    "  end\n"
    "end\n"
    "local r = luact.parallel{branch(1), branch(2), branch(3)}\n"
    "local answer = mode == 'noask' and 'none' or luact.ask('approve?')\n"
    "local fin = luact.effect('tool', 'fin', {a = answer}, 'at_most_once',\n"
    "  function() bump('fin') return 'done' end)\n"
    "return {r[1], r[2], r[3], answer, fin}\n";

/* The run's result with n effects of each kind per branch. */
static void par_result(char *buf, size_t len, int n, const char *answer) {
  size_t k = (size_t)snprintf(buf, len, "[");
  for (int b = 1; b <= 3; b++) {
    k += (size_t)snprintf(buf + k, len - k, "\"");
    for (int i = 1; i <= n; i++) k += (size_t)snprintf(buf + k, len - k, "%d,", (b * 10 + i) * 2);
    k += (size_t)snprintf(buf + k, len - k, "sent%d\",", b);
  }
  snprintf(buf + k, len - k, "\"%s\",\"done\"]", answer);
}

/* Every idempotent body ran with one key; every at-most-once one once. */
static void par_counts_ok(const char *d, const char *what, int n) {
  for (int b = 1; b <= 3; b++) {
    char f[32];
    snprintf(f, sizeof f, "m%d", b);
    ck_assert_msg(lc_dur_lines(d, f) == 1, "%s: %s ran %d times", what, f, lc_dur_lines(d, f));
    for (int i = 1; i <= n; i++) {
      char p[600];
      snprintf(p, sizeof p, "%s/i%d_%d", d, b, i);
      char *t = lc_test_read_file(p, NULL);
      ck_assert_msg(t != NULL, "%s: i%d_%d never ran", what, b, i);
      for (char *l = t; *l; l += 33) ck_assert_msg(!strncmp(l, t, 33), "%s: two keys", what);
      free(t);
    }
  }
  ck_assert_msg(lc_dur_lines(d, "fin") == 1, "%s: fin ran %d times", what, lc_dur_lines(d, "fin"));
}

/* What a person does with a run in doubt: looks at the effect's own
 * record (its file) and says what happened. Returns the command's exit
 * (it resumes the run). */
static int person_resolves(const char *d, const char *store, const char *run) {
  char *e = NULL;
  ck_assert_int_eq(lc_dur_sh(d, &e, NULL, "\"$LUACT\" runs show %s --json --store '%s'", run,
                             store),
                   0);
  char *why = lc_dur_json_str(e, "error");
  free(e);
  ck_assert_ptr_nonnull(why);
  char id[64], name[16];
  ck_assert_msg(sscanf(why, "in_doubt: effect %63s (tool %15[^,],", id, name) == 2, "%s", why);
  free(why);
  int n = lc_dur_lines(d, name);
  ck_assert_msg(n <= 1, "%s ran %d times", name, n);
  char value[32];
  snprintf(value, sizeof value, "%s%s", strcmp(name, "fin") ? "sent" : "done",
           strcmp(name, "fin") ? name + 1 : "");
  if (n == 0)
    return lc_dur_sh(d, NULL, NULL, "\"$LUACT\" runs resolve %s '%s' --not-run --quiet --store '%s'",
                     run, id, store);
  return lc_dur_sh(d, NULL, NULL,
                   "\"$LUACT\" runs resolve %s '%s' --result '[\"%s\"]' --store '%s'", run, id,
                   value, store);
}

static int run_exists(const char *store, const char *id);

/* Drives run to its end like its operator: resumes after a crash (or
 * starts it again when the crash came before its first line was
 * committed: there is nothing to resume), answers the question (yes),
 * settles what is in doubt. */
static int par_finish(const char *d, const char *store, const char *run, int rc) {
  for (int k = 0; k < 8 && rc != 0; k++) {
    if (rc == 137 && !run_exists(store, run))
      rc = lc_dur_sh(d, NULL, NULL, "\"$LUACT\" run --quiet --store '%s' --run-id %s ../par.lua .",
                     store, run);
    else if (rc == 137)
      rc = lc_dur_sh(d, NULL, NULL, "\"$LUACT\" runs resume %s --quiet --store '%s'", run, store);
    else if (rc == 6) rc = lc_dur_sh(d, NULL, NULL, "\"$LUACT\" runs input %s yes --store '%s'",
                                     run, store);
    else if (rc == 4) rc = person_resolves(d, store, run);
    else break;
  }
  return rc;
}

START_TEST(parallel_crash_point_sweep) {
  lc_dur_write(dir, "par.lua", par_lua);
  char want[512];
  par_result(want, sizeof want, 3, "yes");
  static const char *const points[] = {"after_intent", "before_result", "after_result"};
  /* 21 tool effects before the question (3 branches of 3 pure, 3
   * idempotent, 1 at-most-once), then `fin` (0 here: tool#1 of the
   * process that the answer resumes). */
  static const int ns[] = {1, 4, 7, 10, 15, 20, 21, 0};
  const int nc = 3 * (int)(sizeof ns / sizeof *ns);
  for (int c = -1; c < nc + 2; c++) {
    char crash[64] = "", sub[32], d[300], store[320];
    int at_fin = c >= 0 && c < nc && ns[c / 3] == 0;
    if (c >= 0 && c < nc)
      snprintf(crash, sizeof crash, "%s@tool#%d", points[c % 3], at_fin ? 1 : ns[c / 3]);
    else if (c >= 0)
      snprintf(crash, sizeof crash, "%s", c == nc ? "waiting_input" : "before_final_status");
    snprintf(sub, sizeof sub, "p%d", c + 1);
    snprintf(d, sizeof d, "%s/%s", dir, sub);
    snprintf(store, sizeof store, "%s/s.db", d);
    ck_assert_int_eq(LUACT("mkdir -p '%s'", d), 0);
    int rc = lc_dur_sh(d, NULL, NULL,
                       "%s%s \"$LUACT\" run --quiet --store s.db --run-id %s ../par.lua .",
                       crash[0] && !at_fin ? "LUACT_CRASH_AT=" : "", at_fin ? "" : crash, sub);
    if (at_fin) { /* the crash comes in the process the answer starts */
      ck_assert_int_eq(rc, 6);
      rc = lc_dur_sh(d, NULL, NULL, "LUACT_CRASH_AT=%s \"$LUACT\" runs input %s yes --store s.db",
                     crash, sub);
    }
    ck_assert_msg(c < 0 ? rc == 6 : rc == 137, "%s: exit %d", crash, rc);
    rc = par_finish(d, store, sub, rc);
    ck_assert_msg(rc == 0, "%s: exit %d", crash[0] ? crash : "no crash", rc);
    char *res = NULL, *o = NULL;
    ck_assert_int_eq(lc_dur_sh(d, &o, NULL, "\"$LUACT\" runs show %s --json --store s.db", sub),
                     0);
    res = lc_dur_json_str(o, "result");
    char *st = lc_dur_json_str(o, "status");
    free(o);
    ck_assert_msg(res && !strcmp(res, want), "%s: result %s", crash, res);
    ck_assert_msg(st && !strcmp(st, "finished"), "%s: %s", crash, st);
    free(res);
    free(st);
    par_counts_ok(d, crash[0] ? crash : "no crash", 3);
    journal_whole(store, sub);
  }
}
END_TEST

/* ---- random SIGKILLs over concurrent runs ---- */

enum { RUNS = 20, KILLS = 100, STEPS = 30, MAX_DONE = 4000 };

struct slot {
  pid_t pid;
  int started, gen, killed;
  char id[32], d[300];
};

static unsigned long long rng = 0x2545F4914F6CDD1DULL; /* fixed seed: a failure repeats */
static unsigned rnd(unsigned n) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (unsigned)(rng % n);
}

/* Does the store hold run id? (A kill before its first line leaves none.) */
static int run_exists(const char *store, const char *id) {
  struct lc_store *s;
  char e[1024];
  ck_assert_int_eq(lc_store_open(store, LC_STORE_SYNC_FULL, &s, e, sizeof e), 0);
  struct lc_run_row r;
  int rc = lc_store_run_get(s, id, &r, e, sizeof e);
  if (!rc) lc_run_row_free(&r);
  lc_store_close(s);
  ck_assert_msg(rc == 0 || rc == LC_ENOTFOUND, "%s", e);
  return rc == 0;
}

static int run_finished(const char *store, const char *id) {
  struct lc_store *s;
  char e[1024];
  ck_assert_int_eq(lc_store_open(store, LC_STORE_SYNC_FULL, &s, e, sizeof e), 0);
  struct lc_run_row r;
  int rc = lc_store_run_get(s, id, &r, e, sizeof e);
  int done = !rc && r.status && !strcmp(r.status, "finished");
  if (!rc) lc_run_row_free(&r);
  lc_store_close(s);
  return done;
}

/* A new run in slot i (generation g): its own id and folder. */
static void slot_new(struct slot *s, int i) {
  s->started = 0;
  snprintf(s->id, sizeof s->id, "k%d_%d", i, s->gen++);
  snprintf(s->d, sizeof s->d, "%s/%s", dir, s->id);
  ck_assert_int_eq(mkdir(s->d, 0700), 0);
}

static void slot_start(struct slot *s, const char *store) {
  char o[400], e[400];
  snprintf(o, sizeof o, "%s/out", s->d);
  snprintf(e, sizeof e, "%s/err", s->d);
  if (s->started && run_exists(store, s->id))
    s->pid = lc_dur_spawn(s->d, o, e, "\"$LUACT\" runs resume %s --quiet --store '%s'", s->id,
                          store);
  else
    s->pid = lc_dur_spawn(s->d, o, e,
                          "\"$LUACT\" run --quiet --store '%s' --run-id %s ../par.lua . noask %d",
                          store, s->id, STEPS);
  s->started = 1;
}

/* A run that ended: the fault-free result, each effect's count right, a
 * whole journal (checked at the end, through one connection: the loop
 * must not fall behind the runs it kills). */
static void slot_check(struct lc_store *st, const char *id, const char *d, const char *want) {
  struct lc_run_row r;
  char e[1024];
  ck_assert_msg(lc_store_run_get(st, id, &r, e, sizeof e) == 0, "%s", e);
  ck_assert_msg(r.status && !strcmp(r.status, "finished"), "run %s: %s", id, r.status);
  ck_assert_msg(r.result && !strcmp(r.result, want), "run %s: %s", id, r.result);
  lc_run_row_free(&r);
  par_counts_ok(d, id, STEPS);
  journal_whole_in(st, id);
}

static struct slot sl[RUNS];
static int kills, live, restarts, finished;
static char kstore[320], kwant[1024];
static char (*done_ids)[32];

/* A process of the loop ended with status st. */
static void reaped(pid_t p, int st) {
  for (int i = 0; i < RUNS; i++) {
    if (sl[i].pid != p) continue;
    sl[i].pid = 0;
    sl[i].killed = 0;
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    /* Several at-most-once effects may be in flight at a kill. */
    for (int t = 0; t < 5 && rc == 4; t++) rc = person_resolves(sl[i].d, kstore, sl[i].id);
    /* Killed after it committed its final status (while exiting): the
     * resume says there is nothing to resume. */
    if (rc == 2 && run_finished(kstore, sl[i].id)) rc = 0;
    if (rc == 0) {
      ck_assert_int_lt(finished, MAX_DONE);
      snprintf(done_ids[finished++], 32, "%s", sl[i].id);
      /* Until the kills are done, the slot takes a new run. */
      if (kills < KILLS) {
        slot_new(&sl[i], i);
        slot_start(&sl[i], kstore);
      } else {
        live--;
      }
    } else {
      if (rc != 137) {
        char ep[400];
        snprintf(ep, sizeof ep, "%s/err", sl[i].d);
        char *e = lc_test_read_file(ep, NULL);
        ck_abort_msg("run %s: exit %d: %s", sl[i].id, rc, e ? e : "");
      }
      /* Restarted as a crashed process would be: by its operator. */
      slot_start(&sl[i], kstore);
      restarts++;
    }
  }
}

/* Reaps what has ended, at most one per slot: then back to killing. */
static void reap_ready(void) {
  int st;
  pid_t p;
  for (int k = 0; k < RUNS && (p = waitpid(-1, &st, WNOHANG)) > 0; k++) reaped(p, st);
}

START_TEST(random_kills_over_concurrent_runs) {
  lc_dur_write(dir, "par.lua", par_lua);
  snprintf(kstore, sizeof kstore, "%s/s.db", dir);
  par_result(kwant, sizeof kwant, STEPS, "none");
  for (int i = 0; i < RUNS; i++) {
    memset(&sl[i], 0, sizeof sl[i]);
    slot_new(&sl[i], i);
    slot_start(&sl[i], kstore);
  }
  kills = restarts = finished = 0;
  done_ids = calloc(MAX_DONE, sizeof *done_ids);
  live = RUNS;
  time_t t0 = time(NULL);
  while (live > 0) {
    if (kills < KILLS) {
      /* The fault: a random running process, after a random delay. */
      struct timespec ts = {0, (long)(1 + rnd(20)) * 1000000L};
      nanosleep(&ts, NULL);
      reap_ready(); /* so that the kill never lands on one that ended */
      int i = (int)rnd(RUNS);
      for (int t = 0; t < RUNS && (sl[i].pid <= 0 || sl[i].killed); t++) i = (i + 1) % RUNS;
      if (sl[i].pid > 0 && !sl[i].killed && kill(sl[i].pid, SIGKILL) == 0) {
        kills++;
        sl[i].killed = 1; /* once: a second kill could hit its zombie */
      }
      reap_ready();
    } else {
      int st;
      pid_t p = waitpid(-1, &st, 0);
      if (p > 0) reaped(p, st);
    }
    ck_assert_msg(time(NULL) - t0 < 150, "runs still going after 150 s (%d left)", live);
  }
  ck_assert_int_ge(kills, KILLS);
  ck_assert_int_ge(finished, RUNS);
  struct lc_store *st;
  char e[1024];
  ck_assert_int_eq(lc_store_open(kstore, LC_STORE_SYNC_FULL, &st, e, sizeof e), 0);
  for (int k = 0; k < finished; k++) {
    char d[300];
    snprintf(d, sizeof d, "%s/%s", dir, done_ids[k]);
    slot_check(st, done_ids[k], d, kwant);
  }
  lc_store_close(st);
  free(done_ids);
  /* A kill may still meet a process that ended after the reap. */
  ck_assert_msg(restarts >= KILLS * 9 / 10, "only %d of %d kills hit a live run", restarts, kills);
}
END_TEST

Suite *durable_suite(void) {
  Suite *s = suite_create("durable");
  TCase *tc = tcase_create("input");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, waits_for_input_across_exits);
  tcase_add_test(tc, input_names_its_question);
  tcase_add_test(tc, waiting_run_cancelled);
  tcase_add_test(tc, running_run_cancelled);
  suite_add_tcase(s, tc);
  tc = tcase_create("crash_points");
  tcase_set_timeout(tc, 240);
  tcase_add_checked_fixture(tc, shop_setup, shop_teardown);
  tcase_add_test(tc, shopbot_crash_point_sweep);
  suite_add_tcase(s, tc);
  tc = tcase_create("crash_points_parallel");
  tcase_set_timeout(tc, 240);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, parallel_crash_point_sweep);
  tcase_add_test(tc, random_kills_over_concurrent_runs);
  suite_add_tcase(s, tc);
  return s;
}
