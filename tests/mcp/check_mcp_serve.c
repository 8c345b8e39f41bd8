/* check_mcp_serve.c: what `luact mcp serve` offers beyond tools
 * (tests/mcp/agents_features): resources, templates, subscriptions,
 * prompts, completions, non-text content, logging and sampling, driven by
 * the official TypeScript SDK client (tests/mcp/sdk_features.mjs) over
 * stdio and Streamable HTTP (sessions, the GET stream, DELETE); and a
 * hostile raw client (tests/mcp/raw_server.mjs): malformed params for
 * every new method, hostile sampling answers, and over HTTP unknown,
 * over-long, deleted and evicted sessions. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util_common.h"
#include "util_mcp.h"

#define TOKEN "test-token-0123456789"

static char out[1 << 16];

/* Runs cmd in tests/mcp; its output in out; its exit status. */
static int node_out(const char *cmd) {
  char full[2048];
  snprintf(full, sizeof full, "cd %s/tests/mcp && %s 2>&1", lc_test_source_dir(), cmd);
  FILE *p = popen(full, "r");
  ck_assert_ptr_nonnull(p);
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = '\0';
  return pclose(p);
}

static void want_all(const char *const *want, size_t n) {
  for (size_t i = 0; i < n; i++) ck_assert_msg(strstr(out, want[i]), "missing %s in %s", want[i], out);
}

/* `luact mcp serve --http 0 tests/mcp/DIR`; its port in *port. */
static pid_t serve_http(const char *dir, int *port, FILE **err) {
  return lc_test_mcp_serve_http(dir, TOKEN, port, err);
}

/* The server survived (a sanitizer report would have ended it). */
static void serve_stop(pid_t pid, FILE *err) {
  int st = 0;
  ck_assert_msg(waitpid(pid, &st, WNOHANG) == 0, "luact mcp serve exited (status %d)", st);
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  fclose(err);
}

static const char *const features[] = {
    "\"logging\":{}", "\"completions\":{}", "\"resources\":{\"subscribe\":true",
    "\"about\":[{\"uri\":\"info://about\",\"mimeType\":\"text/plain\",\"text\":\"luact test server\"}]",
    "\"dot\":\"iVBORw0KGgoA\"",
    "\"note\":[{\"uri\":\"notes://monday\",\"mimeType\":\"text/plain\",\"text\":\"gym\"}]",
    "\"no_note\":{\"code\":-32603,\"message\":\"MCP error -32603: reading notes failed: no note for sunday\"}",
    "\"unknown\":{\"code\":-32002",
    "\"broken\":{\"code\":-32603,\"message\":\"MCP error -32603: reading broken failed: disk on fire\"}",
    "\"bad\":{\"code\":-32603,\"message\":\"MCP error -32603: resource bad returned a blob that is not base64\"}",
    "\"uriTemplate\":\"notes://{day}\"",
    "\"arguments\":[{\"name\":\"day\",\"description\":\"Which day\",\"required\":true},{\"name\":\"mood\"}]",
    "{\"name\":\"oops\",\"description\":\"A prompt that fails.\",\"arguments\":[]}",
    "\"plan\":[{\"role\":\"assistant\",\"content\":{\"type\":\"text\",\"text\":\"I plan days.\"}},"
    "{\"role\":\"user\",\"content\":{\"type\":\"text\",\"text\":\"Plan tuesday feeling bold\"}},"
    "{\"role\":\"user\",\"content\":{\"type\":\"resource\",\"resource\":{\"uri\":\"notes://tuesday\","
    "\"mimeType\":\"text/plain\",\"text\":\"chess\"}}}]",
    "\"plan_missing\":{\"code\":-32602,\"message\":\"MCP error -32602: missing required argument: day\"}",
    "\"oops\":{\"code\":-32603", "prompt exploded",
    "\"complete_prompt\":{\"values\":[\"tuesday\"],\"total\":1,\"hasMore\":false}",
    "\"complete_template\":{\"values\":[\"monday\"],\"total\":1,\"hasMore\":false}",
    "\"complete_none\":{\"values\":[],\"total\":0,\"hasMore\":false}",
    "\"complete_bad\":{\"code\":-32603,\"message\":\"MCP error -32603: completing mood returned a non-string\"}",
    "\"picture\":[{\"type\":\"text\",\"text\":\"a red dot\"},{\"type\":\"image\",\"data\":\"iVBOR",
    "\"mimeType\":\"image/png\"},{\"name\":\"monday\",\"uri\":\"notes://monday\",\"type\":\"resource_link\"}]",
    "\"chatty_all\":\"debug=true,info=true,warning=true,error=true\"",
    "\"chatty_warning\":\"debug=false,info=false,warning=true,error=true\"",
    /* 4 messages, then only warning and error */
    "\"logs\":[{\"level\":\"debug\",\"logger\":\"chatty\",\"data\":{\"level\":\"debug\"}},"
    "{\"level\":\"info\",\"logger\":\"chatty\",\"data\":{\"level\":\"info\"}},"
    "{\"level\":\"warning\",\"logger\":\"chatty\",\"data\":{\"level\":\"warning\"}},"
    "{\"level\":\"error\",\"logger\":\"chatty\",\"data\":{\"level\":\"error\"}},"
    "{\"level\":\"warning\",\"logger\":\"chatty\",\"data\":{\"level\":\"warning\"}},"
    "{\"level\":\"error\",\"logger\":\"chatty\",\"data\":{\"level\":\"error\"}}]",
    "\"bad_level\":{\"code\":-32602",
    "\"sampled\":[{\"messages\":[{\"role\":\"user\",\"content\":{\"type\":\"text\",\"text\":\"hello?\"}}],"
    "\"modelPreferences\":{\"hints\":[{\"name\":\"claude\"}]},\"systemPrompt\":\"Be brief.\",\"maxTokens\":50}]",
    "\"ask_model\":\"model test-model said hi there (endTurn)\"",
    "\"told\":\"told 1\"", "\"updated_once\":[\"notes://monday\"]",
    "\"told_after_unsubscribe\":\"told 0\"", "\"subscribe_unknown\":{\"code\":-32002",
    "\"ask_model_plain\":\"sample failed: the MCP client did not declare the sampling capability "
    "(no_sampling)\"",
};

START_TEST(features_sdk_stdio) {
  ck_assert_msg(node_out("node sdk_features.mjs " LC_BINARY_DIR "/luact agents_features") == 0,
                "%s", out);
  want_all(features, sizeof features / sizeof features[0]);
  ck_assert_msg(strstr(out, "\"session\":null"), "%s", out);
  /* over stdio there is no stream to close */
  ck_assert_msg(strstr(out, "\"patient\":\"closed=false\",\"patient_progress\":[\"halfway\"]"), "%s", out);
}
END_TEST

START_TEST(features_sdk_http) {
  int port;
  FILE *err;
  pid_t pid = serve_http("agents_features", &port, &err);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "node sdk_features.mjs --http http://127.0.0.1:%d/mcp " TOKEN, port);
  int rc = node_out(cmd);
  serve_stop(pid, err);
  ck_assert_msg(rc == 0, "%s", out);
  want_all(features, sizeof features / sizeof features[0]);
  /* a session from initialize; the SDK's DELETE ended it */
  /* a session from initialize; a closed call stream resumed by the SDK
   * (its progress and answer); the SDK's DELETE ended the session */
  const char *want[] = {"\"session\":true", "\"terminated\":true",
                        "\"patient\":\"closed=true\",\"patient_progress\":[\"halfway\"]"};
  want_all(want, 3);
}
END_TEST

START_TEST(hostile_stdio) {
  ck_assert_msg(node_out("node raw_server.mjs " LC_BINARY_DIR "/luact agents_features") == 0,
                "%s", out);
  const char *want[] = {
      "\"errors\":{\"read_no_params\":-32602,\"read_params_string\":-32602,"
      "\"read_uri_number\":-32602,\"read_unknown\":-32002,\"read_huge_uri\":-32002,"
      "\"read_template_slash\":-32002,\"subscribe_uri_table\":-32602,"
      "\"subscribe_unknown\":-32002,\"unsubscribe_never\":\"ok\",\"prompt_no_name\":-32602,"
      "\"prompt_name_number\":-32602,\"prompt_unknown\":-32602,\"prompt_args_string\":-32602,"
      "\"prompt_arg_number\":-32602,\"prompt_missing_arg\":-32602,\"complete_no_ref\":-32602,"
      "\"complete_bad_ref\":-32602,\"complete_value_number\":-32602,"
      "\"complete_unknown_prompt\":-32602,\"complete_unknown_template\":-32602,"
      "\"level_number\":-32602,\"level_unknown\":-32602,\"level_none\":-32602,"
      "\"list_params_null\":\"ok\"}",
      "\"huge_uri_error_small\":true", "\"huge_arg_served\":true", "\"many_args\":\"ok\"",
      "\"complete_huge\":\"{\\\"completion\\\":{\\\"hasMore\\\":false,\\\"total\\\":0,\\\"values\\\":[]}}\"",
      "\"subscribe_1001st\":-32602", "\"method_number\":-32600",
      "\"sampling\":[\"model m said real (nil)\","
      "\"sample failed: the MCP client answered the sampling request with a malformed result (mcp_error)\","
      "\"sample failed: the MCP client answered the sampling request with a malformed result (mcp_error)\","
      "\"sample failed: the MCP client answered the sampling request with a malformed result (mcp_error)\","
      "\"sample failed: the MCP client answered the sampling request with a malformed result (mcp_error)\","
      "\"sample failed: the MCP client refused the sampling request: no model here (mcp_error)\"]",
      /* 2026-07-28: an input_required round; content as a list of blocks */
      "\"mrtr_sampling\":[\"input_required\",\"sampling/createMessage\",\"Be brief.\","
      "\"model mm said mrtr answer (nil)\"]",
      "\"still_serving\":\"ok\"",
      /* a folder without tools lists none as a list, not an object */
      "\"empty_tools\":\"{\\\"tools\\\":[]}\"",
      /* both servers ended cleanly with their stdin (a sanitizer report
       * would make the status non-zero) */
      "\"exit\":0", "\"exit2\":0",
  };
  want_all(want, sizeof want / sizeof want[0]);
}
END_TEST

START_TEST(hostile_http) {
  int port;
  FILE *err;
  pid_t pid = serve_http("agents_features", &port, &err);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "node raw_server.mjs --http http://127.0.0.1:%d/mcp " TOKEN, port);
  int rc = node_out(cmd);
  serve_stop(pid, err);
  ck_assert_msg(rc == 0, "%s", out);
  const char *want[] = {
      "\"sid_hex32\":true", "\"ping_in_session\":200", "\"ping_unknown_session\":404",
      "\"ping_long_session\":404", "\"ping_stateless\":200", "\"get_no_session\":405",
      "\"get_unknown\":404", "\"delete_no_session\":405", "\"delete_unknown\":404",
      "\"get_status\":200", "\"get_type\":\"text/event-stream\"", "\"first_get_ended\":true",
      "\"delete\":200", "\"second_get_ended\":true", "\"ping_deleted\":404",
      "\"cancel_b\":\"ended\"", "\"cancel_a\":\"ended\"",
      "\"primed\":true", "\"other_session_resume\":true", "\"forged_resume\":true",
      "\"long_resume\":true", "\"resumed\":true", "\"resume_after_answer\":true", "\"get_replayed\":true", "\"get_forged_id\":true", "\"set_level_stateless\":-32600", "\"evicted\":404", "\"still_serving\":200",
  };
  want_all(want, sizeof want / sizeof want[0]);
}
END_TEST

/* luact's own client, in a 2025-11-25 session over HTTP. */
START_TEST(luact_client_session) {
  int port;
  FILE *err;
  pid_t pid = serve_http("agents_features", &port, &err);
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "%s/luact run luact_session_client.lua http://127.0.0.1:%d/mcp",
           LC_BINARY_DIR, port);
  int rc = node_out(cmd);
  serve_stop(pid, err);
  ck_assert_msg(rc == 0, "%s", out);
  const char *want[] = {
      "version\t2025-11-25\n", "a red dot\\n[image image/png, 96 bytes base64]\\n[resource link notes://monday]",
      "[{\"mimeType\":\"text/plain\",\"text\":\"gym\",\"uri\":\"notes://monday\"}]",
      "{\"content\":[{\"text\":\"closed=true\",\"type\":\"text\"}]}",
      "debug=true,info=true,warning=true,error=true", "closed\n",
  };
  want_all(want, sizeof want / sizeof want[0]);
}
END_TEST

/* examples/mcp_serve/notes.lua served over stdio to luact's own client
 * (tests/mcp/example_notes_client.lua). */
#define CANARY "sk-canary-9d8e7f6a5b4c3d2e1f"

static const char leaky_calls[] =
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
    "\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}\n"
    "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n"
    "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"leak\","
    "\"arguments\":{}}}\n"
    "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"chatty\","
    "\"arguments\":{},\"_meta\":{\"progressToken\":7}}}\n"
    "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"boom\","
    "\"arguments\":{}}}\n";

/* A client that writes its requests and closes its end at once (printf
 * ... | luact mcp serve DIR) gets every answer: a call still running at
 * EOF (a tool sleeping a second) is answered before the server exits,
 * and one waiting for the client (an elicitation) is told it never will.
 * Before, EOF killed every running call and its answer never came. */
static const char slow_calls[] =
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
    "\"2025-06-18\",\"capabilities\":{\"elicitation\":{}},\"clientInfo\":{\"name\":\"t\","
    "\"version\":\"1\"}}}\n"
    "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n"
    "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"asks\","
    "\"arguments\":{}}}\n"
    "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"slow\","
    "\"arguments\":{}}}\n"
    "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"slow\","
    "\"arguments\":{}}}\n";

/* `luact mcp serve tests/mcp/DIR` on pipes: its pid; its stdin's writing
 * end in *to, its stdout (and stderr too, with err) in *from. */
static pid_t serve_stdio(const char *dir, int err, int *to, FILE **from) {
  int in[2], outp[2];
  ck_assert_int_eq(pipe(in), 0);
  ck_assert_int_eq(pipe(outp), 0);
  pid_t pid = fork();
  if (pid == 0) {
    char d[600];
    snprintf(d, sizeof d, "%s/tests/mcp/%s", lc_test_source_dir(), dir);
    dup2(in[0], 0);
    dup2(outp[1], 1);
    if (err) dup2(outp[1], 2);
    close(in[1]);
    close(outp[0]);
    execl(LC_BINARY_DIR "/luact", "luact", "mcp", "serve", d, (char *)NULL);
    _exit(127);
  }
  close(in[0]);
  close(outp[1]);
  *to = in[1];
  *from = fdopen(outp[0], "r");
  ck_assert_ptr_nonnull(*from);
  return pid;
}

/* Lines of f into out (from its start) until out holds both marks (NULL:
 * until EOF). */
static void read_out(FILE *f, const char *mark1, const char *mark2) {
  size_t n = 0;
  out[0] = '\0';
  char line[4096];
  while (!(mark1 && strstr(out, mark1) && strstr(out, mark2)) && fgets(line, sizeof line, f)) {
    size_t k = strlen(line);
    ck_assert_uint_lt(n + k, sizeof out);
    memcpy(out + n, line, k + 1);
    n += k;
  }
}

START_TEST(answers_after_stdin_closes) {
  int to;
  FILE *f;
  pid_t pid = serve_stdio("agents_slow", 0, &to, &f);
  ck_assert_int_eq(write(to, slow_calls, sizeof slow_calls - 1), (ssize_t)(sizeof slow_calls - 1));
  close(to); /* EOF right after the requests */
  read_out(f, NULL, NULL);
  fclose(f);
  int st;
  waitpid(pid, &st, 0);
  ck_assert_int_eq(lc_test_exit_code(st), 0);
  ck_assert_msg(strstr(out, "\"id\":1,"), "%s", out);
  ck_assert_msg(strstr(out, "\"id\":2,") && strstr(out, "\"id\":3,"), "answers lost at EOF:\n%s", out);
  const char *a = strstr(out, "slept");
  ck_assert_msg(a && strstr(a + 1, "slept"), "%s", out); /* both calls' results */
  /* a call waiting for the client's answer is told it will not come */
  ck_assert_msg(strstr(out, "\"id\":4,") && strstr(out, "asked: nil") &&
                    strstr(out, "the client closed its input"),
                "%s", out);
}
END_TEST

/* A key a served tool returns or raises (registered from the environment
 * like every *_API_KEY) reaches no MCP client, over stdio or HTTP; before,
 * both answers carried it verbatim. */
START_TEST(secret_canary_never_served) {
  setenv("LC_CANARY_API_KEY", CANARY, 1);
  int to;
  FILE *f;
  pid_t pid = serve_stdio("agents_leaky", 1, &to, &f);
  ck_assert_int_eq(write(to, leaky_calls, sizeof leaky_calls - 1),
                   (ssize_t)(sizeof leaky_calls - 1));
  /* Every answer read before stdin closes (EOF ends the server). */
  read_out(f, "\"id\":3,", "\"id\":4,");
  close(to);
  char line[4096];
  while (fgets(line, sizeof line, f)) {
  }
  fclose(f);
  int st;
  waitpid(pid, &st, 0);
  ck_assert_int_eq(lc_test_exit_code(st), 0);
  ck_assert_msg(strstr(out, "key=[REDACTED]") && strstr(out, "bad key [REDACTED]") &&
                    strstr(out, "step [REDACTED]"),
                "%s", out);
  ck_assert_msg(!strstr(out, "canary-9d8e7f"), "the key was served over stdio:\n%s", out);
  /* HTTP: the reply and the streamed answer. */
  int port;
  FILE *err;
  pid = serve_http("agents_leaky", &port, &err);
  char cmd[1024];
  /* leak and boom answer as one reply; chatty's progress makes its
   * answer a stream (event by event) */
  const char *tools[] = {"leak", "boom", "chatty"};
  for (int i = 0; i < 3; i++) {
    snprintf(cmd, sizeof cmd,
             "curl -s -H 'Authorization: Bearer " TOKEN "' -H 'Content-Type: application/json' "
             "-H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: "
             "2025-06-18' -d '{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":"
             "{\"name\":\"%s\",\"arguments\":{},\"_meta\":{\"progressToken\":7}}}' "
             "http://127.0.0.1:%d/mcp",
             tools[i], port);
    ck_assert_int_eq(node_out(cmd), 0);
    ck_assert_msg(strstr(out, "[REDACTED]"), "%s", out);
    ck_assert_msg(!strstr(out, "canary-9d8e7f"), "the key was served over HTTP:\n%s", out);
    if (i == 2) ck_assert_msg(strstr(out, "data: "), "not streamed: %s", out);
  }
  serve_stop(pid, err);
}
END_TEST

START_TEST(example_notes) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "%s/luact run example_notes_client.lua %s/luact %s/examples/mcp_serve",
           LC_BINARY_DIR, LC_BINARY_DIR, lc_test_source_dir());
  ck_assert_msg(node_out(cmd) == 0, "%s", out);
  const char *want[] = {
      "version=2026-07-28\n", "index=lua,welcome\n",
      "add={\"content\":[{\"text\":\"saved todo\",\"type\":\"text\"},{\"mimeType\":\"text/plain\","
      "\"name\":\"todo\",\"type\":\"resource_link\",\"uri\":\"notes://todo\"}]}",
      "note=Write the report.\n",
      "prompt=[{\"content\":{\"resource\":{\"mimeType\":\"text/plain\",\"text\":\"Write the report.\","
      "\"uri\":\"notes://todo\"},\"type\":\"resource\"},\"role\":\"user\"},{\"content\":{\"text\":"
      "\"Summarise the note above, brief.\",\"type\":\"text\"},\"role\":\"user\"}]",
      "title={\"content\":[{\"text\":\"no title (no_sampling: the MCP client did not declare the "
      "sampling capability)\",\"type\":\"text\"}]}",
      "complete=[\"welcome\"]", "missing=", "reading note failed: no note nope",
  };
  want_all(want, sizeof want / sizeof want[0]);
}
END_TEST

Suite *mcp_serve_suite(void) {
  Suite *s = suite_create("mcp_serve");
  TCase *tc = tcase_create("features");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, features_sdk_stdio);
  tcase_add_test(tc, features_sdk_http);
  tcase_add_test(tc, example_notes);
  tcase_add_test(tc, secret_canary_never_served);
  tcase_add_test(tc, answers_after_stdin_closes);
  tcase_add_test(tc, luact_client_session);
  suite_add_tcase(s, tc);
  tc = tcase_create("hostile");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, hostile_stdio);
  tcase_add_test(tc, hostile_http);
  suite_add_tcase(s, tc);
  return s;
}
