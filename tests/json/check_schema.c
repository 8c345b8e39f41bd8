/* check_schema.c: JSON Schema compile checks, validation and messages. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "lc.h"
#include "schema.h"

/* Validates value against schema (both JSON text). Returns NULL when valid,
 * else the formatted errors (free with lc_free). The schema must compile. */
static char *run(const char *schema, const char *value) {
  cJSON *sj = cJSON_Parse(schema);
  ck_assert_msg(sj != NULL, "bad test schema JSON: %s", schema);
  cJSON *vj = cJSON_Parse(value);
  ck_assert_msg(vj != NULL, "bad test value JSON: %s", value);
  struct lc_schema *s = NULL;
  char err[512];
  int rc = lc_schema_compile(sj, &s, err, sizeof err);
  ck_assert_msg(rc == 0, "compile failed: %s", err);
  cJSON_Delete(sj); /* the compiled schema must not borrow the tree */
  struct lc_schema_errors e;
  rc = lc_schema_validate(s, vj, &e);
  char *out = NULL;
  if (rc == LC_EINVAL) {
    ck_assert_uint_gt(e.count, 0);
    out = lc_schema_errors_format(&e);
    ck_assert_ptr_nonnull(out);
  } else {
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(e.total, 0);
  }
  lc_schema_errors_free(&e);
  lc_schema_free(s);
  cJSON_Delete(vj);
  return out;
}

#define OK(schema, value)                                            \
  do {                                                               \
    char *m_ = run(schema, value);                                   \
    ck_assert_msg(m_ == NULL, "expected valid: %s against %s: %s",   \
                  value, schema, m_);                                \
  } while (0)

/* Invalid, and the message contains want. */
#define BAD(schema, value, want)                                     \
  do {                                                               \
    char *m_ = run(schema, value);                                   \
    ck_assert_msg(m_ != NULL, "expected invalid: %s against %s",     \
                  value, schema);                                    \
    ck_assert_msg(strstr(m_, want) != NULL, "wanted [%s] in [%s]",   \
                  want, m_);                                         \
    lc_free(m_);                                                     \
  } while (0)

static char cerr[1024];

/* Compile must fail; returns the message (static). */
static const char *compile_fail(const char *schema) {
  cJSON *sj = cJSON_Parse(schema);
  ck_assert_msg(sj != NULL, "bad test schema JSON: %s", schema);
  struct lc_schema *s = NULL;
  int rc = lc_schema_compile(sj, &s, cerr, sizeof cerr);
  cJSON_Delete(sj);
  ck_assert_msg(rc == LC_EINVAL, "expected compile failure for %s", schema);
  ck_assert_ptr_null(s);
  return cerr;
}

#define CBAD(schema, want)                                                  \
  do {                                                                      \
    const char *m_ = compile_fail(schema);                                  \
    ck_assert_msg(strstr(m_, want) != NULL, "wanted [%s] in [%s]", want, m_); \
  } while (0)

START_TEST(types) {
  OK("{\"type\":\"string\"}", "\"x\"");
  BAD("{\"type\":\"string\"}", "5", "$: expected string, got number 5");
  OK("{\"type\":\"integer\"}", "3");
  OK("{\"type\":\"integer\"}", "3.0");
  BAD("{\"type\":\"integer\"}", "2.5", "expected integer, got number 2.5");
  BAD("{\"type\":\"integer\"}", "\"two\"", "expected integer, got string \"two\"");
  OK("{\"type\":\"number\"}", "2.5");
  BAD("{\"type\":\"number\"}", "true", "expected number, got boolean true");
  OK("{\"type\":\"null\"}", "null");
  BAD("{\"type\":\"null\"}", "0", "expected null");
  OK("{\"type\":\"boolean\"}", "false");
  OK("{\"type\":\"object\"}", "{}");
  BAD("{\"type\":\"object\"}", "[]", "expected object, got array");
  OK("{\"type\":\"array\"}", "[]");
  OK("{\"type\":[\"string\",\"null\"]}", "null");
  BAD("{\"type\":[\"string\",\"null\"]}", "1", "expected string or null, got number 1");
  OK("true", "{\"anything\":1}");
  BAD("false", "1", "$: no value is allowed here");
  OK("{}", "[1,\"a\",null]");
}
END_TEST

static const char *order_schema =
    "{\"type\":\"object\",\"properties\":{"
    "\"order_id\":{\"type\":\"string\"},"
    "\"qty\":{\"type\":\"integer\",\"minimum\":1},"
    "\"size\":{\"enum\":[\"S\",\"M\",\"L\"]},"
    "\"color\":{\"type\":\"string\"}},"
    "\"required\":[\"order_id\",\"qty\"],"
    "\"additionalProperties\":false}";

START_TEST(objects) {
  OK(order_schema, "{\"order_id\":\"a1\",\"qty\":2,\"size\":\"M\"}");
  BAD(order_schema, "{\"qty\":2}", "$: missing required property \"order_id\"");
  BAD(order_schema, "{\"order_id\":\"a\",\"qty\":\"two\"}",
      "$.qty: expected integer, got string \"two\"");
  BAD(order_schema, "{\"order_id\":\"a\",\"qty\":0}", "$.qty: must be >= 1; got 0");
  BAD(order_schema, "{\"order_id\":\"a\",\"qty\":1,\"size\":\"XL\"}",
      "$.size: must be one of \"S\", \"M\", \"L\"; got \"XL\"");
  BAD(order_schema, "{\"order_id\":\"a\",\"qty\":1,\"colour\":\"red\"}",
      "$.colour: property not allowed; allowed: order_id, qty, size, color");
  BAD(order_schema, "{\"order_id\":\"a\",\"qty\":1,\"colour\":\"red\"}",
      "did you mean \"color\"?");
  /* All errors are collected, one per line. */
  char *m = run(order_schema, "{\"qty\":\"x\",\"size\":\"XL\",\"zz\":1}");
  ck_assert_ptr_nonnull(m);
  ck_assert_ptr_nonnull(strstr(m, "missing required property \"order_id\""));
  ck_assert_ptr_nonnull(strstr(m, "$.qty: expected integer"));
  ck_assert_ptr_nonnull(strstr(m, "$.size: must be one of"));
  ck_assert_ptr_nonnull(strstr(m, "$.zz: property not allowed"));
  int lines = 1;
  for (char *p = m; *p; p++) lines += *p == '\n';
  ck_assert_int_eq(lines, 4);
  lc_free(m);
  /* additionalProperties as a schema; odd keys are quoted in paths. */
  const char *ap = "{\"additionalProperties\":{\"type\":\"number\"}}";
  OK(ap, "{\"a\":1,\"b\":2}");
  BAD(ap, "{\"a b\":\"x\"}", "$[\"a b\"]: expected number");
  OK("{\"additionalProperties\":true}", "{\"q\":1}");
  BAD("{\"additionalProperties\":false}", "{\"q\":1}", "allowed: (none)");
}
END_TEST

START_TEST(nested) {
  const char *s =
      "{\"type\":\"object\",\"properties\":{\"items\":{\"type\":\"array\","
      "\"items\":{\"type\":\"object\",\"properties\":{\"qty\":{\"type\":"
      "\"integer\"},\"tags\":{\"type\":\"array\",\"items\":{\"type\":"
      "\"string\"}}},\"required\":[\"qty\"]}}}}";
  OK(s, "{\"items\":[{\"qty\":1},{\"qty\":2,\"tags\":[\"a\"]}]}");
  BAD(s, "{\"items\":[{\"qty\":1},{\"qty\":2},{\"qty\":\"3\"}]}",
      "$.items[2].qty: expected integer, got string \"3\"");
  BAD(s, "{\"items\":[{\"qty\":1,\"tags\":[\"a\",7]}]}",
      "$.items[0].tags[1]: expected string, got number 7");
  BAD(s, "{\"items\":[{}]}", "$.items[0]: missing required property \"qty\"");
}
END_TEST

START_TEST(enum_const) {
  OK("{\"enum\":[1,\"a\",null,{\"k\":[1]}]}", "{\"k\":[1]}");
  OK("{\"enum\":[1,\"a\",null]}", "null");
  BAD("{\"enum\":[1,\"a\",null]}", "2", "must be one of 1, \"a\", null; got 2");
  OK("{\"const\":\"refund\"}", "\"refund\"");
  BAD("{\"const\":\"refund\"}", "\"return\"", "$: must be \"refund\"; got \"return\"");
  OK("{\"const\":{\"a\":[1,2]}}", "{\"a\":[1,2]}");
  BAD("{\"const\":{\"a\":[1,2]}}", "{\"a\":[2,1]}", "must be {\"a\":[1,2]}");
}
END_TEST

START_TEST(arrays) {
  const char *s = "{\"type\":\"array\",\"minItems\":1,\"maxItems\":3,"
                  "\"uniqueItems\":true}";
  OK(s, "[1,2,3]");
  BAD(s, "[]", "$: must have at least 1 item; got 0");
  BAD(s, "[1,2,3,4]", "must have at most 3 items; got 4");
  BAD(s, "[1,\"a\",1.0]", "items must be unique; items [0] and [2] are equal (1)");
  OK(s, "[{\"a\":1,\"b\":2},{\"a\":1,\"b\":3}]");
  BAD(s, "[{\"a\":1,\"b\":2},{\"b\":2,\"a\":1}]", "are equal");
  const char *t = "{\"prefixItems\":[{\"type\":\"string\"},{\"type\":\"integer\"}],"
                  "\"items\":false}";
  OK(t, "[\"a\",1]");
  OK(t, "[\"a\"]");
  BAD(t, "[1,1]", "$[0]: expected string");
  BAD(t, "[\"a\",1,2]", "$[2]: too many items; at most 2 allowed");
  const char *u = "{\"prefixItems\":[{\"type\":\"string\"}],\"items\":{\"type\":\"number\"}}";
  OK(u, "[\"a\",1,2.5]");
  BAD(u, "[\"a\",1,\"b\"]", "$[2]: expected number");
  /* draft-7 tuple form */
  const char *d7 = "{\"items\":[{\"type\":\"string\"}],\"additionalItems\":false}";
  OK(d7, "[\"a\"]");
  BAD(d7, "[\"a\",2]", "too many items");
  OK("{\"items\":{\"type\":\"integer\"}}", "[1,2,3]");
  BAD("{\"items\":{\"type\":\"integer\"}}", "[1,2.5]", "$[1]: expected integer");
  OK("{\"minItems\":2}", "\"not an array\"");
}
END_TEST

START_TEST(strings) {
  const char *s = "{\"type\":\"string\",\"minLength\":2,\"maxLength\":4}";
  OK(s, "\"ab\"");
  /* Code points, not bytes: four 2- and 3-byte characters are fine. */
  OK(s, "\"\xc3\xa9\xc3\xa9\xe2\x82\xac\xe2\x82\xac\"");
  BAD(s, "\"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\"",
      "must be at most 4 characters long; got 5");
  BAD(s, "\"a\"", "$: must be at least 2 characters long; got 1 (\"a\")");
  const char *p = "{\"pattern\":\"^[A-Z]{3}-\\\\d+$\"}";
  OK(p, "\"ABC-123\"");
  BAD(p, "\"abc-1\"", "must match the pattern \"^[A-Z]{3}-\\\\d+$\"; got \"abc-1\"");
  OK("{\"pattern\":\"b\"}", "\"abc\""); /* unanchored */
  OK("{\"pattern\":\"^[\\\\w.]+@[[:alnum:]]+$\"}", "\"a_b.c@host\"");
  BAD("{\"pattern\":\"^\\\\S+$\"}", "\"a b\"", "must match");
  OK("{\"pattern\":\"^[]a]+$\"}", "\"]a]\"");
  /* Long values are cut short in messages. */
  char big[400] = "\"";
  memset(big + 1, 'x', 300);
  strcpy(big + 301, "\"");
  char *m = run("{\"maxLength\":3}", big);
  ck_assert_ptr_nonnull(m);
  ck_assert_ptr_nonnull(strstr(m, "...\""));
  ck_assert_uint_lt(strlen(m), 200);
  lc_free(m);
}
END_TEST

START_TEST(numbers) {
  OK("{\"minimum\":1,\"maximum\":10}", "10");
  BAD("{\"maximum\":10}", "10.5", "$: must be <= 10; got 10.5");
  BAD("{\"exclusiveMinimum\":0}", "0", "must be > 0; got 0");
  OK("{\"exclusiveMinimum\":0}", "0.001");
  BAD("{\"exclusiveMaximum\":5}", "5", "must be < 5; got 5");
  BAD("{\"minimum\":5,\"exclusiveMinimum\":true}", "5", "must be > 5");
  OK("{\"multipleOf\":5}", "15");
  BAD("{\"multipleOf\":5}", "7", "must be a multiple of 5; got 7");
  OK("{\"multipleOf\":0.1}", "0.3");
  BAD("{\"multipleOf\":0.1}", "0.35", "multiple of 0.1");
  OK("{\"minimum\":1}", "\"strings ignore minimum\"");
  BAD("{\"minimum\":-1.5}", "-2", "must be >= -1.5; got -2");
}
END_TEST

START_TEST(combinators) {
  const char *any = "{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\",\"minimum\":1}]}";
  OK(any, "\"x\"");
  OK(any, "3");
  BAD(any, "0", "must match at least one of these 2 alternatives");
  BAD(any, "0", "(1) expected string, got number 0 | (2) must be >= 1; got 0");
  const char *one = "{\"oneOf\":[{\"type\":\"integer\"},{\"type\":\"number\"}]}";
  OK(one, "2.5");
  BAD(one, "2", "matches both (1) and (2)");
  BAD(one, "\"s\"", "must match exactly one of these 2 alternatives (oneOf), none matched");
  const char *all = "{\"allOf\":[{\"type\":\"integer\"},{\"minimum\":3},{\"maximum\":5}]}";
  OK(all, "4");
  BAD(all, "7", "must be <= 5; got 7");
  BAD("{\"not\":{\"type\":\"string\"}}", "\"s\"", "must not match the schema under \"not\"");
  OK("{\"not\":{\"type\":\"string\"}}", "1");
  /* Nested paths inside a branch keep their own path. */
  BAD("{\"anyOf\":[{\"properties\":{\"a\":{\"type\":\"string\"}}},false]}",
      "{\"a\":1}", "$.a: expected string");
}
END_TEST

START_TEST(refs) {
  const char *s =
      "{\"$defs\":{\"pos\":{\"type\":\"integer\",\"minimum\":1},"
      "\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"$ref\":\"#/$defs/pos\"},"
      "\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}}}},"
      "\"$ref\":\"#/$defs/node\"}";
  OK(s, "{\"v\":1,\"kids\":[{\"v\":2,\"kids\":[]},{\"v\":3}]}");
  BAD(s, "{\"v\":1,\"kids\":[{\"v\":2,\"kids\":[{\"v\":0}]}]}",
      "$.kids[0].kids[0].v: must be >= 1; got 0");
  OK("{\"definitions\":{\"a~b\":{\"type\":\"string\"}},\"$ref\":\"#/definitions/a~0b\"}",
     "\"x\"");
  /* A self-reference never terminates on its own; the guard stops it. */
  BAD("{\"$ref\":\"#\"}", "1", "nested deeper than 128 levels");
  BAD("{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},\"b\":{\"$ref\":\"#/$defs/a\"}},"
      "\"$ref\":\"#/$defs/a\"}", "1", "recursive $ref");
  /* A deep value against a recursive schema hits the same guard. */
  struct lc_buf b;
  lc_buf_init(&b, 0);
  for (int i = 0; i < 300; i++) lc_buf_puts(&b, "{\"kids\":[");
  for (int i = 0; i < 300; i++) lc_buf_puts(&b, "]}");
  char *m = run(s, b.data);
  ck_assert_ptr_nonnull(m);
  ck_assert_ptr_nonnull(strstr(m, "nested deeper"));
  lc_free(m);
  lc_buf_free(&b);
}
END_TEST

START_TEST(compile_errors) {
  CBAD("{\"type\":\"int\"}", "schema error at #/type: unknown type \"int\"; allowed:");
  CBAD("{\"properties\":{\"a\":{\"type\":[\"string\",\"flt\"]}}}",
       "#/properties/a/type/1: unknown type \"flt\"");
  CBAD("{\"type\":[]}", "#/type: must not be an empty array");
  CBAD("{\"required\":\"a\"}", "#/required: must be an array of property names");
  CBAD("{\"required\":[\"a\",1]}", "#/required/1: property names must be strings");
  CBAD("{\"enum\":\"a\"}", "#/enum: must be a non-empty array");
  CBAD("{\"enum\":[]}", "#/enum: must be a non-empty array");
  CBAD("{\"pattern\":\"(\"}", "#/pattern: invalid pattern \"(\"");
  CBAD("{\"pattern\":\"[\\\\D]\"}", "cannot be used inside");
  CBAD("{\"pattern\":5}", "#/pattern: must be a string");
  CBAD("{\"pattern\":\"^a+++++++++++++++++++++++++++++$\"}",
       "a quantifier follows another quantifier");
  CBAD("{\"pattern\":\"a+?\"}", "lazy or possessive");
  CBAD("{\"pattern\":\"((a{99}){99}){99}\"}", "too many repetitions");
  CBAD("{\"pattern\":\"a{1000}\"}", "repetition counts above 255");
  CBAD("{\"pattern\":\"(a)\\\\1\"}", "backreferences");
  CBAD("{\"minLength\":-1}", "#/minLength: must be a non-negative integer");
  CBAD("{\"maxItems\":1.5}", "#/maxItems: must be a non-negative integer");
  CBAD("{\"minimum\":\"1\"}", "#/minimum: must be a number");
  CBAD("{\"multipleOf\":0}", "#/multipleOf: must be a number greater than 0");
  CBAD("{\"properties\":[]}", "#/properties: must be an object");
  CBAD("{\"properties\":{\"a\":1}}", "#/properties/a: must be a schema");
  CBAD("{\"additionalProperties\":\"no\"}", "#/additionalProperties: must be a boolean or a schema");
  CBAD("{\"anyOf\":[]}", "#/anyOf: must be a non-empty array of schemas");
  CBAD("{\"oneOf\":[{},3]}", "#/oneOf/1: must be a schema");
  CBAD("{\"items\":{\"type\":\"bogus\"}}", "#/items/type: unknown type");
  CBAD("{\"uniqueItems\":1}", "#/uniqueItems: must be a boolean");
  CBAD("{\"$ref\":\"http://x/y\"}", "only local references");
  CBAD("{\"$ref\":\"#/$defs/missing\"}", "#/$ref: $ref \"#/$defs/missing\" does not point");
  CBAD("{\"$defs\":{\"a\":{\"type\":\"nope\"}},\"$ref\":\"#/$defs/a\"}",
       "#/$defs/a/type: unknown type");
  CBAD("{\"$defs\":{\"a\":3},\"$ref\":\"#/$defs/a\"}", "points to a number");
  CBAD("{\"exclusiveMinimum\":true}", "needs \"minimum\"");
  CBAD("{\"not\":[]}", "#/not: must be a schema");
  CBAD("3", "a schema must be an object or a boolean");
  /* Found by fuzz_schema: a repeated keyword used to overrun its array. */
  CBAD("{\"required\":[\"a\"],\"required\":[\"a\",\"b\"]}",
       "#/required: keyword \"required\" appears more than once");
  CBAD("{\"properties\":{\"a\":{\"type\":\"string\",\"type\":\"null\"}}}",
       "#/properties/a/type: keyword \"type\" appears more than once");
}
END_TEST

START_TEST(unknown_keywords) {
  cJSON *sj = cJSON_Parse(
      "{\"title\":\"t\",\"description\":\"d\",\"format\":\"email\","
      "\"properties\":{\"a\":{\"x-thing\":1,\"default\":2}}}");
  struct lc_schema *s = NULL;
  char err[256];
  ck_assert_int_eq(lc_schema_compile(sj, &s, err, sizeof err), 0);
  ck_assert_uint_eq(lc_schema_unknown_count(s), 2);
  ck_assert_str_eq(lc_schema_unknown_at(s, 0), "#/format");
  ck_assert_str_eq(lc_schema_unknown_at(s, 1), "#/properties/a/x-thing");
  ck_assert_ptr_null(lc_schema_unknown_at(s, 2));
  lc_schema_free(s);
  cJSON_Delete(sj);
}
END_TEST

START_TEST(deep_schema_guard) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  for (int i = 0; i < 100; i++) lc_buf_puts(&b, "{\"items\":");
  lc_buf_puts(&b, "{}");
  for (int i = 0; i < 100; i++) lc_buf_puts(&b, "}");
  CBAD(b.data, "schema nested deeper than 64 levels");
  lc_buf_reset(&b);
  for (int i = 0; i < 500; i++) lc_buf_puts(&b, "{\"examples\":");
  lc_buf_puts(&b, "1");
  for (int i = 0; i < 500; i++) lc_buf_puts(&b, "}");
  CBAD(b.data, "document nested deeper");
  lc_buf_free(&b);
}
END_TEST

START_TEST(error_cap_and_format) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  lc_buf_puts(&b, "[");
  for (int i = 0; i < 50; i++) lc_buf_printf(&b, "%s\"s%d\"", i ? "," : "", i);
  lc_buf_puts(&b, "]");
  cJSON *sj = cJSON_Parse("{\"items\":{\"type\":\"integer\"}}");
  cJSON *vj = cJSON_Parse(b.data);
  struct lc_schema *s;
  char err[128];
  ck_assert_int_eq(lc_schema_compile(sj, &s, err, sizeof err), 0);
  struct lc_schema_errors e;
  ck_assert_int_eq(lc_schema_validate(s, vj, &e), LC_EINVAL);
  ck_assert_uint_eq(e.count, LC_SCHEMA_MAX_ERRORS);
  ck_assert_uint_eq(e.total, 50);
  ck_assert_str_eq(e.items[3].path, "$[3]");
  char *m = lc_schema_errors_format(&e);
  ck_assert_ptr_nonnull(strstr(m, "(30 more errors not shown)"));
  lc_free(m);
  lc_schema_errors_free(&e);
  lc_schema_free(s);
  cJSON_Delete(sj);
  cJSON_Delete(vj);
  lc_buf_free(&b);
}
END_TEST

START_TEST(huge_inputs) {
  /* 200k unique items: uniqueItems must not be quadratic. */
  cJSON *arr = cJSON_CreateArray();
  for (int i = 0; i < 200000; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(i));
  cJSON *sj = cJSON_Parse("{\"type\":\"array\",\"uniqueItems\":true,"
                          "\"items\":{\"type\":\"integer\",\"minimum\":0}}");
  struct lc_schema *s;
  char err[128];
  ck_assert_int_eq(lc_schema_compile(sj, &s, err, sizeof err), 0);
  struct lc_schema_errors e;
  ck_assert_int_eq(lc_schema_validate(s, arr, &e), 0);
  lc_schema_errors_free(&e);
  cJSON_AddItemToArray(arr, cJSON_CreateNumber(77));
  ck_assert_int_eq(lc_schema_validate(s, arr, &e), LC_EINVAL);
  ck_assert_ptr_nonnull(strstr(e.items[0].message, "[77] and [200000] are equal"));
  lc_schema_errors_free(&e);
  /* No time bound here (the machine is shared): a quadratic check of
   * 200k items is 2e10 comparisons, past the case's Check timeout. */
  /* A 1 MB string against a pattern and length limits. */
  char *big = malloc(1 << 20);
  memset(big, 'a', (1 << 20) - 1);
  big[(1 << 20) - 1] = '\0';
  cJSON *str = cJSON_CreateString(big);
  cJSON *ps = cJSON_Parse("{\"pattern\":\"^a+$\",\"maxLength\":10}");
  struct lc_schema *s2;
  ck_assert_int_eq(lc_schema_compile(ps, &s2, err, sizeof err), 0);
  ck_assert_int_eq(lc_schema_validate(s2, str, &e), LC_EINVAL);
  ck_assert_uint_eq(e.total, 1);
  ck_assert_ptr_nonnull(strstr(e.items[0].message, "got 1048575"));
  ck_assert_uint_lt(strlen(e.items[0].message), 200);
  lc_schema_errors_free(&e);
  lc_schema_free(s2);
  cJSON_Delete(ps);
  cJSON_Delete(str);
  free(big);
  lc_schema_free(s);
  cJSON_Delete(sj);
  cJSON_Delete(arr);
}
END_TEST

/* Every allocation failure must fail cleanly and leak nothing. */
START_TEST(oom) {
  long live = lc_alloc_live();
  cJSON *sj = cJSON_Parse(order_schema);
  cJSON *vj = cJSON_Parse("{\"qty\":\"x\",\"size\":\"XL\",\"zz\":1}");
  lc_alloc_fail_after(_i);
  struct lc_schema *s = NULL;
  char err[256];
  int rc = lc_schema_compile(sj, &s, err, sizeof err);
  if (rc == 0) {
    struct lc_schema_errors e;
    rc = lc_schema_validate(s, vj, &e);
    ck_assert(rc == LC_EINVAL || rc == LC_ENOMEM);
    char *m = lc_schema_errors_format(&e);
    lc_free(m);
    lc_schema_errors_free(&e);
    lc_schema_free(s);
  } else {
    ck_assert_int_eq(rc, LC_ENOMEM);
  }
  lc_alloc_fail_after(0);
  ck_assert_int_eq(lc_alloc_live(), live);
  cJSON_Delete(sj);
  cJSON_Delete(vj);
}
END_TEST

Suite *schema_suite(void) {
  Suite *s = suite_create("schema");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, types);
  tcase_add_test(tc, objects);
  tcase_add_test(tc, nested);
  tcase_add_test(tc, enum_const);
  tcase_add_test(tc, arrays);
  tcase_add_test(tc, strings);
  tcase_add_test(tc, numbers);
  tcase_add_test(tc, combinators);
  tcase_add_test(tc, refs);
  tcase_add_test(tc, compile_errors);
  tcase_add_test(tc, unknown_keywords);
  tcase_add_test(tc, deep_schema_guard);
  tcase_add_test(tc, error_cap_and_format);
  tcase_add_test(tc, huge_inputs);
  tcase_add_loop_test(tc, oom, 1, 60);
  suite_add_tcase(s, tc);
  return s;
}
