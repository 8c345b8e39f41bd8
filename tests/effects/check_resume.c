/* check_resume.c: luact run --resume, through the built binary. The script
 * makes three effects (pure a, idempotent b, at-most-once c) whose bodies
 * append a line to a file of their own, so the files count how often each
 * really ran; the process is killed at a named crash point
 * (LUACT_CRASH_AT) and the run resumed, from a JSONL journal or from the
 * run store. docs/journal.md "Durable runs and resume". */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util_common.h"
#include "util_durable.h"

static char dir[256];
static char *out, *err;

/* EFF_REQ changes effect b's request without changing the script. */
static const char eff_lua[] =
    "local dir = arg[1]\n"
    "local function bump(name, line)\n"
    "  local f = assert(io.open(dir .. '/' .. name, 'a'))\n"
    "  f:write(line or 'x', '\\n')\n"
    "  f:close()\n"
    "end\n"
    "print('run', luact.run_id)\n"
    "local a = luact.effect('tool', 'a', {n = 1}, 'pure', function() bump('a') return 'A' end)\n"
    "local b = luact.effect('tool', 'b', {n = os.getenv('EFF_REQ') or '2'}, 'idempotent',\n"
    "  function(ctx) bump('b', ctx.idempotency_key) return 'B' end)\n"
    "local c = luact.effect('tool', 'c', {n = 3}, 'at_most_once', function() bump('c') return 'C' end)\n"
    "print('out', a, b, c)\n"
    "return 0\n";

static void setup(void) {
  lc_dur_tmpdir(dir, sizeof dir);
  lc_dur_write(dir, "eff.lua", eff_lua);
  out = err = NULL;
}

static void teardown(void) {
  free(out);
  free(err);
  lc_dur_rmrf(dir);
}

/* Runs a luact command line in dir; out/err keep what it printed. */
#define LUACT(...) (free(out), free(err), lc_dur_sh(dir, &out, &err, __VA_ARGS__))

static void counts(int a, int b, int c) {
  ck_assert_int_eq(lc_dur_lines(dir, "a"), a);
  ck_assert_int_eq(lc_dur_lines(dir, "b"), b);
  ck_assert_int_eq(lc_dur_lines(dir, "c"), c);
}

/* Record into j.jsonl, killed at point. */
static void record_crash(const char *point) {
  ck_assert_int_eq(LUACT("LUACT_CRASH_AT=%s \"$LUACT\" run --quiet --record j.jsonl eff.lua %s",
                         point, dir),
                   137);
}

static int resume_jsonl(const char *opts) {
  return LUACT("\"$LUACT\" run --quiet --resume j.jsonl %s eff.lua %s", opts, dir);
}

/* The journal still loads whole (no gap, duplicate or glued line) and
 * answers the run completely. */
static void replays_clean(void) {
  ck_assert_msg(LUACT("\"$LUACT\" run --quiet --replay j.jsonl eff.lua %s", dir) == 0, "%s", err);
  ck_assert_msg(strstr(out, "out\tA\tB\tC\n"), "%s", out);
}

START_TEST(prefix_answered_nothing_runs_again) {
  record_crash("after_result@tool#3");
  counts(1, 1, 1);
  ck_assert_msg(resume_jsonl("") == 0, "%s", err);
  ck_assert_msg(strstr(out, "out\tA\tB\tC\n"), "%s", out);
  counts(1, 1, 1);
  /* Again: still nothing runs. */
  ck_assert_int_eq(resume_jsonl(""), 0);
  counts(1, 1, 1);
  replays_clean();
}
END_TEST

START_TEST(pure_and_idempotent_run_again_with_their_key) {
  record_crash("before_result@tool#2"); /* b ran, its result is lost */
  counts(1, 1, 0);
  ck_assert_msg(resume_jsonl("") == 0, "%s", err);
  ck_assert_msg(strstr(out, "out\tA\tB\tC\n"), "%s", out);
  counts(1, 2, 1); /* a answered, b again, c once */
  char p[300];
  snprintf(p, sizeof p, "%s/b", dir);
  char *keys = lc_test_read_file(p, NULL);
  ck_assert_uint_eq(strlen(keys), 66);
  ck_assert_int_eq(strncmp(keys, keys + 33, 33), 0); /* the same key twice */
  snprintf(p, sizeof p, "%s/j.jsonl", dir);
  char *j = lc_test_read_file(p, NULL);
  char want[64];
  snprintf(want, sizeof want, "\"idempotency_key\":\"%.32s\"", keys);
  ck_assert_msg(strstr(j, want), "%s not in %s", want, j);
  free(keys);
  free(j);
  replays_clean();

  /* A pure effect cut before its result runs again too. */
  teardown();
  setup();
  record_crash("before_result@tool#1");
  ck_assert_int_eq(resume_jsonl(""), 0);
  counts(2, 1, 1);
}
END_TEST

START_TEST(at_most_once_in_doubt_never_twice) {
  record_crash("before_result@tool#3"); /* c ran, no result */
  counts(1, 1, 1);
  ck_assert_int_eq(resume_jsonl(""), 4);
  ck_assert_msg(strstr(err, "in_doubt") && strstr(err, "1#3"), "%s", err);
  ck_assert_ptr_null(strstr(out, "out\t"));
  counts(1, 1, 1);
  ck_assert_int_eq(resume_jsonl(""), 4);
  counts(1, 1, 1);
}
END_TEST

/* The same in the store, settled with luact runs resolve. */
static char *store_crash(const char *point) {
  ck_assert_int_eq(
      LUACT("LUACT_CRASH_AT=%s \"$LUACT\" run --quiet --store s.db eff.lua %s", point, dir), 137);
  char *run = lc_dur_newest_run(dir, "s.db");
  ck_assert_ptr_nonnull(run);
  return run;
}

static void status_is(const char *run, const char *want) {
  ck_assert_int_eq(LUACT("\"$LUACT\" runs show %s --json --store s.db", run), 0);
  char *st = lc_dur_json_str(out, "status");
  ck_assert_msg(st && !strcmp(st, want), "status %s, want %s: %s", st, want, out);
  free(st);
}

START_TEST(store_in_doubt_resolved_not_run_runs_once) {
  char *run = store_crash("after_intent@tool#3"); /* c never ran */
  counts(1, 1, 0);
  ck_assert_int_eq(LUACT("\"$LUACT\" runs resume %s --quiet --store s.db", run), 4);
  ck_assert_msg(strstr(err, "in_doubt"), "%s", err);
  status_is(run, "in_doubt");
  counts(1, 1, 0);
  /* A person finds c did not happen: it runs, once, on resume. */
  ck_assert_msg(LUACT("\"$LUACT\" runs resolve %s '1#3' --not-run --store s.db", run) == 0, "%s",
                err);
  ck_assert_msg(strstr(out, "out\tA\tB\tC\n"), "%s", out);
  counts(1, 1, 1);
  status_is(run, "finished");
  ck_assert_int_eq(LUACT("\"$LUACT\" runs resume %s --store s.db", run), 2);
  counts(1, 1, 1);
  free(run);
}
END_TEST

START_TEST(store_in_doubt_resolved_with_result) {
  char *run = store_crash("before_result@tool#3"); /* c ran */
  ck_assert_int_eq(LUACT("\"$LUACT\" runs resume %s --quiet --store s.db", run), 4);
  ck_assert_msg(LUACT("\"$LUACT\" runs resolve %s '1#3' --result '[\"C2\"]' --store s.db", run) ==
                    0,
                "%s", err);
  ck_assert_msg(strstr(out, "out\tA\tB\tC2\n"), "%s", out);
  counts(1, 1, 1);
  status_is(run, "finished");
  /* Settled once: a second resolve is refused. */
  ck_assert_int_eq(LUACT("\"$LUACT\" runs resolve %s '1#3' --not-run --store s.db", run), 2);
  counts(1, 1, 1);
  free(run);
}
END_TEST

/* A pure effect is one journal line, written after it ran (no intent
 * line before). Killed between its call and that line, the run's journal
 * has no line of it; resumed, it runs again, and its one line follows.
 * Replayed then, nothing runs. */
START_TEST(store_pure_effect_one_line_runs_again) {
  lc_dur_write(dir, "mid.lua",
               "local dir = arg[1]\n"
               "local function bump(name)\n"
               "  local f = assert(io.open(dir .. '/' .. name, 'a')) f:write('x\\n') f:close()\n"
               "end\n"
               "local b = luact.effect('tool', 'b', {n = 2}, 'idempotent', function() bump('b') return 'B' end)\n"
               "local a = luact.effect('tool', 'a', {n = 1}, 'pure', function() bump('a') return 'A' end)\n"
               "local c = luact.effect('tool', 'c', {n = 3}, 'at_most_once', function() bump('c') return 'C' end)\n"
               "print('out', a, b, c)\n");
  ck_assert_int_eq(LUACT("LUACT_CRASH_AT=before_result@tool#2 \"$LUACT\" run --quiet --run-id m1 "
                         "--store s.db mid.lua %s", dir),
                   137);
  counts(1, 1, 0); /* a ran; its line was never written */
  ck_assert_msg(LUACT("\"$LUACT\" journal export m1 --store s.db") == 0, "%s", err);
  ck_assert_msg(!strstr(out, "\"1#2\""), "%s", out);
  ck_assert_msg(strstr(out, "\"type\":\"intent\",\"id\":\"1#1\""), "%s", out);
  ck_assert_msg(LUACT("\"$LUACT\" runs resume m1 --quiet --store s.db") == 0, "%s", err);
  ck_assert_msg(strstr(out, "out\tA\tB\tC\n"), "%s", out);
  counts(2, 1, 1); /* a again, b answered, c once */
  ck_assert_msg(LUACT("\"$LUACT\" journal export m1 --store s.db -o x.jsonl") == 0, "%s", err);
  char p[300];
  snprintf(p, sizeof p, "%s/x.jsonl", dir);
  char *j = lc_test_read_file(p, NULL);
  ck_assert_ptr_nonnull(j);
  const char *one = strstr(j, "{\"type\":\"result\",\"id\":\"1#2\",\"kind\":\"tool\",\"name\":\"a\"");
  ck_assert_msg(one, "no one line of 1#2 in %s", j);
  const char *eol = strchr(one, '\n');
  ck_assert_msg(!eol || !strstr(eol, "\"id\":\"1#2\""), "1#2 twice: %s", one);
  ck_assert_msg(!strstr(j, "\"type\":\"intent\",\"id\":\"1#2\""), "an intent of 1#2: %s", j);
  free(j);
  ck_assert_int_eq(LUACT("\"$LUACT\" runs show m1 --json --store s.db"), 0);
  ck_assert_msg(strstr(out, "\"effects\":3"), "%s", out); /* a's one line counts */
  ck_assert_msg(LUACT("\"$LUACT\" run --quiet --replay x.jsonl mid.lua %s", dir) == 0, "%s", err);
  ck_assert_msg(strstr(out, "out\tA\tB\tC\n"), "%s", out);
  counts(2, 1, 1);
}
END_TEST

START_TEST(nondeterminism_at_first_difference) {
  record_crash("after_result@tool#1");
  counts(1, 0, 0);
  ck_assert_int_eq(LUACT("EFF_REQ=9 \"$LUACT\" run --quiet --resume j.jsonl eff.lua %s", dir), 0);
  /* b was never recorded: b with another request is just a new effect. */
  counts(1, 1, 1);
  /* Now b is recorded with n=9: changing it again is nondeterminism. */
  ck_assert_int_eq(LUACT("EFF_REQ=7 \"$LUACT\" run --quiet --resume j.jsonl eff.lua %s", dir), 3);
  ck_assert_msg(strstr(err, "nondeterminism") && strstr(err, "1#2"), "%s", err);
  ck_assert_ptr_null(strstr(out, "out\t"));
  counts(1, 1, 1); /* nothing ran: no retry loop */
  ck_assert_int_eq(LUACT("EFF_REQ=7 \"$LUACT\" run --quiet --resume j.jsonl eff.lua %s", dir), 3);
  counts(1, 1, 1);

  /* In the store, the run ends failed with the reason. */
  char *run = store_crash("after_result@tool#2");
  ck_assert_int_eq(LUACT("EFF_REQ=7 \"$LUACT\" runs resume %s --quiet --store s.db", run), 3);
  ck_assert_msg(strstr(err, "nondeterminism"), "%s", err);
  status_is(run, "failed");
  ck_assert_int_eq(LUACT("\"$LUACT\" runs show %s --json --store s.db", run), 0);
  ck_assert_msg(strstr(out, "nondeterminism"), "%s", out);
  counts(2, 2, 1);
  free(run);
}
END_TEST

START_TEST(changed_script_refused_unless_allowed) {
  record_crash("after_result@tool#1");
  char p[300];
  snprintf(p, sizeof p, "%s/eff.lua", dir);
  FILE *f = fopen(p, "a");
  fputs("-- edited after the crash\n", f);
  fclose(f);
  ck_assert_int_ne(resume_jsonl(""), 0);
  ck_assert_msg(strstr(err, "script has changed"), "%s", err);
  counts(1, 0, 0);
  ck_assert_msg(resume_jsonl("--allow-script-change") == 0, "%s", err);
  ck_assert_msg(strstr(out, "out\tA\tB\tC\n"), "%s", out);
  counts(1, 1, 1);
  /* The resume line recorded the new script: no flag needed any more. */
  ck_assert_msg(resume_jsonl("") == 0, "%s", err);
  counts(1, 1, 1);
}
END_TEST

START_TEST(torn_last_line_cut_with_a_note) {
  record_crash("after_result@tool#2");
  char p[300];
  snprintf(p, sizeof p, "%s/j.jsonl", dir);
  FILE *f = fopen(p, "a");
  fputs("{\"type\":\"intent\",\"id\":\"1#3\",\"ki", f); /* the crash cut it mid-write */
  fclose(f);
  ck_assert_msg(resume_jsonl("") == 0, "%s", err);
  ck_assert_msg(strstr(err, "last line was cut by a crash"), "%s", err);
  ck_assert_msg(strstr(out, "out\tA\tB\tC\n"), "%s", out);
  counts(1, 1, 1);
  replays_clean();
}
END_TEST

/* A whole last line whose newline the crash cut: the next line used to be
 * glued to it, and the journal could not be read again. */
START_TEST(last_line_without_newline_not_glued) {
  record_crash("after_result@tool#2");
  ck_assert_int_eq(LUACT("truncate -s -1 j.jsonl"), 0);
  ck_assert_msg(resume_jsonl("") == 0, "%s", err);
  counts(1, 1, 1);
  ck_assert_msg(resume_jsonl("") == 0, "%s", err);
  counts(1, 1, 1);
  replays_clean();
}
END_TEST

START_TEST(run_id_given_restored_and_checked) {
  ck_assert_int_eq(
      LUACT("LUACT_CRASH_AT=after_result@tool#1 \"$LUACT\" run --quiet --run-id order-42.a_1 "
            "--record j.jsonl eff.lua %s",
            dir),
      137);
  ck_assert_msg(strstr(out, "run\torder-42.a_1\n"), "%s", out);
  ck_assert_int_eq(resume_jsonl(""), 0);
  ck_assert_msg(strstr(out, "run\torder-42.a_1\n"), "%s", out);
  ck_assert_int_eq(resume_jsonl("--run-id other"), 1);
  ck_assert_msg(strstr(err, "is run order-42.a_1, not other"), "%s", err);
  const char *bad[] = {"'has space'", "'a/b'", "''",
                       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    ck_assert_int_ne(LUACT("\"$LUACT\" run --quiet --run-id %s --store s.db eff.lua %s", bad[i],
                           dir),
                     0);
    ck_assert_msg(strstr(err, "is not valid"), "%s: %s", bad[i], err);
  }
  counts(1, 1, 1);
  /* In the store: the id given is the run's, kept on resume, and taken. */
  ck_assert_int_eq(LUACT("LUACT_CRASH_AT=after_result@tool#1 \"$LUACT\" run --quiet --run-id r1 "
                         "--store s.db eff.lua %s",
                         dir),
                   137);
  ck_assert_int_eq(LUACT("\"$LUACT\" runs resume r1 --quiet --store s.db"), 0);
  ck_assert_msg(strstr(out, "run\tr1\n") && strstr(out, "out\tA\tB\tC\n"), "%s", out);
  status_is("r1", "finished");
  /* A new run with a taken id is refused before anything runs; it used
   * to run effects and then mark the finished r1 failed. */
  ck_assert_int_eq(LUACT("\"$LUACT\" run --quiet --run-id r1 --store s.db eff.lua %s", dir), 2);
  ck_assert_msg(strstr(err, "run r1 exists already"), "%s", err);
  counts(2, 2, 2);
  status_is("r1", "finished");
}
END_TEST

Suite *resume_suite(void) {
  Suite *s = suite_create("resume");
  TCase *tc = tcase_create("resume");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, prefix_answered_nothing_runs_again);
  tcase_add_test(tc, pure_and_idempotent_run_again_with_their_key);
  tcase_add_test(tc, at_most_once_in_doubt_never_twice);
  tcase_add_test(tc, store_in_doubt_resolved_not_run_runs_once);
  tcase_add_test(tc, store_in_doubt_resolved_with_result);
  tcase_add_test(tc, store_pure_effect_one_line_runs_again);
  tcase_add_test(tc, nondeterminism_at_first_difference);
  tcase_add_test(tc, changed_script_refused_unless_allowed);
  tcase_add_test(tc, torn_last_line_cut_with_a_note);
  tcase_add_test(tc, last_line_without_newline_not_glued);
  tcase_add_test(tc, run_id_given_restored_and_checked);
  suite_add_tcase(s, tc);
  return s;
}
