/* check_react_parse.c: text-mode ReAct reply parsing against a table of
 * real-looking model outputs, and the error Observation text. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "lc.h"
#include "react_parse.h"

#define NOCHECK ((const char *)1) /* field not checked */

struct pcase {
  const char *name;
  const char *text;
  enum lc_react_err err; /* LC_REACT_OK = must parse */
  const char *action;
  const char *input;   /* expected raw input; NULL = must be NULL */
  const char *args;    /* compact JSON; NULL = no args */
  const char *answer;  /* non-NULL = finish with this answer */
  const char *thought; /* NOCHECK or expected (NULL = none) */
  int cut;
  const char *detail;  /* substring of err_detail */
  enum lc_react_form form; /* 0 = not checked */
};

static const struct pcase cases[] = {
    /* --- the bench mock's four replies --- */
    {.name = "mock bracket",
     .text = "Thought: I need the value of key-1.\nAction: lookup[key-1]",
     .action = "lookup", .input = "key-1",
     .thought = "I need the value of key-1.", .form = LC_REACT_FORM_BRACKET},
    {.name = "mock langchain continued thought",
     .text = " I need the value of key-2.\nAction: lookup\nAction Input: key-2",
     .action = "lookup", .input = "key-2",
     .thought = "I need the value of key-2.", .form = LC_REACT_FORM_LANGCHAIN},
    {.name = "mock finish",
     .text = "Thought: I have all 2 values.\nAction: finish[DONE "
             "value-of-key-1,value-of-key-2]",
     .action = "finish", .input = "DONE value-of-key-1,value-of-key-2",
     .answer = "DONE value-of-key-1,value-of-key-2", .thought = NOCHECK},
    {.name = "mock final answer",
     .text = " I now know the final answer\nFinal Answer: DONE value-of-key-1",
     .action = "finish", .input = "DONE value-of-key-1",
     .answer = "DONE value-of-key-1", .thought = "I now know the final answer",
     .form = LC_REACT_FORM_FINAL},
    /* --- the paper's HotpotQA style --- */
    {.name = "paper numbered search",
     .text = "Thought 1: I need to search Colorado orogeny, find the area that "
             "the eastern sector of the Colorado orogeny extends into.\n"
             "Action 1: Search[Colorado orogeny]",
     .action = "Search", .input = "Colorado orogeny", .thought = NOCHECK},
    {.name = "paper numbered finish",
     .text = "Thought 5: High Plains rise in elevation from around 1,800 to "
             "7,000 ft, so the answer is 1,800 to 7,000 ft.\n"
             "Action 5: Finish[1,800 to 7,000 ft]",
     .action = "finish", .input = "1,800 to 7,000 ft",
     .answer = "1,800 to 7,000 ft", .thought = NOCHECK},
    {.name = "paper self-written observation",
     .text = "Thought 2: It does not mention the eastern sector.\n"
             "Action 2: Lookup[eastern sector]\n"
             "Observation 2: (Result 1 / 1) The eastern sector extends into "
             "the High Plains.\nThought 3: So the High Plains.\n"
             "Action 3: Search[High Plains]",
     .action = "Lookup", .input = "eastern sector", .thought = NOCHECK, .cut = 1},
    /* --- tolerance --- */
    {.name = "text around the action",
     .text = "Sure! Let me help with that.\n\nThought: search first\n"
             "Action: search[foo]\n\nI'll wait for the result.",
     .action = "search", .input = "foo", .thought = "search first"},
    {.name = "self-written observation then more steps",
     .text = "Thought: x\nAction: search[foo]\nObservation: foo is a bar\n"
             "Thought: now finish\nAction: finish[bar]",
     .action = "search", .input = "foo", .thought = "x", .cut = 1},
    {.name = "langchain self-written observation",
     .text = "Thought: t\nAction: lookup\nAction Input: key-1\n"
             "Observation: value-of-key-1\nThought: I now know\nFinal Answer: x",
     .action = "lookup", .input = "key-1", .thought = "t", .cut = 1},
    {.name = "observation echoed before the action is ignored",
     .text = "Observation: previous result\nThought: ok\nAction: search[x]",
     .action = "search", .input = "x", .thought = "ok"},
    {.name = "fence around reply",
     .text = "```\nThought: t\nAction: search[foo]\n```",
     .action = "search", .input = "foo", .thought = "t"},
    {.name = "fence with language around reply",
     .text = "```text\nThought: t\nAction: search[foo]\n```\n",
     .action = "search", .input = "foo", .thought = "t"},
    {.name = "fence around reply cut before its end",
     .text = "```\nThought: t\nAction: search[foo]\n",
     .action = "search", .input = "foo", .thought = "t"},
    {.name = "fenced json input same line",
     .text = "Thought: t\nAction: get_weather\nAction Input: ```json\n"
             "{\"city\": \"Paris\", \"days\": 3}\n```",
     .action = "get_weather", .input = "{\"city\": \"Paris\", \"days\": 3}",
     .args = "{\"city\":\"Paris\",\"days\":3}", .thought = "t"},
    {.name = "fenced json input own lines",
     .text = "Action: get_weather\nAction Input:\n```json\n{\"city\": "
             "\"Paris\"}\n```\n",
     .action = "get_weather", .input = "{\"city\": \"Paris\"}",
     .args = "{\"city\":\"Paris\"}", .thought = NULL},
    {.name = "fence around reply and around input",
     .text = "```\nAction: f\nAction Input: ```json\n{\"a\": [1]}\n```\n```",
     .action = "f", .input = "{\"a\": [1]}", .args = "{\"a\":[1]}",
     .thought = NOCHECK},
    {.name = "markdown bold",
     .text = "**Thought:** I should search.\n**Action:** search[Paris]",
     .action = "search", .input = "Paris", .thought = "I should search."},
    {.name = "markdown bold before colon",
     .text = "**Thought**: x\n**Action**: search[Paris]",
     .action = "search", .input = "Paris", .thought = "x"},
    {.name = "bold numbered",
     .text = "**Thought 1:** x\n**Action 1:** Search[Paris]",
     .action = "Search", .input = "Paris", .thought = "x"},
    {.name = "lower case labels",
     .text = "thought: x\naction: search[paris]",
     .action = "search", .input = "paris", .thought = "x"},
    {.name = "upper case labels",
     .text = "THOUGHT: x\nACTION: SEARCH[paris]",
     .action = "SEARCH", .input = "paris", .thought = "x"},
    {.name = "upper case finish",
     .text = "Action: FINISH[yes]",
     .action = "finish", .input = "yes", .answer = "yes", .thought = NULL},
    {.name = "list bullets",
     .text = "- Thought: x\n- Action: search[foo]",
     .action = "search", .input = "foo", .thought = "x"},
    {.name = "crlf",
     .text = "Thought: x\r\nAction: search[foo]\r\n",
     .action = "search", .input = "foo", .thought = "x"},
    {.name = "crlf multi-line json",
     .text = "Action: f\r\nAction Input: {\r\n  \"a\": 1\r\n}\r\n",
     .action = "f", .input = "{\n  \"a\": 1\n}", .args = "{\"a\":1}",
     .thought = NULL},
    {.name = "bracket json input",
     .text = "Action: get_weather[{\"city\": \"Paris\"}]",
     .action = "get_weather", .input = "{\"city\": \"Paris\"}",
     .args = "{\"city\":\"Paris\"}", .thought = NULL},
    {.name = "nested brackets in text",
     .text = "Action: search[list [a] of things]",
     .action = "search", .input = "list [a] of things", .thought = NULL},
    {.name = "nested arrays in json",
     .text = "Action: sum[{\"xs\": [1, [2, 3]]}]",
     .action = "sum", .input = "{\"xs\": [1, [2, 3]]}",
     .args = "{\"xs\":[1,[2,3]]}", .thought = NULL},
    {.name = "json string holding a close bracket",
     .text = "Action: f[{\"s\": \"a]\"}]",
     .action = "f", .input = "{\"s\": \"a]\"}", .args = "{\"s\":\"a]\"}",
     .thought = NULL},
    {.name = "stray close bracket: last one wins",
     .text = "Action: search[a]b]",
     .action = "search", .input = "a]b", .thought = NULL},
    {.name = "unbalanced open bracket",
     .text = "Action: search[a[b]",
     .action = "search", .input = "a[b", .thought = NULL},
    {.name = "bracket note on a later line stays out",
     .text = "Action: search[foo]\n(see the note [1])",
     .action = "search", .input = "foo", .thought = NULL},
    {.name = "multi-line bracket input",
     .text = "Thought: write it\nAction: write_file[line one\nline two\n"
             "line three]",
     .action = "write_file", .input = "line one\nline two\nline three",
     .thought = "write it"},
    {.name = "parentheses",
     .text = "Action: search(foo bar)",
     .action = "search", .input = "foo bar", .thought = NULL,
     .form = LC_REACT_FORM_BRACKET},
    {.name = "unicode",
     .text = "Thought: Zürich → 東京?\nAction: search[Zürich 東京 🚀]",
     .action = "search", .input = "Zürich 東京 🚀",
     .thought = "Zürich → 東京?"},
    {.name = "unicode json",
     .text = "Action: f\nAction Input: {\"q\": \"naïve café ✓\"}",
     .action = "f", .input = "{\"q\": \"naïve café ✓\"}",
     .args = "{\"q\":\"naïve café ✓\"}", .thought = NULL},
    {.name = "quoted langchain input",
     .text = "Action: lookup\nAction Input: \"key-1\"",
     .action = "lookup", .input = "key-1", .thought = NULL},
    {.name = "backticked input",
     .text = "Action: lookup\nAction Input: `key-1`",
     .action = "lookup", .input = "key-1", .thought = NULL},
    {.name = "backticked action name",
     .text = "Action: `lookup`\nAction Input: key-1",
     .action = "lookup", .input = "key-1", .thought = NULL},
    {.name = "json then commentary on the next line",
     .text = "Thought: a\nb\nAction: f\nAction Input: {\"a\": 1}\nI will wait.",
     .action = "f", .input = "{\"a\": 1}\nI will wait.", .args = "{\"a\":1}",
     .thought = "a\nb"},
    {.name = "same action twice is one action",
     .text = "Action: search[a]\nAction: search[a]",
     .action = "search", .input = "a", .thought = NULL},
    {.name = "name only, no input",
     .text = "Thought: t\nAction: get_time",
     .action = "get_time", .input = NULL, .thought = "t",
     .form = LC_REACT_FORM_LANGCHAIN},
    {.name = "empty brackets",
     .text = "Action: get_time[]",
     .action = "get_time", .input = "", .thought = NULL},
    {.name = "finish with json answer",
     .text = "Action: finish[{\"answer\": \"42\"}]",
     .action = "finish", .input = "{\"answer\": \"42\"}",
     .args = "{\"answer\":\"42\"}", .answer = "42", .thought = NULL},
    {.name = "finish answer starting with a brace",
     .text = "Action: finish[{not json} is the answer]",
     .action = "finish", .input = "{not json} is the answer",
     .answer = "{not json} is the answer", .thought = NULL},
    {.name = "multi-line final answer",
     .text = "Thought: done\nFinal Answer: line1\nline2",
     .action = "finish", .input = "line1\nline2", .answer = "line1\nline2",
     .thought = "done"},
    {.name = "langchain finish action",
     .text = "Action: finish\nAction Input: 42",
     .action = "finish", .input = "42", .answer = "42", .thought = NULL},
    {.name = "json form",
     .text = "{\"thought\": \"t\", \"action\": \"search\", \"input\": {\"q\": \"x\"}}",
     .action = "search", .input = "{\"q\":\"x\"}", .args = "{\"q\":\"x\"}",
     .thought = "t", .form = LC_REACT_FORM_JSON},
    {.name = "json form fenced, action_input",
     .text = "```json\n{\"action\": \"lookup\", \"action_input\": \"key-1\"}\n```",
     .action = "lookup", .input = "key-1", .thought = NULL,
     .form = LC_REACT_FORM_JSON},
    {.name = "json form finish",
     .text = "{\"thought\":\"done\",\"action\":\"finish\",\"input\":{\"answer\":\"42\"}}",
     .action = "finish", .input = "{\"answer\":\"42\"}",
     .args = "{\"answer\":\"42\"}", .answer = "42", .thought = "done"},
    {.name = "json form langchain final answer",
     .text = "{\"action\": \"Final Answer\", \"action_input\": \"42\"}",
     .action = "finish", .input = "42", .answer = "42", .thought = NULL},
    /* --- malformed --- */
    {.name = "empty", .text = "", .err = LC_REACT_EEMPTY},
    {.name = "whitespace only", .text = "  \n\t\r\n", .err = LC_REACT_EEMPTY},
    {.name = "empty fences", .text = "```\n```", .err = LC_REACT_EEMPTY},
    {.name = "thought without action",
     .text = "Thought: I am thinking about it.", .err = LC_REACT_ENOACTION},
    {.name = "the word Actions is not a label",
     .text = "Thought: Actions: none yet", .err = LC_REACT_ENOACTION},
    {.name = "action input without action",
     .text = "Thought: t\nAction Input: foo", .err = LC_REACT_ENOACTION},
    {.name = "plain prose", .text = "The answer is 42.",
     .err = LC_REACT_EFORMAT, .detail = "not in the expected format"},
    {.name = "two different actions",
     .text = "Thought: x\nAction: search[a]\nAction: lookup[b]",
     .err = LC_REACT_EMULTI, .detail = "search, then lookup"},
    {.name = "same action, different input",
     .text = "Action: search[a]\nAction: search[b]", .err = LC_REACT_EMULTI},
    {.name = "action and final answer",
     .text = "Action: search[a]\nFinal Answer: 42", .err = LC_REACT_EMULTI,
     .detail = "search, then finish"},
    {.name = "two langchain actions",
     .text = "Action: a\nAction Input: 1\nAction: b\nAction Input: 2",
     .err = LC_REACT_EMULTI},
    {.name = "finish without answer",
     .text = "Thought: done\nAction: finish[]", .err = LC_REACT_ENOANSWER},
    {.name = "finish with blank answer",
     .text = "Action: finish[   ]", .err = LC_REACT_ENOANSWER},
    {.name = "empty final answer",
     .text = "Thought: t\nFinal Answer:", .err = LC_REACT_ENOANSWER},
    {.name = "bare finish", .text = "Thought: t\nAction: finish",
     .err = LC_REACT_ENOANSWER},
    {.name = "json form finish without answer",
     .text = "{\"action\":\"finish\",\"input\":{}}", .err = LC_REACT_ENOANSWER},
    {.name = "broken json: unquoted key",
     .text = "Action: get_weather\nAction Input: {\"city\": \"Paris\", days: 3}",
     .err = LC_REACT_EJSON, .detail = "line 1, column 19, near \"days: 3}\""},
    {.name = "broken json: multi-line",
     .text = "Action: f\nAction Input: {\n  \"a\": 1,\n  \"b\": \n}",
     .err = LC_REACT_EJSON, .detail = "line 4, column 1"},
    {.name = "broken json: cut short",
     .text = "Action: f\nAction Input: {\"a\": \"x", .err = LC_REACT_EJSON,
     .detail = "ends too early"},
    {.name = "broken json in brackets",
     .text = "Action: f[{\"a\": 1,}]", .err = LC_REACT_EJSON,
     .detail = "column 9, near \"}\""},
    {.name = "json with junk on the same line",
     .text = "Action: f\nAction Input: {\"a\": 1} extra", .err = LC_REACT_EJSON,
     .detail = "near \"extra\""},
    {.name = "unclosed bracket",
     .text = "Action: search[foo", .err = LC_REACT_EFORMAT,
     .detail = "not closed"},
    {.name = "free text after the name",
     .text = "Action: search for foo", .err = LC_REACT_EFORMAT,
     .detail = "search for foo"},
    {.name = "empty action line", .text = "Thought: x\nAction:",
     .err = LC_REACT_EFORMAT, .detail = "empty"},
    {.name = "action line without a name", .text = "Action: [foo]",
     .err = LC_REACT_EFORMAT, .detail = "no action name"},
};

static char *print_args(const cJSON *j) {
  return j ? cJSON_PrintUnformatted(j) : NULL;
}

START_TEST(table) {
  const struct pcase *c = &cases[_i];
  struct lc_react_step st;
  long live = lc_alloc_live();
  int rc = lc_react_parse(c->text, strlen(c->text), &st);
  if (c->err == LC_REACT_OK) {
    ck_assert_msg(rc == 0, "[%s] rc=%d err=%s detail=%s", c->name, rc,
                  lc_react_err_name(st.err), st.err_detail);
    ck_assert_msg(st.action && strcmp(st.action, c->action) == 0,
                  "[%s] action '%s'", c->name, st.action ? st.action : "(null)");
    if (c->input)
      ck_assert_msg(st.input && strcmp(st.input, c->input) == 0,
                    "[%s] input '%s'", c->name, st.input ? st.input : "(null)");
    else
      ck_assert_msg(st.input == NULL, "[%s] input not NULL: '%s'", c->name,
                    st.input);
    if (st.input) ck_assert_uint_eq(st.input_len, strlen(st.input));
    char *a = print_args(st.args);
    if (c->args)
      ck_assert_msg(a && strcmp(a, c->args) == 0, "[%s] args %s", c->name,
                    a ? a : "(null)");
    else
      ck_assert_msg(a == NULL, "[%s] unexpected args %s", c->name, a);
    free(a);
    ck_assert_int_eq(st.is_finish, c->answer != NULL);
    if (c->answer) ck_assert_str_eq(st.answer, c->answer);
    else ck_assert_ptr_null(st.answer);
    if (c->thought != NOCHECK) {
      if (c->thought)
        ck_assert_msg(st.thought && strcmp(st.thought, c->thought) == 0,
                      "[%s] thought '%s'", c->name,
                      st.thought ? st.thought : "(null)");
      else
        ck_assert_msg(!st.thought, "[%s] thought '%s'", c->name, st.thought);
    }
    ck_assert_int_eq(st.observation_cut, c->cut);
    if (c->form) ck_assert_int_eq(st.form, c->form);
    ck_assert_int_eq(st.err, LC_REACT_OK);
  } else {
    ck_assert_msg(rc == LC_EINVAL, "[%s] rc=%d action=%s", c->name, rc,
                  st.action ? st.action : "(null)");
    ck_assert_msg(st.err == c->err, "[%s] err %s, want %s (%s)", c->name,
                  lc_react_err_name(st.err), lc_react_err_name(c->err),
                  st.err_detail);
    if (c->detail)
      ck_assert_msg(strstr(st.err_detail, c->detail), "[%s] detail '%s'",
                    c->name, st.err_detail);
  }
  lc_react_step_free(&st);
  ck_assert_int_eq(lc_alloc_live(), live);
}
END_TEST

/* len bounds the text: nothing past it is read. */
START_TEST(length_bounded) {
  const char *t = "Action: search[foo]XXXX Action: lookup[bar]";
  struct lc_react_step st;
  ck_assert_int_eq(lc_react_parse(t, strlen("Action: search[foo]"), &st), 0);
  ck_assert_str_eq(st.input, "foo");
  lc_react_step_free(&st);
}
END_TEST

START_TEST(nul_bytes) {
  const char t[] = "Thought: a\0b\nAction: search[x\0y]";
  struct lc_react_step st;
  ck_assert_int_eq(lc_react_parse(t, sizeof t - 1, &st), 0);
  ck_assert_str_eq(st.thought, "a b");
  ck_assert_str_eq(st.input, "x y");
  lc_react_step_free(&st);
}
END_TEST

static const char *const allowed[] = {"search", "lookup"};

START_TEST(error_text_bracket) {
  struct lc_react_step st;
  const char *t = "Thought: x\nAction: search[a]\nAction: lookup[b]";
  ck_assert_int_eq(lc_react_parse(t, strlen(t), &st), LC_EINVAL);
  struct lc_buf b;
  lc_buf_init(&b, 0);
  ck_assert_int_eq(lc_react_format_error(&st, LC_REACT_STYLE_BRACKET, allowed, 2, &b), 0);
  ck_assert_msg(strstr(b.data, "more than one action") || strstr(b.data, "2 actions"),
                "%s", b.data);
  ck_assert_ptr_nonnull(strstr(b.data, "exactly one action"));
  ck_assert_ptr_nonnull(strstr(b.data, "Action: <action name>[<input>]"));
  ck_assert_ptr_nonnull(strstr(b.data, "Allowed actions: search, lookup, finish."));
  ck_assert_ptr_null(strstr(b.data, "Action Input:"));
  ck_assert(strncmp(b.data, "Observation", 11) != 0);
  lc_buf_free(&b);
  lc_react_step_free(&st);
}
END_TEST

START_TEST(error_text_langchain_json) {
  struct lc_react_step st;
  const char *t = "Action: f\nAction Input: {\"a\": 1,}";
  ck_assert_int_eq(lc_react_parse(t, strlen(t), &st), LC_EINVAL);
  struct lc_buf b;
  lc_buf_init(&b, 0);
  ck_assert_int_eq(lc_react_format_error(&st, LC_REACT_STYLE_LANGCHAIN, allowed, 2, &b), 0);
  ck_assert_ptr_nonnull(strstr(b.data, "not valid JSON"));
  ck_assert_ptr_nonnull(strstr(b.data, "line 1, column"));
  ck_assert_ptr_nonnull(strstr(b.data, "Action Input: <input>"));
  ck_assert_ptr_nonnull(strstr(b.data, "Final Answer: <the answer>"));
  ck_assert_ptr_nonnull(strstr(b.data, "search, lookup, finish"));
  lc_buf_free(&b);
  lc_react_step_free(&st);
}
END_TEST

START_TEST(error_text_every_kind) {
  const char *texts[] = {"", "Thought: hmm", "Action: finish[]", "prose"};
  for (size_t i = 0; i < LC_ARRAY_LEN(texts); i++) {
    struct lc_react_step st;
    ck_assert_int_eq(lc_react_parse(texts[i], strlen(texts[i]), &st), LC_EINVAL);
    struct lc_buf b;
    lc_buf_init(&b, 0);
    const char *fin[] = {"finish"};
    ck_assert_int_eq(lc_react_format_error(&st, LC_REACT_STYLE_BRACKET, fin, 1, &b), 0);
    ck_assert_ptr_nonnull(strstr(b.data, "Invalid reply: "));
    /* finish listed once even when the caller already includes it */
    ck_assert_ptr_nonnull(strstr(b.data, "Allowed actions: finish."));
    lc_buf_free(&b);
    lc_react_step_free(&st);
  }
}
END_TEST

/* Every allocation failure is reported as LC_ENOMEM and leaks nothing. */
START_TEST(oom) {
  const char *t = "Thought: a\nb\nAction: f\nAction Input: {\"a\": [1, 2]}\n"
                  "Observation: x";
  long live = lc_alloc_live();
  int ok = 0;
  for (long n = 1; n < 50 && !ok; n++) {
    struct lc_react_step st;
    lc_alloc_fail_after(n);
    int rc = lc_react_parse(t, strlen(t), &st);
    lc_alloc_fail_after(0);
    ck_assert_msg(rc == 0 || rc == LC_ENOMEM, "n=%ld rc=%d", n, rc);
    ok = rc == 0;
    lc_react_step_free(&st);
    ck_assert_int_eq(lc_alloc_live(), live);
  }
  ck_assert(ok);
}
END_TEST

Suite *react_parse_suite(void) {
  Suite *s = suite_create("react_parse");
  TCase *tc = tcase_create("table");
  tcase_add_loop_test(tc, table, 0, (int)LC_ARRAY_LEN(cases));
  suite_add_tcase(s, tc);
  tc = tcase_create("misc");
  tcase_add_test(tc, length_bounded);
  tcase_add_test(tc, nul_bytes);
  tcase_add_test(tc, error_text_bracket);
  tcase_add_test(tc, error_text_langchain_json);
  tcase_add_test(tc, error_text_every_kind);
  tcase_add_test(tc, oom);
  suite_add_tcase(s, tc);
  return s;
}
