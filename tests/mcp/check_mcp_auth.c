/* check_mcp_auth.c: the MCP client's OAuth authorization (runtime/mcp/
 * oauth.c) against tests/mcp/fake_auth_server.js (an MCP server behind
 * OAuth and its authorization server on loopback): the whole flow with
 * PKCE, resource and a refresh; tokens and the client secret never in the
 * journal, the trace, the output or an error message; hostile metadata,
 * tokens and redirects each a clear error; the WWW-Authenticate parser and
 * the endpoint rule. (The official conformance suite's 16 auth scenarios
 * run in mcp_conformance.) */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oauth.h"
#include "util_common.h"
#include "util_lua.h"
#include "util_mcp.h"

static char out[8192], err[4096];
static pid_t srv_pid;
static char log_path[64];

/* Starts the fake server in mode; its port. */
static int srv_start(const char *mode) {
  snprintf(log_path, sizeof log_path, "/tmp/lc_mcpauth_XXXXXX");
  int fd = mkstemp(log_path);
  ck_assert_int_ge(fd, 0);
  close(fd);
  return lc_test_node_server_start(&srv_pid, "fake_auth_server.js", mode, log_path, NULL);
}

/* Stops the server; its log (malloc'd) */
static char *srv_stop(void) {
  lc_test_node_server_stop(srv_pid);
  char *text = lc_test_read_file(log_path, NULL);
  unlink(log_path);
  return text ? text : strdup("");
}

/* The user-agent step the tests use: the fake authorization server
 * approves at once; its redirect's Location is the answer. */
static const char *prelude =
    "function follow(u)\n"
    "  local r, e = luact.http.get(u)\n"
    "  if not r then return nil, e end\n"
    "  for k, v in pairs(r.headers) do if k:lower() == 'location' then return v end end\n"
    "  return nil, 'no Location'\n"
    "end\n" LC_TEST_LUA_CHECK;

static int run(const char *code) {
  return lc_test_lua_run_once(NULL, prelude, code, out, sizeof out, err, sizeof err);
}

/* The whole flow: 401 -> PRM -> RFC 8414 metadata -> DCR -> authorize
 * with S256, resource and the PRM's scopes -> code + verifier with
 * client_secret_basic -> the calls carry the token; when the token stops
 * working, a 401 brings the refresh_token grant, not a new authorization. */
START_TEST(flow_and_refresh) {
  int port = srv_start("refresh");
  char code[1500];
  snprintf(code, sizeof code,
           "local asked = 0\n"
           "local s = check(luact.mcp.connect{url='http://127.0.0.1:%d/mcp', connect_timeout=20,\n"
           "  auth={authorize=function(u) asked = asked + 1; return follow(u) end}})\n"
           "check(#s.tools == 2, #s.tools)\n"
           "local r, e = s:call('echo', {})\n"
           "check(r, e)\n"
           "check(r.content[1].text == 'hello')\n"
           "check(asked == 1, 'asked ' .. asked .. ' times')\n"
           "s:close()\n"
           "return 'ok'",
           port);
  int rc = run(code);
  char *log = srv_stop();
  ck_assert_msg(rc == 0, "%s\n%s", err, log);
  char res[200];
  snprintf(res, sizeof res, "resource=http://127.0.0.1:%d/mcp", port);
  ck_assert_msg(strstr(log, "authorize scope=read ") && strstr(log, "method=S256") &&
                    strstr(log, res),
                "%s", log);
  ck_assert_msg(strstr(log, "grant authorization_code as basic=true") && strstr(log, "pkce=true"),
                "%s", log);
  /* the expired token: a refresh, then the call with the new token */
  const char *a = strstr(log, "401 tools/call");
  ck_assert_msg(a && strstr(a, "grant refresh_token as basic=true") &&
                    strstr(a, "mcp tools/call token2"),
                "%s", log);
  free(log);
}
END_TEST

/* Canary: the access and refresh tokens and the client secret never reach
 * the journal, the trace, the script's output or an error message, also
 * when a server quotes them back (the MCP server echoing the Authorization
 * header in an error body, the token endpoint quoting the secret). */
START_TEST(secrets_never_leak) {
  const char *modes[] = {"refresh", "echo_auth", "token_error"};
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    int port = srv_start(modes[i]);
    char dir[] = "/tmp/lc_mcpauth_cnr_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char script[700], journal[700], trace[700], cmd[4096];
    snprintf(script, sizeof script, "%s/agent.lua", dir);
    snprintf(journal, sizeof journal, "%s/run.jsonl", dir);
    snprintf(trace, sizeof trace, "%s/trace.jsonl", dir);
    FILE *f = fopen(script, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "%s"
            "local s, e, c = luact.mcp.connect{url='http://127.0.0.1:%d/mcp', connect_timeout=20,\n"
            "  auth={authorize=follow}}\n"
            "if not s then print('connect failed', e, c) return end\n"
            "print(s.tool.echo{})\n"
            "print(s.tool.echo{})\n"
            "print(s.tool.leak{})\n"
            "print(s:call('leak', {}))\n",
            prelude, port);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s/luact run --record %s --trace %s %s 2>&1", LC_BINARY_DIR,
             journal, trace, script);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    char *log = srv_stop();
    ck_assert_msg(st == 0, "%s: %s", modes[i], out);
    char *j = lc_test_read_file(journal, NULL);
    char *t = lc_test_read_file(trace, NULL);
    ck_assert_ptr_nonnull(j);
    /* it did authorize (so there was something to leak) */
    if (strcmp(modes[i], "token_error"))
      ck_assert_msg(strstr(log, "mcp tools/call token") && strstr(out, "hello"), "%s\n%s",
                    log, out);
    else
      ck_assert_msg(strstr(out, "invalid_grant") && strstr(out, "[redacted]"), "%s", out);
    if (!strcmp(modes[i], "echo_auth"))
      ck_assert_msg(strstr(out, "Authorization: Bearer [redacted]"), "%s", out);
    const char *where[] = {"output", "journal", "trace"};
    const char *text[] = {out, j, t ? t : ""};
    for (int w = 0; w < 3; w++)
      ck_assert_msg(!strstr(text[w], "CANARY-"), "%s: a token or the secret is in the %s:\n%s",
                    modes[i], where[w], text[w]);
    free(j);
    free(t);
    free(log);
    unlink(script);
    unlink(journal);
    unlink(trace);
    rmdir(dir);
  }
}
END_TEST

/* Hostile or broken authorization answers: each a clear error from
 * connect (code "auth"), nothing else, no token used, no secret shown. */
START_TEST(hostile_auth_servers) {
  static const struct {
    const char *mode, *expect;
  } cases[] = {
      {"prm_not_json", "protected resource metadata is not a JSON object"},
      {"prm_oversize", "response body over 65536 bytes"},
      {"prm_wrong_resource", "names resource 'http://127.0.0.1:1/other', not this server"},
      {"prm_http_as", "lists no usable authorization server"},
      {"as_not_object", "authorization server metadata is not a JSON object"},
      {"wrong_issuer", "issuer 'https://evil.example.com' is not"},
      {"http_endpoint", "token endpoint 'http://auth.example.com/token' is missing or not https"},
      {"no_s256", "does not list PKCE S256"},
      {"bad_state", "state does not match"},
      {"auth_denied", "refused: access_denied: the user said no"},
      {"token_type_mac", "token_type is 'mac', not Bearer"},
      {"token_crlf", "no usable access_token"},
      {"no_access_token", "no usable access_token"},
      {"dcr_no_id", "no usable client_id"},
      {"token_error", "refused (HTTP 400): invalid_grant"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int port = srv_start(cases[i].mode);
    char code[1200];
    snprintf(code, sizeof code,
             "local s, e, c = luact.mcp.connect{url='http://127.0.0.1:%d/mcp', connect_timeout=20,\n"
             "  auth={authorize=follow}}\n"
             "check(not s, 'connected')\n"
             "check(c == 'auth', c, e)\n"
             "check(e:find([==[%s]==], 1, true), e)\n"
             "check(not e:find('CANARY', 1, true), e)\n"
             "return e",
             port, cases[i].expect);
    int rc = run(code);
    char *log = srv_stop();
    ck_assert_msg(rc == 0, "%s: %s\n%s", cases[i].mode, err, log);
    /* no MCP request was let through with a token */
    ck_assert_msg(!strstr(log, "\nmcp "), "%s: %s", cases[i].mode, log);
    free(log);
  }
}
END_TEST

/* Step-up: a call that meets 403 insufficient_scope is authorized again
 * for the union of the scopes and then goes through; a 403 for a scope
 * granted already is not asked again: the call fails with code "auth". */
START_TEST(step_up_and_refusal) {
  int port = srv_start("stepup");
  char code[1200];
  snprintf(code, sizeof code,
           "local n = 0\n"
           "local s = check(luact.mcp.connect{url='http://127.0.0.1:%d/mcp', connect_timeout=20,\n"
           "  auth={authorize=function(u) n = n + 1; return follow(u) end}})\n"
           "local r, e, c = s:call('echo', {})\n"
           "check(r and r.content[1].text == 'hello', e, c)\n"
           "check(n == 2, n)\n"
           "return 'ok'",
           port);
  int rc = run(code);
  char *log = srv_stop();
  ck_assert_msg(rc == 0, "%s\n%s", err, log);
  const char *a = strstr(log, "403 tools/call");
  ck_assert_msg(a && strstr(a, "authorize scope=read write ") && strstr(a, "mcp tools/call token2"),
                "%s", log);
  free(log);
  port = srv_start("forbid_call");
  snprintf(code, sizeof code,
           "local s = check(luact.mcp.connect{url='http://127.0.0.1:%d/mcp', connect_timeout=20,\n"
           "  auth={authorize=follow}})\n"
           "local r, e, c = s:call('echo', {})\n"
           "check(not r and c == 'auth', c, e)\n"
           "check(e:find(\"wants scope 'read' (insufficient_scope) and it was asked for already\", 1, true), e)\n"
           "return 'ok'",
           port);
  rc = run(code);
  log = srv_stop();
  ck_assert_msg(rc == 0, "%s\n%s", err, log);
  /* one authorization only: the refusal does not ask again */
  const char *first = strstr(log, "authorize ");
  ck_assert_msg(first && !strstr(first + 1, "authorize "), "%s", log);
  free(log);
}
END_TEST

/* The server moves to another authorization server mid-run (a 401 with
 * another resource_metadata): the client discovers and registers there
 * again instead of showing it the first server's client id and refresh
 * token. */
START_TEST(authorization_server_switch) {
  int port = srv_start("as_switch");
  char code[1000];
  snprintf(code, sizeof code,
           "local s = check(luact.mcp.connect{url='http://127.0.0.1:%d/mcp', connect_timeout=20,\n"
           "  auth={authorize=follow}})\n"
           "local r, e, c = s:call('echo', {})\n"
           "check(r and r.content[1].text == 'hello', e, c)\n"
           "return 'ok'",
           port);
  int rc = run(code);
  char *log = srv_stop();
  ck_assert_msg(rc == 0, "%s\n%s", err, log);
  ck_assert_msg(strstr(log, "register as2 ") && strstr(log, "grant authorization_code as2 basic=true") &&
                    strstr(log, "mcp tools/call token3"),
                "%s", log);
  ck_assert_msg(!strstr(log, "grant refresh_token as2"), "%s", log);
  free(log);
}
END_TEST

/* A server that takes no token while its authorization server keeps
 * issuing and refreshing them: the client stops after 3 authorizations or
 * refreshes in a row (it used to refresh until the handshake deadline). */
START_TEST(token_never_accepted) {
  int port = srv_start("reject_all");
  char code[1000];
  snprintf(code, sizeof code,
           "local s, e, c = luact.mcp.connect{url='http://127.0.0.1:%d/mcp', connect_timeout=60,\n"
           "  auth={authorize=follow}}\n"
           "check(not s and c == 'auth', c, e)\n"
           "check(e:find('in a row were not accepted', 1, true), e)\n"
           "return 'ok'",
           port);
  int rc = run(code);
  char *log = srv_stop();
  ck_assert_msg(rc == 0, "%s\n%s", err, log);
  int grants = 0;
  for (const char *g = log; (g = strstr(g, "grant ")); g++) grants++;
  ck_assert_msg(grants == 3, "%d token requests:\n%s", grants, log);
  free(log);
}
END_TEST

/* The user-agent step's failures: no callback, a callback that gives no
 * redirect, a callback that raises: each a clear connect error. */
START_TEST(authorize_callback_failures) {
  int port = srv_start("ok");
  char code[2000];
  snprintf(code, sizeof code,
           "local u = 'http://127.0.0.1:%d/mcp'\n"
           "local s, e, c = luact.mcp.connect{url=u, connect_timeout=20, auth={}}\n"
           "check(not s and c == 'auth' and e:find('no auth.authorize callback', 1, true), e)\n"
           "s, e, c = luact.mcp.connect{url=u, connect_timeout=20,\n"
           "  auth={authorize=function() return nil, 'the user closed the window' end}}\n"
           "check(not s and e:find('the user closed the window', 1, true), e)\n"
           "s, e, c = luact.mcp.connect{url=u, connect_timeout=20,\n"
           "  auth={authorize=function() error('boom') end}}\n"
           "check(not s and e:find('auth.authorize failed', 1, true) and e:find('boom', 1, true), e)\n"
           "-- a plain 401 without auth: the status, as before\n"
           "s, e, c = luact.mcp.connect{url=u, connect_timeout=20}\n"
           "check(not s and e:find('HTTP 401', 1, true) and e:find('give connect an auth table', 1, true), e)\n"
           "return 'ok'",
           port);
  int rc = run(code);
  char *log = srv_stop();
  ck_assert_msg(rc == 0, "%s\n%s", err, log);
  free(log);
}
END_TEST

/* Misuse raises: auth for a command, wrong types, a grant that needs a
 * secret without one, an http redirect_uri off loopback. */
START_TEST(auth_option_checks) {
  ck_assert_int_ne(run("luact.mcp.connect{command='x', auth={}}"), 0);
  ck_assert_msg(strstr(err, "'auth' is for a url"), "%s", err);
  ck_assert_int_ne(run("luact.mcp.connect{url='http://127.0.0.1:1/mcp', auth=1}"), 0);
  ck_assert_msg(strstr(err, "'auth' must be a table"), "%s", err);
  ck_assert_int_ne(run("luact.mcp.connect{url='http://127.0.0.1:1/mcp', auth={scope=3}}"), 0);
  ck_assert_msg(strstr(err, "'scope' must be a string"), "%s", err);
  ck_assert_int_ne(
      run("luact.mcp.connect{url='http://127.0.0.1:1/mcp', auth={grant='client_credentials'}}"), 0);
  ck_assert_msg(strstr(err, "client_credentials needs client_id and client_secret"), "%s", err);
  ck_assert_int_eq(run("local s, e, c = luact.mcp.connect{url='http://127.0.0.1:1/mcp',\n"
                       "  auth={redirect_uri='http://example.com/cb'}}\n"
                       "check(not s and c == 'invalid', e)\n"
                       "check(e:find('redirect_uri must be https', 1, true), e)\n"
                       "return 'ok'"),
                   0);
}
END_TEST

/* The WWW-Authenticate parser: Bearer parameters, quoted and escaped
 * values, other schemes skipped, junk tolerated. */
START_TEST(challenge_parser) {
  struct lc_oauth_challenge c;
  const char *h = "Bearer error=\"insufficient_scope\", scope=\"a b\", "
                  "resource_metadata=\"https://x/.well-known/oauth-protected-resource\"";
  ck_assert_int_eq(lc_oauth_parse_challenge(h, strlen(h), &c), 1);
  ck_assert_str_eq(c.error, "insufficient_scope");
  ck_assert_str_eq(c.scope, "a b");
  ck_assert_str_eq(c.resource_metadata, "https://x/.well-known/oauth-protected-resource");
  h = "Basic realm=\"r\", scope=\"no\", Bearer scope=read, error_description=\"q\\\"x\"";
  ck_assert_int_eq(lc_oauth_parse_challenge(h, strlen(h), &c), 1);
  ck_assert_str_eq(c.scope, "read");
  ck_assert_str_eq(c.error_description, "q\"x");
  h = "Basic realm=\"r\"";
  ck_assert_int_eq(lc_oauth_parse_challenge(h, strlen(h), &c), 0);
  ck_assert_str_eq(c.scope, "");
  h = "bearer scope=\"un\rterminated";
  ck_assert_int_eq(lc_oauth_parse_challenge(h, strlen(h), &c), 1);
  ck_assert_str_eq(c.scope, "un terminated"); /* control characters blanked */
  h = "=,,==\"\" Bearer";
  ck_assert_int_eq(lc_oauth_parse_challenge(h, strlen(h), &c), 1);
  ck_assert_int_eq(lc_oauth_parse_challenge(NULL, 0, &c), 0);
}
END_TEST

/* Endpoints: https anywhere; http only on loopback; no user info. */
START_TEST(endpoint_rule) {
  ck_assert(lc_oauth_url_ok("https://auth.example.com/token"));
  ck_assert(lc_oauth_url_ok("http://localhost:8080/token"));
  ck_assert(lc_oauth_url_ok("http://127.0.0.1/x"));
  ck_assert(lc_oauth_url_ok("http://127.1.2.3:9/x"));
  ck_assert(lc_oauth_url_ok("http://[::1]:9/x"));
  ck_assert(!lc_oauth_url_ok("http://auth.example.com/token"));
  ck_assert(!lc_oauth_url_ok("http://127.0.0.1.evil.com/x"));
  ck_assert(!lc_oauth_url_ok("http://localhost.evil.com/x"));
  ck_assert(!lc_oauth_url_ok("http://127.0.0.1@evil.com/x"));
  ck_assert(!lc_oauth_url_ok("https://user@auth.example.com/x"));
  ck_assert(!lc_oauth_url_ok("ftp://auth.example.com/x"));
  ck_assert(!lc_oauth_url_ok("https://auth.example.com/a b"));
  ck_assert(!lc_oauth_url_ok("https://"));
  ck_assert(!lc_oauth_url_ok(NULL));
}
END_TEST

Suite *mcp_auth_suite(void) {
  Suite *s = suite_create("mcp_auth");
  TCase *tc = tcase_create("flow");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, flow_and_refresh);
  tcase_add_test(tc, secrets_never_leak);
  tcase_add_test(tc, hostile_auth_servers);
  tcase_add_test(tc, authorize_callback_failures);
  tcase_add_test(tc, token_never_accepted);
  tcase_add_test(tc, step_up_and_refusal);
  tcase_add_test(tc, authorization_server_switch);
  tcase_add_test(tc, auth_option_checks);
  suite_add_tcase(s, tc);
  tc = tcase_create("parsers");
  tcase_add_test(tc, challenge_parser);
  tcase_add_test(tc, endpoint_rule);
  suite_add_tcase(s, tc);
  return s;
}
