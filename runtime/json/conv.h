/* conv.h: the one converter between Lua values and cJSON trees.
 *
 * Lua -> JSON: nil and luact.json.null -> null; booleans; integers and finite
 * floats -> numbers; strings (must be valid UTF-8 without NUL bytes, which
 * cJSON cannot hold); tables -> arrays when their keys are exactly 1..n (n>0)
 * or they carry the array marker metatable, objects when every key is a
 * string (an empty table is an object unless marked; keys come out sorted,
 * so the same table always gives the same text). Anything else
 * (functions, userdata, mixed keys, cycles, depth over LC_CONV_MAX_DEPTH) is
 * an error with a path such as "$.items[3].name".
 *
 * JSON -> Lua: null -> luact.json.null (a light userdata), arrays get the
 * array marker metatable so they round-trip even when empty, integral numbers
 * become Lua integers.
 *
 * Ownership: lc_conv_to_json gives the caller a new tree (cJSON_Delete it).
 * lc_conv_push_json borrows the tree. Neither raises except on memory errors
 * inside Lua (which raise as usual). */
#ifndef LC_CONV_H
#define LC_CONV_H

#include <cjson/cJSON.h>
#include <lua.h>
#include <stddef.h>

#include "buf.h"

#define LC_CONV_MAX_DEPTH 128

/* C memory that must survive Lua calls that may raise (out of memory): a
 * userdata that frees what it holds when it is collected. Fill tree or
 * text, make the Lua calls, then take them out or lc_conv_box_clear. */
struct lc_conv_box {
  cJSON *tree;
  char *text; /* cJSON-allocated (cJSON_Print*): freed with cJSON_free */
  int n;      /* lc_conv_to_json's containers being filled */
  cJSON *pending[LC_CONV_MAX_DEPTH + 2];
};
/* [-0, +1, m] Pushes an empty box. */
struct lc_conv_box *lc_conv_box_push(lua_State *L);
/* Frees what b holds now; idempotent. */
void lc_conv_box_clear(struct lc_conv_box *b);

/* [-0, +0, m] Converts the value at idx. Returns 0 and *out, or a negative
 * LC_E* code and a message in err. */
int lc_conv_to_json(lua_State *L, int idx, cJSON **out, char *err, size_t errlen);
/* [-0, +0, m] Appends the JSON text of the value at idx to out: the same
 * rules and messages as lc_conv_to_json, and the same bytes that
 * lc_json_print would give for its tree, without building one. Returns 0,
 * LC_ENOMEM (or the buffer's LC_ETOOBIG), or LC_EINVAL with a message in
 * err; on failure out holds a partial text the caller discards. */
int lc_conv_to_text(lua_State *L, int idx, struct lc_buf *out, char *err,
                    size_t errlen);
/* [-0, +0, m] Appends the object {keys[0]: value at idxs[0], ...} as
 * lc_conv_to_text would write a table of those members (keys given in
 * bytewise order, as it sorts them; a nil value is written as {}): a
 * request's params without a Lua table made for them. */
int lc_conv_members_to_text(lua_State *L, int n, const char *const *keys, const int *idxs,
                            struct lc_buf *out, char *err, size_t errlen);
/* [-0, +0, m] Appends to out the value at idx as lc_conv_members_to_text
 * writes it for member key (the same bytes, depth and checks): a caller
 * that writes the object's other members itself. */
int lc_conv_member_value_to_text(lua_State *L, int idx, const char *key, struct lc_buf *out,
                                 char *err, size_t errlen);
/* [-0, +1, m] Pushes the Lua value for j (nil for j == NULL). */
void lc_conv_push_json(lua_State *L, const cJSON *j);
/* [-0, +1, m] Pushes the json.null sentinel. */
void lc_conv_push_null(lua_State *L);
/* Is the value at idx json.null? */
int lc_conv_is_null(lua_State *L, int idx);
/* [-0, +1, m] Pushes the array-marker metatable (created on first use). */
void lc_conv_push_array_mt(lua_State *L);

/* Parse text as JSON (UTF-8 checked, whole input, depth-limited).
 * Returns a tree or NULL with a message ("invalid JSON at byte 12"). */
cJSON *lc_json_parse(const char *s, size_t n, char *err, size_t errlen);
/* Compact serialisation, heap string (lc_free/free via cJSON_free). */
char *lc_json_print(const cJSON *j);

#endif
