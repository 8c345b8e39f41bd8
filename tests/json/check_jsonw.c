/* check_jsonw.c: the JSON writer: escaping, numbers, nesting and commas,
 * errors, and byte equality with cJSON_PrintUnformatted (the adapters and
 * lc_conv_to_text rely on it: a body must not depend on the path that
 * built it). */
#include <check.h>
#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"
#include "buf.h"
#include "conv.h"
#include "http.h"
#include "jsonr.h"
#include "jsonw.h"
#include "lc.h"
#include "schema.h"
#include "util_locale.h"

/* Writes one string value and returns the text (static buffer). */
static const char *str_json(const char *s, size_t n) {
  static char out[256];
  struct lc_buf b;
  lc_buf_init(&b, 0);
  struct lc_jsonw w;
  lc_jsonw_init(&w, &b);
  lc_jsonw_str(&w, s, n);
  ck_assert_int_eq(lc_jsonw_finish(&w), 0);
  ck_assert_uint_lt(b.len, sizeof out);
  memcpy(out, b.data, b.len + 1);
  lc_buf_free(&b);
  return out;
}

START_TEST(every_control_char_escaped) {
  static const char *named[32] = {['\b'] = "\\b", ['\f'] = "\\f",
                                  ['\n'] = "\\n", ['\r'] = "\\r",
                                  ['\t'] = "\\t"};
  for (int c = 0; c < 32; c++) {
    char in[1] = {(char)c}, want[16];
    if (named[c])
      snprintf(want, sizeof want, "\"%s\"", named[c]);
    else
      snprintf(want, sizeof want, "\"\\u%04x\"", c);
    ck_assert_str_eq(str_json(in, 1), want);
  }
  ck_assert_str_eq(str_json("\"", 1), "\"\\\"\"");
  ck_assert_str_eq(str_json("\\", 1), "\"\\\\\"");
  ck_assert_str_eq(str_json("/\x7f", 2), "\"/\x7f\""); /* not escaped */
}
END_TEST

START_TEST(nul_and_utf8) {
  ck_assert_str_eq(str_json("a\0b", 3), "\"a\\u0000b\"");
  const char *u = "é ☃ 😀";
  char want[64];
  snprintf(want, sizeof want, "\"%s\"", u);
  ck_assert_str_eq(str_json(u, strlen(u)), want);
  ck_assert_str_eq(str_json("", 0), "\"\"");
  /* Long runs around escapes exercise the 8-byte scan. */
  char in[100], exp[200];
  size_t k = 0;
  exp[k++] = '"';
  for (int i = 0; i < 100; i++) {
    in[i] = (char)(i % 37 == 36 ? '"' : 'a' + i % 26);
    if (in[i] == '"')
      exp[k++] = '\\';
    exp[k++] = in[i];
  }
  exp[k++] = '"';
  exp[k] = '\0';
  ck_assert_str_eq(str_json(in, 100), exp);
}
END_TEST

START_TEST(strings_match_cjson) {
  for (int c = 0; c < 256; c++) {
    for (int pos = 0; pos < 10; pos++) {
      char s[12];
      memset(s, 'x', 11);
      s[11] = '\0';
      s[pos] = (char)(c ? c : 'y');
      cJSON *j = cJSON_CreateString(s);
      char *p = cJSON_PrintUnformatted(j);
      ck_assert_str_eq(str_json(s, 11), p);
      free(p);
      cJSON_Delete(j);
    }
  }
}
END_TEST

START_TEST(numbers_exact_and_cjson_where_exact) {
  double vals[] = {0,
                   -0.0,
                   1,
                   -1,
                   0.5,
                   0.1,
                   1.0 / 3,
                   2147483647.0,
                   2147483648.0,
                   -2147483649.0,
                   1e15 - 1,
                   1e15,
                   -1e15,
                   9007199254740993.0,
                   1e300,
                   -1e-300,
                   5e-324,
                   0.1 + 0.2,
                   123456789.125,
                   NAN,
                   INFINITY,
                   -INFINITY};
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < 20000; i++) {
    double d;
    if (i < (int)(sizeof vals / sizeof *vals)) {
      d = vals[i];
    } else {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      if (i % 3 == 0)
        d = (double)(int64_t)(x % 2000000001) - 1e9;
      else if (i % 3 == 1)
        d = (double)(int64_t)(x >> 11) / (double)(1 + x % 1000);
      else
        memcpy(&d, &x, sizeof d);
    }
    char mine[32];
    lc_jsonw_fmt_num(d, mine);
    cJSON *j = cJSON_CreateNumber(d);
    char *p = cJSON_PrintUnformatted(j);
    /* Exact where cJSON is exact; where cJSON's 15-digit form loses the
     * last bit (it accepts it within an epsilon), ours keeps 17 digits. */
    if (isfinite(d)) {
      ck_assert_msg(strtod(mine, NULL) == d, "%.17g printed as %s: not exact", d, mine);
      if (strtod(p, NULL) == d)
        ck_assert_msg(strcmp(mine, p) == 0, "%.17g: %s vs cJSON %s", d, mine, p);
    } else {
      ck_assert_str_eq(mine, p);
    }
    free(p);
    cJSON_Delete(j);
  }
}
END_TEST

/* lc_jsonw_fmt_milli(k) is lc_jsonw_fmt_num(k / 1000.0) (the journal's
 * latency_ms), every k below 200,000 and 200,000 spread up to 1e12 and
 * beyond. */
START_TEST(milli_matches_fmt_num) {
  char a[48], b[48];
  unsigned seed = 7;
  for (long i = 0; i < 400000; i++) {
    long k = i < 200000 ? i
                        : (long)(((unsigned long)rand_r(&seed) << 31 | (unsigned long)rand_r(&seed)) %
                                 (i % 2 ? 1000000000000UL : 2000000000000UL));
    size_t na = lc_jsonw_fmt_milli(k, a), nb = lc_jsonw_fmt_num((double)k / 1000, b);
    ck_assert_msg(na == nb && !strcmp(a, b), "k %ld: %s / %s", k, a, b);
  }
  lc_jsonw_fmt_milli(-5, a);
  ck_assert_str_eq(a, "-0.005");
}
END_TEST

START_TEST(nesting_and_commas) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  struct lc_jsonw w;
  lc_jsonw_init(&w, &b);
  lc_jsonw_obj(&w);
  lc_jsonw_key(&w, "a");
  lc_jsonw_arr(&w);
  lc_jsonw_num(&w, 1);
  lc_jsonw_arr(&w);
  lc_jsonw_arr_end(&w);
  lc_jsonw_obj(&w);
  lc_jsonw_obj_end(&w);
  lc_jsonw_null(&w);
  lc_jsonw_bool(&w, 0);
  lc_jsonw_arr_end(&w);
  lc_jsonw_key(&w, "k\"");
  lc_jsonw_raw(&w, "{\"x\":2}", 7);
  lc_jsonw_key(&w, "c");
  lc_jsonw_cstr(&w, NULL);
  lc_jsonw_obj_end(&w);
  ck_assert_int_eq(lc_jsonw_finish(&w), 0);
  ck_assert_str_eq(b.data,
                   "{\"a\":[1,[],{},null,false],\"k\\\"\":{\"x\":2},\"c\":\"\"}");
  lc_buf_free(&b);
}
END_TEST

START_TEST(trees_match_cjson) {
  const char *src =
      "{\"a\":[1,2.5,-3e-7,\"x\\u0001\\n\",true,false,null,{},[]],"
      "\"b\":{\"c\":{\"d\":[[[]]]}},\"\":\"empty key\",\"u\":\"\\u00e9\"}";
  cJSON *j = cJSON_Parse(src);
  ck_assert_ptr_nonnull(j);
  char *p = cJSON_PrintUnformatted(j);
  struct lc_buf b;
  lc_buf_init(&b, 0);
  struct lc_jsonw w;
  lc_jsonw_init(&w, &b);
  lc_jsonw_cjson(&w, j);
  ck_assert_int_eq(lc_jsonw_finish(&w), 0);
  ck_assert_str_eq(b.data, p);
  free(p);
  cJSON_Delete(j);
  lc_buf_free(&b);
}
END_TEST

START_TEST(errors_are_sticky) {
  struct lc_buf b;
  lc_buf_init(&b, 16); /* a hard limit */
  struct lc_jsonw w;
  lc_jsonw_init(&w, &b);
  lc_jsonw_arr(&w);
  lc_jsonw_cstr(&w, "this string is longer than sixteen bytes");
  ck_assert_int_eq(lc_jsonw_finish(&w), LC_ETOOBIG);
  lc_jsonw_num(&w, 1); /* ignored */
  lc_jsonw_arr_end(&w);
  ck_assert_int_eq(lc_jsonw_finish(&w), LC_ETOOBIG);
  lc_buf_free(&b);

  lc_buf_init(&b, 0);
  lc_jsonw_init(&w, &b);
  for (int i = 0; i <= LC_JSONW_MAX_DEPTH; i++)
    lc_jsonw_arr(&w);
  ck_assert_int_eq(lc_jsonw_finish(&w), LC_EINVAL);
  lc_buf_free(&b);

  /* Out of memory, at every allocation. */
  for (long n = 1; n < 8; n++) {
    lc_buf_init(&b, 0);
    lc_jsonw_init(&w, &b);
    lc_alloc_fail_after(n);
    lc_jsonw_obj(&w);
    lc_jsonw_key(&w, "k");
    char big[3000];
    memset(big, 'z', sizeof big);
    lc_jsonw_str(&w, big, sizeof big);
    lc_jsonw_obj_end(&w);
    int rc = lc_jsonw_finish(&w);
    lc_alloc_fail_after(0);
    ck_assert(rc == 0 || rc == LC_ENOMEM);
    if (rc == 0)
      ck_assert_uint_eq(b.len, sizeof big + 8);
    lc_buf_free(&b);
  }
}
END_TEST

/* lc_conv_to_text gives the bytes of lc_conv_to_json + print, or the same
 * error message. */
static void same_as_tree(lua_State *L, const char *expr) {
  ck_assert_msg(luaL_dostring(L, expr) == 0, "%s", lua_tostring(L, -1));
  cJSON *j = NULL;
  char e1[256], e2[256];
  int r1 = lc_conv_to_json(L, -1, &j, e1, sizeof e1);
  struct lc_buf b;
  lc_buf_init(&b, 0);
  int r2 = lc_conv_to_text(L, -1, &b, e2, sizeof e2);
  ck_assert_int_eq(r1, r2);
  if (r1 == 0) {
    char *p = lc_json_print(j);
    ck_assert_str_eq(b.data, p);
    free(p);
  } else {
    ck_assert_str_eq(e1, e2);
  }
  cJSON_Delete(j);
  lc_buf_free(&b);
  lua_settop(L, 0);
}

START_TEST(conv_text_matches_tree) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  same_as_tree(L, "return {type='object', properties={key={type='string'}},"
                  " required={'key'}}");
  same_as_tree(L, "return {a={1,2,{b='x\\n\\0'}}, n=1.5, i=2^53, m=-7,"
                  " t=true, f=false}");
  same_as_tree(L, "return {a={1,2,{b='x\\1'}}, big=1e300, s='\\u{e9}'}");
  same_as_tree(L, "return setmetatable({}, {__jsontype='array'})");
  same_as_tree(L, "return {}");
  same_as_tree(L, "return 'plain'");
  same_as_tree(L, "return 42");
  same_as_tree(L, "return {a={1,2,print}}");         /* error + path */
  same_as_tree(L, "return {1,2,nil,4}");             /* holes */
  same_as_tree(L, "return {1, x=2}");                /* mixed */
  same_as_tree(L, "return {s='\\xff'}");             /* bad UTF-8 */
  same_as_tree(L, "return {x=0/0}");                 /* NaN */
  same_as_tree(L, "local t = {} t.t = t return t");  /* depth limit */
  lua_close(L);
}
END_TEST

/* Under a real decimal-comma locale (de_DE: printf("%g", 0.7) gives
 * "0,7"), every number written to or read from JSON or the wire keeps '.':
 * the writer, the reader, the schema's messages, Retry-After and the
 * budget's reasons. The request body once carried "temperature":0,7. */
START_TEST(numbers_ignore_the_locale) {
  const char *name = lc_test_comma_locale();
  char tmp[64];
  snprintf(tmp, sizeof tmp, "%g", 0.7);
  ck_assert_msg(strcmp(tmp, "0,7") == 0, "%s does not write 0,7 but %s", name, tmp);
  /* writer */
  ck_assert_uint_eq(lc_jsonw_fmt_num(0.7, tmp), 3);
  ck_assert_str_eq(tmp, "0.7");
  lc_jsonw_fmt_num(0.1 + 0.2, tmp);
  ck_assert_str_eq(tmp, "0.30000000000000004");
  lc_jsonw_fmt_num(-2.5e-300, tmp);
  ck_assert_str_eq(tmp, "-2.5e-300");
  struct lc_buf b;
  lc_buf_init(&b, 0);
  struct lc_jsonw w;
  lc_jsonw_init(&w, &b);
  lc_jsonw_obj(&w);
  lc_jsonw_key(&w, "temperature");
  lc_jsonw_num(&w, 0.7);
  lc_jsonw_obj_end(&w);
  ck_assert_int_eq(lc_jsonw_finish(&w), 0);
  ck_assert_str_eq(b.data, "{\"temperature\":0.7}");
  lc_buf_free(&b);
  /* reader */
  char e[128];
  cJSON *j = lc_json_parse("[0.7,1.5e3,-0.25]", 17, e, sizeof e);
  ck_assert_ptr_nonnull(j);
  ck_assert(cJSON_GetArrayItem(j, 0)->valuedouble == 0.7);
  ck_assert(cJSON_GetArrayItem(j, 1)->valuedouble == 1500);
  ck_assert(cJSON_GetArrayItem(j, 2)->valuedouble == -0.25);
  cJSON_Delete(j);
  struct lc_jsonr jr; /* the streaming reader the adapters use */
  double d = 0;
  lc_jsonr_init(&jr, "0.7", 3);
  ck_assert_int_eq(lc_jsonr_num(&jr, &d), 0);
  ck_assert(d == 0.7);
  /* schema messages name the bound as JSON */
  cJSON *sch = cJSON_Parse("{\"type\":\"number\",\"maximum\":0.5}");
  struct lc_schema *s = NULL;
  ck_assert_int_eq(lc_schema_compile(sch, &s, e, sizeof e), 0);
  cJSON *v = cJSON_CreateNumber(0.75);
  struct lc_schema_errors se;
  ck_assert_int_eq(lc_schema_validate(s, v, &se), LC_EINVAL);
  char *msg = lc_schema_errors_format(&se);
  ck_assert_msg(strstr(msg, "0.5") && !strstr(msg, "0,5"), "%s", msg);
  lc_free(msg);
  lc_schema_errors_free(&se);
  lc_schema_free(s);
  cJSON_Delete(v);
  cJSON_Delete(sch);
  /* the wire: Retry-After in seconds */
  ck_assert(lc_http_parse_retry_after("1.5", 0) == 1.5);
  /* reasons that land in results */
  struct lc_budget_limits l;
  lc_budget_limits_default(&l);
  l.cost_usd = 2.5;
  struct lc_budget bu;
  lc_budget_init(&bu, &l, NULL, 0);
  lc_buf_init(&b, 0);
  ck_assert_int_eq(lc_budget_reason(&bu, LC_LIMIT_COST, 0, &b), 0);
  ck_assert_str_eq(b.data, "cost limit reached: $0.0000 of $2.5000");
  lc_buf_free(&b);
  lc_budget_free(&bu);
  lc_test_locale_done();
}
END_TEST

Suite *jsonw_suite(void) {
  Suite *s = suite_create("jsonw");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, every_control_char_escaped);
  tcase_add_test(tc, nul_and_utf8);
  tcase_add_test(tc, strings_match_cjson);
  tcase_add_test(tc, numbers_exact_and_cjson_where_exact);
  tcase_add_test(tc, milli_matches_fmt_num);
  tcase_add_test(tc, nesting_and_commas);
  tcase_add_test(tc, trees_match_cjson);
  tcase_add_test(tc, errors_are_sticky);
  tcase_add_test(tc, conv_text_matches_tree);
  suite_add_tcase(s, tc);
  /* Its own case with room for localedef (compiling de_DE when the
   * machine has no decimal-comma locale installed takes seconds). */
  tc = tcase_create("locale");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, numbers_ignore_the_locale);
  suite_add_tcase(s, tc);
  return s;
}
