/* check_schema_flat.c: Schema:validate checks a plain table of scalars
 * against a flat schema (an object of typed properties) where it is,
 * without a cJSON copy. That check may only ever say "valid" where the
 * full path (conv + schema.c) says so; everything else goes to the full
 * path, which words the errors. Each case runs both paths on the same
 * value and compares every result, and says whether the flat check alone
 * accepts it (so a change that quietly stops using it shows too). */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "lc.h"
#include "util_lua.h"

static char out[4096], err[4096];

/* Each case: schema, value, whether the flat check alone accepts it. The
 * script fails with the case's number and both answers on a mismatch. */
static const char *const CASES =
    "local null, array = luact.json.null, luact.json.array\n"
    "local S1 = {type = 'object', required = {'message'}, properties = {\n"
    "  message = {type = 'string', description = 'd'}, n = {type = 'integer'},\n"
    "  f = {type = 'number'}, b = {type = 'boolean'}, any = {}, t = true,\n"
    "  si = {type = {'string', 'integer'}}}}\n"
    "local S2 = {type = 'object', additionalProperties = false, properties = {a = {type = 'string'}}}\n"
    "local S3 = {type = 'object', additionalProperties = {type = 'integer'}}\n"
    "local S4 = {type = 'object', properties = {s = {type = 'string', minLength = 2},\n"
    "  e = {enum = {'a', 'b'}}, p = {type = 'string', pattern = '^x'}, m = {type = 'number', minimum = 0},\n"
    "  c = {const = 1}, r = {['$ref'] = '#/$defs/x'}, o = {anyOf = {{type = 'string'}}}, no = false},\n"
    "  ['$defs'] = {x = {type = 'string'}}}\n"
    "local S5 = {type = 'object', anyOf = {{required = {'a'}}, {required = {'b'}}}}\n"
    "local S6 = {type = 'object'}\n"
    "local S7 = {}\n"
    "local S8 = {type = 'object', additionalProperties = {type = 'string', maxLength = 1}}\n"
    "local S9 = {type = 'object', properties = {a = {type = 'string'}, a2 = {type = 'integer'}}}\n"
    "local S10 = {type = 'array'}\n"
    "local S11 = {['$ref'] = '#/$defs/o', ['$defs'] = {o = {type = 'object', required = {'a'}}}}\n"
    "local S12 = {type = 'string'}\n"
    "local cases = {\n"
    "  {S1, {message = 'x'}, true},\n"
    "  {S1, {message = 'x', n = 3, f = 2.5, b = true, any = 'z', t = 1, si = 4, extra = false}, true},\n"
    "  {S1, {message = 'x', n = 3.0, f = 2, si = 'w'}, true},\n"
    "  {S1, {message = 'x', n = 2.5}, false},\n"
    "  {S1, {message = 'x', si = 2.5}, false},\n"
    "  {S1, {n = 1}, false},\n"
    "  {S1, {}, false},\n"
    "  {S1, {message = 5}, false},\n"
    "  {S1, {message = true, n = 'two', b = 0}, false},\n"
    "  {S1, {message = 'a\\0b'}, false},\n"
    "  {S1, {message = '\\xff'}, false},\n"
    "  {S1, {message = 'x', ['k\\xff'] = 1}, false},\n"
    "  {S1, {message = 'x', ['k\\0'] = 1}, false},\n"
    "  {S1, {message = 'x', [1] = 2}, false},\n"
    "  {S1, {[1] = 'x'}, false},\n"
    "  {S1, {message = 'x', [1.5] = 2}, false},\n"
    "  {S1, setmetatable({message = 'x'}, {}), false},\n"
    "  {S1, array{}, false},\n"
    "  {S1, {message = 'x', f = 0/0}, false},\n"
    "  {S1, {message = 'x', f = math.huge}, false},\n"
    "  {S1, {message = 'x', n = -math.huge}, false},\n"
    "  {S1, {message = 'x', any = {1, 2}}, false},\n"
    "  {S1, {message = 'x', any = null}, false},\n"
    "  {S1, {message = 'x', any = print}, false},\n"
    "  {S1, {message = null}, false},\n"
    "  {S1, 'x', false},\n"
    "  {S1, 5, false},\n"
    "  {S1, nil, false},\n"
    "  {S2, {a = 'x'}, true},\n"
    "  {S2, {a = 'x', z = 1}, false},\n"
    "  {S2, {colour = 1}, false},\n"
    "  {S3, {z = 1, y = 2}, true},\n"
    "  {S3, {z = 's'}, false},\n"
    "  {S4, {}, true},\n"
    "  {S4, {s = 'xy'}, false},\n"
    "  {S4, {s = 'x'}, false},\n"
    "  {S4, {e = 'a'}, false},\n"
    "  {S4, {e = 'c'}, false},\n"
    "  {S4, {p = 'xa'}, false},\n"
    "  {S4, {p = 'a'}, false},\n"
    "  {S4, {m = -1}, false},\n"
    "  {S4, {c = 1}, false},\n"
    "  {S4, {c = 2}, false},\n"
    "  {S4, {r = 's'}, false},\n"
    "  {S4, {r = 5}, false},\n"
    "  {S4, {o = 5}, false},\n"
    "  {S4, {no = 5}, false},\n"
    "  {S4, {other = 5}, true},\n"
    "  {S5, {a = 1}, false},\n"
    "  {S5, {c = 1}, false},\n"
    "  {S6, {}, true},\n"
    "  {S6, array{}, false},\n"
    "  {S6, setmetatable({}, {}), false},\n"
    "  {S6, {x = 1, y = 'z'}, true},\n"
    "  {S6, {x = {}}, false},\n"
    "  {S7, {x = 1}, true},\n"
    "  {S7, 5, false},\n"
    "  {S8, {k = 'a'}, false},\n"
    "  {S8, {k = 'ab'}, false},\n"
    "  {S9, {a = 'x', a2 = 1}, true},\n"
    "  {S9, {a = 1}, false},\n"
    "  {S9, {a2 = 'x'}, false},\n"
    "  {S10, {}, false},\n"
    "  {S10, {x = 1}, false},\n"
    "  {S11, {}, false},\n"
    "  {S11, {b = 1}, false},\n"
    "  {S12, {}, false},\n"
    "}\n"
    "local function same(a, b)\n"
    "  if a.n ~= b.n then return false end\n"
    "  for i = 1, a.n do if a[i] ~= b[i] then return false end end\n"
    "  return true\n"
    "end\n"
    "local seen_invalid = 0\n"
    "for i, c in ipairs(cases) do\n"
    "  local v = assert(luact.schema.compile(c[1]))\n"
    "  local fast = table.pack(v:validate(c[2]))\n"
    "  local full = table.pack(v:_validate_full(c[2]))\n"
    "  if not same(fast, full) then\n"
    "    error(string.format('case %d: validate %s / %s, full path %s / %s', i,\n"
    "      tostring(fast[1]), tostring(fast[2]), tostring(full[1]), tostring(full[2])), 0)\n"
    "  end\n"
    "  if not full[1] then seen_invalid = seen_invalid + 1 end\n"
    "  if v:_flat_valid(c[2]) ~= c[3] then\n"
    "    error(string.format('case %d: flat check said %s', i, tostring(not c[3])), 0)\n"
    "  end\n"
    "  if c[3] and not full[1] then error(string.format('case %d: flat but invalid', i), 0) end\n"
    "end\n"
    "return tostring(#cases) .. ' ' .. seen_invalid\n";

START_TEST(flat_and_full_paths_agree) {
  int rc = lc_test_lua_run_once(NULL, NULL, CASES, out, sizeof out, err, sizeof err);
  ck_assert_msg(rc == 0, "%s", err);
  /* Both kinds were exercised: many cases, a good share of them invalid. */
  int n = 0, bad = 0;
  ck_assert_int_eq(sscanf(out, "%d %d", &n, &bad), 2);
  ck_assert_int_gt(n, 50);
  ck_assert_int_gt(bad, 20);
}
END_TEST

/* The messages a model sees for a tool's bad arguments are the full
 * path's, word for word, whether or not the schema is flat. */
START_TEST(tool_messages_unchanged) {
  int rc = lc_test_lua_run_once(
      NULL, NULL,
      "local t = luact.tool{name = 'echo', params = {type = 'object', required = {'message'},\n"
      "  additionalProperties = false, properties = {message = {type = 'string'}}},\n"
      "  fn = function(a) return a.message end}\n"
      "assert(t{message = 'hi'} == 'hi')\n"
      "local r, m1, c1 = t{mesage = 'hi'}\n"
      "local r2, m2 = t{message = 5}\n"
      "return tostring(r) .. '|' .. m1 .. '|' .. c1 .. '|' .. tostring(r2) .. '|' .. m2",
      out, sizeof out, err, sizeof err);
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_str_eq(out,
                   "nil|invalid arguments for echo: $: missing required property \"message\"\n"
                   "$.mesage: property not allowed; allowed: message (did you mean \"message\"?)"
                   "|invalid_arguments|nil|invalid arguments for echo: $.message: expected "
                   "string, got number 5");
}
END_TEST

Suite *schema_flat_suite(void) {
  Suite *s = suite_create("schema_flat");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, flat_and_full_paths_agree);
  tcase_add_test(tc, tool_messages_unchanged);
  suite_add_tcase(s, tc);
  return s;
}
