/* apimetrics.c: GET /metrics (apimetrics.h). */
#include <stdio.h>
#include <string.h>

#include "apimetrics.h"
#include "apireq.h"
#include "apiview.h"
#include "serve.h"

/* A label value, escaped as the text format says. */
static void put_label(FILE *f, const char *v) {
  for (; *v; v++) {
    if (*v == '\n') {
      fputs("\\n", f);
      continue;
    }
    if (*v == '"' || *v == '\\') fputc('\\', f);
    fputc(*v, f);
  }
}

enum MHD_Result lc_api_metrics(struct lc_serve *s, struct MHD_Connection *c) {
  char *b = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&b, &n);
  if (!f) return MHD_NO;
  fprintf(f, "# HELP luact_http_requests_total HTTP requests answered.\n"
             "# TYPE luact_http_requests_total counter\nluact_http_requests_total %ld\n",
          atomic_load(&s->http_requests));
  fprintf(f, "# HELP luact_http_errors_total HTTP requests answered with 4xx or 5xx.\n"
             "# TYPE luact_http_errors_total counter\nluact_http_errors_total %ld\n",
          atomic_load(&s->http_errors));
  fprintf(f, "# HELP luact_http_rejected_total Requests refused by a limit or by auth.\n"
             "# TYPE luact_http_rejected_total counter\n"
             "luact_http_rejected_total{reason=\"body_size\"} %ld\n"
             "luact_http_rejected_total{reason=\"auth\"} %ld\n"
             "luact_http_rejected_total{reason=\"streams\"} %ld\n",
          atomic_load(&s->body_rejected), atomic_load(&s->auth_rejected),
          atomic_load(&s->streams_rejected));
  long groups = 0, writes = 0;
  lc_dstore_stats(s->ds, &groups, &writes);
  fprintf(f, "# HELP luact_serve_table_commits_total Commits of the daemon's tables (grouped).\n"
             "# TYPE luact_serve_table_commits_total counter\nluact_serve_table_commits_total %ld\n"
             "# HELP luact_serve_table_writes_total Writes to the daemon's tables, in those "
             "commits.\n"
             "# TYPE luact_serve_table_writes_total counter\nluact_serve_table_writes_total %ld\n",
          groups, writes);
  fprintf(f, "# HELP luact_api_page_steps_total Rows weighed by the list routes' paging.\n"
             "# TYPE luact_api_page_steps_total counter\nluact_api_page_steps_total %ld\n",
          atomic_load(&lc_serve_page_steps));
  fprintf(f, "# HELP luact_runs_created_total Runs accepted.\n"
             "# TYPE luact_runs_created_total counter\nluact_runs_created_total %ld\n",
          atomic_load(&s->runs_created));
  fprintf(f, "# HELP luact_runs_ended_total Run executions that ended, by outcome.\n"
             "# TYPE luact_runs_ended_total counter\n"
             "luact_runs_ended_total{status=\"finished\"} %ld\n"
             "luact_runs_ended_total{status=\"failed\"} %ld\n"
             "luact_runs_ended_total{status=\"cancelled\"} %ld\n"
             "luact_runs_ended_total{status=\"waiting_input\"} %ld\n",
          atomic_load(&s->runs_done_ok), atomic_load(&s->runs_done_failed),
          atomic_load(&s->runs_done_cancelled), atomic_load(&s->runs_interrupted));
  /* By agent: the agent names are the folder's files, a bounded set;
   * quotes, backslashes and newlines escaped as the text format says. */
  fprintf(f, "# HELP luact_agent_runs_created_total Runs accepted, by agent.\n"
             "# TYPE luact_agent_runs_created_total counter\n");
  for (int i = 0; i < s->nagents; i++) {
    fputs("luact_agent_runs_created_total{agent=\"", f);
    put_label(f, s->agents[i].id);
    fprintf(f, "\"} %ld\n", atomic_load(&s->agents[i].created));
  }
  fprintf(f, "# HELP luact_agent_runs_ended_total Run executions ended, by agent and status.\n"
             "# TYPE luact_agent_runs_ended_total counter\n");
  for (int i = 0; i < s->nagents; i++)
    for (int k = 0; lc_serve_end_names[k]; k++) {
      fputs("luact_agent_runs_ended_total{agent=\"", f);
      put_label(f, s->agents[i].id);
      fprintf(f, "\",status=\"%s\"} %ld\n", lc_serve_end_names[k],
              atomic_load(&s->agents[i].ended[k]));
    }
  fprintf(f, "# HELP luact_effects_total Effects of run executions: answered from the journal "
             "(replayed) or run.\n# TYPE luact_effects_total counter\n"
             "luact_effects_total{how=\"replayed\"} %ld\nluact_effects_total{how=\"ran\"} %ld\n",
          atomic_load(&s->effects_replayed), atomic_load(&s->effects_ran));
  fprintf(f, "# HELP luact_effect_duration_seconds Effects run live, by kind (from the "
             "journal's latency).\n# TYPE luact_effect_duration_seconds summary\n");
  for (int k = 0; lc_serve_kind_names[k]; k++)
    fprintf(f,
            "luact_effect_duration_seconds_sum{kind=\"%s\"} %.6f\n"
            "luact_effect_duration_seconds_count{kind=\"%s\"} %ld\n",
            lc_serve_kind_names[k], atomic_load(&s->kind_us[k]) / 1e6, lc_serve_kind_names[k],
            atomic_load(&s->kind_n[k]));
  fprintf(f, "# HELP luact_llm_tokens_total LLM tokens of runs' calls.\n"
             "# TYPE luact_llm_tokens_total counter\n"
             "luact_llm_tokens_total{direction=\"input\"} %ld\n"
             "luact_llm_tokens_total{direction=\"output\"} %ld\n",
          atomic_load(&s->llm_tokens_in), atomic_load(&s->llm_tokens_out));
  fprintf(f, "# HELP luact_worker_passes_total Passes of the run workers' loops.\n"
             "# TYPE luact_worker_passes_total counter\nluact_worker_passes_total %ld\n"
             "# HELP luact_worker_steps_total Runs stepped by those passes (the runs with "
             "work to do).\n# TYPE luact_worker_steps_total counter\n"
             "luact_worker_steps_total %ld\n",
          atomic_load(&s->worker_passes), atomic_load(&s->worker_steps));
  fprintf(f, "# HELP luact_runs_resumed_total Runs continued from their journal.\n"
             "# TYPE luact_runs_resumed_total counter\nluact_runs_resumed_total %ld\n",
          atomic_load(&s->runs_resumed));
  pthread_mutex_lock(&s->mu);
  int act = s->nactive, q = s->nqueued;
  pthread_mutex_unlock(&s->mu);
  fprintf(f, "# HELP luact_runs Runs by state in this process.\n# TYPE luact_runs gauge\n"
             "luact_runs{state=\"running\"} %d\nluact_runs{state=\"queued\"} %d\n",
          act, q);
  cJSON *rows = lc_api_query(s, "SELECT status, count(*) AS n FROM runs GROUP BY status", "");
  const cJSON *r;
  fprintf(f, "# HELP luact_store_runs Runs in the store by status.\n"
             "# TYPE luact_store_runs gauge\n");
  cJSON_ArrayForEach(r, rows) {
    const char *st = jstr(r, "status");
    const cJSON *k = cJSON_GetObjectItem(r, "n");
    if (st && strspn(st, "abcdefghijklmnopqrstuvwxyz_") == strlen(st))
      fprintf(f, "luact_store_runs{status=\"%s\"} %.0f\n", st, k->valuedouble);
  }
  cJSON_Delete(rows);
  fprintf(f, "# HELP luact_run_queue_wait_seconds Time runs waited in the queue.\n"
             "# TYPE luact_run_queue_wait_seconds summary\n"
             "luact_run_queue_wait_seconds_sum %.6f\nluact_run_queue_wait_seconds_count %ld\n",
          atomic_load(&s->queue_wait_us) / 1e6, atomic_load(&s->queue_waits));
  fprintf(f, "# HELP luact_run_duration_seconds Time of run executions.\n"
             "# TYPE luact_run_duration_seconds summary\n"
             "luact_run_duration_seconds_sum %.6f\nluact_run_duration_seconds_count %ld\n",
          atomic_load(&s->run_us) / 1e6, atomic_load(&s->runs_timed));
  fprintf(f, "# HELP luact_sse_clients Open event streams, waits and WebSockets.\n"
             "# TYPE luact_sse_clients gauge\nluact_sse_clients %ld\n",
          atomic_load(&s->sse_clients));
  fclose(f);
  return lc_api_reply_text(c, 200, "text/plain; version=0.0.4", b, n);
}
