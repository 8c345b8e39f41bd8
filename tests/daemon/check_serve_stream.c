/* check_serve_stream.c: `luact serve`'s token deltas (stream_mode
 * "messages-tuple" and "messages") live from a streaming mock LLM, their
 * ids, resuming a stream with Last-Event-ID after deltas (same process: the
 * rest exactly; after a SIGKILL: a luact/gap event, never a duplicate), and
 * the routes LangGraph's SDK calls that the first version lacked. */
#include <check.h>
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "util_common.h"
#include "util_mock.h"
#include "util_serve.h"

#define ANSWER "Once upon a time a stream of tokens went on and on."

/* luact.react asking the model to stream; the model answers at once. */
static const char chat_agent[] =
    "return { name = 'chat', run = function(input, ctx)\n"
    "  local r = luact.react{ model = 'openai:mock-gpt', tools = {}, stream = true,\n"
    "    question = input.question }\n"
    "  return { status = r.status, answer = r.answer or r.reason }\n"
    "end }\n";

static const char slow_agent[] =
    "return function(input, ctx)\n"
    "  local n = type(input) == 'table' and input.steps or 3\n"
    "  for i = 1, n do luact.sleep(0.01); luact.now() end\n"
    "  return {done = true}\n"
    "end\n";

static const char asker_agent[] =
    "return function(input, ctx) return {hello = luact.ask('your name?')} end\n";

static const char mock_paced[] =
    "{\"rules\": [{\"match\": {\"path\": \"/v1/chat/completions\"},\n"
    "  \"reply\": {\"openai\": {\"text\": \"" ANSWER "\"}, \"gap_ms\": 2}}]}";

/* The first call stalls after some deltas (its connection held until the
 * daemon dies); the call run again after the restart gets the answer. */
static const char mock_stall[] =
    "{\"rules\": [{\"match\": {\"path\": \"/v1/chat/completions\"}, \"times\": 1,\n"
    "  \"reply\": {\"openai\": {\"text\": \"" ANSWER "\"}, \"stall_after_bytes\": 900}},\n"
    " {\"match\": {\"path\": \"/v1/chat/completions\"},\n"
    "  \"reply\": {\"openai\": {\"text\": \"" ANSWER "\"}}}]}";

static void start_with_mock(struct lc_sd *d, struct lc_mock *m, const char *script) {
  ck_assert_int_eq(lc_mock_start(m, script), 0);
  lc_sd_setup(d);
  lc_sd_agent(d, "chat", chat_agent);
  lc_sd_agent(d, "slow", slow_agent);
  lc_sd_agent(d, "asker", asker_agent);
  snprintf(d->env[0], sizeof d->env[0], "OPENAI_BASE_URL=%s/v1", m->base_url);
  lc_sd_start(d);
}

static int is_delta_id(const char *id) {
  long a, b, c;
  return sscanf(id, "%ld.%ld.%ld", &a, &b, &c) == 3 && b == 0;
}

/* Checks the ids of ev[from..n): unique and increasing, after `after`. */
static void ids_increase(struct lc_sev *ev, int n, const char *after) {
  const char *prev = after;
  for (int i = 0; i < n; i++) {
    if (!ev[i].id[0]) continue;
    if (prev && prev[0])
      ck_assert_msg(lc_sev_idcmp(prev, ev[i].id) < 0, "id %s after %s", ev[i].id, prev);
    prev = ev[i].id;
  }
}

static int count_event(struct lc_sev *ev, int n, const char *name) {
  int k = 0;
  for (int i = 0; i < n; i++) k += !strcmp(ev[i].event, name);
  return k;
}

/* The text of the "messages" chunks (tuple form), concatenated. */
static char *chunks_text(struct lc_sev *ev, int n) {
  size_t len = 0;
  char *out = calloc(1, 1);
  for (int i = 0; i < n; i++) {
    if (strcmp(ev[i].event, "messages")) continue;
    ck_assert_int_eq(cJSON_GetArraySize(ev[i].data), 2); /* [chunk, metadata] */
    const cJSON *c = cJSON_GetArrayItem(ev[i].data, 0);
    const cJSON *t = cJSON_GetObjectItem(c, "content");
    ck_assert(cJSON_IsString(t));
    ck_assert_str_eq(cJSON_GetObjectItem(c, "type")->valuestring, "AIMessageChunk");
    size_t k = strlen(t->valuestring);
    out = realloc(out, len + k + 1);
    memcpy(out + len, t->valuestring, k + 1);
    len += k;
  }
  return out;
}

static const char *answer_of(struct lc_sev *ev, int n) {
  for (int i = 0; i < n; i++)
    if (!strcmp(ev[i].event, "values")) {
      const cJSON *a = cJSON_GetObjectItem(ev[i].data, "answer");
      return cJSON_IsString(a) ? a->valuestring : NULL;
    }
  return NULL;
}

START_TEST(token_deltas_live_and_resumed) {
  struct lc_mock m;
  struct lc_sd d;
  start_with_mock(&d, &m, mock_paced);
  struct lc_sresp r =
      lc_sd_req(&d, "POST", "/runs/stream",
                "{\"assistant_id\":\"chat\",\"input\":{\"question\":\"tell me\"},"
                "\"stream_mode\":[\"values\",\"messages-tuple\"]}",
                LC_SD_TOKEN, NULL);
  ck_assert_int_eq(r.code, 200);
  struct lc_sev *ev;
  int n = lc_sev_parse(r.body, &ev);
  ck_assert_int_eq(count_event(ev, n, "luact/gap"), 0); /* nothing was lost */
  ck_assert_int_gt(count_event(ev, n, "messages"), 3);  /* the answer came in pieces */
  ck_assert_int_eq(count_event(ev, n, "end"), 1);
  ids_increase(ev, n, NULL);
  char *text = chunks_text(ev, n);
  ck_assert_str_eq(text, ANSWER);
  ck_assert_str_eq(answer_of(ev, n), ANSWER);
  free(text);
  char rid[80], p[300], h[100];
  snprintf(rid, sizeof rid, "%s", cJSON_GetObjectItem(ev[0].data, "run_id")->valuestring);
  /* Resumed after every id, in this process: exactly the rest. */
  snprintf(p, sizeof p, "/runs/%s/stream?stream_mode=messages-tuple", rid);
  int ndelta = 0;
  for (int k = 0; k < n; k++) {
    if (!ev[k].id[0]) continue;
    ndelta += is_delta_id(ev[k].id);
    snprintf(h, sizeof h, "Last-Event-ID: %s", ev[k].id);
    struct lc_sresp r2 = lc_sd_req(&d, "GET", p, NULL, LC_SD_TOKEN, h);
    struct lc_sev *ev2;
    int n2 = lc_sev_parse(r2.body, &ev2);
    int j = 0;
    for (int i = k + 1; i < n; i++) {
      if (!ev[i].id[0]) continue;
      while (j < n2 && !ev2[j].id[0]) {
        ck_assert_str_ne(ev2[j].event, "luact/gap");
        j++;
      }
      ck_assert_msg(j < n2, "after %s: %s missing", ev[k].id, ev[i].id);
      ck_assert_str_eq(ev2[j].id, ev[i].id);
      ck_assert_str_eq(ev2[j].event, ev[i].event);
      j++;
    }
    for (; j < n2; j++) ck_assert_msg(!ev2[j].id[0], "after %s: extra %s", ev[k].id, ev2[j].id);
    lc_sev_free(ev2, n2);
    lc_sresp_free(&r2);
  }
  ck_assert_int_gt(ndelta, 3);
  /* "messages": the message so far, growing to the answer. */
  snprintf(p, sizeof p, "/runs/%s/stream?stream_mode=messages", rid);
  struct lc_sresp r3 = lc_sd_req(&d, "GET", p, NULL, LC_SD_TOKEN, NULL);
  struct lc_sev *ev3;
  int n3 = lc_sev_parse(r3.body, &ev3);
  const char *last = NULL;
  for (int i = 0; i < n3; i++)
    if (!strcmp(ev3[i].event, "messages/partial"))
      last = cJSON_GetObjectItem(cJSON_GetArrayItem(ev3[i].data, 0), "content")->valuestring;
  ck_assert_ptr_nonnull(last);
  ck_assert_str_eq(last, ANSWER);
  lc_sev_free(ev3, n3);
  lc_sresp_free(&r3);
  /* Not asked for: no deltas. */
  snprintf(p, sizeof p, "/runs/%s/stream", rid);
  struct lc_sresp r4 = lc_sd_req(&d, "GET", p, NULL, LC_SD_TOKEN, NULL);
  ck_assert_ptr_null(strstr(r4.body, "event: messages"));
  lc_sresp_free(&r4);
  /* After a SIGKILL the deltas are gone: resuming from one says so, and
   * sends the journaled events after it, none twice. */
  lc_sd_stop(&d, SIGKILL);
  lc_sd_start(&d);
  /* From the start, too: the deltas are announced missing, once. */
  snprintf(p, sizeof p, "/runs/%s/stream?stream_mode=messages-tuple", rid);
  struct lc_sresp r6 = lc_sd_req(&d, "GET", p, NULL, LC_SD_TOKEN, NULL);
  struct lc_sev *ev6;
  int n6 = lc_sev_parse(r6.body, &ev6);
  ck_assert_int_eq(count_event(ev6, n6, "luact/gap"), 1);
  ck_assert_int_eq(count_event(ev6, n6, "messages"), 0);
  lc_sev_free(ev6, n6);
  lc_sresp_free(&r6);
  const char *first_delta = NULL;
  for (int i = 0; i < n && !first_delta; i++)
    if (is_delta_id(ev[i].id)) first_delta = ev[i].id;
  snprintf(p, sizeof p, "/runs/%s/stream?stream_mode=messages-tuple", rid);
  snprintf(h, sizeof h, "Last-Event-ID: %s", first_delta);
  struct lc_sresp r5 = lc_sd_req(&d, "GET", p, NULL, LC_SD_TOKEN, h);
  struct lc_sev *ev5;
  int n5 = lc_sev_parse(r5.body, &ev5);
  ck_assert_int_eq(count_event(ev5, n5, "luact/gap"), 1);
  ck_assert_int_eq(count_event(ev5, n5, "messages"), 0);
  ids_increase(ev5, n5, first_delta);
  int j = 0;
  for (int i = 0; i < n; i++) { /* every journaled event after it, in order */
    if (!ev[i].id[0] || is_delta_id(ev[i].id) || lc_sev_idcmp(ev[i].id, first_delta) <= 0)
      continue;
    while (j < n5 && !ev5[j].id[0]) j++;
    ck_assert_msg(j < n5, "%s missing after the restart", ev[i].id);
    ck_assert_str_eq(ev5[j].id, ev[i].id);
    j++;
  }
  lc_sev_free(ev5, n5);
  lc_sresp_free(&r5);
  lc_sev_free(ev, n);
  lc_sresp_free(&r);
  ck_assert_int_eq(lc_test_exit_code(lc_sd_stop(&d, SIGTERM)), 0);
  lc_sd_rm(&d);
  lc_mock_stop(&m);
}
END_TEST

/* A run without LLM calls, streamed with messages asked for and resumed:
 * no gap is announced (none happened), no delta sent. */
START_TEST(no_false_gap) {
  struct lc_mock m;
  struct lc_sd d;
  start_with_mock(&d, &m, mock_paced);
  struct lc_sresp r = lc_sd_req(&d, "POST", "/runs/stream",
                                "{\"assistant_id\":\"slow\",\"stream_mode\":\"messages-tuple\"}",
                                LC_SD_TOKEN, NULL);
  ck_assert_ptr_null(strstr(r.body, "luact/gap"));
  ck_assert_ptr_nonnull(strstr(r.body, "event: values")); /* it ran to its end */
  struct lc_sev *ev;
  int n = lc_sev_parse(r.body, &ev);
  char p[300];
  snprintf(p, sizeof p, "/runs/%s/stream?stream_mode=messages",
           cJSON_GetObjectItem(ev[0].data, "run_id")->valuestring);
  struct lc_sresp r2 = lc_sd_req(&d, "GET", p, NULL, LC_SD_TOKEN, "Last-Event-ID: 2");
  ck_assert_ptr_null(strstr(r2.body, "luact/gap"));
  ck_assert_ptr_nonnull(strstr(r2.body, "event: end"));
  lc_sresp_free(&r2);
  /* After a restart too: the run made no LLM call, so no delta can have
   * been lost. */
  lc_sd_stop(&d, SIGKILL);
  lc_sd_start(&d);
  r2 = lc_sd_req(&d, "GET", p, NULL, LC_SD_TOKEN, NULL);
  ck_assert_ptr_null(strstr(r2.body, "luact/gap"));
  ck_assert_ptr_nonnull(strstr(r2.body, "event: end"));
  lc_sresp_free(&r2);
  lc_sev_free(ev, n);
  lc_sresp_free(&r);
  ck_assert_int_eq(lc_test_exit_code(lc_sd_stop(&d, SIGTERM)), 0);
  lc_sd_rm(&d);
  lc_mock_stop(&m);
}
END_TEST

/* The daemon dies while the LLM streams (some deltas sent): the stream
 * resumed from the last delta's id gets the gap, then the call run again
 * (new ids, after the old ones), and the answer; no id twice. */
START_TEST(token_deltas_across_kill_mid_call) {
  struct lc_mock m;
  struct lc_sd d;
  start_with_mock(&d, &m, mock_stall);
  char cmd[900];
  snprintf(cmd, sizeof cmd,
           "curl -sN -X POST -H 'Authorization: Bearer " LC_SD_TOKEN "' "
           "-H 'Content-Type: application/json' http://127.0.0.1:%d/runs/stream "
           "-d '{\"assistant_id\":\"chat\",\"input\":{\"question\":\"q\"},"
           "\"stream_mode\":[\"messages-tuple\"]}'",
           d.port);
  FILE *f = popen(cmd, "r");
  ck_assert_ptr_nonnull(f);
  char line[8192], all[65536] = "";
  size_t used = 0;
  int deltas = 0;
  while (deltas < 2 && fgets(line, sizeof line, f)) { /* until two deltas came */
    if (!strncmp(line, "id: ", 4) && is_delta_id(line + 4)) deltas++;
    used += (size_t)snprintf(all + used, sizeof all - used, "%s", line);
  }
  ck_assert_int_eq(deltas, 2);
  lc_sd_stop(&d, SIGKILL);
  pclose(f);
  struct lc_sev *ev;
  int n = lc_sev_parse(all, &ev);
  const char *lastid = NULL;
  for (int i = 0; i < n; i++)
    if (ev[i].id[0]) lastid = ev[i].id;
  ck_assert_ptr_nonnull(lastid);
  ck_assert(is_delta_id(lastid));
  char rid[80], p[300], h[100];
  snprintf(rid, sizeof rid, "%s", cJSON_GetObjectItem(ev[0].data, "run_id")->valuestring);
  lc_sd_start(&d); /* resumes the run: the LLM call runs again */
  snprintf(p, sizeof p, "/runs/%s/stream?stream_mode=messages-tuple", rid);
  snprintf(h, sizeof h, "Last-Event-ID: %s", lastid);
  struct lc_sresp r = lc_sd_req(&d, "GET", p, NULL, LC_SD_TOKEN, h);
  struct lc_sev *ev2;
  int n2 = lc_sev_parse(r.body, &ev2);
  ck_assert_int_eq(count_event(ev2, n2, "luact/gap"), 1);
  ck_assert_int_eq(count_event(ev2, n2, "end"), 1);
  ids_increase(ev2, n2, lastid);
  for (int i = 0; i < n2; i++) /* none of the ids seen before the kill */
    for (int k = 0; k < n && ev2[i].id[0]; k++) ck_assert_str_ne(ev2[i].id, ev[k].id);
  char *text = chunks_text(ev2, n2);
  ck_assert_str_eq(text, ANSWER); /* the call run again, streamed whole */
  free(text);
  ck_assert_str_eq(answer_of(ev2, n2), ANSWER);
  lc_sev_free(ev2, n2);
  lc_sresp_free(&r);
  lc_sev_free(ev, n);
  ck_assert_int_eq(lc_test_exit_code(lc_sd_stop(&d, SIGTERM)), 0);
  lc_sd_rm(&d);
  lc_mock_stop(&m);
}
END_TEST

static int count_ids_with_prefix(struct lc_sev *ev, int n, const char *run) {
  int k = 0;
  size_t l = strlen(run);
  for (int i = 0; i < n; i++)
    if (ev[i].id[0]) {
      ck_assert_msg(!strncmp(ev[i].id, run, l) && ev[i].id[l] == ':', "id %s", ev[i].id);
      k++;
    }
  return k;
}

/* LangGraph's routes the first version lacked, from curl: a thread's
 * stream (threads.joinStream), counts, getState by POST; their errors. */
START_TEST(thread_stream_and_counts) {
  struct lc_mock m;
  struct lc_sd d;
  start_with_mock(&d, &m, mock_paced);
  cJSON *t = lc_sd_expect(&d, "POST", "/threads", "{}", 200);
  char tid[80], p[400], h[200];
  snprintf(tid, sizeof tid, "%s", cJSON_GetObjectItem(t, "thread_id")->valuestring);
  cJSON_Delete(t);
  snprintf(p, sizeof p, "/threads/%s/stream", tid);
  cJSON *j = lc_sd_expect(&d, "GET", p, NULL, 404); /* no run yet */
  cJSON_Delete(j);
  struct lc_sresp r = lc_sd_req(&d, "GET", p, NULL, LC_SD_TOKEN_B, NULL); /* not bob's */
  ck_assert_int_eq(r.code, 404);
  lc_sresp_free(&r);
  j = lc_sd_expect(&d, "GET", "/threads/no-such-thread/stream", NULL, 404);
  cJSON_Delete(j);
  /* Two runs on the thread. */
  char rid[2][80];
  for (int k = 0; k < 2; k++) {
    char rp[300];
    snprintf(rp, sizeof rp, "/threads/%s/runs", tid);
    j = lc_sd_expect(&d, "POST", rp, "{\"assistant_id\":\"slow\",\"multitask_strategy\":\"enqueue\"}",
                     200);
    snprintf(rid[k], sizeof rid[k], "%s", cJSON_GetObjectItem(j, "run_id")->valuestring);
    cJSON_Delete(j);
  }
  /* Joined without an id: the first run if it still goes (then the
   * second), else the second; to the second's end. */
  r = lc_sd_req(&d, "GET", p, NULL, LC_SD_TOKEN, NULL);
  ck_assert_int_eq(r.code, 200);
  struct lc_sev *ev;
  int n = lc_sev_parse(r.body, &ev);
  int first = 0, n2 = 0;
  for (int i = 0; i < n; i++) {
    if (!ev[i].id[0]) continue;
    if (!strncmp(ev[i].id, rid[0], strlen(rid[0]))) {
      ck_assert_int_eq(n2, 0);
      first++;
    } else {
      ck_assert_msg(!strncmp(ev[i].id, rid[1], strlen(rid[1])), "id %s", ev[i].id);
      n2++;
    }
  }
  ck_assert_int_ge(n2, 5);
  ck_assert_int_eq(count_event(ev, n, "end"), 1 + (first > 0));
  lc_sev_free(ev, n);
  lc_sresp_free(&r);
  /* The second run's whole stream alone (after it ended, it is the newest). */
  r = lc_sd_req(&d, "GET", p, NULL, LC_SD_TOKEN, NULL);
  n = lc_sev_parse(r.body, &ev);
  ck_assert_int_eq(count_ids_with_prefix(ev, n, rid[1]), n2);
  lc_sev_free(ev, n);
  lc_sresp_free(&r);
  /* The first run's whole stream, for its ids. */
  snprintf(h, sizeof h, "/threads/%s/runs/%s/stream", tid, rid[0]);
  r = lc_sd_req(&d, "GET", h, NULL, LC_SD_TOKEN, NULL);
  n = lc_sev_parse(r.body, &ev);
  char mid[64] = "";
  int after = 0, seen = 0, total = 0;
  for (int i = 0; i < n; i++) total += ev[i].id[0] != 0;
  for (int i = 0; i < n; i++)
    if (ev[i].id[0] && ++seen == total / 2) snprintf(mid, sizeof mid, "%s", ev[i].id);
  after = total - total / 2;
  lc_sev_free(ev, n);
  lc_sresp_free(&r);
  /* From an id of the first run: its rest, then the second run whole. */
  snprintf(h, sizeof h, "Last-Event-ID: %s:%s", rid[0], mid);
  r = lc_sd_req(&d, "GET", p, NULL, LC_SD_TOKEN, h);
  n = lc_sev_parse(r.body, &ev);
  int a = 0, b = 0;
  const char *prev = NULL;
  for (int i = 0; i < n; i++) {
    if (!ev[i].id[0]) continue;
    const char *colon = strchr(ev[i].id, ':');
    ck_assert_ptr_nonnull(colon);
    if (!strncmp(ev[i].id, rid[0], strlen(rid[0]))) {
      ck_assert_int_eq(b, 0); /* the first run's before the second's */
      ck_assert_int_lt(lc_sev_idcmp(mid, colon + 1), 0);
      a++;
    } else {
      ck_assert(!strncmp(ev[i].id, rid[1], strlen(rid[1])));
      if (prev && b) ck_assert_int_lt(lc_sev_idcmp(prev, colon + 1), 0);
      b++;
    }
    prev = colon + 1;
  }
  ck_assert_int_eq(a, after);
  ck_assert_int_eq(b, n2);
  ck_assert_int_eq(count_event(ev, n, "metadata"), 1); /* the second run's */
  ck_assert_int_eq(count_event(ev, n, "end"), 2);
  lc_sev_free(ev, n);
  lc_sresp_free(&r);
  /* Bad ids: no run named (400), another thread's or no run (404). */
  r = lc_sd_req(&d, "GET", p, NULL, LC_SD_TOKEN, "Last-Event-ID: 7");
  ck_assert_int_eq(r.code, 400);
  lc_sresp_free(&r);
  r = lc_sd_req(&d, "GET", p, NULL, LC_SD_TOKEN, "Last-Event-ID: nope:7");
  ck_assert_int_eq(r.code, 404);
  lc_sresp_free(&r);
  /* Counts. */
  j = lc_sd_expect(&d, "POST", "/threads/count", "{}", 200);
  ck_assert(cJSON_IsNumber(j) && j->valueint == 1);
  cJSON_Delete(j);
  r = lc_sd_req(&d, "POST", "/threads/count", "{}", LC_SD_TOKEN_B, NULL);
  ck_assert_str_eq(r.body, "0"); /* bob has none */
  lc_sresp_free(&r);
  j = lc_sd_expect(&d, "POST", "/threads/count", "{\"status\":\"busy\"}", 200);
  ck_assert_int_eq(j->valueint, 0);
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/threads/count", "{bad", 400);
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/threads/count", "[1]", 422);
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/assistants/count", "{}", 200);
  ck_assert_int_eq(j->valueint, 3);
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/assistants/count", "{\"graph_id\":\"slow\"}", 200);
  ck_assert_int_eq(j->valueint, 1);
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/assistants/count", "{bad", 400);
  cJSON_Delete(j);
  /* getState by POST: the current state; an old checkpoint is not kept. */
  snprintf(p, sizeof p, "/threads/%s/state", tid);
  j = lc_sd_expect(&d, "POST", p, "{}", 200);
  ck_assert_ptr_nonnull(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "values"), "done"));
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", p, "{\"checkpoint\":{\"checkpoint_id\":\"x\"}}", 404);
  cJSON_Delete(j);
  /* A checkpoint is a finished run of the thread, as history lists them. */
  char body[300];
  snprintf(body, sizeof body, "{\"checkpoint\":{\"checkpoint_id\":\"%s\"}}", rid[0]);
  j = lc_sd_expect(&d, "POST", p, body, 200);
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "checkpoint"), "checkpoint_id")
                       ->valuestring, rid[0]);
  ck_assert_ptr_nonnull(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "values"), "done"));
  cJSON_Delete(j);
  snprintf(p, sizeof p, "/threads/%s/state/%s", tid, rid[1]);
  j = lc_sd_expect(&d, "GET", p, NULL, 200);
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "checkpoint"), "checkpoint_id")
                       ->valuestring, rid[1]);
  cJSON_Delete(j);
  r = lc_sd_req(&d, "GET", p, NULL, LC_SD_TOKEN_B, NULL); /* not bob's */
  ck_assert_int_eq(r.code, 404);
  lc_sresp_free(&r);
  snprintf(p, sizeof p, "/threads/%s/state/nope", tid);
  j = lc_sd_expect(&d, "GET", p, NULL, 404);
  cJSON_Delete(j);
  snprintf(p, sizeof p, "/threads/%s/state", tid);
  j = lc_sd_expect(&d, "POST", p, "{bad", 400);
  cJSON_Delete(j);
  ck_assert_int_eq(lc_test_exit_code(lc_sd_stop(&d, SIGTERM)), 0);
  lc_sd_rm(&d);
  lc_mock_stop(&m);
}
END_TEST

/* Joining a thread's stream while its run runs and another waits behind it
 * (enqueue): the running run first, then the one that waited. */
START_TEST(thread_stream_joins_the_active_run) {
  struct lc_mock m;
  struct lc_sd d;
  start_with_mock(&d, &m, mock_paced);
  cJSON *j = lc_sd_expect(&d, "POST", "/threads", "{\"thread_id\":\"t-active\"}", 200);
  cJSON_Delete(j);
  char rid[2][80];
  const char *bodies[] = {"{\"assistant_id\":\"slow\",\"input\":{\"steps\":100000}}",
                          "{\"assistant_id\":\"slow\",\"multitask_strategy\":\"enqueue\"}"};
  for (int k = 0; k < 2; k++) {
    j = lc_sd_expect(&d, "POST", "/threads/t-active/runs", bodies[k], 200);
    snprintf(rid[k], sizeof rid[k], "%s", cJSON_GetObjectItem(j, "run_id")->valuestring);
    cJSON_Delete(j);
  }
  char cmd[600];
  snprintf(cmd, sizeof cmd,
           "curl -sN -H 'Authorization: Bearer " LC_SD_TOKEN "' "
           "http://127.0.0.1:%d/threads/t-active/stream",
           d.port);
  FILE *f = popen(cmd, "r");
  ck_assert_ptr_nonnull(f);
  char line[8192];
  int got_first = 0;
  while (!got_first && fgets(line, sizeof line, f)) /* the first run's events come */
    got_first = !strncmp(line, "id: ", 4) && !strncmp(line + 4, rid[0], strlen(rid[0]));
  ck_assert(got_first);
  char p[300];
  snprintf(p, sizeof p, "/threads/t-active/runs/%s/cancel?action=interrupt", rid[0]);
  j = lc_sd_expect(&d, "POST", p, NULL, 202);
  cJSON_Delete(j);
  int ends = 0, second = 0;
  while (fgets(line, sizeof line, f)) {
    ends += !strncmp(line, "event: end", 10);
    if (!strncmp(line, "id: ", 4) && !strncmp(line + 4, rid[1], strlen(rid[1]))) second++;
  }
  pclose(f);
  ck_assert_int_eq(ends, 2); /* the cancelled run's end, the second's */
  ck_assert_int_ge(second, 5);
  ck_assert_int_eq(lc_test_exit_code(lc_sd_stop(&d, SIGTERM)), 0);
  lc_sd_rm(&d);
  lc_mock_stop(&m);
}
END_TEST

/* Reads SSE lines from f into buf until `ends` more "end" events came
 * (the protocol's lifecycle end carries "luact_status"). */
static void read_events(FILE *f, char *buf, size_t cap, size_t *used, int ends) {
  char line[8192];
  int seen = 0;
  while (seen < ends && fgets(line, sizeof line, f)) {
    seen += strstr(line, "\"luact_status\"") != NULL;
    *used += (size_t)snprintf(buf + *used, cap - *used, "%s", line);
  }
  ck_assert_int_eq(seen, ends);
  if (fgets(line, sizeof line, f)) /* the blank line that ends the event */
    *used += (size_t)snprintf(buf + *used, cap - *used, "%s", line);
}

/* LangGraph's assistant routes beyond get/search/schemas. */
START_TEST(assistant_versions_and_graph) {
  struct lc_sd d;
  lc_sd_setup(&d);
  lc_sd_agent(&d, "slow", slow_agent);
  lc_sd_start(&d);
  cJSON *j = lc_sd_expect(&d, "POST", "/assistants/slow/versions", "{}", 200);
  ck_assert_int_eq(cJSON_GetArraySize(j), 1);
  ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "version")->valueint, 1);
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/assistants/slow/versions", "{\"offset\":1}", 200);
  ck_assert_int_eq(cJSON_GetArraySize(j), 0);
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/assistants/slow/latest", "{\"version\":1}", 200);
  ck_assert_str_eq(cJSON_GetObjectItem(j, "assistant_id")->valuestring, "slow");
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/assistants/slow/latest", "{\"version\":2}", 404);
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/assistants/slow/latest", "{}", 422);
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/assistants/slow/latest", "{bad", 400);
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", "/assistants/nope/versions", "{}", 404);
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "GET", "/assistants/slow/graph", NULL, 200);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "nodes")), 3);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "edges")), 2);
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "GET", "/assistants/slow/subgraphs", NULL, 200);
  ck_assert(cJSON_IsObject(j) && !cJSON_GetArraySize(j));
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "GET", "/assistants/nope/graph", NULL, 404);
  cJSON_Delete(j);
  struct lc_sresp r = lc_sd_req(&d, "GET", "/assistants/slow/graph", NULL, NULL, NULL);
  ck_assert_int_eq(r.code, 401);
  lc_sresp_free(&r);
  ck_assert_int_eq(lc_test_exit_code(lc_sd_stop(&d, SIGTERM)), 0);
  lc_sd_rm(&d);
}
END_TEST

/* A command's envelope: checks type (and id), returns result or error. */
static cJSON *command(struct lc_sd *d, const char *thread, const char *body, const char *type) {
  char p[300];
  snprintf(p, sizeof p, "/threads/%s/commands", thread);
  cJSON *j = lc_sd_expect(d, "POST", p, body, 200);
  ck_assert_msg(!strcmp(cJSON_GetObjectItem(j, "type")->valuestring, type), "%s: %s", body,
                cJSON_PrintUnformatted(j));
  return j;
}

static const char *result_str(const cJSON *j, const char *k) {
  return cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), k)->valuestring;
}

/* The Agent Protocol's streaming protocol over HTTP: commands (run.start,
 * input.respond, state.get) and the channel-filtered thread stream. */
START_TEST(protocol_commands_and_channels) {
  struct lc_mock m;
  struct lc_sd d;
  start_with_mock(&d, &m, mock_paced);
  const char *T = "ap-thread-1";
  /* run.start creates the thread; the run asks. */
  cJSON *j = command(&d, T, "{\"id\":1,\"method\":\"run.start\",\"params\":"
                            "{\"assistant_id\":\"asker\",\"input\":null}}", "success");
  ck_assert_int_eq(cJSON_GetObjectItem(j, "id")->valueint, 1);
  char rid[80], p[300];
  snprintf(rid, sizeof rid, "%s", result_str(j, "run_id"));
  cJSON_Delete(j);
  snprintf(p, sizeof p, "/threads/%s/runs/%s/join", T, rid);
  j = lc_sd_expect(&d, "GET", p, NULL, 200); /* waits until it asks */
  ck_assert_ptr_nonnull(cJSON_GetObjectItem(j, "__interrupt__"));
  cJSON_Delete(j);
  /* Its stream, values and lifecycle only; connection-scoped: it stays
   * open after the run stopped to ask, and carries what comes next. */
  char cmd[700];
  snprintf(cmd, sizeof cmd,
           "curl -sN -X POST -H 'Authorization: Bearer " LC_SD_TOKEN "' "
           "http://127.0.0.1:%d/threads/%s/stream -d '{\"channels\":[\"values\",\"lifecycle\"]}'",
           d.port, T);
  FILE *sf = popen(cmd, "r");
  ck_assert_ptr_nonnull(sf);
  char all[32768] = "";
  size_t used = 0;
  read_events(sf, all, sizeof all, &used, 1); /* to the interrupted run's end */
  struct lc_sev *ev;
  int n = lc_sev_parse(all, &ev), values = 0;
  ck_assert_int_ge(n, 3);
  for (int i = 0; i < n; i++) {
    ck_assert_str_eq(cJSON_GetObjectItem(ev[i].data, "type")->valuestring, "event");
    const char *meth = cJSON_GetObjectItem(ev[i].data, "method")->valuestring;
    ck_assert_str_eq(meth, ev[i].event);
    ck_assert_msg(!strcmp(meth, "values") || !strcmp(meth, "lifecycle"), "%s", meth);
    if (ev[i].id[0])
      ck_assert_str_eq(cJSON_GetObjectItem(ev[i].data, "eventId")->valuestring, ev[i].id);
    if (!strcmp(meth, "values")) {
      values++;
      const cJSON *data = cJSON_GetObjectItem(cJSON_GetObjectItem(ev[i].data, "params"), "data");
      ck_assert_ptr_nonnull(cJSON_GetObjectItem(data, "__interrupt__"));
    }
  }
  ck_assert_int_eq(values, 1);
  lc_sev_free(ev, n);
  /* input.respond: a wrong interrupt id is refused, the right one answers. */
  j = command(&d, T, "{\"id\":2,\"method\":\"input.respond\",\"params\":"
                     "{\"interrupt_id\":\"nope\",\"response\":\"Ann\"}}", "error");
  ck_assert_str_eq(cJSON_GetObjectItem(j, "error")->valuestring, "no_such_interrupt");
  cJSON_Delete(j);
  char body[400];
  snprintf(body, sizeof body, "{\"id\":3,\"method\":\"input.respond\",\"params\":"
                              "{\"interrupt_id\":\"%s\",\"response\":\"Ann\"}}", rid);
  j = command(&d, T, body, "success");
  ck_assert_str_eq(result_str(j, "run_id"), rid); /* the same run goes on */
  cJSON_Delete(j);
  snprintf(p, sizeof p, "/threads/%s/runs/%s/join", T, rid);
  j = lc_sd_expect(&d, "GET", p, NULL, 200);
  ck_assert_str_eq(cJSON_GetObjectItem(j, "hello")->valuestring, "Ann");
  cJSON_Delete(j);
  /* The open stream carried the answered run on to its end. */
  read_events(sf, all, sizeof all, &used, 1);
  ck_assert_ptr_nonnull(strstr(all, "\"hello\":\"Ann\""));
  ck_assert_ptr_nonnull(strstr(all, "\"luact_status\":\"finished\""));
  j = command(&d, T, "{\"id\":4,\"method\":\"state.get\"}", "success");
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"),
                                                           "values"), "hello")->valuestring, "Ann");
  cJSON_Delete(j);
  /* run.start on an interrupted thread is the answer. */
  j = command(&d, T, "{\"id\":5,\"method\":\"run.start\",\"params\":"
                     "{\"assistant_id\":\"asker\",\"input\":null}}", "success");
  snprintf(rid, sizeof rid, "%s", result_str(j, "run_id"));
  cJSON_Delete(j);
  snprintf(p, sizeof p, "/threads/%s/runs/%s/join", T, rid);
  j = lc_sd_expect(&d, "GET", p, NULL, 200);
  cJSON_Delete(j);
  j = command(&d, T, "{\"id\":6,\"method\":\"run.start\",\"params\":"
                     "{\"assistant_id\":\"asker\",\"input\":\"Bob\"}}", "success");
  ck_assert_str_eq(result_str(j, "run_id"), rid);
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "GET", p, NULL, 200);
  ck_assert_str_eq(cJSON_GetObjectItem(j, "hello")->valuestring, "Bob");
  cJSON_Delete(j);
  /* Errors: in the envelope for what the command asks, HTTP for the form. */
  j = command(&d, T, "{\"id\":7,\"method\":\"run.fly\"}", "error");
  ck_assert_str_eq(cJSON_GetObjectItem(j, "error")->valuestring, "unknown_command");
  cJSON_Delete(j);
  j = command(&d, T, "{\"id\":8,\"method\":\"run.start\",\"params\":{\"input\":1}}",
              "error");
  ck_assert_str_eq(cJSON_GetObjectItem(j, "error")->valuestring, "invalid_argument");
  cJSON_Delete(j);
  j = command(&d, T, "{\"id\":9,\"method\":\"run.start\",\"params\":"
                     "{\"assistant_id\":\"nope\"}}", "error");
  ck_assert_str_eq(cJSON_GetObjectItem(j, "error")->valuestring, "invalid_argument");
  cJSON_Delete(j);
  snprintf(p, sizeof p, "/threads/%s/commands", T);
  j = lc_sd_expect(&d, "POST", p, "{\"method\":\"state.get\"}", 422); /* no id */
  cJSON_Delete(j);
  j = lc_sd_expect(&d, "POST", p, "{bad", 400);
  cJSON_Delete(j);
  struct lc_sresp r = lc_sd_req(&d, "POST", p, "{\"id\":1,\"method\":\"state.get\"}", LC_SD_TOKEN_B, NULL);
  ck_assert_int_eq(r.code, 404); /* alice's thread */
  lc_sresp_free(&r);
  r = lc_sd_req(&d, "POST", p, "{\"id\":1,\"method\":\"run.start\",\"params\":"
                               "{\"assistant_id\":\"asker\"}}", LC_SD_TOKEN_B, NULL);
  ck_assert_int_eq(r.code, 404); /* nor can bob start one on it */
  lc_sresp_free(&r);
  j = lc_sd_expect(&d, "POST", "/threads/no-such/commands",
                   "{\"id\":1,\"method\":\"state.get\"}", 404);
  cJSON_Delete(j);
  /* A stream opened before the thread's first run idles, then carries it. */
  j = lc_sd_expect(&d, "POST", "/threads", "{\"thread_id\":\"ap-thread-2\"}", 200);
  cJSON_Delete(j);
  snprintf(cmd, sizeof cmd,
           "curl -sN -X POST -H 'Authorization: Bearer " LC_SD_TOKEN "' "
           "http://127.0.0.1:%d/threads/ap-thread-2/stream -d '{\"channels\":[\"lifecycle\"]}'",
           d.port);
  FILE *f = popen(cmd, "r");
  ck_assert_ptr_nonnull(f);
  for (;;) { /* until the daemon counts the stream open */
    struct lc_sresp mt = lc_sd_req(&d, "GET", "/metrics", NULL, LC_SD_TOKEN, NULL);
    int open = strstr(mt.body, "\nluact_sse_clients 2\n") != NULL; /* with sf */
    lc_sresp_free(&mt);
    if (open) break;
  }
  j = command(&d, "ap-thread-2", "{\"id\":1,\"method\":\"run.start\",\"params\":"
                                 "{\"assistant_id\":\"slow\"}}", "success");
  cJSON_Delete(j);
  char all2[16384] = "";
  size_t used2 = 0;
  read_events(f, all2, sizeof all2, &used2, 1);
  n = lc_sev_parse(all2, &ev);
  ck_assert_int_eq(n, 2); /* the run's metadata and end, lifecycle only */
  ck_assert_ptr_nonnull(strstr(all2, "\"event\":\"metadata\""));
  ck_assert_ptr_nonnull(strstr(all2, "\"luact_status\":\"finished\""));
  ck_assert_ptr_null(strstr(all2, "\"method\":\"values\""));
  lc_sev_free(ev, n);
  /* The stream's form. */
  snprintf(p, sizeof p, "/threads/%s/stream", T);
  const char *bad[] = {"{}", "{\"channels\":[]}", "{\"channels\":[\"nope\"]}",
                       "{\"channels\":[\"values\"],\"since\":3}", "[1]"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    j = lc_sd_expect(&d, "POST", p, bad[i], 422);
    cJSON_Delete(j);
  }
  j = lc_sd_expect(&d, "POST", p, "{bad", 400);
  cJSON_Delete(j);
  r = lc_sd_req(&d, "POST", p, "{\"channels\":[\"values\"]}", LC_SD_TOKEN_B, NULL);
  ck_assert_int_eq(r.code, 404);
  lc_sresp_free(&r);
  /* The two streams stay open until the daemon stops. */
  ck_assert_int_eq(lc_test_exit_code(lc_sd_stop(&d, SIGTERM)), 0);
  pclose(sf);
  pclose(f);
  lc_sd_rm(&d);
  lc_mock_stop(&m);
}
END_TEST

Suite *serve_stream_suite(void) {
  Suite *s = suite_create("serve_stream");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, token_deltas_live_and_resumed);
  tcase_add_test(tc, no_false_gap);
  tcase_add_test(tc, token_deltas_across_kill_mid_call);
  tcase_add_test(tc, thread_stream_and_counts);
  tcase_add_test(tc, thread_stream_joins_the_active_run);
  tcase_add_test(tc, assistant_versions_and_graph);
  tcase_add_test(tc, protocol_commands_and_channels);
  suite_add_tcase(s, tc);
  return s;
}
