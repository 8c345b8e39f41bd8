/* apicmds.c: the Agent Protocol's thread commands (apicmds.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apicmds.h"
#include "apireq.h"
#include "apiruns.h"
#include "apiview.h"
#include "inbox.h"
#include "serve.h"
#include "tstate.h"

/* The Agent Protocol's streaming commands answer 200 with an envelope:
 * {"type": "success", "id", "result"} or {"type": "error", "id", "error",
 * "message"}. */
cJSON *lc_api_cmd_env(const cJSON *id, cJSON *result, const char *error,
                      const char *message) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "type", result ? "success" : "error");
  cJSON_AddItemToObject(o, "id", id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull());
  if (result) {
    cJSON_AddItemToObject(o, "result", result);
  } else {
    cJSON_AddStringToObject(o, "error", error);
    cJSON_AddStringToObject(o, "message", message);
  }
  return o;
}

static cJSON *cmd_fail(unsigned *code, char *why, size_t wn, unsigned c, const char *msg) {
  *code = c;
  snprintf(why, wn, "%s", msg);
  return NULL;
}

/* POST /threads/{id}/commands (and a WebSocket's commands, c NULL): run.start (a new run; the answer when the
 * thread's run waits for one), input.respond (the answer, by interrupt id:
 * the waiting run's id) and state.get. The thread is created by the first
 * run.start when it does not exist. */
cJSON *lc_api_command_exec(struct lc_serve *s, struct MHD_Connection *c, const char *tenant,
                           const char *thread, const cJSON *body, unsigned *code, char *why,
                           size_t wn) {
  const cJSON *id = cJSON_GetObjectItem(body, "id");
  const char *method = jstr(body, "method");
  const cJSON *params = cJSON_GetObjectItem(body, "params");
  if (!cJSON_IsObject(body) || !cJSON_IsNumber(id) || id->valuedouble < 0 || !method ||
      (params && !cJSON_IsObject(params)))
    return cmd_fail(code, why, wn, 422, "a command is {\"id\": N, \"method\": M, \"params\": {...}}");
  cJSON *trow = lc_api_thread_row(s, tenant, thread);
  int start = !strcmp(method, "run.start"), respond = !strcmp(method, "input.respond");
  if (!trow) {
    cJSON *ex = lc_api_query(s, "SELECT tenant FROM d_threads WHERE id=?", "s", thread);
    int taken = cJSON_GetArraySize(ex) > 0; /* another tenant's: not told */
    cJSON_Delete(ex);
    if (!start || taken || strlen(thread) > 64) return cmd_fail(code, why, wn, 404, "thread not found");
  }
  if (!strcmp(method, "input.inject")) { /* for the run's next question (inbox.c) */
    const char *ecode = NULL;
    char m[512] = "";
    cJSON *r = lc_inbox_inject(s, tenant, thread, params, &ecode, m, sizeof m);
    cJSON_Delete(trow);
    return lc_api_cmd_env(id, r, ecode, m);
  }
  if (trow) { /* state.listCheckpoints, state.fork, agent.getTree (tstate.c) */
    const char *ecode = NULL;
    char m[512] = "";
    cJSON *r = lc_tstate_command(s, tenant, thread, method, params, &ecode, m, sizeof m);
    if (r || ecode) {
      cJSON_Delete(trow);
      return lc_api_cmd_env(id, r, ecode, m);
    }
  }
  if (!start && !respond && strcmp(method, "state.get")) {
    cJSON_Delete(trow);
    return lc_api_cmd_env(id, NULL, "unknown_command",
                     "supported: run.start, input.respond, input.inject, state.get, "
                     "state.listCheckpoints, state.fork, agent.getTree");
  }
  if (!strcmp(method, "state.get")) {
    cJSON *st = lc_api_state_of(s, trow);
    cJSON_Delete(trow);
    return lc_api_cmd_env(id, st, NULL, NULL);
  }
  const char *st = trow ? lc_api_thread_status(s, thread) : "idle";
  if (start && !strcmp(st, "busy")) { /* the protocol: input for the active run (inbox.c) */
    const char *ecode = NULL;
    char m[512] = "";
    char *text = lc_api_answer_text(cJSON_GetObjectItem(params, "input"));
    cJSON *r = text ? lc_inbox_inject_text(s, tenant, thread, text, &ecode, m, sizeof m) : NULL;
    if (!text) snprintf(m, sizeof m, "input is required");
    free(text);
    cJSON_Delete(trow);
    return lc_api_cmd_env(id, r, ecode ? ecode : "invalid_argument", m);
  }
  cJSON *rb = cJSON_CreateObject(); /* the run request it stands for */
  const char *agent = jstr(params, "assistant_id");
  if (!agent) agent = jstr(params, "assistantId");
  if (!agent) agent = jstr(params, "agent_id");
  const cJSON *input = cJSON_GetObjectItem(params, start ? "input" : "response");
  char msg[512] = "";
  cJSON *res;
  if (respond || !strcmp(st, "interrupted")) {
    /* The answer to the thread's waiting run. */
    const char *iid = jstr(params, "interrupt_id");
    if (!iid) iid = jstr(params, "interruptId");
    cJSON *w = lc_api_query(s,
                     "SELECT d.id AS id, d.agent AS agent FROM d_runs d JOIN runs r ON "
                     "r.id=d.id WHERE d.thread_id=? AND d.deleted=0 AND "
                     "r.status='waiting_input' LIMIT 1",
                     "s", thread);
    const cJSON *wr = cJSON_GetArrayItem(w, 0);
    if (!wr || (iid && strcmp(iid, jstr(wr, "id")))) {
      cJSON_Delete(w);
      cJSON_Delete(rb);
      cJSON_Delete(trow);
      return lc_api_cmd_env(id, NULL, "no_such_interrupt",
                       "no run of this thread waits for that answer");
    }
    if (!input) {
      cJSON_Delete(w);
      cJSON_Delete(rb);
      cJSON_Delete(trow);
      return lc_api_cmd_env(id, NULL, "invalid_argument",
                       start ? "input (the answer) is required" : "response is required");
    }
    cJSON_AddStringToObject(rb, "assistant_id", agent ? agent : jstr(wr, "agent"));
    cJSON_AddItemToObject(cJSON_AddObjectToObject(rb, "command"), "resume",
                          cJSON_Duplicate(input, 1));
    cJSON_Delete(w);
  } else {
    if (!agent) {
      cJSON_Delete(rb);
      cJSON_Delete(trow);
      return lc_api_cmd_env(id, NULL, "invalid_argument", "assistant_id is required");
    }
    cJSON_AddStringToObject(rb, "assistant_id", agent);
    cJSON_AddItemToObject(rb, "input", input ? cJSON_Duplicate(input, 1) : cJSON_CreateNull());
    const cJSON *md = cJSON_GetObjectItem(params, "metadata");
    if (md) cJSON_AddItemToObject(rb, "metadata", cJSON_Duplicate(md, 1));
    cJSON_AddStringToObject(rb, "if_not_exists", "create");
  }
  cJSON *row = NULL;
  unsigned rcode = lc_api_create_run(s, c, tenant, thread, rb, &row, msg, sizeof msg);
  if (rcode == 200) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "run_id", jstr(row, "id"));
    res = lc_api_cmd_env(id, r, NULL, NULL);
  } else {
    /* The protocol's closed set of codes: an answer nothing takes is
     * no_such_interrupt; an unknown agent or a refused run invalid. */
    res = lc_api_cmd_env(id, NULL,
                    cJSON_GetObjectItem(rb, "command") && (rcode == 404 || rcode == 409)
                        ? "no_such_interrupt"
                        : "invalid_argument",
                    msg);
  }
  cJSON_Delete(row);
  cJSON_Delete(rb);
  cJSON_Delete(trow);
  return res;
}

enum MHD_Result lc_api_command_route(struct lc_serve *s, struct MHD_Connection *c,
                                      const char *tenant, const char *thread, const cJSON *body,
                                      int body_ok) {
  if (!body_ok) return lc_api_reply_err(s, c, 400, "the body is not valid JSON");
  unsigned code = 0;
  char why[200];
  cJSON *env = lc_api_command_exec(s, c, tenant, thread, body, &code, why, sizeof why);
  return env ? lc_api_reply_json(c, 200, env) : lc_api_reply_err(s, c, code, why);
}
