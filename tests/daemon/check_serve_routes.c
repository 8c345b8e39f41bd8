/* check_serve_routes.c: the Agent Protocol command input.inject
 * (runtime/daemon/inbox.c) and the LangGraph SDK routes the coverage
 * table in docs/serve.md found missing: updateState / patchState
 * (tstate.c), getState at a checkpoint object, runs.createBatch,
 * assistants.create/update/delete, the metadata and values filters,
 * store namespaces by suffix; then the same through the LangGraph JS SDK
 * (tests/daemon/js/routes_test.mjs). */
#include <check.h>
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util_common.h"
#include "util_pg.h"
#include "util_serve.h"

static const char echo_agent[] =
    "return function(input, ctx) luact.now()\n"
    "  return {echo = input, seen = ctx.values and ctx.values.note} end\n";

/* Asks twice: each answer may come from an injected message. */
static const char twice_agent[] =
    "return function(input, ctx)\n"
    "  local a = luact.ask('first?')\n"
    "  local b = luact.ask('second?')\n"
    "  return {a = a, b = b}\n"
    "end\n";

/* Busy for a while in journaled steps, then asks once. */
static const char slowask_agent[] =
    "return function(input, ctx)\n"
    "  for i = 1, 10 do luact.sleep(0.05) end\n"
    "  return {a = luact.ask('q?')}\n"
    "end\n";

/* Its previous output's echo, and the new one. */
static const char prev_agent[] =
    "return function(input, ctx)\n"
    "  return {echo = input, prev = ctx.values and ctx.values.echo}\n"
    "end\n";

/* Never asks. */
static const char quiet_agent[] =
    "return function(input, ctx) luact.sleep(0.05) return {quiet = true} end\n";

/* TCase "pg": the cases again with the store on a real PostgreSQL. */
static struct lc_pg routes_pg;
static int use_pg;
static void pg_up(void) { ck_assert_int_eq(lc_pg_start(&routes_pg), 0); }
static void pg_down(void) { lc_pg_stop(&routes_pg); }
static void on_pg(void) {
  ck_assert_msg(routes_pg.url[0], "no PostgreSQL server (scripts/pg-tmp start failed)");
  use_pg = 1;
}

static void start(struct lc_sd *d) {
  lc_sd_setup(d);
  if (use_pg) ck_assert_int_eq(lc_pg_newdb(&routes_pg, d->store, sizeof d->store), 0);
  lc_sd_agent(d, "echo", echo_agent);
  lc_sd_agent(d, "twice", twice_agent);
  lc_sd_agent(d, "slowask", slowask_agent);
  lc_sd_agent(d, "quiet", quiet_agent);
  lc_sd_agent(d, "prev", prev_agent);
  snprintf(d->env[0], sizeof d->env[0], "LUACT_CRON_POLL_MS=20"); /* the inbox's look */
  lc_sd_start(d);
}

static const char *js(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItem(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A command on thread T; its envelope's type must be want. */
static cJSON *command(struct lc_sd *d, const char *t, const char *body, const char *want) {
  char p[200];
  snprintf(p, sizeof p, "/threads/%s/commands", t);
  cJSON *j = lc_sd_expect(d, "POST", p, body, 200);
  ck_assert_ptr_nonnull(j);
  ck_assert_msg(!want || (js(j, "type") && !strcmp(js(j, "type"), want)), "%s: %s", body,
                cJSON_PrintUnformatted(j));
  return j;
}

static const char *err_code(const cJSON *j) { return js(j, "error"); }

/* A request whose answer matters only by its status. */
static void expect_code(struct lc_sd *d, const char *m, const char *p, const char *body, int code) {
  cJSON_Delete(lc_sd_expect(d, m, p, body, code));
}

/* A command on thread T that must fail with the error code want. */
static void command_fails(struct lc_sd *d, const char *t, const char *body, const char *want) {
  cJSON *j = command(d, t, body, "error");
  ck_assert_str_eq(err_code(j), want);
  cJSON_Delete(j);
}

/* input.inject of one message (JSON) into run 0 of thread T, as command
 * id; the envelope's type must be want (NULL: either). */
static cJSON *inject(struct lc_sd *d, const char *t, int id, const char *ns, const char *message,
                     const char *want) {
  char body[400];
  snprintf(body, sizeof body,
           "{\"id\":%d,\"method\":\"input.inject\",\"params\":{%s\"message\":%s}}", id, ns,
           message);
  return command(d, t, body, want);
}

/* run.start of assistant on thread T with input (JSON), as command id;
 * the run's id into rid. */
static void run_start(struct lc_sd *d, const char *t, int id, const char *assistant,
                      const char *input, char rid[80]) {
  char body[300];
  snprintf(body, sizeof body,
           "{\"id\":%d,\"method\":\"run.start\",\"params\":{\"assistant_id\":\"%s\","
           "\"input\":%s}}",
           id, assistant, input);
  cJSON *j = command(d, t, body, "success");
  snprintf(rid, 80, "%s", js(cJSON_GetObjectItem(j, "result"), "run_id"));
  cJSON_Delete(j);
}

/* Joins run rid of thread T until it ends: a join returns at a question,
 * which the inbox answers, so join again. Its values. */
static cJSON *join_to_end(struct lc_sd *d, const char *t, const char *rid) {
  char p[300];
  snprintf(p, sizeof p, "/threads/%s/runs/%s/join", t, rid);
  /* each join waits for the run's next stop itself; the pause only keeps
   * a join from spinning while the inbox (looked at every 20 ms) answers */
  double until = lc_test_mono_s() + 60;
  for (;;) {
    cJSON *v = lc_sd_expect(d, "GET", p, NULL, 200);
    if (!cJSON_GetObjectItem(v, "__interrupt__")) return v;
    cJSON_Delete(v);
    ck_assert_msg(lc_test_mono_s() < until, "run %s did not end", rid);
    lc_test_nap_ms(10);
  }
}

/* The length of the array a request answers with. */
static int array_len(struct lc_sd *d, const char *m, const char *p, const char *body) {
  cJSON *j = lc_sd_expect(d, m, p, body, 200);
  int n = cJSON_GetArraySize(j);
  cJSON_Delete(j);
  return n;
}

/* Another tenant's request on a thread of ours: 404. */
static void other_tenant_404(struct lc_sd *d, const char *m, const char *p, const char *body) {
  struct lc_sresp r = lc_sd_req(d, m, p, body, LC_SD_TOKEN_B, NULL);
  ck_assert_int_eq(r.code, 404);
  lc_sresp_free(&r);
}

/* input.inject: two messages for a run, given to its two questions in
 * order, with nobody answering; no run, another namespace, a bad
 * message: errors; a message for a run that ends without asking is not
 * given to the thread's next run. */
START_TEST(inject_answers_next_questions) {
  struct lc_sd d;
  start(&d);
  const char *T = "inject-1";
  const char *x = "{\"role\":\"user\",\"content\":\"x\"}";
  /* no such thread: HTTP 404, as for every command but run.start */
  expect_code(&d, "POST", "/threads/inject-1/commands",
              "{\"id\":1,\"method\":\"input.inject\",\"params\":{\"namespace\":[],"
              "\"message\":{\"role\":\"user\",\"content\":\"x\"}}}",
              404);
  expect_code(&d, "POST", "/threads", "{\"thread_id\": \"inject-1\"}", 200);
  cJSON *j = inject(&d, T, 2, "\"namespace\":[],", x, "error");
  ck_assert_str_eq(err_code(j), "no_such_run");
  cJSON_Delete(j);
  char rid[80];
  run_start(&d, T, 3, "twice", "null", rid);
  const struct {
    const char *ns, *message, *code;
  } bad[] = {
      {"\"namespace\":[\"sub\"],", "{\"role\":\"user\",\"content\":\"x\"}", "no_such_namespace"},
      {"\"namespace\":[],", "{\"role\":\"tool\",\"content\":\"x\"}", "invalid_argument"},
      {"\"namespace\":[],", "{\"role\":\"user\"}", "invalid_argument"},
  };
  for (int i = 0; i < 3; i++) {
    j = inject(&d, T, 4 + i, bad[i].ns, bad[i].message, "error");
    ck_assert_str_eq(err_code(j), bad[i].code);
    cJSON_Delete(j);
  }
  /* The run may be pending, running or already asking: the same end. */
  j = inject(&d, T, 7, "\"namespace\":[],", "{\"role\":\"user\",\"content\":\"Ann\"}", "success");
  ck_assert_str_eq(js(cJSON_GetObjectItem(j, "result"), "run_id"), rid);
  cJSON_Delete(j);
  cJSON_Delete(inject(&d, T, 8, "", "{\"role\":\"system\",\"content\":\"Bob\"}", "success"));
  /* Each question it asks is answered from the inbox. */
  cJSON *v = join_to_end(&d, T, rid);
  ck_assert_str_eq(js(v, "a"), "Ann");
  ck_assert_str_eq(js(v, "b"), "Bob");
  cJSON_Delete(v);
  /* A message for a run that never asks is dropped with it. */
  run_start(&d, T, 9, "quiet", "null", rid);
  /* success, or no_such_run when it already ended */
  cJSON_Delete(
      inject(&d, T, 10, "\"namespace\":[],", "{\"role\":\"user\",\"content\":\"stale\"}", NULL));
  char p[300];
  snprintf(p, sizeof p, "/threads/%s/runs/%s/join", T, rid);
  expect_code(&d, "GET", p, NULL, 200);
  run_start(&d, T, 11, "twice", "null", rid);
  snprintf(p, sizeof p, "/threads/%s/runs/%s/join", T, rid);
  v = lc_sd_expect(&d, "GET", p, NULL, 200);
  ck_assert_ptr_nonnull(cJSON_GetObjectItem(v, "__interrupt__")); /* it waits: no stale answer */
  cJSON_Delete(v);
  lc_sd_stop_clean(&d);
  lc_sd_rm(&d);
}
END_TEST

/* run.start on a thread whose run is active is the protocol's injection:
 * the input answers the run's next question (was: conflict). */
START_TEST(run_start_on_busy_thread_injects) {
  struct lc_sd d;
  start(&d);
  const char *T = "inject-2";
  char rid[80], rid2[80];
  run_start(&d, T, 1, "slowask", "null", rid);
  run_start(&d, T, 2, "slowask", "\"three\"", rid2);
  ck_assert_str_eq(rid2, rid); /* the same run */
  cJSON *v = join_to_end(&d, T, rid);
  ck_assert_str_eq(js(v, "a"), "three");
  cJSON_Delete(v);
  lc_sd_stop_clean(&d);
  lc_sd_rm(&d);
}
END_TEST

START_TEST(thread_state_writes) {
  struct lc_sd d;
  start(&d);
  expect_code(&d, "POST", "/threads", "{\"thread_id\": \"st-1\", \"metadata\": {\"a\": 1}}", 200);
  /* updateState: merged into the values, which the next run reads */
  cJSON *j = lc_sd_expect(&d, "POST", "/threads/st-1/state",
                          "{\"values\": {\"note\": \"hi\"}, \"as_node\": \"run\"}", 200);
  ck_assert_str_eq(js(cJSON_GetObjectItem(j, "checkpoint"), "thread_id"), "st-1");
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "GET", "/threads/st-1/state", NULL, 200);
  ck_assert_str_eq(js(cJSON_GetObjectItem(j, "values"), "note"), "hi");
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/threads/st-1/runs/wait",
                   "{\"assistant_id\": \"echo\", \"input\": 1}", 200);
  ck_assert_str_eq(js(j, "seen"), "hi");
  cJSON_Delete(j);
  expect_code(&d, "POST", "/threads/st-1/state", "{\"values\": 3}", 422);
  /* patchState: the current state's metadata (the thread's), merged */
  expect_code(&d, "PATCH", "/threads/st-1/state", "{\"metadata\": {\"b\": 2}}", 204);
  j = lc_sd_expect(&d, "GET", "/threads/st-1/state", NULL, 200);
  cJSON *md = cJSON_GetObjectItem(j, "metadata");
  ck_assert_int_eq(cJSON_GetObjectItem(md, "a")->valueint, 1);
  ck_assert_int_eq(cJSON_GetObjectItem(md, "b")->valueint, 2);
  cJSON_Delete(j);
  expect_code(&d, "PATCH", "/threads/st-1/state", "{}", 422);
  /* getState at a checkpoint object (the SDK's /state/checkpoint): the
   * state after the first run, the second one's being the current */
  expect_code(&d, "POST", "/threads/st-1/runs/wait", "{\"assistant_id\": \"echo\", \"input\": 2}",
              200);
  j = lc_sd_expect(&d, "GET", "/threads/st-1/history", NULL, 200);
  const char *cp = NULL;
  const cJSON *h;
  cJSON_ArrayForEach(h, j) {
    const char *id = js(cJSON_GetObjectItem(h, "checkpoint"), "checkpoint_id");
    if (id) cp = id;
  }
  ck_assert_ptr_nonnull(cp);
  char body[300];
  snprintf(body, sizeof body, "{\"checkpoint\": {\"checkpoint_id\": \"%s\"}}", cp);
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/threads/st-1/state/checkpoint", body, 200);
  ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "values"), "echo")->valueint, 1);
  cJSON_Delete(j);
  expect_code(&d, "POST", "/threads/st-1/state/checkpoint",
              "{\"checkpoint\": {\"checkpoint_id\": \"nope\"}}", 404);
  /* history pages with before (a checkpoint's config) */
  expect_code(&d, "POST", "/threads/st-1/runs/wait", "{\"assistant_id\": \"echo\", \"input\": 3}",
              200);
  j = lc_sd_expect(&d, "POST", "/threads/st-1/history", "{\"limit\": 10}", 200);
  ck_assert_int_eq(cJSON_GetArraySize(j), 3); /* now (3), after 2, after 1 */
  char mid[80];
  snprintf(mid, sizeof mid, "%s",
           js(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 1), "checkpoint"), "checkpoint_id"));
  cJSON_Delete(j);
  snprintf(body, sizeof body, "{\"before\": {\"configurable\": {\"checkpoint_id\": \"%s\"}}}",
           mid);
  j = lc_sd_expect(&d, "POST", "/threads/st-1/history", body, 200);
  ck_assert_int_eq(cJSON_GetArraySize(j), 1);
  ck_assert_int_eq(
      cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "values"), "echo")->valueint,
      1);
  cJSON_Delete(j);
  ck_assert_int_eq(array_len(&d, "POST", "/threads/st-1/history", "{\"limit\": 1}"), 1);
  /* the current state's is the thread's */
  ck_assert_int_eq(array_len(&d, "POST", "/threads/st-1/history", "{\"metadata\": {\"b\": 2}}"), 1);
  /* threads.create with supersteps: their values, in order */
  expect_code(&d, "POST", "/threads",
              "{\"thread_id\": \"ss-1\", \"supersteps\": [{\"updates\": [{\"values\": "
              "{\"a\": 1, \"b\": 1}}]}, {\"updates\": [{\"values\": {\"b\": 2}, "
              "\"as_node\": \"x\"}]}]}",
              200);
  j = lc_sd_expect(&d, "GET", "/threads/ss-1/state", NULL, 200);
  ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "values"), "a")->valueint, 1);
  ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "values"), "b")->valueint, 2);
  cJSON_Delete(j);
  expect_code(&d, "POST", "/threads",
              "{\"supersteps\": [{\"updates\": [{\"command\": {\"goto\": \"x\"}}]}]}", 422);
  /* not while a run of the thread is active */
  expect_code(&d, "POST", "/threads/st-1/runs", "{\"assistant_id\": \"twice\"}", 200);
  expect_code(&d, "POST", "/threads/st-1/state", "{\"values\": {\"x\": 1}}", 409);
  /* another tenant: 404 */
  other_tenant_404(&d, "PATCH", "/threads/st-1/state", "{\"metadata\": {\"c\": 1}}");
  lc_sd_stop_clean(&d);
  lc_sd_rm(&d);
}
END_TEST

START_TEST(batch_assistants_filters_namespaces) {
  struct lc_sd d;
  start(&d);
  /* runs/batch: each a background run */
  cJSON *j = lc_sd_expect(&d, "POST", "/runs/batch",
                          "[{\"assistant_id\": \"echo\", \"input\": 1}, "
                          "{\"assistant_id\": \"echo\", \"input\": 2}]",
                          200);
  ck_assert_int_eq(cJSON_GetArraySize(j), 2);
  char p[200];
  snprintf(p, sizeof p, "/runs/%s/wait", js(cJSON_GetArrayItem(j, 1), "run_id"));
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "GET", p, NULL, 200);
  ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "values"), "echo")->valueint, 2);
  cJSON_Delete(j);
  expect_code(&d, "POST", "/runs/batch", "{\"assistant_id\": \"echo\"}", 422);
  expect_code(&d, "POST", "/runs/batch", "[{\"assistant_id\": \"nope\"}]", 404);
  struct lc_sresp r = lc_sd_req(&d, "POST", "/runs/batch", "[{\"assistant_id\": \"echo\"}]",
                                LC_SD_TOKEN, "Idempotency-Key: k1");
  ck_assert_int_eq(r.code, 422);
  lc_sresp_free(&r);
  /* assistants.create names an agent; update/delete are refused */
  j = lc_sd_expect(&d, "POST", "/assistants", "{\"graph_id\": \"echo\", \"if_exists\": "
                                              "\"do_nothing\"}", 200);
  ck_assert_str_eq(js(j, "assistant_id"), "echo");
  cJSON_Delete(j);
  expect_code(&d, "POST", "/assistants", "{\"graph_id\": \"nope\"}", 404);
  expect_code(&d, "POST", "/assistants", "{\"graph_id\": \"echo\", \"config\": {\"k\": 1}}", 422);
  expect_code(&d, "PATCH", "/assistants/echo", "{}", 405);
  expect_code(&d, "DELETE", "/assistants/echo", NULL, 405);
  /* a metadata filter matches no agent (theirs is empty); none: all */
  ck_assert_int_eq(array_len(&d, "POST", "/assistants/search", "{\"metadata\": {\"k\": 1}}"), 0);
  j = lc_sd_expect(&d, "POST", "/assistants/count", "{\"metadata\": {\"k\": 1}}", 200);
  ck_assert_int_eq(j->valueint, 0);
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/assistants/count", "{\"metadata\": {}}", 200);
  ck_assert_int_eq(j->valueint, 5); /* every agent */
  cJSON_Delete(j);
  /* assistants.search: sort_by, sort_order; offset counts matches */
  j = lc_sd_expect(&d, "POST", "/assistants/search",
                   "{\"sort_by\": \"assistant_id\", \"sort_order\": \"asc\"}", 200);
  const char *want[] = {"echo", "prev", "quiet", "slowask", "twice"};
  ck_assert_int_eq(cJSON_GetArraySize(j), 5);
  for (int i = 0; i < 5; i++)
    ck_assert_str_eq(js(cJSON_GetArrayItem(j, i), "assistant_id"), want[i]);
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/assistants/search",
                   "{\"sort_by\": \"name\", \"sort_order\": \"desc\", \"limit\": 2, "
                   "\"offset\": 1}", 200);
  ck_assert_int_eq(cJSON_GetArraySize(j), 2);
  ck_assert_str_eq(js(cJSON_GetArrayItem(j, 0), "assistant_id"), "slowask");
  ck_assert_str_eq(js(cJSON_GetArrayItem(j, 1), "assistant_id"), "quiet");
  cJSON_Delete(j);
  for (int off = 0; off < 2; off++) { /* one agent matches: offset 1 is past it */
    char b[100];
    snprintf(b, sizeof b, "{\"graph_id\": \"twice\", \"offset\": %d}", off);
    j = lc_sd_expect(&d, "POST", "/assistants/search", b, 200);
    ck_assert_int_eq(cJSON_GetArraySize(j), off ? 0 : 1);
    cJSON_Delete(j);
  }
  expect_code(&d, "POST", "/assistants/search", "{\"sort_by\": \"size\"}", 422);
  /* threads.count / search by values */
  expect_code(&d, "POST", "/threads", "{\"thread_id\": \"v-1\"}", 200);
  expect_code(&d, "POST", "/threads", "{\"thread_id\": \"v-2\"}", 200);
  expect_code(&d, "POST", "/threads/v-1/runs/wait", "{\"assistant_id\": \"echo\", \"input\": 7}",
              200);
  j = lc_sd_expect(&d, "POST", "/threads/count", "{\"values\": {\"echo\": 7}}", 200);
  ck_assert_int_eq(j->valueint, 1);
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/threads/search", "{\"values\": {\"echo\": 7}}", 200);
  ck_assert_int_eq(cJSON_GetArraySize(j), 1);
  ck_assert_str_eq(js(cJSON_GetArrayItem(j, 0), "thread_id"), "v-1");
  cJSON_Delete(j);
  /* threads.search's sort_by / sort_order */
  j = lc_sd_expect(&d, "POST", "/threads/search",
                   "{\"sort_by\": \"thread_id\", \"sort_order\": \"asc\"}", 200);
  ck_assert_int_eq(cJSON_GetArraySize(j), 2);
  ck_assert_str_eq(js(cJSON_GetArrayItem(j, 0), "thread_id"), "v-1");
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/threads/search", "{\"sort_by\": \"thread_id\"}", 200);
  ck_assert_str_eq(js(cJSON_GetArrayItem(j, 0), "thread_id"), "v-2"); /* desc by default */
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/threads/search",
                   "{\"sort_by\": \"updated_at\", \"sort_order\": \"desc\"}", 200);
  ck_assert_str_eq(js(cJSON_GetArrayItem(j, 0), "thread_id"), "v-1"); /* its run updated it */
  cJSON_Delete(j);
  expect_code(&d, "POST", "/threads/search", "{\"sort_by\": \"status\"}", 422);
  expect_code(&d, "POST", "/threads/search", "{\"sort_order\": \"up\"}", 422);
  /* store namespaces by suffix ("*" any label) */
  const char *puts[] = {"[\"users\", \"ann\", \"prefs\"]", "[\"users\", \"bob\", \"prefs\"]",
                        "[\"users\", \"bob\", \"notes\"]", "[\"docs\", \"prefs\"]"};
  for (int i = 0; i < 4; i++) {
    char b[200];
    snprintf(b, sizeof b, "{\"namespace\": %s, \"key\": \"k\", \"value\": {\"v\": %d}}", puts[i], i);
    expect_code(&d, "PUT", "/store/items", b, 204);
  }
  j = lc_sd_expect(&d, "POST", "/store/namespaces", "{\"suffix\": [\"prefs\"]}", 200);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "namespaces")), 3);
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/store/namespaces",
                   "{\"prefix\": [\"users\"], \"suffix\": [\"*\", \"prefs\"]}", 200);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "namespaces")), 2);
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/store/namespaces", "{\"suffix\": [\"bob\", \"notes\"]}", 200);
  cJSON *ns = cJSON_GetObjectItem(j, "namespaces");
  ck_assert_int_eq(cJSON_GetArraySize(ns), 1);
  ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetArrayItem(ns, 0), 0)->valuestring, "users");
  cJSON_Delete(j);
  expect_code(&d, "POST", "/store/namespaces", "{\"suffix\": \"prefs\"}", 422);
  /* a semantic query is refused, not ignored */
  expect_code(&d, "POST", "/store/items/search", "{\"query\": \"prefs of ann\"}", 422);
  j = lc_sd_expect(&d, "POST", "/store/items/search", "{\"namespace_prefix\": [\"docs\"]}", 200);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "items")), 1);
  cJSON_Delete(j);
  lc_sd_stop_clean(&d);
  lc_sd_rm(&d);
}
END_TEST

/* luact_api_page_steps_total from /metrics. */
static long page_steps(struct lc_sd *d) {
  struct lc_sresp r = lc_sd_req(d, "GET", "/metrics", NULL, LC_SD_TOKEN, NULL);
  ck_assert_int_eq(r.code, 200);
  const char *m = strstr(r.body, "\nluact_api_page_steps_total ");
  ck_assert_msg(m != NULL, "%s", r.body);
  long v = atol(m + strlen("\nluact_api_page_steps_total "));
  lc_sresp_free(&r);
  return v;
}

/* The list routes page by a count: each row is weighed once. They used to
 * measure the page (cJSON_GetArraySize, a walk of the list) for every row,
 * quadratic in a tenant's own rows; limits go up to 1e15. Counted, not
 * timed: the steps /metrics reports stay linear in the rows. */
START_TEST(list_paging_is_linear) {
  struct lc_sd d;
  start(&d);
  enum { N = 150 };
  for (int i = 0; i < N; i++) {
    char b[200];
    snprintf(b, sizeof b, "{\"namespace\": [\"n%d\"], \"key\": \"k\", \"value\": {\"v\": %d}}", i, i);
    cJSON_Delete(lc_sd_expect(&d, "PUT", "/store/items", b, 204));
    cJSON_Delete(lc_sd_expect(&d, "POST", "/threads", "{}", 200));
  }
  long before = page_steps(&d);
  cJSON *j = lc_sd_expect(&d, "POST", "/store/items/search", "{\"limit\": 1e15}", 200);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "items")), N);
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/store/namespaces", "{\"limit\": 1e15}", 200);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "namespaces")), N);
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/threads/search", "{\"limit\": 1e15, \"offset\": 10}", 200);
  ck_assert_int_eq(cJSON_GetArraySize(j), N - 10);
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/threads/count", "{}", 200);
  ck_assert_int_eq((int)j->valuedouble, N);
  cJSON_Delete(j);
  long steps = page_steps(&d) - before;
  /* one step per row of each of the four lists; the walks made it ~N^2/2
   * per list */
  ck_assert_msg(steps <= 4 * N, "%ld steps for 4 lists of %d rows", steps, N);
  /* the unfiltered item search pages in SQL: the same pages */
  j = lc_sd_expect(&d, "POST", "/store/items/search", "{\"limit\": 5, \"offset\": 3}", 200);
  cJSON *it = cJSON_GetObjectItem(j, "items");
  ck_assert_int_eq(cJSON_GetArraySize(it), 5);
  int v3 = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(it, 0), "value"), "v")->valueint;
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/store/items/search", "{\"limit\": 1, \"offset\": 3, \"filter\": {}}",
                   200);
  it = cJSON_GetObjectItem(j, "items");
  ck_assert_int_eq(cJSON_GetArraySize(it), 1); /* the filtered path agrees */
  ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(it, 0), "value"), "v")->valueint, v3);
  cJSON_Delete(j);
  const char *none[] = {"{\"limit\": -1}", "{\"limit\": -1e300}", "{\"offset\": 1e15}"};
  for (int i = 0; i < 3; i++) {
    j = lc_sd_expect(&d, "POST", "/store/items/search", none[i], 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "items")), 0);
    cJSON_Delete(j);
  }
  j = lc_sd_expect(&d, "POST", "/store/items/search", "{\"offset\": -5, \"limit\": 2}", 200);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "items")), 2);
  cJSON_Delete(j);
  /* the unfiltered thread search pages in SQL too (a page step per thread
   * returned), with the pages of the filtered path ({} matches all) */
  static const char *const tp[] = {"\"limit\": 5, \"offset\": 3", "\"limit\": 2, \"offset\": 149",
                                   "\"limit\": -1", "\"offset\": -5, \"limit\": 2",
                                   "\"limit\": 4, \"sort_by\": \"thread_id\", \"sort_order\": \"asc\""};
  for (size_t i = 0; i < sizeof tp / sizeof tp[0]; i++) {
    char b1[160], b2[200];
    snprintf(b1, sizeof b1, "{%s}", tp[i]);
    snprintf(b2, sizeof b2, "{\"metadata\": {}, %s}", tp[i]);
    before = page_steps(&d);
    cJSON *a = lc_sd_expect(&d, "POST", "/threads/search", b1, 200);
    steps = page_steps(&d) - before;
    cJSON *b = lc_sd_expect(&d, "POST", "/threads/search", b2, 200);
    ck_assert_int_eq(steps, cJSON_GetArraySize(a));
    ck_assert_int_eq(cJSON_GetArraySize(a), cJSON_GetArraySize(b));
    for (int k = 0; k < cJSON_GetArraySize(a); k++)
      ck_assert_str_eq(js(cJSON_GetArrayItem(a, k), "thread_id"), js(cJSON_GetArrayItem(b, k), "thread_id"));
    cJSON_Delete(a);
    cJSON_Delete(b);
  }
  lc_sd_stop_clean(&d);
  lc_sd_rm(&d);
}
END_TEST

/* The run lists page in the database: /runs/search and a thread's run
 * list read one page, not every run of the tenant (one page step per run
 * returned), and give the same pages as the path that reads them all (a
 * metadata filter, {} matching every run). */
static char *run_ids(struct lc_sd *d, const char *method, const char *path, const char *body) {
  cJSON *j = lc_sd_expect(d, method, path, body, 200);
  char *ids = calloc(1, 4096);
  ck_assert_ptr_nonnull(ids);
  const cJSON *r;
  cJSON_ArrayForEach(r, j) {
    strncat(ids, js(r, "run_id"), 4095 - strlen(ids));
    strncat(ids, ",", 4095 - strlen(ids));
  }
  cJSON_Delete(j);
  return ids;
}

START_TEST(run_lists_page_in_sql) {
  struct lc_sd d;
  start(&d);
  expect_code(&d, "POST", "/threads", "{\"thread_id\": \"pa\"}", 200);
  expect_code(&d, "POST", "/threads", "{\"thread_id\": \"pb\"}", 200);
  for (int i = 0; i < 12; i++) {
    char b[128];
    snprintf(b, sizeof b, "{\"assistant_id\": \"%s\", \"input\": %d, \"multitask_strategy\": \"enqueue\"}",
             i % 3 ? "echo" : "twice", i);
    const char *path = i < 6 ? "/threads/pa/runs/wait" : i < 10 ? "/threads/pb/runs/wait" : "/runs/wait";
    cJSON_Delete(lc_sd_expect(&d, "POST", path, b, 200));
  }
  static const char *const filters[] = {
      "", "\"thread_id\": \"pa\", ", "\"agent_id\": \"twice\", ", "\"status\": \"success\", ",
      "\"status\": \"pending\", ", "\"thread_id\": \"pb\", \"assistant_id\": \"echo\", "};
  static const int pages[][2] = {{5, 0}, {5, 5}, {5, 10}, {100, 0}, {1, 11}, {-1, 0}, {3, -4}};
  for (size_t f = 0; f < sizeof filters / sizeof filters[0]; f++)
    for (size_t p = 0; p < sizeof pages / sizeof pages[0]; p++) {
      char b1[300], b2[300];
      snprintf(b1, sizeof b1, "{%s\"limit\": %d, \"offset\": %d}", filters[f], pages[p][0],
               pages[p][1]);
      snprintf(b2, sizeof b2, "{%s\"metadata\": {}, \"limit\": %d, \"offset\": %d}", filters[f],
               pages[p][0], pages[p][1]);
      char *a = run_ids(&d, "POST", "/runs/search", b1), *b = run_ids(&d, "POST", "/runs/search", b2);
      ck_assert_msg(!strcmp(a, b), "filter {%s} page %d/%d: %s vs %s", filters[f], pages[p][0],
                    pages[p][1], a, b);
      free(a);
      free(b);
    }
  char *all = run_ids(&d, "POST", "/runs/search", "{\"limit\": 100}");
  ck_assert_int_eq((int)(strchr(all, 0) - all) / 33, 12); /* 32 hex and a comma each */
  free(all);
  long before = page_steps(&d);
  char *two = run_ids(&d, "POST", "/runs/search", "{\"limit\": 2}");
  char *mine = run_ids(&d, "GET", "/threads/pa/runs?limit=2&offset=1&status=success", NULL);
  ck_assert_int_eq((int)strlen(two), 66);
  ck_assert_int_eq((int)strlen(mine), 66);
  long steps = page_steps(&d) - before;
  ck_assert_msg(steps == 4, "%ld page steps for two pages of 2 runs (of 12)", steps);
  free(two);
  free(mine);
  lc_sd_stop_clean(&d);
  lc_sd_rm(&d);
}
END_TEST

/* state.listCheckpoints, state.fork, agent.getTree: a thread's finished
 * runs are its checkpoints; a fork is a new thread from one of them. */
START_TEST(protocol_state_commands) {
  struct lc_sd d;
  start(&d);
  const char *T = "fork-1";
  expect_code(&d, "POST", "/threads",
              "{\"thread_id\": \"fork-1\", "
              "\"metadata\": {\"who\": \"ann\"}}",
              200);
  char r1[80], r2[80], p[300], body[400];
  for (int i = 1; i <= 2; i++) {
    snprintf(body, sizeof body, "{\"assistant_id\": \"prev\", \"input\": %d}", i);
    cJSON *r = lc_sd_expect(&d, "POST", "/threads/fork-1/runs", body, 200);
    snprintf(i == 1 ? r1 : r2, sizeof r1, "%s", js(r, "run_id"));
    cJSON_Delete(r);
    snprintf(p, sizeof p, "/threads/fork-1/runs/%s/join", i == 1 ? r1 : r2);
    expect_code(&d, "GET", p, NULL, 200);
  }
  cJSON *j = command(&d, T, "{\"id\":1,\"method\":\"state.listCheckpoints\",\"params\":{}}",
                     "success");
  cJSON *cps = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "checkpoints");
  ck_assert_int_eq(cJSON_GetArraySize(cps), 2);
  ck_assert_str_eq(js(cJSON_GetArrayItem(cps, 0), "id"), r2); /* newest first */
  ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(cps, 0), "step")->valueint, 2);
  ck_assert_str_eq(js(cJSON_GetArrayItem(cps, 1), "id"), r1);
  cJSON_Delete(j);
  snprintf(body, sizeof body,
           "{\"id\":2,\"method\":\"state.listCheckpoints\",\"params\":{\"before\":\"%s\","
           "\"limit\":5}}", r2);
  j = command(&d, T, body, "success");
  cps = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "checkpoints");
  ck_assert_int_eq(cJSON_GetArraySize(cps), 1);
  ck_assert_str_eq(js(cJSON_GetArrayItem(cps, 0), "id"), r1);
  cJSON_Delete(j);
  /* fork from the first run: a new thread with its values, a run on it */
  snprintf(body, sizeof body,
           "{\"id\":3,\"method\":\"state.fork\",\"params\":{\"checkpoint_id\":\"%s\","
           "\"input\":9}}", r1);
  j = command(&d, T, body, "success");
  cJSON *res = cJSON_GetObjectItem(j, "result");
  char ft[80], fr[80];
  snprintf(ft, sizeof ft, "%s", js(res, "thread_id"));
  snprintf(fr, sizeof fr, "%s", js(res, "run_id"));
  ck_assert_str_ne(ft, T);
  cJSON_Delete(j);
  snprintf(p, sizeof p, "/threads/%s/runs/%s/join", ft, fr);
  j = lc_sd_expect(&d, "GET", p, NULL, 200);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "echo")->valueint, 9);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "prev")->valueint, 1); /* the checkpoint's values */
  cJSON_Delete(j);
  snprintf(p, sizeof p, "/threads/%s", ft);
  j = lc_sd_expect(&d, "GET", p, NULL, 200);
  ck_assert_str_eq(js(cJSON_GetObjectItem(j, "metadata"), "who"), "ann");
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "GET", "/threads/fork-1/state", NULL, 200);
  ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "values"), "echo")->valueint, 2);
  cJSON_Delete(j); /* the source thread is as it was */
  command_fails(&d, T,
                "{\"id\":4,\"method\":\"state.fork\",\"params\":{\"checkpoint_id\":"
                "\"nope\"}}",
                "no_such_checkpoint");
  /* agent.getTree: the root alone */
  j = command(&d, T, "{\"id\":5,\"method\":\"agent.getTree\",\"params\":{}}", "success");
  cJSON *tree = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "tree");
  ck_assert_str_eq(js(tree, "graph_name"), "prev");
  ck_assert_str_eq(js(tree, "status"), "completed");
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(tree, "namespace")), 0);
  cJSON_Delete(j);
  command_fails(&d, T, "{\"id\":6,\"method\":\"agent.getTree\",\"params\":{\"run_id\":\"x\"}}",
                "no_such_run");
  command_fails(&d, T, "{\"id\":7,\"method\":\"subscription.subscribe\",\"params\":{}}",
                "unknown_command");
  /* another tenant's thread: 404 */
  other_tenant_404(&d, "POST", "/threads/fork-1/commands",
                   "{\"id\":8,\"method\":\"state.listCheckpoints\"}");
  lc_sd_stop_clean(&d);
  lc_sd_rm(&d);
}
END_TEST

/* The same routes through the official LangGraph JS SDK. */
START_TEST(sdk_routes_js) {
  char jsdir[600];
  lc_sd_js_dir(jsdir, sizeof jsdir);
  struct lc_sd d;
  start(&d);
  char cmd[2000];
  snprintf(cmd, sizeof cmd,
           "cd %s && LUACT_URL=http://127.0.0.1:%d LUACT_TOKEN=%s node routes_test.mjs >&2",
           jsdir, d.port, LC_SD_TOKEN);
  int st = system(cmd);
  lc_sd_stop_clean(&d);
  lc_sd_rm(&d);
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the SDK checks failed (stderr above)");
}
END_TEST

Suite *serve_routes_suite(void) {
  Suite *s = suite_create("serve_routes");
  TCase *tc = tcase_create("routes");
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, inject_answers_next_questions);
  tcase_add_test(tc, run_start_on_busy_thread_injects);
  tcase_add_test(tc, thread_state_writes);
  tcase_add_test(tc, batch_assistants_filters_namespaces);
  tcase_add_test(tc, list_paging_is_linear);
  tcase_add_test(tc, run_lists_page_in_sql);
  tcase_add_test(tc, protocol_state_commands);
  tcase_add_test(tc, sdk_routes_js);
  suite_add_tcase(s, tc);
  TCase *pg = tcase_create("pg");
  tcase_set_timeout(pg, 240);
  tcase_add_unchecked_fixture(pg, pg_up, pg_down);
  tcase_add_checked_fixture(pg, on_pg, NULL);
  tcase_add_test(pg, inject_answers_next_questions);
  tcase_add_test(pg, thread_state_writes);
  tcase_add_test(pg, batch_assistants_filters_namespaces);
  tcase_add_test(pg, list_paging_is_linear);
  tcase_add_test(pg, run_lists_page_in_sql);
  tcase_add_test(pg, protocol_state_commands);
  suite_add_tcase(s, pg);
  return s;
}
