/* check_ffi.c: native functions through libffi (ffi_fn.c) and the Lua
 * binding (l_native.c), against libm and tests/native/lc_testnative.c. */
#include <check.h>
#include <dlfcn.h>
#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ffi_fn.h"
#include "l_native.h"
#include "lc.h"
#include "schema.h"

#define TN LC_TESTNATIVE_PATH

static char err[1024];

static struct lc_ffi_fn *open_ok(const char *lib, const char *sym, const char *sig) {
  struct lc_ffi_fn *fn = NULL;
  int rc = lc_ffi_open(lib, sym, sig, &fn, err, sizeof err);
  ck_assert_msg(rc == 0, "open %s %s: %s", sym, sig, err);
  return fn;
}

/* Calls with JSON args; returns compact JSON of the result, or NULL with the
 * code in *rc and the message in err. Caller frees with free(). */
static char *call(struct lc_ffi_fn *fn, const char *args, int *rc) {
  cJSON *a = cJSON_Parse(args);
  ck_assert_msg(a != NULL, "bad test JSON %s", args);
  cJSON *r = NULL;
  *rc = lc_ffi_call(fn, a, &r, err, sizeof err);
  cJSON_Delete(a);
  if (*rc) {
    ck_assert_ptr_null(r);
    return NULL;
  }
  char *s = cJSON_PrintUnformatted(r);
  cJSON_Delete(r);
  return s;
}

#define CALL_EQ(fn, args, want)                                          \
  do {                                                                   \
    int rc_;                                                             \
    char *s_ = call(fn, args, &rc_);                                     \
    ck_assert_msg(s_ != NULL, "call %s failed: %s", args, err);          \
    ck_assert_msg(strcmp(s_, want) == 0, "%s: got %s, want %s", args, s_, \
                  want);                                                 \
    free(s_);                                                            \
  } while (0)

#define CALL_ERR(fn, args, code, want)                                   \
  do {                                                                   \
    int rc_;                                                             \
    char *s_ = call(fn, args, &rc_);                                     \
    ck_assert_msg(s_ == NULL, "call %s should fail, got %s", args, s_);  \
    ck_assert_int_eq(rc_, code);                                         \
    ck_assert_msg(strstr(err, want) != NULL, "wanted [%s] in [%s]", want, err); \
  } while (0)

START_TEST(libm_pow_cos) {
  struct lc_ffi_fn *pw = open_ok("libm.so.6", "pow", "double(double, double)");
  ck_assert_str_eq(lc_ffi_describe(pw), "double pow(double, double)");
  ck_assert_int_eq(lc_ffi_arity(pw), 2);
  CALL_EQ(pw, "[2, 10]", "1024");
  CALL_EQ(pw, "[2, 0.5]", "1.4142135623730951");
  CALL_ERR(pw, "[2]", LC_EINVAL, "pow: expects 2 arguments (double, double), got 1");
  CALL_ERR(pw, "[2, \"x\"]", LC_EINVAL,
           "pow: argument 2 (double): expected a number, got string \"x\"");
  CALL_ERR(pw, "[2, 2000]", LC_EIO, "returned infinity, which JSON cannot hold");
  lc_ffi_free(pw);
  struct lc_ffi_fn *c = open_ok("libm.so.6", "cos", "  double ( double )  ");
  CALL_EQ(c, "[0]", "1");
  lc_ffi_free(c);
}
END_TEST

START_TEST(integer_types) {
  struct lc_ffi_fn *f = open_ok(TN, "lc_tn_add", "int(int,int)");
  CALL_EQ(f, "[2, 3]", "5");
  CALL_EQ(f, "[-7, 3.0]", "-4");
  CALL_ERR(f, "[2.5, 1]", LC_EINVAL, "argument 1 (int): expected an integer, got number 2.5");
  CALL_ERR(f, "[2147483648, 1]", LC_EINVAL, "2147483648 is out of range (-2147483648..2147483647)");
  CALL_ERR(f, "[\"3\", 1]", LC_EINVAL, "expected an integer, got string \"3\"");
  CALL_ERR(f, "[true, 1]", LC_EINVAL, "got boolean true");
  CALL_ERR(f, "[null, 1]", LC_EINVAL, "got null");
  lc_ffi_free(f);
  struct {
    const char *sym, *sig, *ok, *okout, *bad, *badmsg;
  } cases[] = {
      {"lc_tn_i8", "char(char)", "[-128]", "-128", "[128]", "out of range (-128..127)"},
      {"lc_tn_i8", "int8(int8)", "[127]", "127", "[-129]", "-129 is out of range"},
      {"lc_tn_u8", "uint8(uint8)", "[255]", "255", "[-1]", "-1 is out of range (0..255)"},
      {"lc_tn_i16", "int16(int16)", "[-32768]", "-32768", "[32768]", "out of range"},
      {"lc_tn_u16", "uint16(uint16)", "[65535]", "65535", "[65536]", "out of range"},
      {"lc_tn_u32", "uint32(uint32)", "[4294967295]", "4294967295", "[4294967296]", "out of range"},
      {"lc_tn_i64", "int64(int64)", "[-9007199254740991]", "\"-9007199254740991\"",
       "[9007199254740994]", "too large to be exact in JSON; pass it as a decimal string"},
      /* 2^53 + 1 parses as 2^53: refused, not called as its neighbour. */
      {"lc_tn_i64", "int64(int64)", "[\"9007199254740992\"]", "\"9007199254740992\"",
       "[9007199254740993]", "too large to be exact in JSON"},
      {"lc_tn_long_neg", "long(long)", "[5]", "-5", "[1e300]", "too large to be exact"},
      {"lc_tn_u64", "size_t(size_t)", "[0]", "0", "[-1]", "-1 is out of range"},
  };
  for (size_t i = 0; i < LC_ARRAY_LEN(cases); i++) {
    struct lc_ffi_fn *g = open_ok(TN, cases[i].sym, cases[i].sig);
    CALL_EQ(g, cases[i].ok, cases[i].okout);
    CALL_ERR(g, cases[i].bad, LC_EINVAL, cases[i].badmsg);
    lc_ffi_free(g);
  }
}
END_TEST

START_TEST(int64_edges) {
  struct lc_ffi_fn *f = open_ok(TN, "lc_tn_i64", "int64(int64)");
  /* Beyond 2^53 values travel as exact decimal strings both ways. */
  CALL_EQ(f, "[\"9223372036854775807\"]", "\"9223372036854775807\"");
  CALL_EQ(f, "[\"-9223372036854775808\"]", "\"-9223372036854775808\"");
  CALL_EQ(f, "[\"42\"]", "42");
  CALL_EQ(f, "[999999999999999]", "999999999999999");
  CALL_EQ(f, "[1000000000000000]", "\"1000000000000000\"");
  CALL_ERR(f, "[\"9223372036854775808\"]", LC_EINVAL, "9223372036854775808 is out of range");
  CALL_ERR(f, "[\"-9223372036854775809\"]", LC_EINVAL, "out of range");
  CALL_ERR(f, "[\"99999999999999999999999\"]", LC_EINVAL, "out of range");
  CALL_ERR(f, "[\" 1\"]", LC_EINVAL, "is not a decimal integer");
  CALL_ERR(f, "[\"1e3\"]", LC_EINVAL, "is not a decimal integer");
  lc_ffi_free(f);
  f = open_ok(TN, "lc_tn_u64", "uint64(uint64)");
  CALL_EQ(f, "[\"18446744073709551615\"]", "\"18446744073709551615\"");
  CALL_ERR(f, "[\"18446744073709551616\"]", LC_EINVAL, "out of range");
  CALL_ERR(f, "[\"-1\"]", LC_EINVAL, "-1 is out of range (0..18446744073709551615)");
  lc_ffi_free(f);
  f = open_ok(TN, "lc_tn_i64_min", "int64()");
  CALL_EQ(f, "[]", "\"-9223372036854775808\"");
  lc_ffi_free(f);
  f = open_ok(TN, "lc_tn_u64_max", "uint64()");
  CALL_EQ(f, "[]", "\"18446744073709551615\"");
  lc_ffi_free(f);
}
END_TEST

START_TEST(other_types) {
  struct lc_ffi_fn *f = open_ok(TN, "lc_tn_not", "bool(bool)");
  CALL_EQ(f, "[true]", "false");
  CALL_EQ(f, "[false]", "true");
  CALL_ERR(f, "[1]", LC_EINVAL, "argument 1 (bool): expected true or false, got number 1");
  lc_ffi_free(f);
  f = open_ok(TN, "lc_tn_fhalf", "float(float)");
  CALL_EQ(f, "[3]", "1.5");
  CALL_ERR(f, "[1e39]", LC_EINVAL, "out of range for float");
  lc_ffi_free(f);
  f = open_ok(TN, "lc_tn_strlen", "size_t(string)");
  CALL_EQ(f, "[\"h\\u00e9llo\"]", "6");
  CALL_ERR(f, "[5]", LC_EINVAL, "argument 1 (string): expected a string, got number 5");
  lc_ffi_free(f);
  f = open_ok(TN, "lc_tn_static", "string()");
  CALL_EQ(f, "[]", "\"hello, world\"");
  CALL_EQ(f, "null", "\"hello, world\"");
  lc_ffi_free(f);
  f = open_ok(TN, "lc_tn_null", "string()");
  CALL_EQ(f, "[]", "null");
  lc_ffi_free(f);
  f = open_ok(TN, "lc_tn_badutf8", "string()");
  CALL_ERR(f, "[]", LC_EIO, "returned string is not valid UTF-8 (byte 2)");
  lc_ffi_free(f);
  /* string_owned is free()d after copying; ASan/LSan would see a leak. */
  f = open_ok(TN, "lc_tn_owned", "string_owned(string)");
  CALL_EQ(f, "[\"x\"]", "\"owned:x\"");
  lc_ffi_free(f);
  f = open_ok(TN, "lc_tn_bump", "void()");
  ck_assert_str_eq(lc_ffi_describe(f), "void lc_tn_bump()");
  CALL_EQ(f, "[]", "null");
  lc_ffi_free(f);
  f = open_ok(TN, "lc_tn_sum16",
              "int(int,int,int,int,int,int,int,int,int,int,int,int,int,int,int,int)");
  CALL_EQ(f, "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]", "136");
  lc_ffi_free(f);
  f = open_ok(TN, "lc_tn_add", "int(int,int)");
  CALL_ERR(f, "{\"a\":1}", LC_EINVAL, "arguments must be a JSON array");
  lc_ffi_free(f);
}
END_TEST

START_TEST(buffers) {
  struct lc_ffi_fn *f = open_ok(TN, "lc_tn_upper", "int(string, buffer[8], len)");
  ck_assert_int_eq(lc_ffi_arity(f), 1);
  ck_assert_int_eq(lc_ffi_nbuffers(f), 1);
  ck_assert_str_eq(lc_ffi_describe(f), "int lc_tn_upper(string, buffer[8], len)");
  CALL_EQ(f, "[\"abc\"]", "{\"return\":3,\"buffers\":[\"ABC\"]}");
  /* The callee gets the buffer's own size. */
  CALL_EQ(f, "[\"hello world\"]", "{\"return\":11,\"buffers\":[\"HELLO W\"]}");
  CALL_ERR(f, "[\"abc\", 8]", LC_EINVAL,
           "expects 1 argument (string); buffer and len parameters are filled by "
           "the call and not passed, got 2");
  lc_ffi_free(f);
  f = open_ok(TN, "lc_tn_split", "void(string, buffer[16], buffer[16])");
  CALL_EQ(f, "[\"left,right\"]", "{\"return\":null,\"buffers\":[\"left\",\"right\"]}");
  lc_ffi_free(f);
  /* No terminator written: the text stops at N bytes. */
  f = open_ok(TN, "lc_tn_fill", "void(buffer[5], len)");
  CALL_EQ(f, "[]", "{\"return\":null,\"buffers\":[\"xxxxx\"]}");
  lc_ffi_free(f);
  /* len(T) passes the size as T. */
  f = open_ok(TN, "lc_tn_fill_int", "int(buffer[3], len(int))");
  ck_assert_str_eq(lc_ffi_describe(f), "int lc_tn_fill_int(buffer[3], len(int))");
  CALL_EQ(f, "[]", "{\"return\":3,\"buffers\":[\"yyy\"]}");
  lc_ffi_free(f);
  /* After a string, len is its byte length. */
  f = open_ok(TN, "lc_tn_count_nonzero", "size_t(string, len)");
  CALL_EQ(f, "[\"h\\u00e9llo\"]", "6");
  CALL_EQ(f, "[\"\"]", "0");
  lc_ffi_free(f);
}
END_TEST

/* Issue 12 item 3: with "void(buffer[16], size_t)" the size went into the
 * caller's arguments, and [4096] made the callee write 4096 bytes into a
 * 16-byte buffer. Any declaration where a caller-passed integer stands
 * where C puts a buffer's or a string's size is refused now. */
START_TEST(caller_sizes_refused) {
  const char *bad[] = {
      "void(buffer[16], size_t)",
      "int(string, buffer[8], size_t)",
      "int(buffer[3], int)",
      "int(buffer[3], int64)",
      "int(buffer[3], uint8)",
      "void(size_t, buffer[16])",
      "void(uint64, buffer[16])",
      "int(string, double, buffer[64], size_t)",
      "size_t(string, size_t)",
      "size_t(string, uint64)",
      "void(buffer[16], len, int)",
  };
  for (size_t i = 0; i < LC_ARRAY_LEN(bad); i++) {
    struct lc_ffi_fn *fn = NULL;
    int rc = lc_ffi_open(TN, "lc_tn_fill", bad[i], &fn, err, sizeof err);
    ck_assert_msg(rc == LC_EINVAL, "%s: accepted (rc %d)", bad[i], rc);
    ck_assert_ptr_null(fn);
    ck_assert_msg(strstr(err, "the runtime fills it: write len") != NULL, "%s: %s",
                  bad[i], err);
  }
  /* Integers before the first buffer, and ints after a string, stay. */
  struct lc_ffi_fn *ok = open_ok(TN, "lc_tn_upper", "int(int, string, int, buffer[4], len)");
  lc_ffi_free(ok);
  struct {
    const char *sig, *want;
  } wrong[] = {
      {"void(len)", "argument 1: len must come after the buffer[N] or string"},
      {"void(int, len)", "len must come after"},
      {"len()", "len is an argument type, not a return type"},
      {"void(buffer[300], len(uint8))", "len(uint8) cannot hold the size of buffer[300]"},
      {"void(buffer[3], len(double))", "len(T) needs an integer type T, not double"},
      {"void(buffer[3], len(int)", "missing ')'"},
  };
  for (size_t i = 0; i < LC_ARRAY_LEN(wrong); i++) {
    struct lc_ffi_fn *fn = NULL;
    int rc = lc_ffi_open(TN, "lc_tn_fill", wrong[i].sig, &fn, err, sizeof err);
    ck_assert_msg(rc == LC_EINVAL, "%s: rc %d", wrong[i].sig, rc);
    ck_assert_msg(strstr(err, wrong[i].want) != NULL, "%s: wanted [%s] in [%s]",
                  wrong[i].sig, wrong[i].want, err);
  }
}
END_TEST

START_TEST(declare_errors) {
  struct lc_ffi_fn *fn = (void *)1;
  ck_assert_int_eq(lc_ffi_open("libnope_does_not_exist.so", "f", "int()", &fn, err, sizeof err),
                   LC_ENOTFOUND);
  ck_assert_ptr_null(fn);
  ck_assert_msg(strstr(err, "cannot load library \"libnope_does_not_exist.so\": ") &&
                strstr(err, "No such file"), "%s", err);
  ck_assert_int_eq(lc_ffi_open("libm.so.6", "no_such_fn", "int()", &fn, err, sizeof err),
                   LC_ENOTFOUND);
  ck_assert_msg(strstr(err, "no symbol \"no_such_fn\" in \"libm.so.6\"") != NULL, "%s", err);
  struct {
    const char *sig, *want;
  } bad[] = {
      {"double(doble)", "unknown type \"doble\" for argument 1; known: void"},
      {"dbl(double)", "unknown type \"dbl\" for the return type"},
      {"double(void)", "argument 1: void is only a return type"},
      {"double(double, void)", "argument 2: void is only a return type"},
      {"double double", "expected '(' after the return type"},
      {"double(double", "missing ')'"},
      {"double(double,)", "expected a type name for argument 2, found ')'"},
      {"double(double) x", "unexpected text after ')'"},
      {"double(double double)", "expected ',' or ')' after argument 1"},
      {"", "the return type is missing"},
      {"int(ptr)", "ptr is not supported"},
      {"buffer[4]()", "not a return type"},
      {"int(buffer)", "buffer needs a size"},
      {"int(buffer[0])", "outside 1..1048576"},
      {"int(buffer[x])", "buffer size must be a number"},
      {"int(string_owned)", "string_owned is only a return type"},
      {"int(int,int,int,int,int,int,int,int,int,int,int,int,int,int,int,int,int)",
       "too many arguments (at most 16)"},
  };
  for (size_t i = 0; i < LC_ARRAY_LEN(bad); i++) {
    int rc = lc_ffi_open("libm.so.6", "pow", bad[i].sig, &fn, err, sizeof err);
    ck_assert_msg(rc == LC_EINVAL, "%s: rc %d", bad[i].sig, rc);
    ck_assert_msg(strstr(err, bad[i].want) != NULL, "%s: wanted [%s] in [%s]",
                  bad[i].sig, bad[i].want, err);
    ck_assert_msg(strncmp(err, "bad signature \"", 15) == 0, "%s", err);
  }
  ck_assert_int_eq(lc_ffi_open(NULL, "pow", "double()", &fn, err, sizeof err), LC_EINVAL);
}
END_TEST

/* lc_ffi_free must dlclose: once freed, the library is no longer loaded. */
START_TEST(handles_released) {
  ck_assert_ptr_null(dlopen(TN, RTLD_NOW | RTLD_NOLOAD));
  struct lc_ffi_fn *a = open_ok(TN, "lc_tn_add", "int(int,int)");
  struct lc_ffi_fn *b = open_ok(TN, "lc_tn_not", "bool(bool)");
  void *h = dlopen(TN, RTLD_NOW | RTLD_NOLOAD);
  ck_assert_ptr_nonnull(h);
  dlclose(h);
  lc_ffi_free(a);
  lc_ffi_free(b);
  ck_assert_ptr_null(dlopen(TN, RTLD_NOW | RTLD_NOLOAD));
  /* Failed declarations release the library too. */
  struct lc_ffi_fn *c;
  ck_assert_int_eq(lc_ffi_open(TN, "nope", "int()", &c, err, sizeof err), LC_ENOTFOUND);
  ck_assert_ptr_null(dlopen(TN, RTLD_NOW | RTLD_NOLOAD));
}
END_TEST

START_TEST(args_schema) {
  struct lc_ffi_fn *f = open_ok(TN, "lc_tn_upper", "int(string, uint8, buffer[8])");
  cJSON *sj = lc_ffi_args_schema(f);
  ck_assert_ptr_nonnull(sj);
  struct lc_schema *s;
  ck_assert_int_eq(lc_schema_compile(sj, &s, err, sizeof err), 0);
  cJSON *good = cJSON_Parse("[\"a\", 8]"), *bad = cJSON_Parse("[\"a\", 300, 1]");
  struct lc_schema_errors e;
  ck_assert_int_eq(lc_schema_validate(s, good, &e), 0);
  lc_schema_errors_free(&e);
  ck_assert_int_eq(lc_schema_validate(s, bad, &e), LC_EINVAL);
  char *m = lc_schema_errors_format(&e);
  ck_assert_msg(strstr(m, "$[1]: must be <= 255; got 300") != NULL, "%s", m);
  ck_assert_msg(strstr(m, "$[2]: too many items") != NULL, "%s", m);
  lc_free(m);
  lc_schema_errors_free(&e);
  lc_schema_free(s);
  cJSON_Delete(sj);
  cJSON_Delete(good);
  cJSON_Delete(bad);
  lc_ffi_free(f);
}
END_TEST

START_TEST(oom) {
  long live = lc_alloc_live();
  lc_alloc_fail_after(_i);
  struct lc_ffi_fn *f = NULL;
  int rc = lc_ffi_open(TN, "lc_tn_upper", "int(string, buffer[8], len)", &f, err, sizeof err);
  if (rc == 0) {
    cJSON *a = cJSON_Parse("[\"abc\"]");
    cJSON *r = NULL;
    rc = lc_ffi_call(f, a, &r, err, sizeof err);
    ck_assert(rc == 0 || rc == LC_ENOMEM);
    cJSON_Delete(r);
    cJSON_Delete(a);
    lc_ffi_free(f);
  } else {
    ck_assert_int_eq(rc, LC_ENOMEM);
  }
  lc_alloc_fail_after(0);
  ck_assert_int_eq(lc_alloc_live(), live);
}
END_TEST

/* ---- Lua binding -------------------------------------------------------- */

static lua_State *new_lua(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  lc_open_native(L);
  lua_setglobal(L, "native");
  lua_pushstring(L, TN);
  lua_setglobal(L, "TN");
  return L;
}

/* Runs chunk; it must succeed; returns its single string result (static). */
static const char *lua_ok(lua_State *L, const char *chunk) {
  static char out[1024];
  if (luaL_dostring(L, chunk) != 0)
    ck_abort_msg("lua error: %s\nin: %s", lua_tostring(L, -1), chunk);
  snprintf(out, sizeof out, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "(nil)");
  lua_settop(L, 0);
  return out;
}

/* Runs chunk; it must raise; returns the message (static). */
static const char *lua_raises(lua_State *L, const char *chunk) {
  static char out[1024];
  ck_assert_msg(luaL_dostring(L, chunk) != 0, "should raise: %s", chunk);
  snprintf(out, sizeof out, "%s", lua_tostring(L, -1));
  lua_settop(L, 0);
  return out;
}

#define LUA_EQ(L, chunk, want)                                              \
  do {                                                                      \
    const char *got_ = lua_ok(L, chunk);                                    \
    ck_assert_msg(strcmp(got_, want) == 0, "%s\n got [%s] want [%s]", chunk, \
                  got_, want);                                              \
  } while (0)

#define LUA_RAISES(L, chunk, want)                                          \
  do {                                                                      \
    const char *got_ = lua_raises(L, chunk);                                \
    ck_assert_msg(strstr(got_, want) != NULL, "%s\n got [%s] want [%s]",    \
                  chunk, got_, want);                                       \
  } while (0)

START_TEST(lua_binding) {
  lua_State *L = new_lua();
  LUA_EQ(L,
         "local pow = native.declare{lib='libm.so.6', symbol='pow', "
         "signature='double(double, double)'}\n"
         "return string.format('%s %s %s', pow(2, 10), pow:describe(), tostring(pow))",
         "1024.0 double pow(double, double) native function: double pow(double, double)");
  LUA_EQ(L, "local add = native.declare(TN, 'lc_tn_add', 'int(int,int)')\n"
            "local r = add(40, 2) return math.type(r) .. ' ' .. r",
         "integer 42");
  /* 64-bit values stay exact through Lua integers. */
  LUA_EQ(L, "local f = native.declare(TN, 'lc_tn_i64', 'int64(int64)')\n"
            "local r = f(math.maxinteger) assert(r == math.maxinteger)\n"
            "assert(f(math.mininteger) == math.mininteger)\n"
            "return math.type(r)",
         "integer");
  LUA_EQ(L, "local f = native.declare(TN, 'lc_tn_u64_max', 'uint64()') return f()",
         "18446744073709551615");
  LUA_EQ(L, "local f = native.declare(TN, 'lc_tn_upper', 'int(string, buffer[16], len)')\n"
            "local r = f('shout') return r['return'] .. ':' .. r.buffers[1]",
         "5:SHOUT");
  LUA_EQ(L, "local f = native.declare(TN, 'lc_tn_bump', 'void()') return tostring(f())",
         "true");
  LUA_EQ(L, "local f = native.declare(TN, 'lc_tn_not', 'bool(bool)') return tostring(f(false))",
         "true");
  LUA_EQ(L, "local f = native.declare(TN, 'lc_tn_null', 'string()')\n"
            "return type(f())", "userdata"); /* luact.json.null */
  /* Operational failures: nil, msg, code. */
  LUA_EQ(L, "local f, msg, code = native.declare('libnope.so', 'x', 'int()')\n"
            "assert(f == nil) return code .. '|' .. msg",
         "not_found|cannot load library \"libnope.so\": libnope.so: cannot open shared "
         "object file: No such file or directory");
  LUA_EQ(L, "local f, msg, code = native.declare(TN, 'nope', 'int()') return code",
         "not_found");
  LUA_EQ(L, "local f = native.declare(TN, 'lc_tn_badutf8', 'string()')\n"
            "local r, msg, code = f() assert(r == nil) return code .. '|' .. msg",
         "native_result|lc_tn_badutf8: returned string is not valid UTF-8 (byte 2)");
  lua_close(L);
}
END_TEST

START_TEST(lua_misuse) {
  lua_State *L = new_lua();
  LUA_RAISES(L, "native.declare(42)", "expected a table {lib=, symbol=, signature=}");
  LUA_RAISES(L, "native.declare{lib='libm.so.6', symbol='pow'}",
             "declare: field 'signature' must be a string (got nil)");
  LUA_RAISES(L, "native.declare{lib='libm.so.6', symbol='pow', signature='double(doble)'}",
             "declare: bad signature \"double(doble)\": unknown type \"doble\"");
  LUA_RAISES(L, "local pow = native.declare('libm.so.6', 'pow', 'double(double,double)')\n"
                "pow(1)", "pow: expects 2 arguments (double, double), got 1");
  LUA_RAISES(L, "local pow = native.declare('libm.so.6', 'pow', 'double(double,double)')\n"
                "pow(1, 'x')", "argument 2 (double): expected a number, got string \"x\"");
  LUA_RAISES(L, "local pow = native.declare('libm.so.6', 'pow', 'double(double,double)')\n"
                "pow(1, {})", "expected a number, got object");
  LUA_RAISES(L, "local pow = native.declare('libm.so.6', 'pow', 'double(double,double)')\n"
                "pow(1, 0/0)", "bad argument #2 to 'double pow(double, double)' (cannot encode NaN");
  LUA_RAISES(L, "local pow = native.declare('libm.so.6', 'pow', 'double(double,double)')\n"
                "pow(1, print)", "cannot encode a function");
  LUA_RAISES(L, "local f = native.declare(TN, 'lc_tn_strlen', 'size_t(string)')\n"
                "f('a\\0b')", "bad argument #1");
  LUA_RAISES(L, "local f = native.declare(TN, 'lc_tn_i8', 'int8(int8)') f(128)",
             "128 is out of range (-128..127)");
  LUA_RAISES(L, "local f = native.declare(TN, 'lc_tn_i8', 'int8(int8)') f(1.5)",
             "expected an integer, got number 1.5");
  /* Closed functions raise; closing twice and __gc after close are fine. */
  LUA_RAISES(L, "local f = native.declare(TN, 'lc_tn_add', 'int(int,int)')\n"
                "f:close() f:close() f(1, 2)", "attempt to use a closed native function");
  LUA_EQ(L, "do local f <close> = native.declare(TN, 'lc_tn_add', 'int(int,int)') "
            "g = f end return tostring(g)", "native function (closed)");
  lua_close(L);
  /* After every handle is collected the library is unloaded again. */
  ck_assert_ptr_null(dlopen(TN, RTLD_NOW | RTLD_NOLOAD));
}
END_TEST

START_TEST(lua_gc_releases) {
  lua_State *L = new_lua();
  lua_ok(L, "for i = 1, 200 do local f = native.declare(TN, 'lc_tn_add', 'int(int,int)') "
            "assert(f(i, 1) == i + 1) end collectgarbage() collectgarbage() return 'x'");
  ck_assert_ptr_null(dlopen(TN, RTLD_NOW | RTLD_NOLOAD));
  /* Raising from inside a call (argument errors) must not leak the boxed
   * argument array: LSan checks this under the ASan build. */
  lua_ok(L, "local f = native.declare(TN, 'lc_tn_add', 'int(int,int)')\n"
            "for i = 1, 100 do assert(not pcall(f, {1, 2, {a = 1}}, 'x')) end return 'x'");
  lua_close(L);
}
END_TEST

Suite *ffi_suite(void) {
  Suite *s = suite_create("ffi");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, libm_pow_cos);
  tcase_add_test(tc, integer_types);
  tcase_add_test(tc, int64_edges);
  tcase_add_test(tc, other_types);
  tcase_add_test(tc, buffers);
  tcase_add_test(tc, caller_sizes_refused);
  tcase_add_test(tc, declare_errors);
  tcase_add_test(tc, handles_released);
  tcase_add_test(tc, args_schema);
  tcase_add_loop_test(tc, oom, 1, 20);
  suite_add_tcase(s, tc);
  TCase *tl = tcase_create("lua");
  tcase_add_test(tl, lua_binding);
  tcase_add_test(tl, lua_misuse);
  tcase_add_test(tl, lua_gc_releases);
  suite_add_tcase(s, tl);
  return s;
}
