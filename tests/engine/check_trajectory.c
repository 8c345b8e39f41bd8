/* check_trajectory.c: run result, its JSON and trace forms, terminal lines. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc.h"
#include "trajectory.h"

static void two_steps(struct lc_trajectory *t) {
  lc_trajectory_init(t);
  char thought[] = "I need to search Colorado orogeny.";
  cJSON *args = cJSON_Parse("{\"query\":\"Colorado orogeny\"}");
  struct lc_traj_step s = {.thought = thought, .action = "search", .args = args,
                           .observation = "The Colorado orogeny was an episode...",
                           .tokens_in = 120, .tokens_out = 33, .cost_usd = 0.001,
                           .latency_ms = 412.4, .index = 99};
  ck_assert_int_eq(lc_trajectory_add(t, &s), 0);
  /* the trajectory holds copies */
  thought[0] = 'X';
  cJSON_Delete(args);
  struct lc_traj_step e = {.action = "serch", .observation = "Unknown action \"serch\".\nAllowed: search",
                           .is_error = 1, .tokens_in = 200, .tokens_out = 10,
                           .latency_ms = 80};
  ck_assert_int_eq(lc_trajectory_add(t, &e), 0);
}

START_TEST(add_and_totals) {
  struct lc_trajectory t;
  two_steps(&t);
  ck_assert_uint_eq(t.n, 2);
  ck_assert_int_eq(t.steps[0].index, 1);
  ck_assert_int_eq(t.steps[1].index, 2);
  ck_assert_str_eq(t.steps[0].thought, "I need to search Colorado orogeny.");
  ck_assert_ptr_null(t.steps[1].thought);
  /* stored steps keep their args as compact JSON text, no tree */
  ck_assert_ptr_null(t.steps[0].args);
  ck_assert_str_eq(t.steps[0].args_json, "{\"query\":\"Colorado orogeny\"}");
  ck_assert_ptr_null(t.steps[1].args_json);
  cJSON *a = lc_traj_step_args(&t.steps[0]);
  ck_assert_str_eq(cJSON_GetObjectItem(a, "query")->valuestring, "Colorado orogeny");
  cJSON_Delete(a);
  ck_assert_ptr_null(lc_traj_step_args(&t.steps[1]));
  ck_assert_str_eq(t.steps[1].observation, "Unknown action \"serch\".\nAllowed: search");
  ck_assert_int_eq(lc_trajectory_tokens(&t), 363);
  ck_assert_double_eq_tol(lc_trajectory_cost(&t), 0.001, 1e-12);
  ck_assert_int_eq(t.status, LC_TRAJ_RUNNING);
  ck_assert_int_eq(lc_trajectory_end(&t, LC_TRAJ_FINISHED, "1,800 to 7,000 ft", NULL), 0);
  ck_assert_str_eq(lc_traj_status_name(t.status), "finished");
  /* a second end replaces the first */
  ck_assert_int_eq(lc_trajectory_end(&t, LC_TRAJ_LIMIT, NULL, "step limit reached"), 0);
  ck_assert_ptr_null(t.answer);
  ck_assert_str_eq(t.reason, "step limit reached");
  lc_trajectory_free(&t);
}
END_TEST

START_TEST(to_json) {
  struct lc_trajectory t;
  two_steps(&t);
  lc_trajectory_end(&t, LC_TRAJ_FINISHED, "42", NULL);
  cJSON *j = lc_trajectory_to_json(&t);
  ck_assert_ptr_nonnull(j);
  ck_assert_str_eq(cJSON_GetObjectItem(j, "status")->valuestring, "finished");
  ck_assert_str_eq(cJSON_GetObjectItem(j, "answer")->valuestring, "42");
  ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "reason")));
  ck_assert_int_eq(cJSON_GetObjectItem(j, "tokens_in")->valueint, 320);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "tokens_out")->valueint, 43);
  cJSON *steps = cJSON_GetObjectItem(j, "steps");
  ck_assert_int_eq(cJSON_GetArraySize(steps), 2);
  cJSON *s0 = cJSON_GetArrayItem(steps, 0);
  ck_assert_int_eq(cJSON_GetObjectItem(s0, "index")->valueint, 1);
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(s0, "args"), "query")->valuestring,
                   "Colorado orogeny");
  ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(s0, "is_error")));
  ck_assert_double_eq_tol(cJSON_GetObjectItem(s0, "latency_ms")->valuedouble, 412.4, 1e-9);
  cJSON *s1 = cJSON_GetArrayItem(steps, 1);
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(s1, "is_error")));
  ck_assert(cJSON_IsNull(cJSON_GetObjectItem(s1, "args")));
  ck_assert(cJSON_IsNull(cJSON_GetObjectItem(s1, "thought")));
  cJSON_Delete(j);
  lc_trajectory_free(&t);
}
END_TEST

START_TEST(trace_lines) {
  struct lc_trajectory t;
  two_steps(&t);
  lc_trajectory_end(&t, LC_TRAJ_LIMIT, NULL, "token limit reached: 100 of 100 tokens");
  struct lc_buf b;
  lc_buf_init(&b, 0);
  for (size_t i = 0; i < t.n; i++) ck_assert_int_eq(lc_traj_step_trace_line(&t.steps[i], &b), 0);
  ck_assert_int_eq(lc_trajectory_trace_end(&t, &b), 0);
  /* three lines, each one JSON object; newlines inside values escaped */
  int lines = 0;
  char *save = NULL;
  for (char *l = strtok_r(b.data, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    cJSON *j = cJSON_Parse(l);
    ck_assert_msg(j != NULL, "line %d: %s", lines, l);
    const char *ev = cJSON_GetObjectItem(j, "event")->valuestring;
    ck_assert_str_eq(ev, lines < 2 ? "step" : "end");
    if (lines == 1)
      ck_assert_str_eq(cJSON_GetObjectItem(j, "observation")->valuestring,
                       "Unknown action \"serch\".\nAllowed: search");
    if (lines == 2) {
      ck_assert_str_eq(cJSON_GetObjectItem(j, "status")->valuestring, "limit");
      ck_assert_int_eq(cJSON_GetObjectItem(j, "steps_count")->valueint, 2);
    }
    cJSON_Delete(j);
    lines++;
  }
  ck_assert_int_eq(lines, 3);
  lc_buf_free(&b);
  lc_trajectory_free(&t);
}
END_TEST

static char *print_to_string(struct lc_trajectory *t) {
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  ck_assert_ptr_nonnull(f);
  for (size_t i = 0; i < t->n; i++) ck_assert_int_eq(lc_traj_step_print(f, &t->steps[i]), 0);
  ck_assert_int_eq(lc_trajectory_print_end(f, t), 0);
  fclose(f);
  return out;
}

START_TEST(human_lines) {
  struct lc_trajectory t;
  two_steps(&t);
  cJSON *a = cJSON_Parse("{\"city\":\"Paris\",\"days\":2}");
  struct lc_traj_step s = {.action = "get_weather", .args = a, .tokens_in = 1, .latency_ms = 5};
  lc_trajectory_add(&t, &s);
  cJSON_Delete(a);
  lc_trajectory_end(&t, LC_TRAJ_FINISHED, "1,800 to\n7,000 ft", NULL);
  char *out = print_to_string(&t);
  ck_assert_str_eq(out,
                   "step 1  Action: search[Colorado orogeny]  (412 ms, 153 tok)\n"
                   "step 2  Action: serch[]  (80 ms, 210 tok)  error: Unknown action "
                   "\"serch\". Allowed: search\n"
                   "step 3  Action: get_weather[{\"city\":\"Paris\",\"days\":2}]  (5 ms, 1 tok)\n"
                   "finished after 3 steps: 1,800 to 7,000 ft  (364 tok, $0.0010)\n");
  free(out);
  lc_trajectory_free(&t);
}
END_TEST

/* A model without a price: the end line says so instead of $0.0000. */
START_TEST(human_cost_unknown) {
  struct lc_trajectory t;
  two_steps(&t);
  t.cost_unknown = 1;
  lc_trajectory_end(&t, LC_TRAJ_FINISHED, "done", NULL);
  char *out = print_to_string(&t);
  ck_assert_msg(strstr(out, "finished after 2 steps: done  (363 tok, cost unknown)\n"), "%s", out);
  free(out);
  lc_trajectory_free(&t);
}
END_TEST

START_TEST(human_long_and_unicode) {
  struct lc_trajectory t;
  lc_trajectory_init(&t);
  /* 30 x "é" = 60 bytes; cut at 60 keeps whole characters */
  char q[200] = "";
  for (int i = 0; i < 35; i++) strcat(q, "\xc3\xa9");
  cJSON *a = cJSON_CreateObject();
  cJSON_AddStringToObject(a, "q", q);
  struct lc_traj_step s = {.action = "search", .args = a};
  lc_trajectory_add(&t, &s);
  cJSON_Delete(a);
  lc_trajectory_end(&t, LC_TRAJ_FAILED, NULL, "LLM error: rate_limit");
  char *out = print_to_string(&t);
  char want[400] = "step 1  Action: search[";
  for (int i = 0; i < 30; i++) strcat(want, "\xc3\xa9");
  strcat(want, "...]  (0 ms, 0 tok)\nfailed after 1 step: LLM error: rate_limit  (0 tok, $0.0000)\n");
  ck_assert_str_eq(out, want);
  free(out);
  lc_trajectory_free(&t);
}
END_TEST

START_TEST(oom) {
  long live = lc_alloc_live();
  for (long n = 1; n < 20; n++) {
    struct lc_trajectory t;
    lc_trajectory_init(&t);
    struct lc_traj_step s = {.thought = "t", .action = "a", .observation = "o"};
    lc_alloc_fail_after(n);
    int rc = lc_trajectory_add(&t, &s);
    ck_assert(rc == 0 || rc == LC_ENOMEM);
    ck_assert_uint_eq(t.n, rc == 0 ? 1 : 0);
    rc = lc_trajectory_end(&t, LC_TRAJ_FINISHED, "x", "y");
    ck_assert(rc == 0 || rc == LC_ENOMEM);
    lc_alloc_fail_after(0);
    lc_trajectory_free(&t);
    ck_assert_int_eq(lc_alloc_live(), live);
  }
}
END_TEST

Suite *trajectory_suite(void) {
  Suite *s = suite_create("trajectory");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, add_and_totals);
  tcase_add_test(tc, to_json);
  tcase_add_test(tc, trace_lines);
  tcase_add_test(tc, human_lines);
  tcase_add_test(tc, human_cost_unknown);
  tcase_add_test(tc, human_long_and_unicode);
  tcase_add_test(tc, oom);
  suite_add_tcase(s, tc);
  return s;
}
