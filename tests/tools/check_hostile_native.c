/* check_hostile_native.c: the hostile corpus for luact.tools.native. Each
 * case is one argument set a model could send (as the JSON text it would
 * send, decoded by luact.json), to a tool declared the way a script would;
 * each checks a clear refusal or a correct bounded result, and that the
 * host is intact afterwards: alive() calls a native function again and
 * checks its answer, and lc_test_lua_run_once asserts no task, timer or
 * transfer is left and lc_ allocations balance. Under the ASan build any
 * read or write past a buffer fails the case.
 *
 * Globals for each case: TN (the test library), J(text) (the model's JSON),
 * try(tool, text) -> the JSON result or "code:message", alive(). */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "lc.h"
#include "util_lua.h"

static char out[16384], err[8192];

struct hcase {
  const char *name;
  const char *code; /* returns a string; must contain want */
  const char *want;
};

static const char prelude_fmt[] =
    "TN = '%s'\n"
    "function J(text) return luact.json.decode(text) end\n"
    "function try(tool, text)\n"
    "  local r, msg, code = tool(J(text))\n"
    "  if r == nil then return tostring(code) .. ':' .. tostring(msg) end\n"
    "  return luact.json.encode(r)\n"
    "end\n"
    "function alive()\n"
    "  local add <close> = luact.native.declare(TN, 'lc_tn_add', 'int(int, int)')\n"
    "  assert(add(40, 2) == 42, 'host damaged')\n"
    "  return 'alive'\n"
    "end\n"
    "function declare(sig, sym, args)\n"
    "  return luact.tools.native{lib = TN, symbol = sym, signature = sig, args = args}\n"
    "end\n";

static const struct hcase cases[] = {
    /* Issue 12 item 3: the buffer's size in the model's hands. */
    {"buffer_size_from_model_is_not_declarable",
     "local ok, e = pcall(declare, 'void(buffer[16], size_t)', 'lc_tn_fill')\n"
     "assert(not ok, 'declared: the model would choose the size')\n"
     "return e .. '|' .. alive()",
     "the runtime fills it: write len"},
    {"buffer_size_4096_sent_anyway",
     "local t = declare('void(buffer[16], len)', 'lc_tn_fill')\n"
     "local a = try(t, '{\"args\":[4096]}')\n"
     "local b = try(t, '{}')\n"
     "t.close() return a .. '|' .. b .. '|' .. alive()",
     "invalid_arguments:invalid arguments for lc_tn_fill: $.args: property not "
     "allowed; allowed: (none)|{\"buffers\":[\"xxxxxxxxxxxxxxxx\"],\"return\":"},
    {"buffer_size_as_named_arg",
     "local ok, e = pcall(declare, 'int(string, buffer[8], size_t)', 'lc_tn_upper',"
     "  {'text', 'cap'})\n"
     "assert(not ok)\n"
     "local t = declare('int(string, buffer[8], len)', 'lc_tn_upper', {'text'})\n"
     "local a = try(t, '{\"text\":\"abc\",\"cap\":4096}')\n"
     "local b = try(t, '{\"text\":\"a very long text indeed\"}')\n"
     "t.close() return a .. '|' .. b .. '|' .. alive()",
     "$.cap: property not allowed; allowed: text|{\"buffers\":[\"A VERY \"],\"return\":23}|alive"},
    {"negative_size_for_int_len",
     "local ok, e = pcall(declare, 'int(buffer[3], int)', 'lc_tn_fill_int')\n"
     "assert(not ok)\n"
     "local t = declare('int(buffer[3], len(int))', 'lc_tn_fill_int')\n"
     "local a = try(t, '{\"args\":[-1]}')\n"
     "local b = try(t, '{}')\n"
     "t.close() return a .. '|' .. b .. '|' .. alive()",
     "$.args: property not allowed; allowed: (none)|{\"buffers\":[\"yyy\"],\"return\":3}|alive"},
    {"string_length_from_model",
     /* A callee that reads as many bytes as it is told: the length of the
      * model's string is the runtime's to give too. */
     "local ok, e = pcall(declare, 'size_t(string, size_t)', 'lc_tn_count_nonzero')\n"
     "assert(not ok)\n"
     "local t = declare('size_t(string, len)', 'lc_tn_count_nonzero', {'s'})\n"
     "local a = try(t, '{\"s\":\"abc\",\"n\":100000}')\n"
     "local b = try(t, '{\"s\":\"abc\"}')\n"
     "t.close() return a .. '|' .. b .. '|' .. alive()",
     "$.n: property not allowed; allowed: s (did you mean \"s\"?)|3|alive"},
    {"negative_to_unsigned",
     "local t = declare('uint32(uint32)', 'lc_tn_u32')\n"
     "local a = try(t, '{\"args\":[-1]}')\n"
     "local b = try(t, '{\"args\":[4294967295]}')\n"
     "t.close() return a .. '|' .. b .. '|' .. alive()",
     "$.args[0]: must be >= 0; got -1|4294967295|alive"},
    {"out_of_range_for_narrow_types",
     "local out = {}\n"
     "for _, c in ipairs{{'int8(int8)', 'lc_tn_i8', '[128]'},"
     "    {'int16(int16)', 'lc_tn_i16', '[-32769]'},"
     "    {'uint16(uint16)', 'lc_tn_u16', '[65536]'},"
     "    {'int(int, int)', 'lc_tn_add', '[2147483648, 0]'},"
     "    {'uint8(uint8)', 'lc_tn_u8', '[256]'}} do\n"
     "  local t = declare(c[1], c[2])\n"
     "  out[#out + 1] = try(t, '{\"args\":' .. c[3] .. '}'):match('^[%w_]+')\n"
     "  t.close()\n"
     "end\n"
     "return table.concat(out, ',') .. '|' .. alive()",
     "invalid_arguments,invalid_arguments,invalid_arguments,invalid_arguments,"
     "invalid_arguments|alive"},
    {"pointer_as_integer",
     /* A raw address where a string goes, or as hex text for an int64. */
     "local s = declare('size_t(string)', 'lc_tn_strlen')\n"
     "local i = declare('int64(int64)', 'lc_tn_i64')\n"
     "local a = try(s, '{\"args\":[140737488355328]}')\n"
     "local b = try(i, '{\"args\":[\"0x7ffd12345678\"]}')\n"
     "s.close() i.close() return a .. '|' .. b .. '|' .. alive()",
     "$.args[0]: expected string, got number"},
    {"int64_past_2_53",
     /* Exact both ways (the check is on the Lua value: luact.json.encode
      * prints integers past 2^53 as doubles, a separate matter). */
     "local i = declare('int64(int64)', 'lc_tn_i64')\n"
     "local a = try(i, '{\"args\":[9007199254740993]}')\n"
     "local b = i(J('{\"args\":[\"9007199254740993\"]}'))\n"
     "local c = i(J('{\"args\":[9007199254740991]}'))\n"
     "local d = try(i, '{\"args\":[\"9223372036854775808\"]}')\n"
     "i.close() return string.format('%s|%d|%d|%s|%s', a, b, c, d, alive())",
     "(1) must be <= 9007199254740991; got 9007199254740992 | (2) expected string, got "
     "number 9007199254740992|"
     "9007199254740993|9007199254740991|tool_error:tool lc_tn_i64 failed: "},
    {"int64_result_reaches_the_model_exact",
     "local i = declare('int64(int64)', 'lc_tn_i64')\n"
     "local a = try(i, '{\"args\":[\"9007199254740993\"]}')\n"
     "local b = try(i, '{\"args\":[\"-9223372036854775808\"]}')\n"
     "local c = try(i, '{\"args\":[42]}')\n"
     "i.close() return a .. '|' .. b .. '|' .. c .. '|' .. alive()",
     "\"9007199254740993\"|\"-9223372036854775808\"|42|alive"},
    {"float_overflow_and_non_numbers",
     "local f = declare('float(float)', 'lc_tn_fhalf')\n"
     "local a = try(f, '{\"args\":[1e39]}')\n"
     "local b = try(f, '{\"args\":[\"NaN\"]}')\n"
     "local c = try(f, '{\"args\":[3]}')\n"
     "f.close() return a .. '|' .. b .. '|' .. c .. '|' .. alive()",
     "|invalid_arguments:invalid arguments for lc_tn_fhalf: $.args[0]: expected number, "
     "got string \"NaN\"|1.5|alive"},
    {"string_with_nul",
     /* The JSON decoder stops a string at \u0000, so the function and the
      * script see the same "a"; a raw NUL in a Lua string is refused
      * rather than cut at the C boundary. */
     "local s = declare('size_t(string)', 'lc_tn_strlen')\n"
     "local a = try(s, '{\"args\":[\"a\\\\u0000bcdef\"]}')\n"
     "local r, msg, code = s({args = {'a\\0bcdef'}})\n"
     "s.close() return a .. '|' .. code .. ':' .. msg .. '|' .. alive()",
     "1|invalid_arguments:invalid arguments for lc_tn_strlen: value is not JSON: string "
     "contains a NUL byte at $.args[0]|alive"},
    {"huge_string_bounded_result",
     "local s = declare('size_t(string, len)', 'lc_tn_count_nonzero')\n"
     "local big = string.rep('z', 1 << 20)\n"
     "local a = try(s, '{\"args\":[\"' .. big .. '\"]}')\n"
     "s.close() return a .. '|' .. alive()",
     "1048576|alive"},
    {"wrong_shapes",
     "local t = declare('int(int, int)', 'lc_tn_add')\n"
     "local out = {}\n"
     "for _, a in ipairs{'{\"args\":[true, 1]}', '{\"args\":[[1], 1]}',"
     "    '{\"args\":[{\"a\":1}, 1]}', '{\"args\":[null, 1]}', '{\"args\":\"1,2\"}',"
     "    '{\"args\":[1]}', '{\"args\":[1,2,3]}', '{\"argz\":[1,2]}'} do\n"
     "  out[#out + 1] = try(t, a):match('^[%w_]+')\n"
     "end\n"
     "t.close() return table.concat(out, ',') .. '|' .. alive()",
     "invalid_arguments,invalid_arguments,invalid_arguments,invalid_arguments,"
     "invalid_arguments,invalid_arguments,invalid_arguments,invalid_arguments|alive"},
    {"deeply_nested_argument",
     "local t = declare('size_t(string)', 'lc_tn_strlen')\n"
     "local text = '{\"args\":[' .. string.rep('[', 100000) .. string.rep(']', 100000) .. ']}'\n"
     "local v, msg = J(text)\n"
     "local a = try(t, text)\n"
     "t.close() return tostring(v) .. ':' .. tostring(msg) .. '|' .. a .. '|' .. alive()",
     "nil:json.decode: invalid JSON at byte 1007 of 200011|invalid_arguments:invalid "
     "arguments for lc_tn_strlen: $: missing required property \"args\"|alive"},
    {"invalid_utf8_echoed_back",
     /* The model's bytes come back through a native function: the result
      * is checked before it could reach the model. */
     "local t = declare('string_owned(string)', 'lc_tn_owned')\n"
     "local r, msg, code = t({args = {'\\255\\254'}})\n"
     "t.close() return tostring(code) .. ':' .. tostring(msg) .. '|' .. alive()",
     "invalid_arguments:invalid arguments for lc_tn_owned: value is not JSON: string is not "
     "valid UTF-8 (byte 0) at $.args[0]|alive"},
};

START_TEST(hostile_native) {
  const struct hcase *h = &cases[_i];
  char prelude[1024];
  snprintf(prelude, sizeof prelude, prelude_fmt, LC_TESTNATIVE_PATH);
  int rc = lc_test_lua_run_once(NULL, prelude, h->code, out, sizeof out, err, sizeof err);
  ck_assert_msg(rc == 0, "%s: %s", h->name, err);
  ck_assert_msg(strstr(out, h->want) != NULL, "%s:\n got [%.2000s]\n want [%s]", h->name,
                out, h->want);
  ck_assert_msg(strstr(out, "alive") != NULL, "%s: host check did not run: %s", h->name,
                out);
}
END_TEST

Suite *hostile_native_suite(void) {
  Suite *s = suite_create("hostile_native");
  TCase *tc = tcase_create("corpus");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, hostile_native, 0, (int)LC_ARRAY_LEN(cases));
  suite_add_tcase(s, tc);
  return s;
}
