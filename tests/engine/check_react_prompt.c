/* check_react_prompt.c: text-mode prompt, scratchpad and stop sequences,
 * including what the bench mock counts as an observation. */
#include <check.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "lc.h"
#include "react_parse.h"
#include "react_prompt.h"

static void make_actions(struct lc_actions *a) {
  ck_assert_int_eq(lc_actions_init(a, NULL, NULL, NULL), 0);
  ck_assert_int_eq(
      lc_actions_add(a, "lookup", "Look up a key.",
                     cJSON_Parse("{\"type\":\"object\",\"properties\":{\"key\":{"
                                 "\"type\":\"string\",\"description\":\"the key\"}},"
                                 "\"required\":[\"key\"]}"),
                     LC_EFFECT_PURE),
      0);
  ck_assert_int_eq(
      lc_actions_add(a, "add", "Add two numbers.",
                     cJSON_Parse("{\"type\":\"object\",\"properties\":{\"a\":{"
                                 "\"type\":\"number\"},\"b\":{\"type\":\"number\"}},"
                                 "\"required\":[\"a\",\"b\"]}"),
                     LC_EFFECT_PURE),
      0);
}

/* Port of mockllm.js reactObservations(): "Observation:" lines that follow a
 * line starting "Action: lookup" (optionally numbered). */
static int mock_observations(const char *text) {
  int n = 0, pending = 0;
  const char *p = text;
  while (*p) {
    const char *e = strchr(p, '\n');
    if (!e) e = p + strlen(p);
    const char *s = p;
    while (s < e && isspace((unsigned char)*s)) s++;
    const char *q = s;
    if (e - q >= 6 && strncmp(q, "Action", 6) == 0) {
      q += 6;
      while (q < e && isspace((unsigned char)*q)) q++;
      while (q < e && isdigit((unsigned char)*q)) q++;
      while (q < e && isspace((unsigned char)*q)) q++;
      if (q < e && *q == ':') {
        q++;
        while (q < e && isspace((unsigned char)*q)) q++;
        if (e - q >= 6 && strncmp(q, "lookup", 6) == 0 &&
            (e - q == 6 || !(isalnum((unsigned char)q[6]) || q[6] == '_')))
          pending = 1;
      }
    } else if (pending && e - s >= 11 && strncmp(s, "Observation", 11) == 0) {
      q = s + 11;
      while (q < e && isspace((unsigned char)*q)) q++;
      while (q < e && isdigit((unsigned char)*q)) q++;
      while (q < e && isspace((unsigned char)*q)) q++;
      if (q < e && *q == ':') {
        n++;
        pending = 0;
      }
    }
    p = *e ? e + 1 : e;
  }
  return n;
}

START_TEST(system_bracket) {
  struct lc_actions a;
  make_actions(&a);
  const char *ex[] = {"Question: What is 2+2?\nThought: add them\nAction: add[{\"a\": 2, \"b\": 2}]\n"
                      "Observation: 4\nThought: done\nAction: finish[4]"};
  struct lc_react_prompt p = {.instructions = "You answer questions about keys.",
                              .actions = &a, .examples = ex, .n_examples = 1};
  struct lc_buf b;
  lc_buf_init(&b, 0);
  ck_assert_int_eq(lc_react_prompt_system(&p, &b), 0);
  ck_assert(strncmp(b.data, "You answer questions about keys.\n\n", 34) == 0);
  ck_assert_ptr_nonnull(strstr(b.data, "\nAction: <action name>[<input>]\n"));
  ck_assert_ptr_nonnull(strstr(b.data, "- lookup[<key>]: Look up a key. (key: the key)\n"));
  ck_assert_ptr_nonnull(strstr(b.data, "- add[{\"a\": number, \"b\": number}]: Add two numbers.\n"));
  ck_assert_ptr_nonnull(strstr(b.data, "- finish[<answer>]: Give the final answer"));
  ck_assert_ptr_nonnull(strstr(b.data, "Examples:\n"));
  ck_assert_ptr_nonnull(strstr(b.data, ex[0])); /* verbatim */
  /* the bench mock switches to LangChain replies on this marker */
  ck_assert_ptr_null(strstr(b.data, "Action Input:"));
  /* no line of the format text starts with Observation: */
  ck_assert_ptr_null(strstr(b.data, "\nObservation: <"));
  ck_assert_int_eq(mock_observations(b.data), 0);
  lc_buf_free(&b);
  lc_actions_free(&a);
}
END_TEST

START_TEST(system_langchain) {
  struct lc_actions a;
  make_actions(&a);
  struct lc_react_prompt p = {.actions = &a, .style = LC_REACT_STYLE_LANGCHAIN};
  struct lc_buf b;
  lc_buf_init(&b, 0);
  ck_assert_int_eq(lc_react_prompt_system(&p, &b), 0);
  ck_assert(strncmp(b.data, "Solve the task", 14) == 0); /* no instructions */
  ck_assert_ptr_nonnull(strstr(b.data, "\nAction Input: <input>\n"));
  ck_assert_ptr_nonnull(strstr(b.data, "\nFinal Answer: <the answer>\n"));
  ck_assert_ptr_nonnull(strstr(b.data, "- lookup: input <key>: Look up a key."));
  ck_assert_ptr_null(strstr(b.data, "Examples:"));
  ck_assert_int_eq(mock_observations(b.data), 0);
  lc_buf_free(&b);
  ck_assert_int_eq(lc_react_prompt_system(NULL, &b), LC_EINVAL);
  lc_actions_free(&a);
}
END_TEST

/* The scratchpad in both styles, and the mock counts exactly its steps. */
START_TEST(scratchpad_roundtrip) {
  for (int style = 0; style < 2; style++) {
    struct lc_buf pad, user;
    lc_buf_init(&pad, 0);
    lc_buf_init(&user, 0);
    ck_assert_int_eq(lc_react_scratchpad_add(&pad, style, "I need key-1.", "lookup",
                                             "key-1", "value-of-key-1"), 0);
    ck_assert_int_eq(lc_react_scratchpad_add(&pad, style, NULL, "lookup", "key-2",
                                             "value-of-key-2"), 0);
    ck_assert_int_eq(lc_react_prompt_user("Collect the keys.", pad.data, &user), 0);
    if (style == LC_REACT_STYLE_BRACKET)
      ck_assert_str_eq(user.data, "Question: Collect the keys.\n"
                                  "Thought: I need key-1.\nAction: lookup[key-1]\n"
                                  "Observation: value-of-key-1\n"
                                  "Action: lookup[key-2]\nObservation: value-of-key-2\n");
    else
      ck_assert_str_eq(user.data, "Question: Collect the keys.\n"
                                  "Thought: I need key-1.\nAction: lookup\n"
                                  "Action Input: key-1\nObservation: value-of-key-1\n"
                                  "Action: lookup\nAction Input: key-2\n"
                                  "Observation: value-of-key-2\n");
    ck_assert_int_eq(mock_observations(user.data), 2);
    lc_buf_free(&pad);
    lc_buf_free(&user);
  }
}
END_TEST

START_TEST(stops) {
  size_t n;
  const char *const *s = lc_react_stop_sequences(&n);
  ck_assert_uint_eq(n, 2);
  ck_assert_str_eq(s[0], "\nObservation:");
  ck_assert_str_eq(s[1], "Observation:");
}
END_TEST

Suite *react_prompt_suite(void) {
  Suite *s = suite_create("react_prompt");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, system_bracket);
  tcase_add_test(tc, system_langchain);
  tcase_add_test(tc, scratchpad_roundtrip);
  tcase_add_test(tc, stops);
  suite_add_tcase(s, tc);
  return s;
}
