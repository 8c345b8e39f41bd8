/* check_serve_crash.c: `luact serve` SIGKILLed while 50 runs and 20
 * streams are live, at the durable-runs crash points (LUACT_CRASH_AT, the
 * daemon kills itself there) and at random moments (the test kills it
 * after a random number of stream events), and restarted each time:
 * every accepted run finishes, once, with its result; every stream,
 * resumed from its last id, gets exactly the events it had not seen (the
 * ids of all its pieces together are the run's full stream: no
 * duplicate, no gap). Waits are on observable state only: HTTP answers,
 * stream events, the daemon's exit. */
#include <check.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util_common.h"
#include "util_mock.h"
#include "util_serve.h"

enum { NRUNS = 50, NSTREAMS = 20, STEPS = 6, ROUNDS = 10 };

/* Journaled effects of several kinds (sleep, clock, store); the last one
 * records the result under the run's id. */
static const char work_agent[] =
    "return function(input, ctx)\n"
    "  local n = 0\n"
    "  if input.llm then\n" /* an LLM call that streams its tokens */
    "    local r = luact.react{ model = 'openai:mock-gpt', tools = {}, stream = true,\n"
    "      question = 'tell' }\n"
    "    if r.answer ~= 'Tokens, one after another, until the end.' then error(r.answer) end\n"
    "  end\n"
    "  for i = 1, input.steps do luact.sleep(0.002); if luact.now() > 0 then n = n + 1 end end\n"
    "  luact.store.put({'done'}, ctx.run_id, {n = n})\n"
    "  return {done = n, tag = input.tag}\n"
    "end\n";

struct run {
  char key[40];  /* Idempotency-Key: a retry after a crash is the same run */
  char id[40];   /* "" until a 2xx told it */
};

/* Every LLM_EVERY-th run makes a streamed LLM call; its stream asks for
 * the token deltas (messages-tuple). */
enum { LLM_EVERY = 5 };

struct stream {
  int run;          /* index into runs, -1: none */
  int gaps;         /* luact/gap events (token streams, after a restart) */
  char last[96];    /* the last id received ("" none) */
  char **ids;       /* every id received, in order, over all connections */
  int nids, cap;
  int ended;        /* its end event came */
  CURL *h;
  struct curl_slist *hdr;
  char *buf;
  size_t len;
};

static long events_seen; /* events received this round (random kills) */

static size_t on_sse(char *p, size_t sz, size_t n, void *ud) {
  struct stream *s = ud;
  char *b = realloc(s->buf, s->len + sz * n + 1);
  if (!b) return 0;
  memcpy(b + s->len, p, sz * n);
  s->buf = b;
  s->len += sz * n;
  b[s->len] = 0;
  for (size_t i = 0; i + 1 < sz * n; i++) events_seen += p[i] == '\n' && p[i + 1] == '\n';
  return sz * n;
}

static void open_stream(CURLM *m, struct stream *s, const struct run *r, int port) {
  s->h = curl_easy_init();
  char url[300], h[160];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/runs/%s/stream%s", port, r->id,
           s->run % LLM_EVERY ? "" : "?stream_mode=messages-tuple");
  curl_easy_setopt(s->h, CURLOPT_URL, url);
  s->hdr = curl_slist_append(NULL, "Authorization: Bearer " LC_SD_TOKEN);
  if (s->last[0]) {
    snprintf(h, sizeof h, "Last-Event-ID: %s", s->last);
    s->hdr = curl_slist_append(s->hdr, h);
  }
  curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, s->hdr);
  curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, on_sse);
  curl_easy_setopt(s->h, CURLOPT_WRITEDATA, s);
  s->buf = calloc(1, 1);
  s->len = 0;
  curl_multi_add_handle(m, s->h);
}

/* What a connection brought: ids after the last one, none twice. */
static void close_stream(CURLM *m, struct stream *s) {
  if (!s->h) return;
  curl_multi_remove_handle(m, s->h);
  curl_easy_cleanup(s->h);
  curl_slist_free_all(s->hdr);
  s->h = NULL;
  struct lc_sev *ev;
  int n = lc_sev_parse(s->buf, &ev);
  for (int i = 0; i < n; i++) {
    if (!strcmp(ev[i].event, "luact/gap")) {
      /* Only token deltas can be lost, and only in a restart. */
      ck_assert_int_eq(s->run % LLM_EVERY, 0);
      s->gaps++;
    }
    if (!strcmp(ev[i].event, "end")) s->ended = 1;
    if (!ev[i].id[0]) continue;
    if (s->last[0])
      ck_assert_msg(lc_sev_idcmp(s->last, ev[i].id) < 0, "stream of run %d: %s after %s",
                    s->run, ev[i].id, s->last);
    snprintf(s->last, sizeof s->last, "%s", ev[i].id);
    if (s->nids == s->cap) s->ids = realloc(s->ids, (size_t)(s->cap = s->cap * 2 + 16) * sizeof *s->ids);
    s->ids[s->nids++] = strdup(ev[i].id);
  }
  lc_sev_free(ev, n);
  free(s->buf);
  s->buf = NULL;
}

static int is_delta(const char *id) {
  long a, b, c;
  return sscanf(id, "%ld.%ld.%ld", &a, &b, &c) == 3 && b == 0;
}

/* Creates (or, after a crash, asks again for) every run not yet accepted. */
static void create_runs(struct lc_sd *d, struct run *runs, int n) {
  for (int i = 0; i < n; i++) {
    if (runs[i].id[0]) continue;
    char body[200], h[80];
    snprintf(body, sizeof body,
             "{\"assistant_id\":\"work\",\"input\":{\"steps\":%d,\"tag\":%d,\"llm\":%s}}",
             STEPS, i % NRUNS, i % LLM_EVERY ? "false" : "true");
    snprintf(h, sizeof h, "Idempotency-Key: %s", runs[i].key);
    struct lc_sresp r = lc_sd_req_try(d, "POST", "/runs", body, LC_SD_TOKEN, h);
    if (r.code == 200) {
      cJSON *j = cJSON_Parse(r.body);
      snprintf(runs[i].id, sizeof runs[i].id, "%s",
               cJSON_GetObjectItem(j, "run_id")->valuestring);
      cJSON_Delete(j);
    } else {
      ck_assert_int_eq(r.code, 0); /* no answer: the daemon died; else a 2xx */
    }
    lc_sresp_free(&r);
    if (!r.code) return; /* the rest next round */
  }
}

static int daemon_gone(struct lc_sd *d) {
  int st;
  if (waitpid(d->pid, &st, WNOHANG) != d->pid) return 0;
  d->pid = 0;
  return 1;
}

/* One life of the daemon: starts it (with crash, if any), tops the runs
 * up, keeps NSTREAMS streams open, until it dies (crash point, or our
 * SIGKILL after kill_after events; 0: never) or every stream ended. */
static int round_(struct lc_sd *d, int round, const char *crash, long kill_after,
                  struct run *runs, struct stream *st) {
  snprintf(d->env[1], sizeof d->env[1], "LUACT_CRASH_AT=%s", crash ? crash : "");
  if (lc_sd_try_start(d)) {
    /* Died at start (the crash point while resuming runs): that was this
     * life; the next start is without it, so a start always comes. */
    d->env[1][0] = 0;
    lc_sd_start(d);
  }
  CURLM *m = curl_multi_init();
  events_seen = 0;
  /* The earlier streams that did not end resume from their last id. */
  for (int k = 0; k < round * NSTREAMS; k++)
    if (st[k].run >= 0 && !st[k].ended && runs[st[k].run].id[0])
      open_stream(m, &st[k], &runs[st[k].run], d->port);
  /* A new batch of NRUNS (and the earlier ones not accepted yet), with
   * NSTREAMS new streams opened as soon as their runs are accepted, so the
   * crash finds them live. */
  for (int i = 0; i < (round + 1) * NRUNS; i++) {
    if (runs[i].id[0]) continue;
    create_runs(d, runs, i + 1);
    if (!runs[i].id[0]) break; /* the daemon died */
    int k = i - round * NRUNS;
    if (k >= 0 && k < NSTREAMS) {
      st[round * NSTREAMS + k].run = i;
      open_stream(m, &st[round * NSTREAMS + k], &runs[i], d->port);
    }
    int running;
    curl_multi_perform(m, &running);
    if (kill_after && events_seen >= kill_after) break; /* a random moment: mid-batch */
  }
  int how = 0; /* 1: it died (a crash point), 2: our kill, 0: every stream ended */
  for (;;) {
    int running = 0;
    curl_multi_perform(m, &running);
    if (!d->pid || daemon_gone(d)) {
      how = 1;
      break;
    }
    if (kill_after && events_seen >= kill_after) {
      lc_sd_stop(d, SIGKILL);
      how = 2;
      break;
    }
    if (!running) {
      /* Every stream ended, or the daemon just died (its sockets closed
       * before its exit shows): ask it. */
      struct lc_sresp h = lc_sd_req_try(d, "GET", "/healthz", NULL, NULL, NULL);
      if (!h.code) {
        int stw;
        waitpid(d->pid, &stw, 0);
        d->pid = 0;
        how = 1;
      }
      lc_sresp_free(&h);
      break;
    }
    curl_multi_poll(m, NULL, 0, 100, NULL);
  }
  /* Let curl see the closed connections, then collect. */
  int running = 1;
  for (int i = 0; i < 50 && running; i++) {
    curl_multi_perform(m, &running);
    if (running) curl_multi_poll(m, NULL, 0, 20, NULL);
  }
  for (int k = 0; k < (round + 1) * NSTREAMS; k++) close_stream(m, &st[k]);
  curl_multi_cleanup(m);
  if (d->pid) lc_sd_stop(d, SIGKILL); /* a round that ended: the next starts afresh */
  if (getenv("LC_TEST_VERBOSE"))
    fprintf(stderr, "round %s/%ld: %s after %ld events\n", crash ? crash : "-", kill_after,
            how == 1 ? "crashed" : how == 2 ? "killed" : "streams ended", events_seen);
  return how;
}

START_TEST(crash_points_and_random_kills) {
  struct lc_mock mock;
  ck_assert_int_eq(lc_mock_start(&mock, "{\"rules\": [{\"match\": {\"path\": "
                                        "\"/v1/chat/completions\"}, \"reply\": {\"openai\": "
                                        "{\"text\": \"Tokens, one after another, until the "
                                        "end.\"}, \"gap_ms\": 1}}]}"),
                   0);
  struct lc_sd d;
  lc_sd_setup(&d);
  lc_sd_agent(&d, "work", work_agent);
  snprintf(d.env[0], sizeof d.env[0], "OPENAI_BASE_URL=%s/v1", mock.base_url);
  snprintf(d.args, sizeof d.args, "--max-runs 64");
  static struct run runs[ROUNDS * NRUNS];
  static struct stream st[ROUNDS * NSTREAMS];
  memset(runs, 0, sizeof runs);
  memset(st, 0, sizeof st);
  for (int i = 0; i < ROUNDS * NRUNS; i++)
    snprintf(runs[i].key, sizeof runs[i].key, "crash-run-%d", i);
  for (int k = 0; k < ROUNDS * NSTREAMS; k++) st[k].run = -1;
  srand((unsigned)getpid());
  const char *points[] = {"after_intent", "before_result", "after_result",
                          "before_final_status", "after_intent@store", "before_result@clock"};
  char crash[80];
  int round = 0, crashed = 0, killed = 0;
  for (size_t i = 0; i < sizeof points / sizeof *points; i++) {
    /* The n-th time, n at random: among the first effects of the batch */
    snprintf(crash, sizeof crash, "%s#%d", points[i], 10 + rand() % 40);
    crashed += round_(&d, round++, crash, 0, runs, st) == 1;
  }
  /* A round's 20 new streams bring 270-420 events (measured): a kill
   * after at most 149 always comes before they all end. */
  for (int i = 0; i < 3; i++) killed += round_(&d, round++, NULL, 10 + rand() % 140, runs, st) == 2;
  /* A life without a crash: every stream ends; then one to check. */
  round_(&d, round++, NULL, 0, runs, st);
  lc_sd_start(&d);
  create_runs(&d, runs, ROUNDS * NRUNS);
  ck_assert_int_eq(round, ROUNDS);
  /* The lives ended at their crash point or our kill (the crash points
   * that only few effects reach may miss: a life whose streams all ended
   * first is possible, not the rule). */
  ck_assert_int_ge(crashed, 4);
  ck_assert_int_ge(killed, 2);
  for (int i = 0; i < ROUNDS * NRUNS; i++) /* every run accepted ... */
    ck_assert_msg(runs[i].id[0], "run %d never accepted", i);
  /* ... finished, with its result, and its effects' results each once. */
  for (int i = 0; i < ROUNDS * NRUNS; i++) {
    char p[200];
    snprintf(p, sizeof p, "/runs/%s/join", runs[i].id);
    cJSON *j = lc_sd_expect(&d, "GET", p, NULL, 200);
    ck_assert_int_eq(cJSON_GetObjectItem(j, "done")->valueint, STEPS);
    ck_assert_int_eq(cJSON_GetObjectItem(j, "tag")->valueint, i % NRUNS);
    cJSON_Delete(j);
    snprintf(p, sizeof p, "/runs/%s", runs[i].id);
    j = lc_sd_expect(&d, "GET", p, NULL, 200);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "luact_status")->valuestring, "finished");
    cJSON_Delete(j);
  }
  char cmd[1400], out[64] = "";
  snprintf(cmd, sizeof cmd,
           "sqlite3 %s \"SELECT count(*) FROM (SELECT run_id, json_extract(line,'$.id') AS e, "
           "count(*) AS n FROM journal WHERE json_extract(line,'$.type')='result' GROUP BY 1,2 "
           "HAVING n > 1)\"",
           d.store);
  FILE *f = popen(cmd, "r");
  ck_assert_ptr_nonnull(f);
  ck_assert_ptr_nonnull(fgets(out, sizeof out, f));
  pclose(f);
  ck_assert_int_eq(atoi(out), 0);
  /* A finished run never ran again: at most one run_end finished each,
   * over every life's log. */
  for (int i = 0; i < ROUNDS * NRUNS; i++) {
    snprintf(cmd, sizeof cmd,
             "cat %s/log* | grep '\"run_end\"' | grep '%s' | grep -c '\"msg\":\"finished\"'",
             d.dir, runs[i].id);
    f = popen(cmd, "r");
    out[0] = 0;
    ck_assert_ptr_nonnull(fgets(out, sizeof out, f));
    pclose(f);
    ck_assert_int_le(atoi(out), 1);
  }
  /* Each stream's pieces together are the run's whole stream (token
   * deltas: those this daemon still has; the journaled events all). */
  int streamed = 0, deltas = 0;
  for (int k = 0; k < ROUNDS * NSTREAMS; k++) {
    if (st[k].run < 0) continue;
    streamed++;
    ck_assert_msg(st[k].ended, "stream %d never ended", k);
    char p[200];
    snprintf(p, sizeof p, "/runs/%s/stream", runs[st[k].run].id);
    struct lc_sresp r = lc_sd_req(&d, "GET", p, NULL, LC_SD_TOKEN, NULL);
    struct lc_sev *ev;
    int n = lc_sev_parse(r.body, &ev), j = 0;
    for (int i = 0; i < n; i++) {
      if (!ev[i].id[0]) continue;
      while (j < st[k].nids && is_delta(st[k].ids[j])) {
        deltas++;
        j++;
      }
      ck_assert_msg(j < st[k].nids, "stream %d misses %s", k, ev[i].id);
      ck_assert_str_eq(st[k].ids[j], ev[i].id);
      j++;
    }
    for (; j < st[k].nids; j++) ck_assert(is_delta(st[k].ids[j]));
    lc_sev_free(ev, n);
    lc_sresp_free(&r);
    for (int i = 0; i < st[k].nids; i++) free(st[k].ids[i]);
    free(st[k].ids);
  }
  ck_assert_int_ge(streamed, NSTREAMS);
  ck_assert_int_gt(deltas, 0); /* the token streams got deltas */
  ck_assert_int_eq(lc_test_exit_code(lc_sd_stop(&d, SIGTERM)), 0);
  lc_sd_rm(&d);
  lc_mock_stop(&mock);
}
END_TEST

Suite *serve_crash_suite(void) {
  Suite *s = suite_create("serve_crash");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 280);
  tcase_add_test(tc, crash_points_and_random_kills);
  suite_add_tcase(s, tc);
  return s;
}
