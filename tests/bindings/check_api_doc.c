/* check_api_doc.c: docs/api.md documents every public luact function and
 * sub-table (enumerated from the live luact table of a state the runtime
 * made) and every option the runtime accepts (the same tables l_opts.c
 * checks scripts against). A new function or option without its line in
 * the reference fails here. */
#include <check.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "l_opts.h"
#include "util_common.h"
#include "l_luact.h"
#include "util_lua.h"

static char *doc;

static void load_doc(void) {
  char path[512];
  snprintf(path, sizeof path, "%s/docs/api.md", lc_test_source_dir());
  doc = lc_test_read_file(path, NULL);
  ck_assert_msg(doc != NULL, "cannot read %s", path);
}

static void free_doc(void) {
  free(doc);
  doc = NULL;
}

static int name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.';
}

/* Is there a heading line ("#...") naming `name` as a whole word? */
static int has_heading(const char *name) {
  size_t n = strlen(name);
  for (const char *line = doc; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
    if (*line != '#') continue;
    const char *eol = strchr(line, '\n');
    if (!eol) eol = line + strlen(line);
    for (const char *p = line; (p = strstr(p, name)) && p < eol; p++)
      if (!name_char(p[-1]) && !name_char(p[n])) return 1;
  }
  return 0;
}

/* The text of section "### <title>" up to the next "## " or "### ". */
static int section(const char *title, const char **b, const char **e) {
  char h[256];
  snprintf(h, sizeof h, "\n### %s\n", title);
  const char *p = strstr(doc, h);
  if (!p) return 0;
  *b = p + strlen(h);
  const char *n2 = strstr(*b, "\n## "), *n3 = strstr(*b, "\n### ");
  *e = !n2 ? (n3 ? n3 : *b + strlen(*b)) : (!n3 || n2 < n3 ? n2 : n3);
  return 1;
}

static int in_range(const char *b, const char *e, const char *needle) {
  size_t n = strlen(needle);
  for (const char *p = b; (p = strstr(p, needle)) && p + n <= e; p++) return 1;
  return 0;
}

/* [-0, +0] Appends "path" of every function and table under the table on
 * top to missing (if undocumented); visited guards against cycles. */
static void walk(lua_State *L, const char *path, char *missing, size_t cap, int *count) {
  int t = lua_gettop(L);
  lua_pushvalue(L, t);
  lua_rawget(L, 1); /* visited[t] */
  int seen = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (seen) return;
  lua_pushvalue(L, t);
  lua_pushboolean(L, 1);
  lua_rawset(L, 1);
  lua_pushnil(L);
  while (lua_next(L, t)) {
    int ty = lua_type(L, -1);
    if (lua_type(L, -2) == LUA_TSTRING && (ty == LUA_TFUNCTION || ty == LUA_TTABLE)) {
      char sub[256];
      snprintf(sub, sizeof sub, "%s.%s", path, lua_tostring(L, -2));
      (*count)++;
      if (!has_heading(sub) && strlen(missing) + strlen(sub) + 2 < cap) {
        strcat(missing, " ");
        strcat(missing, sub);
      }
      if (ty == LUA_TTABLE) walk(L, sub, missing, cap, count);
    }
    lua_pop(L, 1);
  }
}

START_TEST(every_function_and_table_is_documented) {
  load_doc();
  struct lc_test_lua t;
  lc_test_lua_open(&t);
  lua_State *L = t.L;
  lua_settop(L, 0);
  /* luact.eval's Lua half loads on first use: use it. */
  ck_assert_int_eq(luaL_dostring(L, "return luact.eval.load"), LUA_OK);
  lua_settop(L, 0);
  lua_newtable(L); /* 1: visited */
  /* Fields made on first use are made now, so that pairs() sees them. */
  for (const char *const *n = lc_l_lazy_names(); *n; n++) {
    char src[128];
    snprintf(src, sizeof src, "return luact.%s ~= nil", *n);
    ck_assert_int_eq(luaL_dostring(L, src), LUA_OK);
    ck_assert_msg(lua_toboolean(L, -1), "luact.%s is nil after first use", *n);
    lua_pop(L, 1);
  }
  lua_getglobal(L, "luact");
  ck_assert(lua_istable(L, 2));
  static char missing[4096];
  missing[0] = '\0';
  int count = 0;
  walk(L, "luact", missing, sizeof missing, &count);
  lua_settop(L, 0);
  lc_test_lua_close(&t);
  /* Made on first use (that use starts the workers): listed by hand. */
  if (!has_heading("luact.worker")) strcat(missing, " luact.worker");
  ck_assert_msg(count > 40, "only %d functions and tables found", count);
  ck_assert_msg(missing[0] == '\0', "not in docs/api.md (a '### name' heading):%s", missing);
  free_doc();
}
END_TEST

START_TEST(every_option_is_documented) {
  load_doc();
  static char missing[8192];
  missing[0] = '\0';
  const char *lb = NULL, *le = NULL;
  ck_assert(section("luact.llm.chat", &lb, &le));
  for (const struct lc_l_optset *s = lc_l_optsets; s->name; s++) {
    const char *b, *e;
    if (!section(s->doc, &b, &e)) {
      strcat(missing, " [no section ");
      strcat(missing, s->doc);
      strcat(missing, "]");
      continue;
    }
    /* "[the LLM options](#llm-options)" points at chat's section. */
    int shares_llm = in_range(b, e, "(#llm-options)");
    for (size_t i = 0; i < 3 && s->fields[i]; i++)
      for (const char *const *f = s->fields[i]; *f; f++) {
        char want[128];
        snprintf(want, sizeof want, "`%s%s`", s->prefix, *f);
        if (in_range(b, e, want) || (shares_llm && in_range(lb, le, want))) continue;
        if (strlen(missing) + strlen(want) + strlen(s->name) + 8 < sizeof missing) {
          strcat(missing, " ");
          strcat(missing, s->name);
          strcat(missing, ":");
          strcat(missing, want);
        }
      }
  }
  ck_assert_msg(missing[0] == '\0', "options not in their docs/api.md section:%s", missing);
  free_doc();
}
END_TEST

/* The exit codes luact run documents are in the reference too. */
START_TEST(exit_codes_are_documented) {
  load_doc();
  ck_assert(has_heading("luact run: exit codes"));
  ck_assert_ptr_nonnull(strstr(doc, "| 5 | the script returned a run result with status `\"limit\"`"));
  ck_assert_ptr_nonnull(strstr(doc, "`\"failed\"`; the message or reason goes to stderr"));
  free_doc();
}
END_TEST

Suite *api_doc_suite(void) {
  Suite *s = suite_create("api_doc");
  TCase *tc = tcase_create("api_doc");
  tcase_add_test(tc, every_function_and_table_is_documented);
  tcase_add_test(tc, every_option_is_documented);
  tcase_add_test(tc, exit_codes_are_documented);
  suite_add_tcase(s, tc);
  return s;
}
