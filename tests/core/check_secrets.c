/* check_secrets.c: the secret registry and scrubber (secrets.c), the LLM
 * error path that scrubs at the source, and the canary: a `luact run` whose
 * provider echoes every key back, with no key in any output. */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lc.h"
#include "secrets.h"
#include "util_common.h"
#include "util_lua.h"
#include "util_mock.h"

/* Canaries with the bytes that encodings change ('/', '+', '='). */
#define K_ENV "sk-cnry1-Q7f/x+Zk9=Wm2pL8vR4t"
#define K_OPT "ak-cnry2-H3j/b+Yw6=Tn5qS1uE7d"
#define K_HDR "tk-cnry3-M8c/v+Ra2=Pe9gD4hJ6k"

static char *scrubbed(const char *text, int mode) {
  char *s = strdup(text);
  ck_assert_ptr_nonnull(s);
  size_t n = lc_secrets_scrub(s, strlen(s), mode);
  ck_assert_uint_eq(n, strlen(s));
  return s;
}

static void expect(const char *text, int mode, const char *want) {
  char *s = scrubbed(text, mode);
  ck_assert_msg(strcmp(s, want) == 0, "scrub(%s) = %s, want %s", text, s, want);
  free(s);
}

START_TEST(whole_values_and_fragments) {
  lc_secrets_reset();
  ck_assert(!lc_secrets_any());
  expect("nothing registered: " K_ENV, LC_SCRUB_TEXT, "nothing registered: " K_ENV);
  ck_assert_int_eq(lc_secret_add(K_ENV, strlen(K_ENV)), 0);
  ck_assert(lc_secrets_any());
  expect("bad key " K_ENV ".", LC_SCRUB_TEXT, "bad key [REDACTED].");
  expect(K_ENV K_ENV, LC_SCRUB_TEXT, "[REDACTED][REDACTED]");
  /* A proxy echoing the first 12 characters, or the last 10. */
  expect("key sk-cnry1-Q7f... rejected", LC_SCRUB_TEXT, "key [REDACTED]... rejected");
  expect("key ...=Wm2pL8vR4t", LC_SCRUB_TEXT, "key ...[REDACTED]");
  /* A 9-byte piece is below the fragment length: kept (a masked echo
   * such as "sk-...R4t" is no leak). */
  expect("key sk-cnry1-...vR4t", LC_SCRUB_TEXT, "key sk-cnry1-...vR4t");
  /* Placeholders are not secrets: "ollama" must not vanish from output. */
  ck_assert_int_eq(lc_secret_add("ollama", 6), 0);
  expect("ollama:llama3", LC_SCRUB_TEXT, "ollama:llama3");
  /* Blanks around a value are not part of it. */
  ck_assert_int_eq(lc_secret_add("  padded-secret-value\n", 22), 0);
  expect("x padded-secret-value y", LC_SCRUB_TEXT, "x [REDACTED] y");
  lc_secrets_reset();
  expect(K_ENV, LC_SCRUB_TEXT, K_ENV);
}
END_TEST

START_TEST(encoded_forms) {
  lc_secrets_reset();
  lc_secret_add(K_ENV, strlen(K_ENV));
  /* JSON with '/' escaped (PHP, some proxies), percent-encoded (upper and
   * lower case): found in text and in JSON. */
  expect("{\"m\":\"sk-cnry1-Q7f\\/x+Zk9=Wm2pL8vR4t\"}", LC_SCRUB_JSON, "{\"m\":\"[REDACTED]\"}");
  expect("key=sk-cnry1-Q7f%2Fx%2BZk9%3DWm2pL8vR4t&a=1", LC_SCRUB_TEXT, "key=[REDACTED]&a=1");
  expect("key=sk-cnry1-Q7f%2fx%2bZk9%3dWm2pL8vR4t", LC_SCRUB_TEXT, "key=[REDACTED]");
  /* A key with a quote and a backslash: its JSON form in JSON text. */
  const char *odd = "odd\"key\\with-quote-9";
  lc_secret_add(odd, strlen(odd));
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "message", "Incorrect API key provided: odd\"key\\with-quote-9!");
  char *j = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  expect(j, LC_SCRUB_JSON, "{\"message\":\"Incorrect API key provided: [REDACTED]!\"}");
  expect(j, LC_SCRUB_TEXT, "{\"message\":\"Incorrect API key provided: [REDACTED]!\"}");
  cJSON_free(j);
  expect("raw: odd\"key\\with-quote-9", LC_SCRUB_TEXT, "raw: [REDACTED]");
  lc_secrets_reset();
}
END_TEST

/* JSON text stays valid whatever piece of an escaped key it holds: every
 * fragment of the JSON form, at every offset, inside a string. */
START_TEST(json_mode_never_breaks_json) {
  lc_secrets_reset();
  const char *key = "a\"b\\c\"d\\e\"f\\g\x01h\"i\\j";
  lc_secret_add(key, strlen(key));
  cJSON *s = cJSON_CreateString(key);
  char *form = cJSON_PrintUnformatted(s); /* "..." with escapes */
  cJSON_Delete(s);
  size_t fl = strlen(form) - 2;
  const char *f = form + 1;
  char doc[512];
  for (size_t o = 0; o < fl; o++)
    for (size_t l = 1; o + l <= fl; l++) {
      /* Odd o: after a whole key, so the text has already shrunk. */
      snprintf(doc, sizeof doc, "{\"k\":\"%.*sx%.*sy\",\"n\":1}", o % 2 ? (int)fl : 0, f,
               (int)l, f + o);
      cJSON *ok = cJSON_Parse(doc);
      if (!ok) continue; /* this piece is not valid JSON to begin with */
      cJSON_Delete(ok);
      char *t = scrubbed(doc, LC_SCRUB_JSON);
      cJSON *back = cJSON_Parse(t);
      ck_assert_msg(back != NULL, "scrubbing %s gave invalid JSON %s", doc, t);
      const cJSON *k = cJSON_GetObjectItemCaseSensitive(back, "k");
      ck_assert(cJSON_IsString(k));
      if (l >= 12) ck_assert_msg(strstr(t, "[REDACTED]"), "%s kept a 12-byte piece", t);
      cJSON_Delete(back);
      free(t);
    }
  cJSON_free(form);
  /* A piece that starts just after a backslash ("\\n" then "nopq..."): the
   * escape goes with it, also after an earlier key shrank the text. */
  lc_secret_add("sk-abcnopqrstuvwxyz12", 21);
  expect("{\"k\":\"\\nopqrstuvwxyz12\"}", LC_SCRUB_JSON, "{\"k\":\"[REDACTED]\"}");
  expect("{\"k\":\"sk-abcnopqrstuvwxyz12 and \\nopqrstuvwxyz12\"}", LC_SCRUB_JSON,
         "{\"k\":\"[REDACTED] and [REDACTED]\"}");
  lc_secrets_reset();
}
END_TEST

/* Strict RFC 8259 check of {"k":"..."} (cJSON accepts some bad escapes). */
static int strict_doc(const char *d) {
  size_t n = strlen(d);
  if (n < 8 || strncmp(d, "{\"k\":\"", 6) != 0 || strcmp(d + n - 2, "\"}") != 0) return 0;
  for (size_t i = 6; i < n - 2; i++) {
    unsigned char c = (unsigned char)d[i];
    if (c < 0x20 || c == '"') return 0;
    if (c != '\\') continue;
    if (++i >= n - 2) return 0;
    if (d[i] == 'u') {
      for (int h = 1; h <= 4; h++)
        if (i + h >= n - 2 || !strchr("0123456789abcdefABCDEF", d[i + h])) return 0;
      i += 4;
    } else if (!strchr("\"\\/bfnrt", d[i])) {
      return 0;
    }
  }
  return 1;
}

/* Random JSON strings made of pieces of short keys (so a mask shrinks the
 * text by little and earlier output sits close behind the read position),
 * escapes and filler: the result always parses, and no 12-byte window of a
 * key survives. */
START_TEST(json_mode_random_documents) {
  lc_secrets_reset();
  static const char *const keys[] = {"n\\u0041\"k-0", "ab\\\\cd\"ef/g", "uuuu0041nn\\"};
  char *forms[3];
  for (int k = 0; k < 3; k++) {
    lc_secret_add(keys[k], strlen(keys[k]));
    cJSON *js = cJSON_CreateString(keys[k]);
    forms[k] = cJSON_PrintUnformatted(js);
    cJSON_Delete(js);
  }
  static const char *const filler[] = {"\\n", "\\u0041", "\\\\", "\\\"", "x", "u", "n", "0041"};
  uint64_t rnd = 0x9e3779b97f4a7c15ull;
#define NEXT() (rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17, rnd)
  char doc[1024];
  int tried = 0;
  for (int it = 0; it < 20000; it++) {
    size_t len = (size_t)snprintf(doc, sizeof doc, "{\"k\":\"");
    int parts = 1 + (int)(NEXT() % 8);
    for (int p = 0; p < parts; p++) {
      if (NEXT() % 2) {
        const char *f = forms[NEXT() % 3] + 1;
        size_t fl = strlen(f) - 1, o = NEXT() % fl, l = 1 + NEXT() % (fl - o);
        len += (size_t)snprintf(doc + len, sizeof doc - len, "%.*s", (int)l, f + o);
      } else {
        len += (size_t)snprintf(doc + len, sizeof doc - len, "%s", filler[NEXT() % 8]);
      }
    }
    snprintf(doc + len, sizeof doc - len, "\"}");
    if (!strict_doc(doc)) continue;
    tried++;
    char *t = scrubbed(doc, LC_SCRUB_JSON);
    ck_assert_msg(strict_doc(t), "scrubbing %s gave invalid JSON %s", doc, t);
    for (int k = 0; k < 3; k++)
      for (size_t o = 1; o + 12 < strlen(forms[k]); o++) {
        char win[13];
        memcpy(win, forms[k] + o, 12);
        win[12] = '\0';
        ck_assert_msg(!strstr(t, win), "%s (from %s) kept %s", t, doc, win);
      }
    free(t);
  }
#undef NEXT
  ck_assert_int_gt(tried, 1000);
  for (int k = 0; k < 3; k++) cJSON_free(forms[k]);
  lc_secrets_reset();
}
END_TEST

START_TEST(registered_where_read) {
  lc_secrets_reset();
  /* Credential headers (the token without its scheme too), not others. */
  ck_assert_int_eq(lc_secret_add_header("Authorization", 13, "Bearer " K_HDR, 7 + strlen(K_HDR)), 0);
  expect("token " K_HDR, LC_SCRUB_TEXT, "token [REDACTED]");
  lc_secret_add_header("X-Trace", 7, "public-trace-id-123", 19);
  expect("public-trace-id-123", LC_SCRUB_TEXT, "public-trace-id-123");
  lc_secret_add_header("x-api-key", 9, K_OPT, strlen(K_OPT));
  expect(K_OPT, LC_SCRUB_TEXT, "[REDACTED]");
  /* The environment: credential names register as they are read. */
  setenv("LC_CHECK_API_KEY", "env-secret-0123456789", 1);
  setenv("LC_CHECK_SESSION_TOKEN", "tok-Hq93ZmPw7Lx", 1);
  setenv("LC_CHECK_PLAIN", "plain-Vb28NcRt4Ks", 1);
  ck_assert_str_eq(lc_secret_getenv("LC_CHECK_API_KEY"), "env-secret-0123456789");
  lc_secret_getenv("LC_CHECK_PLAIN");
  expect("env-secret-0123456789 tok-Hq93ZmPw7Lx plain-Vb28NcRt4Ks", LC_SCRUB_TEXT,
         "[REDACTED] tok-Hq93ZmPw7Lx plain-Vb28NcRt4Ks");
  lc_secrets_from_env();
  expect("tok-Hq93ZmPw7Lx plain-Vb28NcRt4Ks", LC_SCRUB_TEXT,
         "[REDACTED] plain-Vb28NcRt4Ks");
  lc_secrets_reset();
}
END_TEST

/* In process: the message luact.llm.chat returns to Lua carries no key,
 * whichever form the provider echoed it in, and says it was redacted. */
START_TEST(llm_error_scrubbed_for_lua) {
  lc_secrets_reset();
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m,
      "[{\"match\":{\"path_prefix\":\"/json/\"},\"reply\":{\"echo_credentials\":true}},"
      " {\"match\":{\"path_prefix\":\"/slash/\"},\"reply\":{\"echo_credentials\":\"slash\"}},"
      " {\"match\":{\"path_prefix\":\"/percent/\"},\"reply\":{\"echo_credentials\":\"percent\"}},"
      " {\"match\":{\"path_prefix\":\"/raw/\"},\"reply\":{\"echo_credentials\":\"raw\"}},"
      " {\"match\":{\"path_prefix\":\"/prefix/\"},\"reply\":{\"echo_credentials\":16}}]"), 0);
  char out[4096] = "", err[512] = "";
  int rc = lc_test_lua_run_once(m.base_url,
      "K = '" K_OPT "'\n",
      "local all = {}\n"
      "for _, p in ipairs{'json', 'slash', 'percent', 'raw', 'prefix'} do\n"
      "  for _, model in ipairs{'openai:x', 'anthropic:x', 'ollama:x'} do\n"
      "    local r, msg, code = luact.llm.chat{model = model, api_key = K, retries = 0,\n"
      "      base_url = BASE .. '/' .. p .. (model == 'openai:x' and '/v1' or ''), prompt = 'hi'}\n"
      "    all[#all + 1] = p .. ' ' .. model .. ' ' .. tostring(code) .. ': ' .. tostring(msg)\n"
      "  end\n"
      "end\n"
      "return table.concat(all, '\\n')\n",
      out, sizeof out, err, sizeof err);
  ck_assert_int_eq(lc_mock_stop(&m), 0);
  ck_assert_msg(rc == 0, "%s", err);
  ck_assert_msg(!strstr(out, "cnry2"), "a key reached Lua:\n%s", out);
  /* Every one of the 15 answers was an echo, and was redacted. */
  int n = 0;
  for (const char *p = out; (p = strstr(p, "[REDACTED]")); p++) n++;
  ck_assert_msg(n >= 15, "%d redactions in\n%s", n, out);
  lc_secrets_reset();
}
END_TEST

/* ---- the canary through the command line ---- */

static int sh(const char *cmd) {
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Any 12-byte window of a key in any of its forms: the scrubber takes
 * every 10-byte piece, so none may survive. */
static void assert_no_key(const char *what, const char *text) {
  ck_assert_msg(text != NULL, "%s: missing", what);
  static const char *const keys[] = {K_ENV, K_OPT, K_HDR};
  for (int k = 0; k < 3; k++) {
    char forms[3][128], *p;
    snprintf(forms[0], sizeof forms[0], "%s", keys[k]);
    p = forms[1];
    for (const char *c = keys[k]; *c; c++) {
      if (*c == '/') *p++ = '\\';
      *p++ = *c;
    }
    *p = '\0';
    p = forms[2];
    for (const char *c = keys[k]; *c; c++)
      p += strchr("/+=", *c) ? sprintf(p, "%%%02X", (unsigned char)*c) : sprintf(p, "%c", *c);
    for (int f = 0; f < 3; f++)
      for (size_t o = 0; o + 12 <= strlen(forms[f]); o++) {
        char win[13];
        memcpy(win, forms[f] + o, 12);
        win[12] = '\0';
        const char *hit = strstr(text, win);
        ck_assert_msg(!hit, "%s carries \"%s\" (key %d): ...%.200s", what, win, k,
                      hit && hit - text > 80 ? hit - 80 : text);
      }
  }
}

/* Every line is a JSON document (the scrubber kept the JSON valid). */
static void assert_json_lines(const char *what, const char *text) {
  int lines = 0;
  for (const char *p = text; *p;) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    if (n) {
      cJSON *j = cJSON_ParseWithLength(p, n);
      ck_assert_msg(j != NULL, "%s: line %d is not JSON: %.*s", what, lines + 1, (int)n, p);
      cJSON_Delete(j);
      lines++;
    }
    p += n + (nl ? 1 : 0);
  }
  ck_assert_msg(lines > 0, "%s is empty", what);
}

START_TEST(canary_in_no_output) {
  struct lc_mock m;
  ck_assert_int_eq(lc_mock_start(&m,
      "[{\"match\":{\"path_prefix\":\"/json/\"},\"reply\":{\"echo_credentials\":true}},"
      " {\"match\":{\"path_prefix\":\"/slash/\"},\"reply\":{\"echo_credentials\":\"slash\"}},"
      " {\"match\":{\"path_prefix\":\"/percent/\"},\"reply\":{\"echo_credentials\":\"percent\"}},"
      " {\"match\":{\"path_prefix\":\"/raw/\"},\"reply\":{\"echo_credentials\":\"raw\"}},"
      " {\"match\":{\"path_prefix\":\"/prefix/\"},\"reply\":{\"echo_credentials\":24}},"
      " {\"match\":{\"path\":\"/echo\"},\"reply\":{\"echo_credentials\":true}}]"), 0);
  const char *src = lc_test_source_dir();
  char dir[64], env[1024], cmd[4096], path[6][128];
  snprintf(dir, sizeof dir, "/tmp/lc_secrets_%ld", (long)getpid());
  const char *names[6] = {"out", "err", "trace", "journal", "err_error", "err_nil"};
  for (int i = 0; i < 6; i++) snprintf(path[i], sizeof path[i], "%s.%s", dir, names[i]);
  snprintf(env, sizeof env,
           "OPENAI_API_KEY='" K_ENV "' CANARY_OPT='" K_OPT "' CANARY_HDR='" K_HDR "' BASE='%s'",
           m.base_url);
  snprintf(cmd, sizeof cmd,
           "%s %s/luact run --json --trace %s --record %s %s/tests/lua/secrets_canary.lua json "
           "> %s 2> %s",
           env, LC_BINARY_DIR, path[2], path[3], src, path[0], path[1]);
  int rc = sh(cmd);
  snprintf(cmd, sizeof cmd, "%s %s/luact run %s/tests/lua/secrets_canary.lua error > /dev/null 2> %s",
           env, LC_BINARY_DIR, src, path[4]);
  int rc_error = sh(cmd);
  snprintf(cmd, sizeof cmd, "%s %s/luact run %s/tests/lua/secrets_canary.lua nil > /dev/null 2> %s",
           env, LC_BINARY_DIR, src, path[5]);
  int rc_nil = sh(cmd);
  ck_assert_int_eq(lc_mock_stop(&m), 0);

  char *text[6];
  for (int i = 0; i < 6; i++) text[i] = lc_test_read_file(path[i], NULL);
  for (int i = 0; i < 6; i++) assert_no_key(names[i], text[i]);
  ck_assert_msg(rc == 0, "luact run exited %d: %s", rc, text[1]);
  ck_assert_int_eq(rc_error, 1);
  ck_assert_int_eq(rc_nil, 1);
  /* The echoes did happen, and went through each sink redacted: the Lua
   * strings (counted by the script), --json, the trace, the journal and
   * stderr. */
  ck_assert_msg(strstr(text[0], "lua-checked 6 errors, 6 redacted"), "%s", text[0]);
  for (int i = 0; i < 6; i++)
    if (i != 1)
      ck_assert_msg(strstr(text[i], "[REDACTED]"), "%s has no redaction:\n%s", names[i], text[i]);
  /* --json is the last stdout line; trace and journal are JSON lines. */
  const char *json = strstr(text[0], "\n{");
  ck_assert_ptr_nonnull(json);
  assert_json_lines("--json", json + 1);
  assert_json_lines("trace", text[2]);
  assert_json_lines("journal", text[3]);
  ck_assert_ptr_nonnull(strstr(text[3], "\"kind\":\"http\""));
  ck_assert_ptr_nonnull(strstr(text[3], "\"kind\":\"llm\""));
  for (int i = 0; i < 6; i++) {
    free(text[i]);
    unlink(path[i]);
  }
}
END_TEST

Suite *secrets_suite(void) {
  Suite *s = suite_create("secrets");
  TCase *tc = tcase_create("scrub");
  tcase_add_test(tc, whole_values_and_fragments);
  tcase_add_test(tc, encoded_forms);
  tcase_add_test(tc, json_mode_never_breaks_json);
  tcase_add_test(tc, json_mode_random_documents);
  tcase_add_test(tc, registered_where_read);
  suite_add_tcase(s, tc);
  TCase *io = tcase_create("outputs");
  tcase_set_timeout(io, 60);
  tcase_add_test(io, llm_error_scrubbed_for_lua);
  tcase_add_test(io, canary_in_no_output);
  suite_add_tcase(s, io);
  return s;
}
