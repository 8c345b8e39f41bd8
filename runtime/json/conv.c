/* conv.c: Lua <-> cJSON conversion and checked JSON parsing. */
#include "conv.h"

#include "jcanon.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"
#include "lc.h"
#include "utf8.h"

static char array_mt_key;

void lc_conv_push_null(lua_State *L) { lua_pushlightuserdata(L, NULL); }

int lc_conv_is_null(lua_State *L, int idx) {
  return lua_islightuserdata(L, idx) && lua_touserdata(L, idx) == NULL;
}

void lc_conv_push_array_mt(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__jsontype");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &array_mt_key);
  }
}

struct path {
  struct path *up;
  const char *key; /* object key, or NULL */
  size_t klen;
  lua_Integer index; /* array index (1-based in Lua, shown 0-based) */
};

static void fmt_path(const struct path *p, char *out, size_t n) {
  const struct path *stack[LC_CONV_MAX_DEPTH + 2];
  size_t depth = 0;
  for (; p && depth < LC_ARRAY_LEN(stack); p = p->up) stack[depth++] = p;
  size_t used = (size_t)snprintf(out, n, "$");
  while (depth-- > 0 && used < n) {
    const struct path *q = stack[depth];
    int w = q->key ? snprintf(out + used, n - used, ".%.*s", (int)q->klen, q->key)
                   : snprintf(out + used, n - used, "[%lld]", (long long)q->index - 1);
    if (w < 0) break;
    used += (size_t)w;
  }
}

#define FAIL(...)                                   \
  do {                                              \
    char where_[256];                               \
    fmt_path(path, where_, sizeof where_);          \
    char what_[256];                                \
    snprintf(what_, sizeof what_, __VA_ARGS__);     \
    snprintf(err, errlen, "%s at %s", what_, where_); \
    return LC_EINVAL;                               \
  } while (0)

/* Raw lookup on purpose: the table may come from untrusted code (the PAL
 * sandbox), and a metatable that has a metatable of its own could otherwise
 * run an __index function from inside the converter. */
static int is_marked_array(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx)) return 0;
  lua_pushliteral(L, "__jsontype");
  int r = lua_rawget(L, -2) == LUA_TSTRING &&
          strcmp(lua_tostring(L, -1), "array") == 0;
  lua_pop(L, 2);
  return r;
}

/* ---- the box: C memory held across Lua calls that may raise ---- */

#define BOX_MT "luact.ConvBox"

void lc_conv_box_clear(struct lc_conv_box *b) {
  while (b->n > 0) cJSON_Delete(b->pending[--b->n]);
  cJSON_Delete(b->tree);
  b->tree = NULL;
  if (b->text) cJSON_free(b->text);
  b->text = NULL;
}

static int box_gc(lua_State *L) {
  lc_conv_box_clear(luaL_checkudata(L, 1, BOX_MT));
  return 0;
}

struct lc_conv_box *lc_conv_box_push(lua_State *L) {
  struct lc_conv_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->tree = NULL;
  b->text = NULL;
  b->n = 0;
  if (luaL_newmetatable(L, BOX_MT)) {
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return b;
}

static int to_json(lua_State *L, int idx, cJSON **out, struct path *path,
                   int depth, struct lc_conv_box **boxp, char *err, size_t errlen);

/* What a table becomes in JSON: an array of *n items (keys 1..n, or
 * marked as an array), or an object of *strings string keys. Anything else
 * (mixed keys, holes, a marked table with string keys) is an error. */
static int table_shape(lua_State *L, int idx, const struct path *path, int *is_array,
                       lua_Integer *n_out, int *strings_out, char *err, size_t errlen) {
  lua_Integer n = 0, maxk = 0;
  int strings = 0, others = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING) strings++;
    else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
      n++;
      if (lua_tointeger(L, -1) > maxk) maxk = lua_tointeger(L, -1);
    } else others++;
  }
  int marked = is_marked_array(L, idx);
  if (others || (strings && n)) FAIL("table mixes array and object keys");
  if (n && maxk != n) FAIL("array has holes (largest index %lld, %lld items)",
                           (long long)maxk, (long long)n);
  if (strings && marked) FAIL("array-marked table has string keys");
  *is_array = n || marked;
  *n_out = n;
  *strings_out = strings;
  return 0;
}

/* The container being filled is held in box->pending (a raise inside the
 * walk, out of memory, frees it with the box); it is taken off when it
 * is returned or deleted. The box is made for the first container, left
 * on the stack above everything the walk uses, and popped by
 * lc_conv_to_json: a scalar costs no allocation (the sandbox converts
 * each of its results near its memory cap). */
static int table_to_json(lua_State *L, int idx, cJSON **out, struct path *path,
                         int depth, struct lc_conv_box **boxp, char *err, size_t errlen) {
  lua_Integer n;
  int strings, is_array;
  int rc0 = table_shape(L, idx, path, &is_array, &n, &strings, err, errlen);
  if (rc0) return rc0;
  if (!*boxp) *boxp = lc_conv_box_push(L); /* may raise: nothing held yet */
  struct lc_conv_box *box = *boxp;
  cJSON *j = is_array ? cJSON_CreateArray() : cJSON_CreateObject();
  if (!j) return LC_ENOMEM;
  box->pending[box->n++] = j; /* depth <= LC_CONV_MAX_DEPTH: room */
  if (is_array) {
    for (lua_Integer i = 1; i <= n; i++) {
      struct path p = {path, NULL, 0, i};
      lua_rawgeti(L, idx, i);
      cJSON *c = NULL;
      int rc = to_json(L, lua_gettop(L), &c, &p, depth + 1, boxp, err, errlen);
      lua_pop(L, 1);
      if (rc) { box->n--; cJSON_Delete(j); return rc; }
      cJSON_AddItemToArray(j, c);
    }
  } else {
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      size_t kl;
      const char *k = lua_tolstring(L, -2, &kl);
      struct path p = {path, k, kl, 0};
      if (memchr(k, 0, kl) || !lc_utf8_valid(k, kl, NULL)) {
        lua_pop(L, 2);
        box->n--;
        cJSON_Delete(j);
        struct path *pp = &p;
        path = pp;
        FAIL("object key is not valid UTF-8 text");
      }
      cJSON *c = NULL;
      int rc = to_json(L, lua_gettop(L), &c, &p, depth + 1, boxp, err, errlen);
      if (rc) { lua_pop(L, 2); box->n--; cJSON_Delete(j); return rc; }
      lua_pop(L, 1);
      if (!cJSON_AddItemToObject(j, k, c)) { /* it copies the key: malloc */
        lua_pop(L, 1);
        cJSON_Delete(c);
        box->n--;
        cJSON_Delete(j);
        return LC_ENOMEM;
      }
    }
    /* Lua's iteration order changes from run to run (hash seeds): sorted
     * keys make the same table give the same JSON, so prompts, journal
     * hashes and provider prompt caches see the same bytes. */
    lc_jcanon_sort(j, 0);
  }
  box->n--; /* j is the top entry: the caller holds it now */
  *out = j;
  return 0;
}

static int to_json(lua_State *L, int idx, cJSON **out, struct path *path,
                   int depth, struct lc_conv_box **boxp, char *err, size_t errlen) {
  if (depth > LC_CONV_MAX_DEPTH) FAIL("nesting deeper than %d", LC_CONV_MAX_DEPTH);
  luaL_checkstack(L, 6, "json encode");
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      *out = cJSON_CreateNull();
      break;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) != NULL) FAIL("cannot encode a light userdata");
      *out = cJSON_CreateNull();
      break;
    case LUA_TBOOLEAN:
      *out = cJSON_CreateBool(lua_toboolean(L, idx));
      break;
    case LUA_TNUMBER: {
      if (lua_isinteger(L, idx)) {
        *out = cJSON_CreateNumber((double)lua_tointeger(L, idx));
      } else {
        double d = lua_tonumber(L, idx);
        if (!isfinite(d)) FAIL("cannot encode %s", isnan(d) ? "NaN" : "infinity");
        *out = cJSON_CreateNumber(d);
      }
      break;
    }
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      size_t bad;
      if (memchr(s, 0, len)) FAIL("string contains a NUL byte");
      if (!lc_utf8_valid(s, len, &bad)) FAIL("string is not valid UTF-8 (byte %zu)", bad);
      *out = cJSON_CreateString(s);
      break;
    }
    case LUA_TTABLE: {
      /* A table nested in itself would recurse until the depth limit; that
       * limit is the cycle guard, and its message names the path. */
      return table_to_json(L, lua_absindex(L, idx), out, path, depth, boxp, err, errlen);
    }
    default:
      FAIL("cannot encode a %s", luaL_typename(L, idx));
  }
  return *out ? 0 : LC_ENOMEM;
}

int lc_conv_to_json(lua_State *L, int idx, cJSON **out, char *err, size_t errlen) {
  *out = NULL;
  if (errlen) err[0] = '\0';
  idx = lua_absindex(L, idx);
  int top = lua_gettop(L);
  struct lc_conv_box *box = NULL; /* made by the first table */
  int rc = to_json(L, idx, out, NULL, 0, &box, err, errlen);
  lua_settop(L, top); /* the box, empty again: the tree is the caller's */
  /* Callers print err for any failure ("... is not JSON: <err>"). */
  if (rc == LC_ENOMEM && errlen && !err[0]) snprintf(err, errlen, "not enough memory");
  return rc;
}

/* ---- Lua -> JSON text, without a cJSON tree ----
 * The same walk, checks and messages as to_json above; the text is what
 * cJSON_PrintUnformatted prints for to_json's tree (jsonw.h keeps cJSON's
 * number and string format, and members come in the same lua_next order),
 * so a request body does not depend on which path built it. */

static int to_text(lua_State *L, int idx, struct lc_jsonw *w, struct path *path,
                   int depth, char *err, size_t errlen);

/* Objects with at most this many keys sort them in a C array. */
#define SMALL_KEYS 16

struct tkey {
  const char *k;
  size_t kl;
};

static int tkey_cmp(const void *a, const void *b) {
  const struct tkey *x = a, *y = b;
  int c = memcmp(x->k, y->k, x->kl < y->kl ? x->kl : y->kl);
  return c ? c : (x->kl > y->kl) - (x->kl < y->kl);
}

static int table_to_text(lua_State *L, int idx, struct lc_jsonw *w,
                         struct path *path, int depth, char *err,
                         size_t errlen) {
  lua_Integer n;
  int strings, is_array;
  int rc0 = table_shape(L, idx, path, &is_array, &n, &strings, err, errlen);
  if (rc0) return rc0;
  if (is_array) {
    lc_jsonw_arr(w);
    for (lua_Integer i = 1; i <= n; i++) {
      struct path p = {path, NULL, 0, i};
      lua_rawgeti(L, idx, i);
      int rc = to_text(L, lua_gettop(L), w, &p, depth + 1, err, errlen);
      lua_pop(L, 1);
      if (rc) return rc;
    }
    lc_jsonw_arr_end(w);
  } else {
    /* Keys sorted as lc_conv_to_json sorts them (bytewise), so both paths
     * give the same bytes for the same table whatever Lua's hash order.
     * The key list lives in a userdata: freed by the GC if we raise. Its
     * user value anchors the key strings: a __gc finalizer run by any
     * allocation from here on may change the table, even drop a key we
     * hold. The same finalizer may have added keys since table_shape
     * counted them: the array holds that count, never more. A small
     * object (a tool call's arguments, every request's params) keeps its
     * keys in a C array and anchors them on the Lua stack instead: two
     * allocations (and their collection) less per object. */
    int base = lua_gettop(L);
    struct tkey small[SMALL_KEYS];
    struct tkey *keys = small;
    int kidx = 0; /* 0: the keys are anchored on the stack */
    if (strings > SMALL_KEYS || !lua_checkstack(L, strings + 8)) {
      keys = lua_newuserdatauv(L, sizeof *keys * (size_t)(strings ? strings : 1), 1);
      kidx = lua_gettop(L);
      lua_createtable(L, strings, 0);
      lua_setiuservalue(L, kidx, 1);
      lua_getiuservalue(L, kidx, 1); /* keys anchor */
    }
    size_t nk = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      lua_pop(L, 1);
      if (nk == (size_t)strings || lua_type(L, -1) != LUA_TSTRING) {
        lua_settop(L, base);
        FAIL("table changed while it was being encoded");
      }
      keys[nk].k = lua_tolstring(L, -1, &keys[nk].kl);
      lua_pushvalue(L, -1); /* the next key to lua_next; the one below anchors */
      if (kidx) lua_rawseti(L, kidx + 1, (lua_Integer)nk + 1);
      nk++;
    }
    if (nk > 1) qsort(keys, nk, sizeof *keys, tkey_cmp); /* a call's one argument: no call */
    lc_jsonw_obj(w);
    for (size_t i = 0; i < nk; i++) {
      const char *k = keys[i].k;
      size_t kl = keys[i].kl;
      struct path p = {path, k, kl, 0};
      if (memchr(k, 0, kl) || !lc_utf8_valid(k, kl, NULL)) {
        lua_settop(L, base);
        struct path *pp = &p;
        path = pp;
        FAIL("object key is not valid UTF-8 text");
      }
      lc_jsonw_key(w, k);
      lua_pushlstring(L, k, kl);
      lua_rawget(L, idx);
      int rc = to_text(L, lua_gettop(L), w, &p, depth + 1, err, errlen);
      lua_pop(L, 1);
      if (rc) { lua_settop(L, base); return rc; }
    }
    lua_settop(L, base);
    lc_jsonw_obj_end(w);
  }
  return w->err;
}

static int to_text(lua_State *L, int idx, struct lc_jsonw *w, struct path *path,
                   int depth, char *err, size_t errlen) {
  if (depth > LC_CONV_MAX_DEPTH) FAIL("nesting deeper than %d", LC_CONV_MAX_DEPTH);
  luaL_checkstack(L, 6, "json encode");
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      lc_jsonw_null(w);
      break;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) != NULL) FAIL("cannot encode a light userdata");
      lc_jsonw_null(w);
      break;
    case LUA_TBOOLEAN:
      lc_jsonw_bool(w, lua_toboolean(L, idx));
      break;
    case LUA_TNUMBER: {
      if (lua_isinteger(L, idx)) {
        lc_jsonw_num(w, (double)lua_tointeger(L, idx));
      } else {
        double d = lua_tonumber(L, idx);
        if (!isfinite(d)) FAIL("cannot encode %s", isnan(d) ? "NaN" : "infinity");
        lc_jsonw_num(w, d);
      }
      break;
    }
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      size_t bad;
      if (memchr(s, 0, len)) FAIL("string contains a NUL byte");
      if (!lc_utf8_valid(s, len, &bad)) FAIL("string is not valid UTF-8 (byte %zu)", bad);
      lc_jsonw_str(w, s, len);
      break;
    }
    case LUA_TTABLE:
      return table_to_text(L, lua_absindex(L, idx), w, path, depth, err, errlen);
    default:
      FAIL("cannot encode a %s", luaL_typename(L, idx));
  }
  return w->err;
}

/* Callers print err for any failure, as lc_conv_to_json's do: a buffer
 * that could not grow says so (it said nothing: "... cannot be
 * journaled: "). */
static int text_rc(int rc, char *err, size_t errlen) {
  if (rc == LC_ENOMEM && errlen && !err[0]) snprintf(err, errlen, "not enough memory");
  return rc;
}

int lc_conv_to_text(lua_State *L, int idx, struct lc_buf *out, char *err,
                    size_t errlen) {
  if (errlen) err[0] = '\0';
  struct lc_jsonw w;
  lc_jsonw_init(&w, out);
  return text_rc(to_text(L, lua_absindex(L, idx), &w, NULL, 0, err, errlen), err, errlen);
}

int lc_conv_members_to_text(lua_State *L, int n, const char *const *keys, const int *idxs,
                            struct lc_buf *out, char *err, size_t errlen) {
  if (errlen) err[0] = '\0';
  struct lc_jsonw w;
  lc_jsonw_init(&w, out);
  lc_jsonw_obj(&w);
  for (int i = 0; i < n; i++) {
    struct path p = {NULL, keys[i], strlen(keys[i]), 0};
    lc_jsonw_key(&w, keys[i]);
    if (lua_isnoneornil(L, idxs[i])) {
      lc_jsonw_obj(&w);
      lc_jsonw_obj_end(&w);
      continue;
    }
    int rc = to_text(L, lua_absindex(L, idxs[i]), &w, &p, 1, err, errlen);
    if (rc) return text_rc(rc, err, errlen);
  }
  lc_jsonw_obj_end(&w);
  return text_rc(w.err, err, errlen);
}

int lc_conv_member_value_to_text(lua_State *L, int idx, const char *key, struct lc_buf *out,
                                 char *err, size_t errlen) {
  if (errlen) err[0] = '\0';
  struct lc_jsonw w;
  lc_jsonw_reopen(&w, out, 1, 0); /* inside the object, after its key */
  if (lua_isnoneornil(L, idx)) {
    lc_jsonw_obj(&w);
    lc_jsonw_obj_end(&w);
    return text_rc(w.err, err, errlen);
  }
  struct path p = {NULL, key, strlen(key), 0};
  int rc = to_text(L, lua_absindex(L, idx), &w, &p, 1, err, errlen);
  return text_rc(rc ? rc : w.err, err, errlen);
}

static void push_json(lua_State *L, const cJSON *j, int depth) {
  luaL_checkstack(L, 4, "json decode");
  if (!j || cJSON_IsNull(j)) {
    lc_conv_push_null(L);
  } else if (cJSON_IsBool(j)) {
    lua_pushboolean(L, cJSON_IsTrue(j));
  } else if (cJSON_IsNumber(j)) {
    double d = j->valuedouble;
    if (d == floor(d) && d >= -9007199254740992.0 && d <= 9007199254740992.0)
      lua_pushinteger(L, (lua_Integer)d);
    else
      lua_pushnumber(L, d);
  } else if (cJSON_IsString(j)) {
    lua_pushstring(L, j->valuestring);
  } else if (cJSON_IsArray(j)) {
    lua_createtable(L, cJSON_GetArraySize(j), 0);
    lua_Integer i = 1;
    for (const cJSON *c = j->child; c; c = c->next) {
      push_json(L, c, depth + 1);
      lua_rawseti(L, -2, i++);
    }
    lc_conv_push_array_mt(L);
    lua_setmetatable(L, -2);
  } else if (cJSON_IsObject(j)) {
    lua_createtable(L, 0, cJSON_GetArraySize(j));
    for (const cJSON *c = j->child; c; c = c->next) {
      push_json(L, c, depth + 1);
      lua_setfield(L, -2, c->string);
    }
  } else {
    lua_pushnil(L);
  }
}

void lc_conv_push_json(lua_State *L, const cJSON *j) {
  if (!j) { lua_pushnil(L); return; }
  push_json(L, j, 0);
}

static int depth_ok(const cJSON *j, int depth) {
  if (depth > LC_CONV_MAX_DEPTH) return 0;
  for (const cJSON *c = j->child; c; c = c->next)
    if (!depth_ok(c, depth + 1)) return 0;
  return 1;
}

cJSON *lc_json_parse(const char *s, size_t n, char *err, size_t errlen) {
  size_t bad;
  if (!lc_utf8_valid(s, n, &bad)) {
    snprintf(err, errlen, "invalid UTF-8 at byte %zu", bad);
    return NULL;
  }
  /* cJSON's own nesting limit (CJSON_NESTING_LIMIT, 1000) bounds its
   * recursion; ours is stricter and applied after. */
  const char *end = NULL;
  cJSON *j = cJSON_ParseWithLengthOpts(s, n, &end, 0);
  if (!j) {
    size_t at = end && end >= s ? (size_t)(end - s) : 0;
    snprintf(err, errlen, "invalid JSON at byte %zu of %zu", at, n);
    return NULL;
  }
  /* Allow trailing whitespace only. */
  size_t used = (size_t)(end - s);
  while (used < n && (s[used] == ' ' || s[used] == '\n' || s[used] == '\r' ||
                      s[used] == '\t'))
    used++;
  if (used < n) {
    cJSON_Delete(j);
    snprintf(err, errlen, "trailing data after JSON at byte %zu", used);
    return NULL;
  }
  if (!depth_ok(j, 0)) {
    cJSON_Delete(j);
    snprintf(err, errlen, "JSON nested deeper than %d", LC_CONV_MAX_DEPTH);
    return NULL;
  }
  return j;
}

char *lc_json_print(const cJSON *j) { return cJSON_PrintUnformatted(j); }
