/* react.c: the ReAct loop as a state machine on the loop (see react.h). */
#include "react.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "lc.h"
#include "loop.h"
#include "react_parse.h"
#include "react_prompt.h"
#include "schema.h"

#define OBS_MAX_DEFAULT (16u * 1024u)

/* Where the run is. Work that follows an event (a reply, the last tool
 * result, the end) happens in the kick timer on the next pass, so host
 * callbacks never run inside a call the host made, and the LLM call is
 * never freed inside its own completion callback. */
enum phase {
  P_NEW,
  P_LLM,        /* a turn's LLM call in flight */
  P_REPLY,      /* the reply is in; kick processes it */
  P_TOOLS,      /* the host runs the batch */
  P_TOOLS_DONE, /* every result is in; kick ends the turn */
  P_FINAL,      /* the final-answer call in flight */
  P_FINAL_REPLY,
  P_END,        /* kick calls done */
  P_DONE
};

/* One action the model asked for in the current turn. */
struct pend {
  char *id;      /* native call id */
  char *name;    /* as the model wrote it (NULL when the reply did not parse) */
  char *thought;
  char *input;   /* text mode: the raw input, for the scratchpad */
  char *args_json; /* native: arguments as written, for the messages */
  cJSON *args;   /* validated arguments (or NULL) */
  char *obs;
  char *warn;    /* repeated-action warning appended to the result */
  int is_error;
  int run;       /* handed to the host */
  int cut;       /* past the step limit: no step, never checked or run (the
                    conversation still gets its result) */
  int have;      /* result in */
  double t0, tool_ms;
};

struct lc_react {
  struct lc_engine e; /* first: the base (engine.h); its template lives
                         until start builds req */
  struct lc_react_config cfg; /* scalars; the strings are e's copies */
  /* The run's one request, built at start and borrowed by every call
   * (lc_llm_call_start_borrowed): system + user, then (native) the
   * conversation, appended to as turns complete, and the tools; text mode
   * replaces the user message (the scratchpad) per turn. It is changed
   * only while no call is in flight. With cache_wire it also holds the
   * last body up to its last message (llm.h): the conversation is held
   * once, as the body the next call extends; a change other than
   * appending messages cuts or drops it (lc_llm_prefix_cut/drop). */
  struct lc_llm_request req;
  size_t cap_msgs;
  struct lc_actions actions;
  struct lc_trajectory traj;
  struct lc_react_usage usage;
  struct lc_react_host host;
  enum phase phase;
  enum lc_limit limit;
  /* text mode: the paper's scratchpad */
  struct lc_buf pad;
  /* the current turn */
  struct pend *pend;
  size_t n_pend;
  struct lc_react_call *batch;
  size_t *batch_pend; /* batch index -> pend index */
  size_t n_batch, outstanding;
  long turn_runs;   /* tool calls of this reply admitted to run */
  long turn_notrun; /* tool calls of this reply a limit kept from running */
  char *turn_text; /* the reply text */
  char *finish_answer; /* a valid finish in this turn */
  long turn_in, turn_out;
  double turn_cost, turn_llm_ms;
};

/* ---- small helpers ---- */

static char *dup0(const char *s) { return s ? lc_strdup(s) : NULL; }

/* Copies s[0..n), cut at max bytes on a UTF-8 boundary with a note. */
static char *dup_capped(const char *s, size_t n, size_t max) {
  if (n <= max) return lc_strndup(s, n);
  size_t cut = max;
  while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80) cut--;
  struct lc_buf b;
  lc_buf_init(&b, 0);
  if (lc_buf_append(&b, s, cut) ||
      lc_buf_printf(&b, "\n... (truncated: %zu of %zu bytes shown)", cut, n)) {
    lc_buf_free(&b);
    return NULL;
  }
  return lc_buf_steal(&b, NULL);
}

static void pend_clear(struct pend *p) {
  lc_free(p->id);
  lc_free(p->name);
  lc_free(p->thought);
  lc_free(p->input);
  lc_free(p->args_json);
  cJSON_Delete(p->args);
  lc_free(p->obs);
  lc_free(p->warn);
  memset(p, 0, sizeof *p);
}

static void turn_clear(struct lc_react *r) {
  for (size_t i = 0; i < r->n_pend; i++) pend_clear(&r->pend[i]);
  lc_free(r->pend);
  r->pend = NULL;
  r->n_pend = 0;
  lc_free(r->batch);
  lc_free(r->batch_pend);
  r->batch = NULL;
  r->batch_pend = NULL;
  r->n_batch = r->outstanding = 0;
  r->turn_runs = r->turn_notrun = 0;
  lc_free(r->turn_text);
  lc_free(r->finish_answer);
  r->turn_text = r->finish_answer = NULL;
  r->turn_in = r->turn_out = 0;
  r->turn_cost = r->turn_llm_ms = 0;
}

static struct pend *pend_new(struct lc_react *r) {
  struct pend *v = lc_realloc(r->pend, (r->n_pend + 1) * sizeof *v);
  if (!v) return NULL;
  r->pend = v;
  struct pend *p = &v[r->n_pend++];
  memset(p, 0, sizeof *p);
  return p;
}

static void msg_clear(struct lc_llm_msg *m) { lc_llm_msg_free(m); }

/* Appends a message to the run's request (the native conversation); takes
 * ownership of *m (cleared on failure too). Only between calls: a call in
 * flight borrows the request. */
static int conv_push(struct lc_react *r, struct lc_llm_msg *m) {
  struct lc_llm_request *q = &r->req;
  if (q->n_msgs == r->cap_msgs) {
    size_t cap = r->cap_msgs ? r->cap_msgs * 2 : 16;
    struct lc_llm_msg *v = lc_realloc(q->msgs, cap * sizeof *v);
    if (!v) {
      msg_clear(m);
      return LC_ENOMEM;
    }
    q->msgs = v;
    r->cap_msgs = cap;
  }
  q->msgs[q->n_msgs++] = *m;
  memset(m, 0, sizeof *m);
  return 0;
}

#define text_msg lc_engine_text_msg

/* Validates args against a compiled schema; the message goes in err. */
static int validate_compiled(const struct lc_schema *s, const cJSON *args,
                             char *err, size_t errlen) {
  struct lc_schema_errors e;
  int rc = lc_schema_validate(s, args, &e);
  if (rc == LC_EINVAL) {
    char *msg = lc_schema_errors_format(&e);
    snprintf(err, errlen, "%s", msg ? msg : "arguments do not match the schema");
    lc_free(msg);
    /* One line for the model: the Observation follows on the same line. */
    for (char *p = err; *p; p++)
      if (*p == '\n') *p = ';';
  } else if (rc) {
    snprintf(err, errlen, "out of memory");
  }
  lc_schema_errors_free(&e);
  return rc;
}

int lc_react_schema_validate(void *ud, const struct lc_action *act, const cJSON *args,
                             char *err, size_t errlen) {
  (void)ud;
  struct lc_schema *s = NULL;
  int rc = lc_schema_compile(act->schema, &s, err, errlen);
  if (rc) return rc;
  rc = validate_compiled(s, args, err, errlen);
  lc_schema_free(s);
  return rc;
}

/* The engine's validator (actions.h): each action's schema is compiled
 * once, at its first check, and kept with the action, so every run that
 * shares the action shares the compiled form too. A schema that does not
 * compile is not kept (the error comes back every time, as from
 * lc_react_schema_validate). */
static int engine_validate(void *ud, const struct lc_action *act, const cJSON *args,
                           char *err, size_t errlen) {
  (void)ud;
  const struct lc_schema *s;
  int rc = lc_action_compiled(act, &s, err, errlen);
  if (rc == LC_ENOMEM) snprintf(err, errlen, "out of memory");
  return rc ? rc : validate_compiled(s, args, err, errlen);
}

/* ---- lifecycle ---- */

void lc_react_config_default(struct lc_react_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->mode = LC_REACT_NATIVE;
  cfg->text_is_final = 1;
  lc_llm_opts_default(&cfg->llm);
  lc_budget_limits_default(&cfg->limits);
}

const char *lc_react_mode_name(enum lc_react_mode m) {
  return m == LC_REACT_TEXT ? "text" : "native";
}

static void on_kick(struct lc_loop *loop, struct lc_timer *t);
static void on_wall(struct lc_loop *loop, struct lc_timer *t);

int lc_react_new(const struct lc_react_config *cfg,
                 const struct lc_react_host *host, struct lc_react **out,
                 char *err, size_t errlen) {
  *out = NULL;
  if (!cfg->base || !cfg->question || !host || !host->run_tools || !host->done)
    return lc_engine_refuse(cfg->base, LC_EINVAL,
                            !cfg->question ? "no question" : "no request or host", err,
                            errlen);
  struct lc_react *r = lc_calloc(1, sizeof *r);
  if (!r) return lc_engine_refuse(cfg->base, LC_ENOMEM, "out of memory", err, errlen);
  struct lc_engine_config ec = {.base = cfg->base,
                                .instructions = cfg->instructions,
                                .question = cfg->question,
                                .examples = cfg->examples,
                                .n_examples = cfg->n_examples};
  int rc = lc_engine_init(&r->e, &ec, &r->usage.llm, on_kick, on_wall, r);
  r->cfg = *cfg;
  r->cfg.base = NULL;
  r->cfg.instructions = r->cfg.question = NULL;
  r->cfg.examples = NULL;
  r->cfg.finish = NULL; /* the set holds its own reference */
  if (!r->cfg.max_observation) r->cfg.max_observation = OBS_MAX_DEFAULT;
  r->host = *host;
  lc_trajectory_init(&r->traj);
  lc_buf_init(&r->pad, 0);
  int arc = lc_actions_init(&r->actions, engine_validate, r, cfg->finish);
  r->actions.exact = cfg->mode == LC_REACT_NATIVE;
  if (!rc) rc = arc;
  if (rc) {
    snprintf(err, errlen, "out of memory");
    lc_react_free(r);
    return LC_ENOMEM;
  }
  *out = r;
  return 0;
}

int lc_react_add_tool(struct lc_react *r, const char *name,
                      const char *description, cJSON *schema,
                      enum lc_effect effect, char *err, size_t errlen) {
  if (r->e.started) {
    cJSON_Delete(schema);
    snprintf(err, errlen, "the run has started");
    return LC_ESTATE;
  }
  int rc = lc_actions_add(&r->actions, name, description, schema, effect);
  if (rc) snprintf(err, errlen, "%s", rc == LC_ENOMEM ? "out of memory" : r->actions.err);
  return rc;
}

int lc_react_add_action(struct lc_react *r, struct lc_action *x, char *err,
                        size_t errlen) {
  if (r->e.started) {
    snprintf(err, errlen, "the run has started");
    return LC_ESTATE;
  }
  int rc = lc_actions_add_action(&r->actions, x);
  if (rc) snprintf(err, errlen, "%s", rc == LC_ENOMEM ? "out of memory" : r->actions.err);
  return rc;
}

int lc_react_set_price(struct lc_react *r, const char *model, double in,
                       double out, double cached) {
  return lc_engine_set_price(&r->e, model, in, out, cached);
}

struct lc_engine *lc_react_engine(struct lc_react *r) { return &r->e; }

void lc_react_free(struct lc_react *r) {
  if (!r) return;
  lc_engine_free(&r->e); /* first: the call in flight borrows req */
  turn_clear(r);
  lc_llm_request_free(&r->req);
  lc_buf_free(&r->pad);
  lc_actions_free(&r->actions);
  lc_trajectory_free(&r->traj);
  lc_free(r);
}

const struct lc_trajectory *lc_react_trajectory(const struct lc_react *r) { return &r->traj; }
const struct lc_react_usage *lc_react_usage(const struct lc_react *r) { return &r->usage; }
enum lc_limit lc_react_limit(const struct lc_react *r) { return r->limit; }

/* ---- ending ---- */

/* Ends the run; done runs from the kick timer on the next pass. */
static void end_run(struct lc_react *r, enum lc_traj_status st, const char *answer,
                    const char *reason) {
  lc_trajectory_end(&r->traj, st, answer, reason); /* out of memory: failed */
  lc_engine_end_call(&r->e);
  r->phase = P_END;
  if (lc_engine_defer(&r->e) < 0) {
    /* No timer slot: finish right here (we are on the loop already). */
    r->phase = P_DONE;
    r->host.done(r->host.ud, r);
  }
}

static void fail_oom(struct lc_react *r) { end_run(r, LC_TRAJ_FAILED, NULL, "out of memory"); }

/* ---- building requests ---- */

static char *system_text(const struct lc_react *r) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  int rc = 0;
  if (r->cfg.mode == LC_REACT_TEXT) {
    struct lc_react_prompt p = {.instructions = r->e.instructions,
                                .actions = &r->actions,
                                .examples = (const char *const *)r->e.examples,
                                .n_examples = r->e.n_examples,
                                .style = LC_REACT_STYLE_BRACKET};
    rc = lc_react_prompt_system(&p, &b);
  } else {
    if (r->e.instructions && *r->e.instructions)
      rc = lc_buf_printf(&b, "%s\n\n", r->e.instructions);
    if (!rc)
      rc = lc_buf_puts(&b, "Work step by step: think, call the tools you need "
                           "and read their results. When you know the answer, "
                           "call finish with it. Call finish alone, never "
                           "together with other tools.\n");
    for (size_t i = 0; !rc && i < r->e.n_examples; i++) {
      if (i == 0) rc = lc_buf_puts(&b, "\nExamples:\n");
      if (!rc) rc = lc_buf_printf(&b, "%s\n", r->e.examples[i]);
    }
  }
  if (rc) {
    lc_buf_free(&b);
    return NULL;
  }
  return lc_buf_steal(&b, NULL);
}

/* OpenAI's strict mode wants every property required and no extras, so
 * optional properties become required-but-nullable; the nulls the model
 * then sends for them are dropped again before validation (strip_nulls). */
static int strictify(cJSON *s, int depth) {
  if (!cJSON_IsObject(s) || depth > 16) return 0;
  cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
  const cJSON *ty = cJSON_GetObjectItemCaseSensitive(s, "type");
  int is_obj = cJSON_IsObject(props) || (cJSON_IsString(ty) && !strcmp(ty->valuestring, "object"));
  if (is_obj) {
    if (!cJSON_GetObjectItemCaseSensitive(s, "additionalProperties") &&
        !cJSON_AddFalseToObject(s, "additionalProperties"))
      return LC_ENOMEM;
    cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
    if (!req) {
      if (!(req = cJSON_AddArrayToObject(s, "required"))) return LC_ENOMEM;
    }
    cJSON *p;
    cJSON_ArrayForEach(p, props) {
      int found = 0;
      const cJSON *x;
      cJSON_ArrayForEach(x, req) if (cJSON_IsString(x) && !strcmp(x->valuestring, p->string)) found = 1;
      if (!found) {
        cJSON *nm = cJSON_CreateString(p->string);
        if (!nm) return LC_ENOMEM;
        cJSON_AddItemToArray(req, nm);
        cJSON *pt = cJSON_GetObjectItemCaseSensitive(p, "type");
        if (cJSON_IsString(pt)) {
          const char *two[] = {pt->valuestring, "null"};
          cJSON *arr = cJSON_CreateStringArray(two, 2);
          if (!arr) return LC_ENOMEM;
          cJSON_ReplaceItemInObjectCaseSensitive(p, "type", arr);
        }
      }
      if (strictify(p, depth + 1)) return LC_ENOMEM;
    }
  }
  cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
  return strictify(items, depth + 1);
}

static void strip_nulls(cJSON *args) {
  if (!cJSON_IsObject(args)) return;
  cJSON *c = args->child;
  while (c) {
    cJSON *next = c->next;
    if (cJSON_IsNull(c)) cJSON_Delete(cJSON_DetachItemViaPointer(args, c));
    c = next;
  }
}

static void on_llm_done(struct lc_llm_call *c, void *ud);

static const char final_note_text[] =
    "\nYou cannot take any more actions (%s). Using only what you found so "
    "far, give your best final answer now, in this form:\n"
    "Thought: <your reasoning>\nAction: finish[<the answer>]\n";
static const char final_note_native[] =
    "You cannot call any more tools (%s). Using only what you found so far, "
    "reply with your best final answer as plain text.";

/* Drops the tools from the run's request (the final-answer call offers
 * none; it is the run's last call). */
static void req_drop_tools(struct lc_llm_request *q) {
  lc_actions_llm_tools_free(q->tools, q->n_tools);
  q->tools = NULL;
  q->n_tools = 0;
  lc_llm_wire_drop(&q->tools_wire);
  lc_llm_prefix_drop(q); /* its head had the tools */
  q->tool_choice = LC_TOOL_CHOICE_AUTO;
}

/* Builds the run's request once, at start: the template's provider,
 * model, endpoint, sampling, stop and stream (moved out of it; the
 * template is freed), the text mode's stop sequences, the system prompt,
 * and (native) the user message and the tools, strictified once, or
 * (text, constrained) the reply schema. Returns 0 or LC_ENOMEM. */
static int req_init(struct lc_react *r) {
  struct lc_llm_request *b = r->e.base, *q = &r->req;
  lc_llm_request_copy_settings(q, b);
  lc_llm_request_move_reasoning(q, b);
  q->model = b->model;
  q->base_url = b->base_url;
  q->api_key = b->api_key;
  q->stop = b->stop;
  q->n_stop = b->n_stop;
  b->model = b->base_url = b->api_key = NULL;
  b->stop = NULL;
  b->n_stop = 0;
  lc_llm_request_delete(b);
  r->e.base = NULL;
  /* Built again and again as it grows: keep the body's prefix (llm.h). */
  q->cache_wire = 1;
  if (!q->model) return LC_ENOMEM; /* as a failed copy always did */
  if (r->cfg.mode == LC_REACT_TEXT) {
    size_t n_react = 0;
    const char *const *react_stops = lc_react_stop_sequences(&n_react);
    if (n_react) {
      char **v = lc_realloc(q->stop, (q->n_stop + n_react) * sizeof *v);
      if (!v) return LC_ENOMEM;
      q->stop = v;
      for (size_t i = 0; i < n_react; i++)
        if (!(q->stop[q->n_stop++] = lc_strdup(react_stops[i]))) {
          q->n_stop--;
          return LC_ENOMEM;
        }
    }
  }
  r->cap_msgs = r->cfg.mode == LC_REACT_NATIVE ? 16 : 2;
  if (!(q->msgs = lc_calloc(r->cap_msgs, sizeof *q->msgs))) return LC_ENOMEM;
  int rc = text_msg(&q->msgs[0], LC_ROLE_SYSTEM, system_text(r));
  if (rc) return rc;
  q->n_msgs = 1;
  if (r->cfg.mode == LC_REACT_TEXT) {
    if (r->cfg.constrained) {
      q->format = LC_FORMAT_JSON_SCHEMA;
      q->response_schema = lc_actions_decoding_schema(&r->actions);
      q->response_schema_name = lc_strdup("react_step");
      if (!q->response_schema || !q->response_schema_name) return LC_ENOMEM;
    }
    return 0; /* the user message is the scratchpad: per turn */
  }
  if ((rc = text_msg(&q->msgs[1], LC_ROLE_USER, lc_strdup(r->e.question)))) return rc;
  q->n_msgs = 2;
  /* The tools borrow the actions' names, descriptions and schemas (the
   * actions outlive the request); strict mode changes a schema, so it
   * strictifies a copy of its own. */
  rc = lc_actions_to_llm_tools(&r->actions, 1, &q->tools, &q->n_tools);
  for (size_t i = 0; !rc && r->cfg.strict && i < q->n_tools; i++) {
    struct lc_llm_tool *t = &q->tools[i];
    cJSON *own = cJSON_Duplicate(t->schema, 1);
    if (!own) return LC_ENOMEM;
    t->schema = own;
    t->borrowed &= ~LC_LLM_TOOL_BORROWED_SCHEMA;
    t->strict = 1;
    rc = strictify(own, 0);
  }
  /* finish is a tool too, so some call is always right; unless a plain
   * answer counts as finishing, when the model must be free not to call
   * anything. */
  q->tool_choice = r->cfg.text_is_final ? LC_TOOL_CHOICE_AUTO : LC_TOOL_CHOICE_REQUIRED;
  return rc;
}

/* Starts one LLM call on the run's request: a turn, or (final != NULL)
 * the final-answer call with the limit's reason. Text mode first puts the
 * current scratchpad in as the user message; the final-answer call adds
 * its note and drops the tools (native) or the reply schema (text): it is
 * the last call of the run. */
static int send_call(struct lc_react *r, const char *final) {
  struct lc_llm_request *q = &r->req;
  int rc = 0;
  if (r->cfg.mode == LC_REACT_TEXT) {
    struct lc_buf u;
    lc_buf_init(&u, 0);
    rc = lc_react_prompt_user(r->e.question, r->pad.data, &u);
    if (!rc && final) rc = lc_buf_printf(&u, final_note_text, final);
    lc_llm_prefix_cut(q, 1); /* the body keeps the system message */
    if (q->n_msgs > 1) msg_clear(&q->msgs[--q->n_msgs]);
    if (!rc) rc = text_msg(&q->msgs[1], LC_ROLE_USER, lc_buf_steal(&u, NULL));
    if (!rc) q->n_msgs = 2;
    lc_buf_free(&u);
    if (!rc && final && q->format != LC_FORMAT_TEXT) {
      q->format = LC_FORMAT_TEXT;
      cJSON_Delete(q->response_schema);
      lc_free(q->response_schema_name);
      q->response_schema = NULL;
      q->response_schema_name = NULL;
    }
  } else if (final) {
    struct lc_buf u;
    lc_buf_init(&u, 0);
    struct lc_llm_msg m;
    rc = lc_buf_printf(&u, final_note_native, final);
    if (!rc) rc = text_msg(&m, LC_ROLE_USER, lc_buf_steal(&u, NULL));
    if (!rc) rc = conv_push(r, &m);
    lc_buf_free(&u);
    req_drop_tools(q);
  }
  if (rc) return rc;
  r->phase = final ? P_FINAL : P_LLM;
  return lc_llm_call_start_borrowed(r->e.loop, q, &r->cfg.llm, NULL, NULL, on_llm_done, r,
                                    &r->e.call);
}

/* Called by llm_call.c from the loop when the call completes. */
static void on_llm_done(struct lc_llm_call *c, void *ud) {
  struct lc_react *r = ud;
  r->phase = r->phase == P_FINAL ? P_FINAL_REPLY : P_REPLY;
  if (lc_engine_defer(&r->e) < 0) {
    /* Cannot defer: handle it on the wall timer path is not possible
     * either; end now (done still runs from the loop). */
    r->phase = P_DONE;
    lc_trajectory_end(&r->traj, LC_TRAJ_FAILED, NULL, "out of memory");
    lc_timer_stop(r->e.loop, &r->e.wall);
    r->host.done(r->host.ud, r);
  }
}

int lc_react_start(struct lc_react *r, struct lc_loop *loop) {
  int rc = lc_engine_start(&r->e, loop, &r->cfg.limits);
  if (rc) return rc;
  rc = req_init(r);
  if (!rc) rc = send_call(r, NULL);
  if (rc) {
    lc_engine_end_call(&r->e);
    r->phase = P_NEW;
    return rc;
  }
  return 0;
}

/* ---- processing a reply ---- */

/* Charges the reply's usage; keeps the turn's numbers for its first step. */
static void charge(struct lc_react *r, const struct lc_llm_response *resp) {
  double cost = lc_engine_charge(&r->e, resp, r->req.model);
  r->traj.cost_unknown = r->usage.llm.cost_unknown;
  r->turn_in = resp->usage.input;
  r->turn_out = resp->usage.output;
  r->turn_cost = cost;
  r->turn_llm_ms = resp->latency_ms;
}

static int names_list(const struct lc_react *r, struct lc_buf *b) {
  int rc = lc_buf_puts(b, "Allowed actions: ");
  for (size_t i = 0; !rc && i < r->actions.n; i++)
    rc = lc_buf_printf(b, "%s, ", r->actions.v[i]->name);
  return rc ? rc : lc_buf_puts(b, "finish.");
}

static int set_obs(struct pend *p, const char *text, int is_error) {
  lc_free(p->obs);
  p->obs = lc_strdup(text);
  p->is_error = is_error;
  return p->obs ? 0 : LC_ENOMEM;
}

static void mark_invalid(struct lc_react *r, struct pend *p) {
  p->is_error = 1;
  lc_budget_note_invalid(&r->e.budget);
  r->usage.invalid++;
}

/* A checked tool action: the limits, then the loop guard, decide whether
 * it runs. The limits count the calls of this reply admitted before it, so
 * a reply of many calls cannot run past them (they are checked again only
 * after the whole batch has run). */
static int accept_tool(struct lc_react *r, struct pend *p, const struct lc_action *act,
                       cJSON *args) {
  p->args = args;
  struct lc_buf warn;
  lc_buf_init(&warn, 0);
  enum lc_limit lim = lc_budget_admit(&r->e.budget, r->turn_runs);
  int g = lim == LC_LIMIT_NONE ? lc_budget_note_action(&r->e.budget, act->name, args, &warn)
                               : 0;
  int rc = 0;
  if (lim != LC_LIMIT_NONE) {
    struct lc_buf b;
    lc_buf_init(&b, 0);
    rc = lc_buf_printf(&b, "Not run: the %s limit of this run was reached.",
                       lim == LC_LIMIT_TOOL_CALLS ? "tool-call"
                       : lim == LC_LIMIT_TOKENS   ? "token"
                                                  : "cost");
    if (!rc) rc = set_obs(p, b.data, 1);
    lc_buf_free(&b);
    r->turn_notrun++;
  } else if (g < 0) {
    rc = g;
  } else if (g == 2) {
    struct lc_buf b;
    lc_buf_init(&b, 0);
    rc = lc_buf_printf(&b, "Not run: %s was called with exactly this input too "
                           "many times.", act->name);
    if (!rc) rc = set_obs(p, b.data, 1);
    lc_buf_free(&b);
  } else {
    p->run = 1;
    r->turn_runs++;
    if (g == 1 && !(p->warn = lc_buf_steal(&warn, NULL))) rc = LC_ENOMEM;
  }
  lc_buf_free(&warn);
  /* The trajectory shows the canonical name (Search -> search). */
  if (!rc && p->name && strcmp(p->name, act->name)) {
    char *nm = lc_strdup(act->name);
    if (!nm) return LC_ENOMEM;
    lc_free(p->name);
    p->name = nm;
  }
  return rc;
}

static const char *finish_answer_of(const cJSON *args) {
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(args, "answer");
  return cJSON_IsString(a) ? a->valuestring : NULL;
}

static int process_text_reply(struct lc_react *r, const struct lc_llm_response *resp) {
  const char *text = resp->text ? resp->text : "";
  size_t len = resp->text ? resp->text_len : 0;
  struct lc_react_step st;
  int prc = lc_react_parse(text, len, &st);
  if (prc == LC_ENOMEM) {
    lc_react_step_free(&st);
    return LC_ENOMEM;
  }
  struct pend *p = pend_new(r);
  int rc = p ? 0 : LC_ENOMEM;
  if (!rc && st.thought && !(p->thought = lc_strdup(st.thought))) rc = LC_ENOMEM;
  if (!rc && st.action && !(p->name = lc_strdup(st.action))) rc = LC_ENOMEM;
  if (!rc && st.input && !(p->input = lc_strndup(st.input, st.input_len))) rc = LC_ENOMEM;
  if (!rc && prc) {
    /* Did not parse: the scratchpad shows the raw reply, then what was
     * wrong (in p->input, the name stays NULL). */
    const char **names = NULL;
    size_t n = 0;
    struct lc_buf b;
    lc_buf_init(&b, 0);
    rc = lc_actions_names(&r->actions, &names, &n);
    if (!rc) rc = lc_react_format_error(&st, LC_REACT_STYLE_BRACKET, names, n, &b);
    if (!rc) rc = set_obs(p, b.data, 1);
    lc_free(names);
    lc_buf_free(&b);
    lc_free(p->name);
    p->name = NULL;
    if (!rc) mark_invalid(r, p);
  } else if (!rc && st.is_finish) {
    cJSON *a = cJSON_CreateObject();
    if (!a || !cJSON_AddStringToObject(a, "answer", st.answer)) rc = LC_ENOMEM;
    p->args = a;
    lc_free(p->name);
    if (!rc && !(p->name = lc_strdup("finish"))) rc = LC_ENOMEM;
    if (!rc && !(r->finish_answer = lc_strdup(st.answer))) rc = LC_ENOMEM;
  } else if (!rc) {
    const struct lc_action *act;
    cJSON *args;
    char err[1024];
    int c = lc_actions_check(&r->actions, st.action, st.args,
                             st.args ? NULL : (st.input ? st.input : ""), &act, &args,
                             err, sizeof err);
    if (c == LC_ENOMEM) {
      rc = c;
    } else if (c) {
      rc = set_obs(p, err, 1);
      if (!rc) mark_invalid(r, p);
    } else if (act == r->actions.finish) {
      /* "Action: finish {\"answer\": ...}" and friends. */
      const char *ans = finish_answer_of(args);
      p->args = args;
      if (ans && *ans) {
        if (!(r->finish_answer = lc_strdup(ans))) rc = LC_ENOMEM;
      } else {
        rc = set_obs(p, "Invalid reply: finish has no answer.", 1);
        if (!rc) mark_invalid(r, p);
      }
    } else {
      rc = accept_tool(r, p, act, args);
    }
  }
  if (!rc && st.observation_cut) {
    char *w = NULL;
    struct lc_buf b;
    lc_buf_init(&b, 0);
    rc = lc_buf_printf(&b, "%s%s", p->warn ? p->warn : "",
                       (p->warn ? "\n" : ""));
    if (!rc)
      rc = lc_buf_puts(&b, "Note: your reply contained an Observation you wrote "
                           "yourself; it was ignored. Stop after the Action line "
                           "and wait for the real Observation.");
    if (!rc) w = lc_buf_steal(&b, NULL);
    lc_buf_free(&b);
    if (!rc && !w) rc = LC_ENOMEM;
    if (!rc) {
      lc_free(p->warn);
      p->warn = w;
    }
  }
  lc_react_step_free(&st);
  return rc;
}

static int process_native_reply(struct lc_react *r, const struct lc_llm_response *resp) {
  int rc = 0;
  if (resp->n_tool_calls == 0 && r->cfg.text_is_final && resp->text_len > 0) {
    /* The conventional end of a native tool-calling loop: an answer. */
    struct pend *p = pend_new(r);
    if (!p) return LC_ENOMEM;
    if (!(p->name = lc_strdup("finish"))) return LC_ENOMEM;
    if (!(p->args = cJSON_CreateObject()) ||
        !cJSON_AddStringToObject(p->args, "answer", resp->text))
      return LC_ENOMEM;
    if (!(r->finish_answer = lc_strndup(resp->text, resp->text_len))) return LC_ENOMEM;
    return 0;
  }
  if (resp->n_tool_calls == 0) {
    struct pend *p = pend_new(r);
    if (!p) return LC_ENOMEM;
    if (resp->text && !(p->thought = lc_strndup(resp->text, resp->text_len))) return LC_ENOMEM;
    struct lc_buf b;
    lc_buf_init(&b, 0);
    rc = lc_buf_puts(&b, "Invalid reply: you answered with text but called no "
                         "tool. Call one of the tools, or call finish with your "
                         "final answer. ");
    if (!rc) rc = names_list(r, &b);
    if (!rc) rc = set_obs(p, b.data, 1);
    lc_buf_free(&b);
    if (!rc) mark_invalid(r, p);
    return rc;
  }
  size_t n = resp->n_tool_calls;
  /* Each call is a step: those past the step limit are not checked, not
   * run and not recorded (a model cannot buy more steps by asking for them
   * in one reply); each still gets a result, which the conversation needs. */
  long left = lc_budget_steps_left(&r->e.budget);
  for (size_t i = 0; !rc && i < n; i++) {
    const struct lc_llm_tool_call *c = &resp->tool_calls[i];
    struct pend *p = pend_new(r);
    if (!p) return LC_ENOMEM;
    p->id = dup0(c->id);
    p->name = dup0(c->name ? c->name : "");
    p->args_json = dup0(c->args_json ? c->args_json : "{}");
    if (!p->id || !p->name || !p->args_json) return LC_ENOMEM;
    if ((long long)i >= (long long)left) {
      p->cut = 1;
      r->turn_notrun++;
      rc = set_obs(p, "Not run: the step limit of this run was reached.", 1);
      continue;
    }
    if (i == 0 && resp->text && !(p->thought = lc_strndup(resp->text, resp->text_len)))
      return LC_ENOMEM;
    const struct lc_action *act = lc_actions_find(&r->actions, p->name);
    char err[1024];
    cJSON *args = NULL;
    int c_rc;
    if (act && !c->args) {
      struct lc_buf b;
      lc_buf_init(&b, 0);
      rc = lc_buf_printf(&b, "Invalid arguments for \"%s\": not valid JSON "
                             "(got %.200s). Expected: %s[", act->name,
                         c->args_json ? c->args_json : "", act->name);
      if (!rc) rc = lc_actions_render_input(act, &b);
      if (!rc) rc = lc_buf_puts(&b, "]");
      if (!rc) rc = set_obs(p, b.data, 1);
      lc_buf_free(&b);
      if (!rc) mark_invalid(r, p);
      continue;
    }
    cJSON *in = c->args ? cJSON_Duplicate(c->args, 1) : NULL;
    if (c->args && !in) return LC_ENOMEM;
    if (r->cfg.strict) strip_nulls(in);
    c_rc = lc_actions_check(&r->actions, p->name, in, NULL, &act, &args, err, sizeof err);
    cJSON_Delete(in);
    if (c_rc == LC_ENOMEM) return c_rc;
    if (c_rc) {
      rc = set_obs(p, err, 1);
      if (!rc) mark_invalid(r, p);
    } else if (act == r->actions.finish) {
      const char *ans = finish_answer_of(args);
      p->args = args;
      lc_free(p->name);
      if (!(p->name = lc_strdup("finish"))) return LC_ENOMEM;
      if (n > 1) {
        rc = set_obs(p, "Not accepted: call finish alone, after you have seen "
                        "the results of your other tool calls.", 1);
        if (!rc) mark_invalid(r, p);
      } else if (!ans || !*ans) {
        rc = set_obs(p, "Invalid arguments for \"finish\": the answer is empty.", 1);
        if (!rc) mark_invalid(r, p);
      } else if (!(r->finish_answer = lc_strdup(ans))) {
        rc = LC_ENOMEM;
      }
    } else {
      rc = accept_tool(r, p, act, args);
    }
  }
  return rc;
}

static void finish_turn(struct lc_react *r);

/* Hands the runnable actions of the turn to the host as one batch. */
static int run_batch(struct lc_react *r) {
  size_t n = 0;
  for (size_t i = 0; i < r->n_pend; i++) n += r->pend[i].run;
  if (n == 0) return 0;
  r->batch = lc_calloc(n, sizeof *r->batch);
  r->batch_pend = lc_calloc(n, sizeof *r->batch_pend);
  if (!r->batch || !r->batch_pend) return LC_ENOMEM;
  double now = lc_now_ms();
  for (size_t i = 0; i < r->n_pend; i++) {
    struct pend *p = &r->pend[i];
    if (!p->run) continue;
    if (!p->id) {
      char id[32];
      snprintf(id, sizeof id, "step_%zu", r->traj.n + i + 1);
      if (!(p->id = lc_strdup(id))) return LC_ENOMEM;
    }
    p->t0 = now;
    struct lc_react_call *c = &r->batch[r->n_batch];
    c->index = r->n_batch;
    c->id = p->id;
    c->name = p->name;
    c->args = p->args;
    r->batch_pend[r->n_batch++] = i;
  }
  r->outstanding = r->n_batch;
  r->phase = P_TOOLS;
  r->usage.tool_calls += (long)n;
  lc_budget_note_tool_calls(&r->e.budget, (long)n);
  if (r->host.run_tools(r->host.ud, r, r->batch, r->n_batch) < 0) {
    r->outstanding = 0;
    return LC_EIO;
  }
  return 1;
}

static int wall_over(const struct lc_react *r) {
  return r->e.wall_fired || (r->cfg.limits.wall_s > 0 &&
         lc_now_ms() - r->e.budget.start_ms >= r->cfg.limits.wall_s * 1000.0);
}

static void resp_free(struct lc_llm_response *resp) {
  lc_llm_response_free(resp);
  lc_free(resp);
}

static void handle_reply(struct lc_react *r) {
  /* The call is done with the request: take the response and free it. */
  struct lc_llm_response *resp = lc_llm_call_take_response(r->e.call);
  lc_llm_call_free(r->e.call);
  r->e.call = NULL;
  if (!resp) {
    fail_oom(r);
    return;
  }
  if (resp->err != LC_LLM_OK) {
    char reason[1024];
    snprintf(reason, sizeof reason, "LLM error (%s): %s", lc_llm_err_name(resp->err),
             resp->err_message ? resp->err_message : "no message");
    resp_free(resp);
    end_run(r, LC_TRAJ_FAILED, NULL, reason);
    return;
  }
  turn_clear(r);
  charge(r, resp);
  int rc = 0;
  /* The reply as written: the text mode's scratchpad shows it when it did
   * not parse. */
  if (r->cfg.mode == LC_REACT_TEXT && resp->text &&
      !(r->turn_text = lc_strndup(resp->text, resp->text_len)))
    rc = LC_ENOMEM;
  if (!rc)
    rc = r->cfg.mode == LC_REACT_TEXT ? process_text_reply(r, resp)
                                      : process_native_reply(r, resp);
  /* Native conversation: the assistant turn, verbatim (ids matter), moved
   * out of the response. */
  if (!rc && r->cfg.mode == LC_REACT_NATIVE && !r->finish_answer) {
    struct lc_llm_msg m = {.role = LC_ROLE_ASSISTANT};
    m.content = resp->text;
    m.content_len = resp->text ? resp->text_len : 0;
    m.tool_calls = resp->tool_calls;
    m.n_tool_calls = resp->n_tool_calls;
    /* Reasoning the provider wants back with this turn (Responses
     * encrypted reasoning, Anthropic thinking signatures). */
    m.reasoning_state = resp->reasoning_state;
    m.reasoning_prov = (signed char)r->req.provider;
    resp->reasoning_state = NULL;
    resp->text = NULL;
    resp->tool_calls = NULL;
    resp->n_tool_calls = 0;
    /* The history needs the text only (adapters that want an object
     * parse it): the parsed trees would wait with the agent. */
    for (size_t i = 0; !rc && i < m.n_tool_calls; i++) {
      cJSON_Delete(m.tool_calls[i].args);
      m.tool_calls[i].args = NULL;
      if (!m.tool_calls[i].args_json && !(m.tool_calls[i].args_json = lc_strdup("{}")))
        rc = LC_ENOMEM;
    }
    if (!rc) rc = conv_push(r, &m);
    else msg_clear(&m);
  }
  resp_free(resp);
  if (rc) {
    fail_oom(r);
    return;
  }
  if (r->finish_answer || wall_over(r)) {
    /* A finish ends the run now; past the wall time nothing more runs. */
    for (size_t i = 0; i < r->n_pend; i++)
      if (r->pend[i].run) {
        r->pend[i].run = 0;
        if (set_obs(&r->pend[i], "Not run: the wall-time limit was reached.", 1)) {
          fail_oom(r);
          return;
        }
      }
    finish_turn(r);
    return;
  }
  rc = run_batch(r);
  if (rc == LC_EIO) {
    end_run(r, LC_TRAJ_FAILED, NULL, "the host could not start the tool calls");
  } else if (rc < 0) {
    fail_oom(r);
  } else if (rc == 0) {
    finish_turn(r);
  }
}

int lc_react_tool_result(struct lc_react *r, size_t index, int ok,
                         const char *text, size_t len, const char *code) {
  if (r->phase != P_TOOLS || index >= r->n_batch) return LC_EINVAL;
  struct pend *p = &r->pend[r->batch_pend[index]];
  if (p->have) return LC_EINVAL;
  p->have = 1;
  p->tool_ms = lc_now_ms() - p->t0;
  if (!text) {
    text = ok ? "(no result)" : "the tool failed";
    len = strlen(text);
  }
  struct lc_buf b;
  lc_buf_init(&b, 0);
  int rc = 0;
  if (!ok && code && !strcmp(code, "timeout") && !memmem(text, len, "timed out", 9))
    rc = lc_buf_puts(&b, "Timed out: ");
  else if (!ok && !(len >= 5 && !strncasecmp(text, "error", 5)))
    rc = lc_buf_puts(&b, "Error: ");
  char *capped = dup_capped(text, len, r->cfg.max_observation);
  if (!capped) rc = LC_ENOMEM;
  if (!rc) rc = lc_buf_puts(&b, capped);
  lc_free(capped);
  if (!rc && p->warn) rc = lc_buf_printf(&b, "\n%s", p->warn);
  lc_free(p->obs);
  p->obs = rc ? NULL : lc_buf_steal(&b, NULL);
  lc_buf_free(&b);
  p->is_error = !ok;
  if (!ok) r->usage.tool_errors++;
  if (--r->outstanding == 0) {
    r->phase = P_TOOLS_DONE;
    if (lc_engine_defer(&r->e) < 0) return LC_ENOMEM;
  }
  return rc;
}

/* Adds p, the i-th action of the turn, to the trajectory as a step. */
static int record_step(struct lc_react *r, struct pend *p, size_t i) {
  struct lc_traj_step s = {
      .thought = p->thought,
      .action = p->name,
      .args = p->args,
      .observation = p->obs,
      .is_error = p->is_error,
      .tokens_in = i == 0 ? r->turn_in : 0,
      .tokens_out = i == 0 ? r->turn_out : 0,
      .cost_usd = i == 0 ? r->turn_cost : 0,
      .latency_ms = (i == 0 ? r->turn_llm_ms : 0) + p->tool_ms,
  };
  int rc = lc_trajectory_add(&r->traj, &s);
  if (rc) return rc;
  lc_budget_note_step(&r->e.budget);
  if (r->host.on_step) r->host.on_step(r->host.ud, r, &r->traj.steps[r->traj.n - 1]);
  return 0;
}

/* Records the turn's steps (in the order the model asked), extends the
 * prompt, then finishes, stops at a limit or starts the next turn. */
static void finish_turn(struct lc_react *r) {
  int rc = 0;
  for (size_t i = 0; !rc && i < r->n_pend; i++) {
    struct pend *p = &r->pend[i];
    if (!p->obs && !(r->finish_answer && p->name && !strcmp(p->name, "finish"))) {
      /* A tool result that never came (out of memory building it). */
      if (set_obs(p, "Error: no result", 1)) rc = LC_ENOMEM;
    }
    if (!rc && p->warn && !p->run && p->obs) {
      /* Self-written Observation note on an action that did not run. */
      char *o = NULL;
      struct lc_buf b;
      lc_buf_init(&b, 0);
      if (!lc_buf_printf(&b, "%s\n%s", p->obs, p->warn)) o = lc_buf_steal(&b, NULL);
      lc_buf_free(&b);
      if (!o) rc = LC_ENOMEM;
      else {
        lc_free(p->obs);
        p->obs = o;
      }
    }
    if (rc) break;
    if (!p->cut && (rc = record_step(r, p, i))) break;
    if (r->finish_answer) continue;
    if (r->cfg.mode == LC_REACT_TEXT) {
      if (p->name) {
        rc = lc_react_scratchpad_add(&r->pad, LC_REACT_STYLE_BRACKET, p->thought,
                                     p->name, p->input, p->obs);
      } else {
        /* The reply did not parse: show it as written, then the error. */
        const char *t = r->turn_text ? r->turn_text : "";
        while (*t == ' ' || *t == '\n' || *t == '\t' || *t == '\r') t++;
        size_t tl = strlen(t);
        while (tl && (t[tl - 1] == ' ' || t[tl - 1] == '\n' || t[tl - 1] == '\r')) tl--;
        if (tl > 2000) tl = 2000;
        if (tl) rc = lc_buf_printf(&r->pad, "%.*s\n", (int)tl, t);
        if (!rc) rc = lc_buf_printf(&r->pad, "Observation: %s\n", p->obs);
      }
    } else if (p->id) {
      /* The step is recorded (copied): id, name and observation move into
       * the conversation. */
      struct lc_llm_msg m = {.role = LC_ROLE_TOOL, .is_error = p->is_error};
      m.tool_call_id = p->id;
      m.name = p->name;
      m.content = p->obs;
      p->id = p->name = p->obs = NULL;
      m.content_len = strlen(m.content);
      rc = conv_push(r, &m);
    } else {
      /* Text instead of a tool call: the error goes back as the user. */
      struct lc_llm_msg m;
      rc = text_msg(&m, LC_ROLE_USER, p->obs);
      p->obs = NULL;
      if (!rc) rc = conv_push(r, &m);
    }
  }
  if (rc) {
    fail_oom(r);
    return;
  }
  if (r->finish_answer) {
    char *a = r->finish_answer;
    r->finish_answer = NULL;
    turn_clear(r);
    end_run(r, LC_TRAJ_FINISHED, a, NULL);
    lc_free(a);
    return;
  }
  long notrun = r->turn_notrun;
  turn_clear(r);
  double now = lc_now_ms();
  enum lc_limit l = lc_engine_check(&r->e, now);
  if (l == LC_LIMIT_NONE) {
    if (send_call(r, NULL)) fail_oom(r);
    return;
  }
  r->limit = l;
  struct lc_buf why;
  lc_buf_init(&why, 0);
  if (lc_budget_reason(&r->e.budget, l, now, &why) ||
      (notrun && lc_buf_printf(&why, " (%ld tool call%s of the last reply not run)",
                               notrun, notrun == 1 ? "" : "s"))) {
    lc_buf_free(&why);
    fail_oom(r);
    return;
  }
  lc_trajectory_end(&r->traj, LC_TRAJ_LIMIT, NULL, why.data); /* out of memory: failed */
  if (r->cfg.final_answer_on_limit) {
    lc_timer_stop(r->e.loop, &r->e.wall);
    int src = send_call(r, why.data);
    lc_buf_free(&why);
    if (src) fail_oom(r);
    return;
  }
  r->phase = P_END;
  lc_buf_free(&why);
  lc_timer_stop(r->e.loop, &r->e.wall);
  if (lc_engine_defer(&r->e) < 0) {
    r->phase = P_DONE;
    r->host.done(r->host.ud, r);
  }
}

/* The final-answer reply: any text counts; a finish action is unwrapped. */
static void handle_final(struct lc_react *r) {
  struct lc_llm_call *call = r->e.call;
  r->e.call = NULL;
  const struct lc_llm_response *resp = lc_llm_call_response(call);
  char *answer = NULL;
  int oom = 0; /* a copy failed: the run fails rather than lose the answer */
  if (resp->err == LC_LLM_OK) {
    charge(r, resp);
    const char *t = resp->text ? resp->text : "";
    size_t n = resp->text ? resp->text_len : 0;
    struct lc_react_step st;
    if (lc_react_parse(t, n, &st) == 0 && st.is_finish) {
      oom = !(answer = lc_strdup(st.answer));
    } else if (resp->n_tool_calls && resp->tool_calls[0].args &&
               finish_answer_of(resp->tool_calls[0].args)) {
      oom = !(answer = lc_strdup(finish_answer_of(resp->tool_calls[0].args)));
    } else {
      while (n && (*t == ' ' || *t == '\n' || *t == '\r' || *t == '\t')) t++, n--;
      while (n && (t[n - 1] == ' ' || t[n - 1] == '\n' || t[n - 1] == '\r')) n--;
      if (n) oom = !(answer = lc_strndup(t, n));
    }
    lc_react_step_free(&st);
  }
  const char *why = lc_trajectory_reason(&r->traj);
  char *reason = dup0(why);
  lc_llm_call_free(call);
  if (oom || (why && !reason)) fail_oom(r);
  else end_run(r, LC_TRAJ_LIMIT, answer, reason);
  lc_free(answer);
  lc_free(reason);
}

/* Kick timer (from the loop): the deferred half of every event. */
static void on_kick(struct lc_loop *loop, struct lc_timer *t) {
  struct lc_react *r = t->ud;
  switch (r->phase) {
  case P_REPLY: handle_reply(r); break;
  case P_FINAL_REPLY: handle_final(r); break;
  case P_TOOLS_DONE: finish_turn(r); break;
  case P_END:
    r->phase = P_DONE;
    r->host.done(r->host.ud, r);
    break;
  default: break;
  }
}

/* Wall timer (from the loop): the limit interrupts the turn in flight. */
static void on_wall(struct lc_loop *loop, struct lc_timer *t) {
  struct lc_react *r = t->ud;
  r->e.wall_fired = 1;
  if (r->phase == P_LLM) {
    lc_llm_call_free(r->e.call);
    r->e.call = NULL;
    turn_clear(r);
  } else if (r->phase == P_TOOLS) {
    if (r->host.cancel_tools) r->host.cancel_tools(r->host.ud, r);
    for (size_t i = 0; i < r->n_pend; i++) {
      struct pend *p = &r->pend[i];
      if (p->run && !p->have) {
        p->have = 1;
        p->tool_ms = lc_now_ms() - p->t0;
        if (set_obs(p, "Interrupted: the wall-time limit was reached.", 1)) {
          fail_oom(r);
          return;
        }
      }
    }
    r->outstanding = 0;
  } else {
    return; /* between events: the check at the end of the turn sees it */
  }
  /* Record what the turn had; the limit check then ends the run. */
  r->phase = P_TOOLS_DONE;
  finish_turn(r);
}
