/* check_conv.c: Lua <-> JSON conversion. */
#include <check.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "conv.h"
#include "utf8.h"

static char *roundtrip(const char *lua_expr, char *err, size_t errlen) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  char *out = NULL;
  if (luaL_dostring(L, lua_expr) == 0) {
    cJSON *j = NULL;
    if (lc_conv_to_json(L, -1, &j, err, errlen) == 0) {
      lua_settop(L, 0);
      lc_conv_push_json(L, j);   /* back to Lua */
      cJSON *j2 = NULL;
      if (lc_conv_to_json(L, -1, &j2, err, errlen) == 0) {
        out = cJSON_PrintUnformatted(j2);
        cJSON_Delete(j2);
      }
      cJSON_Delete(j);
    }
  } else {
    snprintf(err, errlen, "%s", lua_tostring(L, -1));
  }
  lua_close(L);
  return out;
}

START_TEST(nested_roundtrip) {
  char err[256];
  char *s = roundtrip("return {a={1,2,{b='x'}}, n=1.5, t=true}", err, sizeof err);
  ck_assert_msg(s != NULL, "%s", err);
  cJSON *j = cJSON_Parse(s);
  ck_assert_ptr_nonnull(j);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "a")), 3);
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "a"), 2), "b")->valuestring, "x");
  ck_assert(cJSON_GetObjectItem(j, "n")->valuedouble == 1.5);
  cJSON_Delete(j);
  free(s);
}
END_TEST

START_TEST(empty_array_survives) {
  lua_State *L = luaL_newstate();
  cJSON *in = cJSON_Parse("{\"xs\":[],\"o\":{},\"z\":null}");
  lc_conv_push_json(L, in);
  cJSON *out = NULL;
  char err[128];
  ck_assert_int_eq(lc_conv_to_json(L, -1, &out, err, sizeof err), 0);
  char *s = cJSON_PrintUnformatted(out);
  ck_assert(strstr(s, "\"xs\":[]") != NULL);
  ck_assert(strstr(s, "\"o\":{}") != NULL);
  ck_assert(strstr(s, "\"z\":null") != NULL);
  free(s);
  cJSON_Delete(in);
  cJSON_Delete(out);
  lua_close(L);
}
END_TEST

START_TEST(errors_name_the_path) {
  char err[256];
  ck_assert_ptr_null(roundtrip("return {a={1,2,print}}", err, sizeof err));
  ck_assert_msg(strstr(err, "$.a[2]") != NULL, "%s", err);
  ck_assert_ptr_null(roundtrip("return {1,2,nil,4}", err, sizeof err));
  ck_assert_ptr_null(roundtrip("return {x='\\xff'}", err, sizeof err));
  ck_assert_msg(strstr(err, "UTF-8") != NULL, "%s", err);
  ck_assert_ptr_null(roundtrip("local t = {} t.self = t return t", err, sizeof err));
  ck_assert_msg(strstr(err, "deeper") != NULL, "%s", err);
  ck_assert_ptr_null(roundtrip("return {0/0}", err, sizeof err));
}
END_TEST

START_TEST(parse_checks_input) {
  char err[128];
  ck_assert_ptr_null(lc_json_parse("{\"a\":1} x", 9, err, sizeof err));
  ck_assert(strstr(err, "trailing") != NULL);
  ck_assert_ptr_null(lc_json_parse("{\"a\":\"\xc3\x28\"}", 10, err, sizeof err));
  ck_assert(strstr(err, "UTF-8") != NULL);
  ck_assert_ptr_null(lc_json_parse("{\"a\":", 5, err, sizeof err));
  cJSON *j = lc_json_parse("{\"a\":\"\xc3\xa9\"} \n", 12, err, sizeof err);
  ck_assert_ptr_nonnull(j);
  cJSON_Delete(j);
}
END_TEST

START_TEST(utf8_rules) {
  size_t bad;
  ck_assert(lc_utf8_valid("h\xc3\xa9llo", 6, NULL));
  ck_assert(!lc_utf8_valid("\xc0\xaf", 2, &bad)); /* overlong */
  ck_assert(!lc_utf8_valid("\xed\xa0\x80", 3, &bad)); /* surrogate */
  ck_assert(!lc_utf8_valid("ab\xf4\x90\x80\x80", 6, &bad)); /* > U+10FFFF */
  ck_assert_uint_eq(bad, 2);
  ck_assert(!lc_utf8_valid("\xe2\x82", 2, &bad)); /* truncated */
}
END_TEST


START_TEST(finalizer_adding_keys_while_encoding) {
  /* to_text counts an object's keys, then allocates its key array: that
   * allocation may run a GC step, whose finalizers may add keys. Left in
   * the finalizer phase of a cycle with 300 finalizers to go (10 run per
   * step), with a step due on the next allocation, the array was
   * overrun (heap overflow under ASan). */
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  ck_assert_int_eq(luaL_dostring(L,
      "t = {}\n"
      "for i = 1, 50 do t['k' .. i] = i end\n"
      "fin = 0\n"
      "for i = 1, 300 do setmetatable({}, {__gc = function()\n"
      "  fin = fin + 1; t['added' .. fin] = fin end}) end\n"), 0);
  lua_gc(L, LUA_GCINC, 0, 100, 1); /* tiny steps: one after each allocation */
  int fin = 0;
  for (int i = 0; i < 100000 && fin == 0; i++) {
    lua_gc(L, LUA_GCSTEP, 0);
    lua_getglobal(L, "fin");
    fin = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
  }
  ck_assert_int_gt(fin, 0);
  ck_assert_int_lt(fin, 300);
  lua_getglobal(L, "t");
  struct lc_buf b;
  lc_buf_init(&b, 0);
  char err[256];
  int rc = lc_conv_to_text(L, -1, &b, err, sizeof err);
  /* Either the keys stayed as counted, or the change is reported. */
  ck_assert_msg(rc == 0 || strstr(err, "table changed") != NULL, "rc %d: %s", rc, err);
  lc_buf_free(&b);
  lua_close(L);
}
END_TEST

/* The byte-at-a-time validator lc_utf8_valid had before its eight-byte
 * ASCII skip: the skip must give the same verdict and the same 'bad'
 * offset for every string, wherever the first non-ASCII byte falls
 * relative to an eight-byte chunk. */
static int ref_utf8_valid(const unsigned char *s, size_t n, size_t *bad) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i], min, cp;
    size_t len;
    if (c < 0x80) { i++; continue; }
    else if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
    else goto fail;
    if (i + len > n) goto fail;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) goto fail;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) goto fail;
    i += len;
  }
  return 1;
fail:
  *bad = i;
  return 0;
}

START_TEST(utf8_ascii_skip_matches_bytewise) {
  static const char *const tails[] = {"\xc3\xa9", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                      "\xe2\x82", "\xf0\x9f\x98\x80", "\x80", "\xff", "\xe2\x82\xac"};
  unsigned char buf[64];
  unsigned seed = 12345;
  for (size_t pre = 0; pre < 20; pre++)
    for (size_t t = 0; t < sizeof tails / sizeof *tails; t++)
      for (size_t post = 0; post < 12; post++) {
        size_t n = 0;
        for (size_t i = 0; i < pre; i++) buf[n++] = (unsigned char)('a' + i % 26);
        size_t tl = strlen(tails[t]);
        memcpy(buf + n, tails[t], tl);
        n += tl;
        for (size_t i = 0; i < post; i++) {
          seed = seed * 1103515245u + 12345u;
          buf[n++] = (unsigned char)((seed >> 16) & 0x7f);
        }
        for (size_t cut = 0; cut <= n; cut++) {
          size_t b1 = 999, b2 = 999;
          int v1 = lc_utf8_valid((const char *)buf, cut, &b1);
          int v2 = ref_utf8_valid(buf, cut, &b2);
          ck_assert_int_eq(v1, v2);
          if (!v1) ck_assert_uint_eq(b1, b2);
        }
      }
}
END_TEST

Suite *conv_suite(void) {
  Suite *s = suite_create("conv");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, nested_roundtrip);
  tcase_add_test(tc, utf8_ascii_skip_matches_bytewise);
  tcase_add_test(tc, empty_array_survives);
  tcase_add_test(tc, errors_name_the_path);
  tcase_add_test(tc, parse_checks_input);
  tcase_add_test(tc, utf8_rules);
  tcase_add_test(tc, finalizer_adding_keys_while_encoding);
  suite_add_tcase(s, tc);
  return s;
}
