/* check_actions.c: the allowed action set: declaring, lookup, the check
 * gate, string-input mapping, native tool and constrained-decoding forms. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actions.h"
#include "lc.h"

/* TEST DOUBLE, not a JSON-schema validator: checks only that every name in
 * "required" is present. The real validator is runtime/json/schema.h. */
static int stub_validate(void *ud, const struct lc_action *act, const cJSON *args,
                         char *err, size_t errlen) {
  const cJSON *schema = act->schema;
  int *calls = ud;
  if (calls) (*calls)++;
  const cJSON *r;
  cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(schema, "required")) {
    if (cJSON_IsString(r) && !cJSON_GetObjectItemCaseSensitive(args, r->valuestring)) {
      snprintf(err, errlen, "missing required property \"%s\"", r->valuestring);
      return 1;
    }
  }
  return 0;
}

static const char *lookup_schema =
    "{\"type\":\"object\",\"properties\":{\"key\":{\"type\":\"string\","
    "\"description\":\"the key to look up\"}},\"required\":[\"key\"]}";
static const char *weather_schema =
    "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\","
    "\"description\":\"city name\"},\"units\":{\"enum\":[\"c\",\"f\"]},"
    "\"days\":{\"type\":\"integer\"},\"tags\":{\"type\":\"array\",\"items\":"
    "{\"type\":\"string\"}}},\"required\":[\"city\"," "\"days\"]}";

static int calls;

static void setup_set(struct lc_actions *a) {
  calls = 0;
  ck_assert_int_eq(lc_actions_init(a, stub_validate, &calls, NULL), 0);
  ck_assert_int_eq(lc_actions_add(a, "lookup", "Look up a key.", cJSON_Parse(lookup_schema),
                                  LC_EFFECT_PURE), 0);
  ck_assert_int_eq(lc_actions_add(a, "get_weather", "Current weather.",
                                  cJSON_Parse(weather_schema), LC_EFFECT_IDEMPOTENT), 0);
  ck_assert_int_eq(lc_actions_add(a, "send_email", NULL, NULL, LC_EFFECT_AT_MOST_ONCE), 0);
}

static char *json(const cJSON *j) { return cJSON_PrintUnformatted(j); }

START_TEST(add_rules) {
  struct lc_actions a;
  setup_set(&a);
  ck_assert_uint_eq(a.n, 3);
  ck_assert_int_eq(lc_actions_add(&a, "finish", "", NULL, 0), LC_EINVAL);
  ck_assert_ptr_nonnull(strstr(a.err, "reserved"));
  ck_assert_int_eq(lc_actions_add(&a, "LOOKUP", "", NULL, 0), LC_EINVAL);
  ck_assert_ptr_nonnull(strstr(a.err, "twice"));
  ck_assert_int_eq(lc_actions_add(&a, "bad name", "", NULL, 0), LC_EINVAL);
  ck_assert_int_eq(lc_actions_add(&a, "", "", NULL, 0), LC_EINVAL);
  char long_name[70];
  memset(long_name, 'a', 65);
  long_name[65] = '\0';
  ck_assert_int_eq(lc_actions_add(&a, long_name, "", NULL, 0), LC_EINVAL);
  long_name[64] = '\0';
  ck_assert_int_eq(lc_actions_add(&a, long_name, "", NULL, 0), 0);
  /* not an object schema: rejected and freed (ASan would report a leak) */
  ck_assert_int_eq(lc_actions_add(&a, "x", "", cJSON_Parse("{\"type\":\"string\"}"), 0),
                   LC_EINVAL);
  ck_assert_ptr_nonnull(strstr(a.err, "object schema"));
  ck_assert_uint_eq(a.n, 4);
  ck_assert_str_eq(lc_effect_name(a.v[2]->effect), "at_most_once");
  lc_actions_free(&a);
}
END_TEST

START_TEST(find) {
  struct lc_actions a;
  setup_set(&a);
  ck_assert_str_eq(lc_actions_find(&a, "lookup")->name, "lookup");
  ck_assert_str_eq(lc_actions_find(&a, "Lookup")->name, "lookup"); /* paper style */
  ck_assert_ptr_eq(lc_actions_find(&a, "finish"), a.finish);
  ck_assert_ptr_eq(lc_actions_find(&a, "Finish"), a.finish);
  ck_assert_ptr_null(lc_actions_find(&a, "search"));
  ck_assert_ptr_null(lc_actions_find(&a, NULL));
  const char **names;
  size_t n;
  ck_assert_int_eq(lc_actions_names(&a, &names, &n), 0);
  ck_assert_uint_eq(n, 4);
  ck_assert_str_eq(names[0], "lookup");
  ck_assert_str_eq(names[3], "finish");
  lc_free(names);
  lc_actions_free(&a);
}
END_TEST

/* Whole names only: a prefix, an extension, the empty name or (in exact
 * mode, as native tool calls use) another case never picks a tool, and
 * lc_actions_check answers each with the Observation naming the allowed
 * actions. (A lookup by the given name's length would take "look" and ""
 * for lookup.) */
START_TEST(find_whole_names_only) {
  struct lc_actions a;
  setup_set(&a);
  const char *bad[] = {"look", "", "lookupX", "lookup ", " lookup", "l", "LOOK",
                       "fin", "finishX", "get_weather_", "get"};
  for (int exact = 0; exact <= 1; exact++) {
    a.exact = exact;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
      ck_assert_msg(lc_actions_find(&a, bad[i]) == NULL, "\"%s\" found", bad[i]);
      const struct lc_action *act = (const void *)1;
      cJSON *args = (cJSON *)1;
      char err[512];
      ck_assert_int_eq(lc_actions_check(&a, bad[i], NULL, "k", &act, &args, err, sizeof err),
                       LC_ENOTFOUND);
      ck_assert_ptr_null(act);
      ck_assert_ptr_null(args);
      ck_assert_msg(strstr(err, "Unknown action") && strstr(err, "lookup"), "%s", err);
    }
  }
  ck_assert_int_eq(calls, 0); /* nothing was validated, let alone run */
  a.exact = 1;
  ck_assert_ptr_null(lc_actions_find(&a, "LOOKUP"));
  ck_assert_ptr_null(lc_actions_find(&a, "Lookup"));
  ck_assert_ptr_null(lc_actions_find(&a, "Finish"));
  ck_assert_str_eq(lc_actions_find(&a, "lookup")->name, "lookup");
  ck_assert_ptr_eq(lc_actions_find(&a, "finish"), a.finish);
  a.exact = 0;
  ck_assert_str_eq(lc_actions_find(&a, "LOOKUP")->name, "lookup");
  lc_actions_free(&a);
}
END_TEST

START_TEST(string_param_rules) {
  struct lc_actions a;
  ck_assert_int_eq(lc_actions_init(&a, NULL, NULL, NULL), 0);
  const char *schemas[] = {
      /* one required string */
      "{\"type\":\"object\",\"properties\":{\"q\":{\"type\":\"string\"},"
      "\"n\":{\"type\":\"integer\"}},\"required\":[\"q\"]}",
      /* the only property, optional */
      "{\"type\":\"object\",\"properties\":{\"q\":{\"type\":\"string\"}}}",
      /* one required integer */
      "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\"}},"
      "\"required\":[\"n\"]}",
      /* two required */
      "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"},"
      "\"b\":{\"type\":\"string\"}},\"required\":[\"a\",\"b\"]}",
      /* no properties */
      "{\"type\":\"object\"}",
  };
  const char *want[] = {"q", "q", NULL, NULL, NULL};
  for (size_t i = 0; i < LC_ARRAY_LEN(schemas); i++) {
    char name[8];
    snprintf(name, sizeof name, "t%zu", i);
    ck_assert_int_eq(lc_actions_add(&a, name, "", cJSON_Parse(schemas[i]), 0), 0);
    if (want[i]) ck_assert_str_eq(a.v[i]->string_param, want[i]);
    else ck_assert_ptr_null(a.v[i]->string_param);
  }
  ck_assert_str_eq(a.finish->string_param, "answer");
  lc_actions_free(&a);
}
END_TEST

START_TEST(check_unknown) {
  struct lc_actions a;
  setup_set(&a);
  const struct lc_action *act;
  cJSON *args;
  char err[512];
  ck_assert_int_eq(lc_actions_check(&a, "search", NULL, "x", &act, &args, err, sizeof err),
                   LC_ENOTFOUND);
  ck_assert_ptr_null(act);
  ck_assert_ptr_null(args);
  ck_assert_str_eq(err, "Unknown action \"search\". Allowed actions: lookup, "
                        "get_weather, send_email, finish.");
  ck_assert_int_eq(calls, 0);
  lc_actions_free(&a);
}
END_TEST

START_TEST(check_string_mapping) {
  struct lc_actions a;
  setup_set(&a);
  const struct lc_action *act;
  cJSON *args;
  char err[512];
  ck_assert_int_eq(lc_actions_check(&a, "Lookup", NULL, "key-1", &act, &args, err, sizeof err), 0);
  ck_assert_str_eq(act->name, "lookup");
  char *s = json(args);
  ck_assert_str_eq(s, "{\"key\":\"key-1\"}");
  free(s);
  cJSON_Delete(args);
  ck_assert_int_eq(calls, 1);
  /* finish maps its text onto answer */
  ck_assert_int_eq(lc_actions_check(&a, "finish", NULL, "42", &act, &args, err, sizeof err), 0);
  s = json(args);
  ck_assert_str_eq(s, "{\"answer\":\"42\"}");
  free(s);
  cJSON_Delete(args);
  lc_actions_free(&a);
}
END_TEST

START_TEST(check_bad_args) {
  struct lc_actions a;
  setup_set(&a);
  const struct lc_action *act;
  cJSON *args;
  char err[512];
  /* plain text for a tool that needs an object */
  ck_assert_int_eq(lc_actions_check(&a, "get_weather", NULL, "Paris", &act, &args, err,
                                    sizeof err),
                   LC_EINVAL);
  ck_assert_str_eq(err, "\"get_weather\" takes a JSON object as input, not plain text: "
                        "get_weather[{\"city\": string, \"units\"?: \"c\"|\"f\", "
                        "\"days\": integer, \"tags\"?: string[]}]");
  /* schema failure: the validator's message plus the expected input */
  cJSON *in = cJSON_Parse("{\"city\":\"Paris\"}");
  ck_assert_int_eq(lc_actions_check(&a, "get_weather", in, NULL, &act, &args, err, sizeof err),
                   LC_EINVAL);
  ck_assert_ptr_null(args);
  ck_assert_msg(strstr(err, "Invalid input for \"get_weather\": missing required property "
                            "\"days\". Expected: get_weather[{\"city\""),
                "%s", err);
  cJSON_Delete(in);
  /* not an object */
  in = cJSON_Parse("[1,2]");
  ck_assert_int_eq(lc_actions_check(&a, "lookup", in, NULL, &act, &args, err, sizeof err),
                   LC_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "must be a JSON object"));
  ck_assert_ptr_nonnull(strstr(err, "lookup[<key>]"));
  cJSON_Delete(in);
  /* no input at all: {} then the schema decides */
  ck_assert_int_eq(lc_actions_check(&a, "lookup", NULL, NULL, &act, &args, err, sizeof err),
                   LC_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "missing required property \"key\""));
  ck_assert_int_eq(lc_actions_check(&a, "send_email", NULL, "", &act, &args, err, sizeof err), 0);
  char *s = json(args);
  ck_assert_str_eq(s, "{}");
  free(s);
  cJSON_Delete(args);
  /* a tiny error buffer truncates, never overflows */
  char tiny[8];
  ck_assert_int_eq(lc_actions_check(&a, "nope", NULL, NULL, &act, &args, tiny, sizeof tiny),
                   LC_ENOTFOUND);
  ck_assert_str_eq(tiny, "Unknown");
  lc_actions_free(&a);
}
END_TEST

START_TEST(check_object_args) {
  struct lc_actions a;
  setup_set(&a);
  const struct lc_action *act;
  cJSON *args;
  char err[512];
  cJSON *in = cJSON_Parse("{\"city\":\"Paris\",\"days\":2}");
  ck_assert_int_eq(lc_actions_check(&a, "get_weather", in, NULL, &act, &args, err, sizeof err), 0);
  ck_assert_ptr_ne(args, in); /* a copy the caller owns */
  ck_assert(cJSON_Compare(args, in, 1));
  cJSON_Delete(args);
  cJSON_Delete(in);
  lc_actions_free(&a);
  /* without a validator only the object shape is checked */
  ck_assert_int_eq(lc_actions_init(&a, NULL, NULL, NULL), 0);
  ck_assert_int_eq(lc_actions_add(&a, "lookup", "", cJSON_Parse(lookup_schema), 0), 0);
  in = cJSON_Parse("{}");
  ck_assert_int_eq(lc_actions_check(&a, "lookup", in, NULL, &act, &args, err, sizeof err), 0);
  cJSON_Delete(args);
  cJSON_Delete(in);
  lc_actions_free(&a);
}
END_TEST

START_TEST(render) {
  struct lc_actions a;
  setup_set(&a);
  struct lc_buf b;
  lc_buf_init(&b, 0);
  ck_assert_int_eq(lc_actions_render_input(a.v[0], &b), 0);
  ck_assert_str_eq(b.data, "<key>");
  lc_buf_reset(&b);
  ck_assert_int_eq(lc_actions_render_params(a.v[1], &b), 0);
  ck_assert_str_eq(b.data, "city: city name");
  lc_buf_reset(&b);
  ck_assert_int_eq(lc_actions_render_input(a.v[2], &b), 0);
  ck_assert_str_eq(b.data, "{}");
  lc_buf_free(&b);
  lc_actions_free(&a);
}
END_TEST

START_TEST(llm_tools) {
  struct lc_actions a;
  setup_set(&a);
  struct lc_llm_tool *t;
  size_t n;
  ck_assert_int_eq(lc_actions_to_llm_tools(&a, 0, &t, &n), 0);
  ck_assert_uint_eq(n, 3);
  ck_assert_str_eq(t[1].name, "get_weather");
  ck_assert_str_eq(t[1].description, "Current weather.");
  /* Borrowed from the actions, not copied; freeing the list leaves them. */
  ck_assert_ptr_eq(t[1].schema, a.v[1]->schema);
  ck_assert_ptr_eq(t[1].name, a.v[1]->name);
  ck_assert_uint_eq(t[1].borrowed, LC_LLM_TOOL_BORROWED);
  lc_actions_llm_tools_free(t, n);
  ck_assert_int_eq(lc_actions_to_llm_tools(&a, 1, &t, &n), 0);
  ck_assert_uint_eq(n, 4);
  ck_assert_str_eq(t[3].name, "finish");
  lc_actions_llm_tools_free(t, n);
  lc_actions_free(&a);
}
END_TEST

START_TEST(decoding_schema) {
  struct lc_actions a;
  setup_set(&a);
  cJSON *s = lc_actions_decoding_schema(&a);
  ck_assert_ptr_nonnull(s);
  cJSON *props = cJSON_GetObjectItem(s, "properties");
  cJSON *en = cJSON_GetObjectItem(cJSON_GetObjectItem(props, "action"), "enum");
  ck_assert_int_eq(cJSON_GetArraySize(en), 4);
  ck_assert_str_eq(cJSON_GetArrayItem(en, 0)->valuestring, "lookup");
  ck_assert_str_eq(cJSON_GetArrayItem(en, 3)->valuestring, "finish");
  cJSON *any = cJSON_GetObjectItem(cJSON_GetObjectItem(props, "input"), "anyOf");
  ck_assert_int_eq(cJSON_GetArraySize(any), 4);
  ck_assert(cJSON_Compare(cJSON_GetArrayItem(any, 1), a.v[1]->schema, 1));
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(props, "thought"), "type")->valuestring,
                   "string");
  char *req = json(cJSON_GetObjectItem(s, "required"));
  ck_assert_str_eq(req, "[\"thought\",\"action\",\"input\"]");
  free(req);
  ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(s, "additionalProperties")));
  cJSON_Delete(s);
  lc_actions_free(&a);
}
END_TEST

/* One action in two sets (and a shared finish): each set holds its own
 * reference, the same checks apply, the compiled schema is made once, and
 * the last reference frees everything. */
START_TEST(shared_action) {
  long live = lc_alloc_live(), alive = lc_action_live();
  struct lc_action *x, *fin;
  ck_assert_int_eq(lc_action_new("lookup", "Look up a key.", cJSON_Parse(lookup_schema),
                                 LC_EFFECT_PURE, &x), 0);
  ck_assert_int_eq(lc_action_new_finish(&fin), 0);
  struct lc_actions a, b;
  ck_assert_int_eq(lc_actions_init(&a, NULL, NULL, fin), 0);
  ck_assert_int_eq(lc_actions_init(&b, NULL, NULL, fin), 0);
  ck_assert_ptr_eq(a.finish, fin);
  ck_assert_int_eq(lc_actions_add_action(&a, x), 0);
  ck_assert_int_eq(lc_actions_add_action(&b, x), 0);
  ck_assert_int_eq(lc_actions_add_action(&b, x), LC_EINVAL);
  ck_assert_str_eq(b.err, "action \"lookup\" is declared twice");
  ck_assert_int_eq(x->refs, 3);
  ck_assert_int_eq(fin->refs, 3);
  ck_assert_ptr_eq(lc_actions_find(&b, "Lookup"), x);
  const struct lc_schema *s1, *s2;
  char err[128];
  ck_assert_int_eq(lc_action_compiled(x, &s1, err, sizeof err), 0);
  ck_assert_int_eq(lc_action_compiled(x, &s2, err, sizeof err), 0);
  ck_assert_ptr_eq(s1, s2);
  /* A schema that does not compile is an error every time, never kept. */
  struct lc_action *bad;
  ck_assert_int_eq(lc_action_new("bad", NULL, cJSON_Parse("{\"type\":\"objekt\"}"), 0, &bad), 0);
  ck_assert_int_eq(lc_action_compiled(bad, &s1, err, sizeof err), LC_EINVAL);
  ck_assert_int_eq(lc_action_compiled(bad, &s1, err, sizeof err), LC_EINVAL);
  ck_assert_ptr_null(bad->compiled);
  ck_assert_int_eq(lc_actions_add_action(&a, bad), LC_EINVAL); /* not an object schema */
  ck_assert_ptr_nonnull(strstr(a.err, "must be an object schema"));
  lc_action_unref(bad);
  lc_action_unref(x);
  lc_action_unref(fin);
  ck_assert_int_eq(lc_action_live() - alive, 2);
  struct lc_llm_tool *t;
  size_t n;
  ck_assert_int_eq(lc_actions_to_llm_tools(&a, 1, &t, &n), 0);
  lc_actions_free(&a);
  ck_assert_str_eq(t[0].name, "lookup"); /* b keeps it */
  ck_assert_str_eq(t[1].name, "finish");
  lc_actions_llm_tools_free(t, n);
  ck_assert_int_eq(x->refs, 1);
  lc_actions_free(&b);
  ck_assert_int_eq(lc_action_live(), alive);
  ck_assert_int_eq(lc_alloc_live(), live);
}
END_TEST

/* Allocation failures in add/check/tools fail cleanly and leak nothing. */
START_TEST(oom) {
  long live = lc_alloc_live();
  for (long n = 1; n < 40; n++) {
    struct lc_actions a;
    lc_alloc_fail_after(n);
    int rc = lc_actions_init(&a, stub_validate, NULL, NULL);
    if (rc == 0) {
      rc = lc_actions_add(&a, "lookup", "d", cJSON_Parse(lookup_schema), 0);
      ck_assert(rc == 0 || rc == LC_ENOMEM);
      const struct lc_action *act;
      cJSON *args = NULL;
      char err[256];
      rc = lc_actions_check(&a, "nope", NULL, NULL, &act, &args, err, sizeof err);
      ck_assert(rc == LC_ENOTFOUND || rc == LC_ENOMEM);
      struct lc_llm_tool *t;
      size_t nt;
      if (lc_actions_to_llm_tools(&a, 1, &t, &nt) == 0) lc_actions_llm_tools_free(t, nt);
      lc_actions_free(&a);
    } else {
      ck_assert_int_eq(rc, LC_ENOMEM);
    }
    lc_alloc_fail_after(0);
    ck_assert_int_eq(lc_alloc_live(), live);
  }
}
END_TEST

Suite *actions_suite(void) {
  Suite *s = suite_create("actions");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, shared_action);
  tcase_add_test(tc, add_rules);
  tcase_add_test(tc, find);
  tcase_add_test(tc, find_whole_names_only);
  tcase_add_test(tc, string_param_rules);
  tcase_add_test(tc, check_unknown);
  tcase_add_test(tc, check_string_mapping);
  tcase_add_test(tc, check_bad_args);
  tcase_add_test(tc, check_object_args);
  tcase_add_test(tc, render);
  tcase_add_test(tc, llm_tools);
  tcase_add_test(tc, decoding_schema);
  tcase_add_test(tc, oom);
  suite_add_tcase(s, tc);
  return s;
}
