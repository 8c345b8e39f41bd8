/* mock_gen.c: reply generators that write the real wire formats.
 *
 * OpenAI Chat Completions: JSON, or SSE "data: {chunk}" events ending with
 * "data: [DONE]"; tool-call arguments arrive as fragments keyed by
 * tool_calls[].index; usage comes as a last chunk with empty choices when the
 * request asked for it (stream_options.include_usage).
 * Anthropic Messages: JSON, or SSE "event:/data:" pairs message_start,
 * content_block_start/delta/stop (text_delta, input_json_delta), message_delta
 * (stop_reason + usage), message_stop.
 * Ollama /api/chat: JSON, or NDJSON lines ending with one that has done:true;
 * Ollama streams unless the request says "stream": false, and sends tool
 * calls whole (as the real server does).
 *
 * OpenAI Responses (/responses): JSON {object:"response", output:[items]},
 * or SSE "event:/data:" pairs with typed events and a sequence_number:
 * response.created, in_progress, per output item output_item.added, its
 * deltas (reasoning_summary_text, output_text, function_call_arguments
 * keyed by item_id), its .done events and output_item.done, and
 * response.completed; no [DONE].
 *
 * The shapes follow the recordings in shared/fixtures/llm and llm2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mock.h"

static long next_id(void) {
  static long counter;
  return __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
}

/* The pieces of a reply common to the three formats. */
struct gen {
  const cJSON *spec;
  char *text;       /* NULL = no text */
  const cJSON *tools; /* array of {id, name, arguments} or NULL */
  size_t frag;      /* fragment size for streamed text and arguments */
  const char *model;
  const char *finish; /* spec's finish_reason, or NULL */
  const cJSON *usage; /* spec's usage, or NULL */
  long in_tokens, out_tokens; /* defaults when usage is not given */
  int stream;
};

static void gen_init(struct gen *g, const cJSON *spec, const struct mock_request *req) {
  memset(g, 0, sizeof *g);
  g->spec = spec;
  const cJSON *v;
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(spec, "echo")))
    g->text = mock_last_user_text(req->json);
  else if ((v = cJSON_GetObjectItemCaseSensitive(spec, "text")) && cJSON_IsString(v))
    g->text = xstrdup(v->valuestring);
  v = cJSON_GetObjectItemCaseSensitive(spec, "tool_calls");
  g->tools = cJSON_IsArray(v) && cJSON_GetArraySize(v) > 0 ? v : NULL;
  v = cJSON_GetObjectItemCaseSensitive(spec, "fragment_bytes");
  g->frag = cJSON_IsNumber(v) && v->valuedouble >= 1 ? (size_t)v->valuedouble : 8;
  v = cJSON_GetObjectItemCaseSensitive(spec, "model");
  if (!cJSON_IsString(v)) v = cJSON_GetObjectItemCaseSensitive(req->json, "model");
  g->model = cJSON_IsString(v) ? v->valuestring : "mock-model";
  v = cJSON_GetObjectItemCaseSensitive(spec, "finish_reason");
  g->finish = cJSON_IsString(v) ? v->valuestring : NULL;
  v = cJSON_GetObjectItemCaseSensitive(spec, "usage");
  g->usage = cJSON_IsObject(v) ? v : NULL;
  /* Deterministic stand-ins for token counts: about four bytes a token. */
  g->in_tokens = (long)(req->body_len / 4) + 1;
  g->out_tokens = (long)((g->text ? strlen(g->text) : 0) / 4) + 1;
  if (g->tools) {
    const cJSON *t;
    cJSON_ArrayForEach(t, g->tools) g->out_tokens += 10;
  }
  g->stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req->json, "stream"));
}

static void gen_free(struct gen *g) { free(g->text); }

static const char *tool_name(const cJSON *t) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(t, "name");
  return cJSON_IsString(v) ? v->valuestring : "tool";
}

/* The tool's id, or a generated one with the provider's prefix. */
static char *tool_id(const cJSON *t, const char *prefix, int i) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(t, "id");
  if (cJSON_IsString(v)) return xstrdup(v->valuestring);
  char tmp[64];
  snprintf(tmp, sizeof tmp, "%s%ld_%d", prefix, next_id(), i);
  return xstrdup(tmp);
}

/* Arguments as JSON text: a "raw string" is sent verbatim (to test broken
 * arguments), an object is serialised. */
static char *tool_args_text(const cJSON *t) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(t, "arguments");
  if (cJSON_IsString(v)) return xstrdup(v->valuestring);
  if (!v) return xstrdup("{}");
  char *s = cJSON_PrintUnformatted(v);
  if (!s) abort();
  return s;
}

/* Arguments as a JSON value (Anthropic input, Ollama arguments). */
static cJSON *tool_args_value(const cJSON *t) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(t, "arguments");
  if (!v) return cJSON_CreateObject();
  if (cJSON_IsString(v)) {
    cJSON *p = cJSON_Parse(v->valuestring);
    return p ? p : cJSON_CreateString(v->valuestring);
  }
  return cJSON_Duplicate(v, 1);
}

static void body_json(struct mock_response *r, cJSON *v) {
  mock_resp_json(r, 200, v);
  cJSON_Delete(v);
}

static void sse(struct mock_response *r, const char *event, cJSON *data) {
  char *s = cJSON_PrintUnformatted(data);
  if (!s) abort();
  if (event) mbuf_printf(&r->body, "event: %s\n", event);
  mbuf_printf(&r->body, "data: %s\n\n", s);
  mock_resp_mark(r);
  free(s);
  cJSON_Delete(data);
}

static void start_stream(struct mock_response *r, const char *content_type) {
  mock_resp_set_header(r, "Content-Type", content_type);
  mock_resp_set_header(r, "Cache-Control", "no-cache");
  r->chunked = 1;
}

/* ---- OpenAI ---- */

struct oa {
  char id[64];
  long created;
  const char *model;
};

static cJSON *oa_chunk(const struct oa *o, cJSON *delta, const char *finish) {
  cJSON *c = cJSON_CreateObject();
  cJSON_AddStringToObject(c, "id", o->id);
  cJSON_AddStringToObject(c, "object", "chat.completion.chunk");
  cJSON_AddNumberToObject(c, "created", (double)o->created);
  cJSON_AddStringToObject(c, "model", o->model);
  cJSON *choices = cJSON_AddArrayToObject(c, "choices");
  if (delta) {
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", 0);
    cJSON_AddItemToObject(ch, "delta", delta);
    cJSON_AddNullToObject(ch, "logprobs");
    if (finish) cJSON_AddStringToObject(ch, "finish_reason", finish);
    else cJSON_AddNullToObject(ch, "finish_reason");
    cJSON_AddItemToArray(choices, ch);
  }
  return c;
}

static cJSON *oa_usage(const struct gen *g) {
  if (g->usage) return cJSON_Duplicate(g->usage, 1);
  cJSON *u = cJSON_CreateObject();
  cJSON_AddNumberToObject(u, "prompt_tokens", (double)g->in_tokens);
  cJSON_AddNumberToObject(u, "completion_tokens", (double)g->out_tokens);
  cJSON_AddNumberToObject(u, "total_tokens", (double)(g->in_tokens + g->out_tokens));
  return u;
}

void mock_gen_openai(const cJSON *spec, const struct mock_request *req, struct mock_response *r) {
  struct gen g;
  gen_init(&g, spec, req);
  struct oa o;
  const cJSON *idv = cJSON_GetObjectItemCaseSensitive(spec, "id");
  if (cJSON_IsString(idv)) snprintf(o.id, sizeof o.id, "%s", idv->valuestring);
  else snprintf(o.id, sizeof o.id, "chatcmpl-mock%ld", next_id());
  o.created = (long)time(NULL);
  o.model = g.model;
  const char *finish = g.finish ? g.finish : g.tools ? "tool_calls" : "stop";

  if (!g.stream) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", o.id);
    cJSON_AddStringToObject(root, "object", "chat.completion");
    cJSON_AddNumberToObject(root, "created", (double)o.created);
    cJSON_AddStringToObject(root, "model", o.model);
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", 0);
    cJSON *msg = cJSON_AddObjectToObject(ch, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    if (g.text) cJSON_AddStringToObject(msg, "content", g.text);
    else cJSON_AddNullToObject(msg, "content");
    if (g.tools) {
      cJSON *tcs = cJSON_AddArrayToObject(msg, "tool_calls");
      const cJSON *t;
      int i = 0;
      cJSON_ArrayForEach(t, g.tools) {
        cJSON *tc = cJSON_CreateObject();
        char *id = tool_id(t, "call_mock", i++);
        char *args = tool_args_text(t);
        cJSON_AddStringToObject(tc, "id", id);
        cJSON_AddStringToObject(tc, "type", "function");
        cJSON *fn = cJSON_AddObjectToObject(tc, "function");
        cJSON_AddStringToObject(fn, "name", tool_name(t));
        cJSON_AddStringToObject(fn, "arguments", args);
        cJSON_AddItemToArray(tcs, tc);
        free(id);
        free(args);
      }
    }
    cJSON_AddNullToObject(msg, "refusal");
    cJSON_AddNullToObject(ch, "logprobs");
    cJSON_AddStringToObject(ch, "finish_reason", finish);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), ch);
    cJSON_AddItemToObject(root, "usage", oa_usage(&g));
    body_json(r, root);
    gen_free(&g);
    return;
  }

  start_stream(r, "text/event-stream; charset=utf-8");
  cJSON *d = cJSON_CreateObject();
  cJSON_AddStringToObject(d, "role", "assistant");
  cJSON_AddStringToObject(d, "content", "");
  sse(r, NULL, oa_chunk(&o, d, NULL));
  if (g.text) {
    size_t n = strlen(g.text);
    for (size_t off = 0; off < n;) {
      size_t k = mock_utf8_piece(g.text + off, n - off, g.frag);
      char *piece = xstrndup(g.text + off, k);
      d = cJSON_CreateObject();
      cJSON_AddStringToObject(d, "content", piece);
      sse(r, NULL, oa_chunk(&o, d, NULL));
      free(piece);
      off += k;
    }
  }
  const cJSON *t;
  int i = 0;
  cJSON_ArrayForEach(t, g.tools) {
    /* First the id and name with empty arguments, then argument fragments. */
    char *id = tool_id(t, "call_mock", i);
    d = cJSON_CreateObject();
    cJSON *tcs = cJSON_AddArrayToObject(d, "tool_calls");
    cJSON *tc = cJSON_CreateObject();
    cJSON_AddNumberToObject(tc, "index", i);
    cJSON_AddStringToObject(tc, "id", id);
    cJSON_AddStringToObject(tc, "type", "function");
    cJSON *fn = cJSON_AddObjectToObject(tc, "function");
    cJSON_AddStringToObject(fn, "name", tool_name(t));
    cJSON_AddStringToObject(fn, "arguments", "");
    cJSON_AddItemToArray(tcs, tc);
    sse(r, NULL, oa_chunk(&o, d, NULL));
    free(id);
    char *args = tool_args_text(t);
    size_t n = strlen(args);
    for (size_t off = 0; off < n;) {
      size_t k = mock_utf8_piece(args + off, n - off, g.frag);
      char *piece = xstrndup(args + off, k);
      d = cJSON_CreateObject();
      tcs = cJSON_AddArrayToObject(d, "tool_calls");
      tc = cJSON_CreateObject();
      cJSON_AddNumberToObject(tc, "index", i);
      cJSON_AddStringToObject(cJSON_AddObjectToObject(tc, "function"), "arguments", piece);
      cJSON_AddItemToArray(tcs, tc);
      sse(r, NULL, oa_chunk(&o, d, NULL));
      free(piece);
      off += k;
    }
    free(args);
    i++;
  }
  sse(r, NULL, oa_chunk(&o, cJSON_CreateObject(), finish));
  const cJSON *so = cJSON_GetObjectItemCaseSensitive(req->json, "stream_options");
  const cJSON *su = cJSON_GetObjectItemCaseSensitive(spec, "stream_usage");
  int want_usage = cJSON_IsBool(su) ? cJSON_IsTrue(su)
                                    : cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
  if (want_usage) {
    cJSON *c = oa_chunk(&o, NULL, NULL);
    cJSON_AddItemToObject(c, "usage", oa_usage(&g));
    sse(r, NULL, c);
  }
  mbuf_puts(&r->body, "data: [DONE]\n\n");
  mock_resp_mark(r);
  gen_free(&g);
}

/* ---- Anthropic ---- */

static cJSON *an_usage(const struct gen *g) {
  if (g->usage) return cJSON_Duplicate(g->usage, 1);
  cJSON *u = cJSON_CreateObject();
  cJSON_AddNumberToObject(u, "input_tokens", (double)g->in_tokens);
  cJSON_AddNumberToObject(u, "output_tokens", (double)g->out_tokens);
  return u;
}

static long usage_num(const cJSON *u, const char *key, long dflt) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(u, key);
  return cJSON_IsNumber(v) ? (long)v->valuedouble : dflt;
}

static cJSON *an_event(const char *type) {
  cJSON *e = cJSON_CreateObject();
  cJSON_AddStringToObject(e, "type", type);
  return e;
}

static void an_json_delta(struct mock_response *r, int index, const char *p, size_t n) {
  char *piece = xstrndup(p, n);
  cJSON *e = an_event("content_block_delta");
  cJSON_AddNumberToObject(e, "index", index);
  cJSON *dl = cJSON_AddObjectToObject(e, "delta");
  cJSON_AddStringToObject(dl, "type", "input_json_delta");
  cJSON_AddStringToObject(dl, "partial_json", piece);
  sse(r, "content_block_delta", e);
  free(piece);
}

void mock_gen_anthropic(const cJSON *spec, const struct mock_request *req,
                        struct mock_response *r) {
  struct gen g;
  gen_init(&g, spec, req);
  char id[64];
  const cJSON *idv = cJSON_GetObjectItemCaseSensitive(spec, "id");
  if (cJSON_IsString(idv)) snprintf(id, sizeof id, "%s", idv->valuestring);
  else snprintf(id, sizeof id, "msg_mock%ld", next_id());
  const char *stop = g.finish ? g.finish : g.tools ? "tool_use" : "end_turn";
  /* A text block when there is text, or when there is nothing else. */
  int with_text = (g.text && *g.text) || !g.tools;
  const char *text = g.text ? g.text : "";

  cJSON *msg = cJSON_CreateObject();
  cJSON_AddStringToObject(msg, "id", id);
  cJSON_AddStringToObject(msg, "type", "message");
  cJSON_AddStringToObject(msg, "role", "assistant");
  cJSON_AddStringToObject(msg, "model", g.model);
  cJSON *content = cJSON_AddArrayToObject(msg, "content");

  if (!g.stream) {
    if (with_text) {
      cJSON *b = an_event("text");
      cJSON_AddStringToObject(b, "text", text);
      cJSON_AddItemToArray(content, b);
    }
    const cJSON *t;
    int i = 0;
    cJSON_ArrayForEach(t, g.tools) {
      cJSON *b = an_event("tool_use");
      char *tid = tool_id(t, "toolu_mock", i++);
      cJSON_AddStringToObject(b, "id", tid);
      cJSON_AddStringToObject(b, "name", tool_name(t));
      cJSON_AddItemToObject(b, "input", tool_args_value(t));
      cJSON_AddItemToArray(content, b);
      free(tid);
    }
    cJSON_AddStringToObject(msg, "stop_reason", stop);
    cJSON_AddNullToObject(msg, "stop_sequence");
    cJSON_AddItemToObject(msg, "usage", an_usage(&g));
    body_json(r, msg);
    gen_free(&g);
    return;
  }

  start_stream(r, "text/event-stream; charset=utf-8");
  cJSON *usage = an_usage(&g);
  cJSON_AddNullToObject(msg, "stop_reason");
  cJSON_AddNullToObject(msg, "stop_sequence");
  cJSON *u0 = cJSON_AddObjectToObject(msg, "usage");
  cJSON_AddNumberToObject(u0, "input_tokens", (double)usage_num(usage, "input_tokens", 0));
  cJSON_AddNumberToObject(u0, "output_tokens", 1);
  cJSON *e = an_event("message_start");
  cJSON_AddItemToObject(e, "message", msg);
  sse(r, "message_start", e);
  int index = 0;
  if (with_text) {
    e = an_event("content_block_start");
    cJSON_AddNumberToObject(e, "index", index);
    cJSON *b = cJSON_AddObjectToObject(e, "content_block");
    cJSON_AddStringToObject(b, "type", "text");
    cJSON_AddStringToObject(b, "text", "");
    sse(r, "content_block_start", e);
    sse(r, "ping", an_event("ping"));
    size_t n = strlen(text);
    for (size_t off = 0; off < n;) {
      size_t k = mock_utf8_piece(text + off, n - off, g.frag);
      char *piece = xstrndup(text + off, k);
      e = an_event("content_block_delta");
      cJSON_AddNumberToObject(e, "index", index);
      cJSON *dl = cJSON_AddObjectToObject(e, "delta");
      cJSON_AddStringToObject(dl, "type", "text_delta");
      cJSON_AddStringToObject(dl, "text", piece);
      sse(r, "content_block_delta", e);
      free(piece);
      off += k;
    }
    e = an_event("content_block_stop");
    cJSON_AddNumberToObject(e, "index", index++);
    sse(r, "content_block_stop", e);
  }
  const cJSON *t;
  int i = 0;
  cJSON_ArrayForEach(t, g.tools) {
    char *tid = tool_id(t, "toolu_mock", i++);
    e = an_event("content_block_start");
    cJSON_AddNumberToObject(e, "index", index);
    cJSON *b = cJSON_AddObjectToObject(e, "content_block");
    cJSON_AddStringToObject(b, "type", "tool_use");
    cJSON_AddStringToObject(b, "id", tid);
    cJSON_AddStringToObject(b, "name", tool_name(t));
    cJSON_AddObjectToObject(b, "input");
    sse(r, "content_block_start", e);
    free(tid);
    /* The real server opens with an empty partial_json, then fragments
     * that may split keys and values anywhere. */
    char *args = tool_args_text(t);
    /* Empty arguments stream as the lone "" (recorded in
     * anthropic-messages-tooluse-stream-noargs-01), not as "{}". */
    size_t n = strcmp(args, "{}") == 0 ? 0 : strlen(args);
    an_json_delta(r, index, "", 0);
    for (size_t off = 0; off < n;) {
      size_t k = mock_utf8_piece(args + off, n - off, g.frag);
      an_json_delta(r, index, args + off, k);
      off += k;
    }
    free(args);
    e = an_event("content_block_stop");
    cJSON_AddNumberToObject(e, "index", index++);
    sse(r, "content_block_stop", e);
  }
  e = an_event("message_delta");
  cJSON *dl = cJSON_AddObjectToObject(e, "delta");
  cJSON_AddStringToObject(dl, "stop_reason", stop);
  cJSON_AddNullToObject(dl, "stop_sequence");
  cJSON *u1 = cJSON_AddObjectToObject(e, "usage");
  cJSON_AddNumberToObject(u1, "output_tokens", (double)usage_num(usage, "output_tokens", 0));
  sse(r, "message_delta", e);
  sse(r, "message_stop", an_event("message_stop"));
  cJSON_Delete(usage);
  gen_free(&g);
}

/* ---- Ollama ---- */

static void ollama_stamp(cJSON *o, const char *model) {
  char ts[64];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S.000000Z", &tm);
  cJSON_AddStringToObject(o, "model", model);
  cJSON_AddStringToObject(o, "created_at", ts);
}

static cJSON *ollama_tool_calls(const struct gen *g) {
  cJSON *arr = cJSON_CreateArray();
  const cJSON *t;
  int i = 0;
  cJSON_ArrayForEach(t, g->tools) {
    cJSON *tc = cJSON_CreateObject();
    const cJSON *idv = cJSON_GetObjectItemCaseSensitive(t, "id");
    if (cJSON_IsString(idv)) cJSON_AddStringToObject(tc, "id", idv->valuestring);
    cJSON *fn = cJSON_AddObjectToObject(tc, "function");
    cJSON_AddNumberToObject(fn, "index", i++);
    cJSON_AddStringToObject(fn, "name", tool_name(t));
    cJSON_AddItemToObject(fn, "arguments", tool_args_value(t));
    cJSON_AddItemToArray(arr, tc);
  }
  return arr;
}

static void ollama_final_fields(cJSON *o, const struct gen *g) {
  cJSON_AddStringToObject(o, "done_reason", g->finish ? g->finish : "stop");
  cJSON_AddTrueToObject(o, "done");
  cJSON_AddNumberToObject(o, "total_duration", 1000000);
  cJSON_AddNumberToObject(o, "load_duration", 1000);
  if (g->usage) {
    const cJSON *it;
    cJSON_ArrayForEach(it, g->usage) cJSON_AddItemToObject(o, it->string, cJSON_Duplicate(it, 1));
  } else {
    cJSON_AddNumberToObject(o, "prompt_eval_count", (double)g->in_tokens);
    cJSON_AddNumberToObject(o, "eval_count", (double)g->out_tokens);
  }
}

static cJSON *ollama_msg(cJSON *o, const char *content) {
  cJSON *m = cJSON_AddObjectToObject(o, "message");
  cJSON_AddStringToObject(m, "role", "assistant");
  cJSON_AddStringToObject(m, "content", content);
  return m;
}

static void ndjson(struct mock_response *r, cJSON *line) {
  char *s = cJSON_PrintUnformatted(line);
  if (!s) abort();
  mbuf_printf(&r->body, "%s\n", s);
  mock_resp_mark(r);
  free(s);
  cJSON_Delete(line);
}

void mock_gen_ollama(const cJSON *spec, const struct mock_request *req, struct mock_response *r) {
  struct gen g;
  gen_init(&g, spec, req);
  /* Ollama's native API streams unless told not to. */
  const cJSON *sv = cJSON_GetObjectItemCaseSensitive(req->json, "stream");
  int stream = !cJSON_IsFalse(sv);
  const char *text = g.text ? g.text : "";

  if (!stream) {
    cJSON *o = cJSON_CreateObject();
    ollama_stamp(o, g.model);
    cJSON *m = ollama_msg(o, text);
    if (g.tools) cJSON_AddItemToObject(m, "tool_calls", ollama_tool_calls(&g));
    ollama_final_fields(o, &g);
    body_json(r, o);
    gen_free(&g);
    return;
  }
  start_stream(r, "application/x-ndjson");
  size_t n = strlen(text);
  for (size_t off = 0; off < n;) {
    size_t k = mock_utf8_piece(text + off, n - off, g.frag);
    char *piece = xstrndup(text + off, k);
    cJSON *o = cJSON_CreateObject();
    ollama_stamp(o, g.model);
    ollama_msg(o, piece);
    cJSON_AddFalseToObject(o, "done");
    ndjson(r, o);
    free(piece);
    off += k;
  }
  if (g.tools) {
    cJSON *o = cJSON_CreateObject();
    ollama_stamp(o, g.model);
    cJSON *m = ollama_msg(o, "");
    cJSON_AddItemToObject(m, "tool_calls", ollama_tool_calls(&g));
    cJSON_AddFalseToObject(o, "done");
    ndjson(r, o);
  }
  cJSON *o = cJSON_CreateObject();
  ollama_stamp(o, g.model);
  ollama_msg(o, "");
  ollama_final_fields(o, &g);
  ndjson(r, o);
  gen_free(&g);
}

/* ---- faults and echo ---- */

void mock_gen_malform(struct mock_response *r) {
  const char *ct = mock_resp_header(r, "content-type");
  const char *broken;
  if (ct && strstr(ct, "event-stream"))
    broken = "data: {\"choices\": [{\"delta\": {\"content\": \"unterminated\n\n"
             "event: message_stop\ndata: {\"type\": \"message_stop\"\n\n"
             "data: [DONE]\n\n";
  else if (ct && strstr(ct, "ndjson"))
    broken = "{\"message\": {\"role\": \"assistant\", \"content\": \"unterminated\n"
             "{\"done\": true\n";
  else
    broken = "{\"id\": \"malformed\", \"choices\": [{\"message\": {\"content\": \"unterminated";
  r->body.len = 0;
  mbuf_puts(&r->body, broken);
  free(r->marks);
  r->marks = NULL;
  r->nmarks = 0;
}

/* Appends the text of a content value: a string, or blocks with "text"
 * (Anthropic text blocks) or nested "content" (Anthropic tool_result). */
static void content_text(struct mbuf *b, const cJSON *c) {
  if (cJSON_IsString(c)) {
    mbuf_puts(b, c->valuestring);
    return;
  }
  const cJSON *blk;
  cJSON_ArrayForEach(blk, c) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(blk, "text");
    if (cJSON_IsString(t)) mbuf_puts(b, t->valuestring);
    const cJSON *inner = cJSON_GetObjectItemCaseSensitive(blk, "content");
    if (inner) content_text(b, inner);
  }
}

char *mock_last_user_text(const cJSON *body) {
  const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(body, "messages");
  if (!msgs) msgs = cJSON_GetObjectItemCaseSensitive(body, "input"); /* Responses */
  struct mbuf b = {0};
  if (cJSON_IsString(msgs)) mbuf_puts(&b, msgs->valuestring);
  for (int i = cJSON_GetArraySize(msgs) - 1; i >= 0 && !b.p; i--) {
    const cJSON *m = cJSON_GetArrayItem(msgs, i);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(m, "type");
    if (cJSON_IsString(type) && strcmp(type->valuestring, "function_call_output") == 0) {
      content_text(&b, cJSON_GetObjectItemCaseSensitive(m, "output"));
      break;
    }
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
    if (!cJSON_IsString(role)) continue;
    if (strcmp(role->valuestring, "user") && strcmp(role->valuestring, "tool")) continue;
    content_text(&b, cJSON_GetObjectItemCaseSensitive(m, "content"));
    break;
  }
  if (!b.p) mbuf_add(&b, "", 0);
  return b.p;
}

/* ---- OpenAI Responses ---- */

struct rs_gen {
  struct mock_response *r;
  long seq;
};

static void rs_event(struct rs_gen *x, const char *type, cJSON *e) {
  cJSON_AddStringToObject(e, "type", type);
  cJSON_AddNumberToObject(e, "sequence_number", (double)x->seq++);
  sse(x->r, type, e);
}

static cJSON *rs_usage(const struct gen *g) {
  if (g->usage) return cJSON_Duplicate(g->usage, 1);
  cJSON *u = cJSON_CreateObject();
  cJSON_AddNumberToObject(u, "input_tokens", (double)g->in_tokens);
  cJSON_AddObjectToObject(u, "input_tokens_details");
  cJSON_AddNumberToObject(cJSON_GetObjectItem(u, "input_tokens_details"), "cached_tokens", 0);
  cJSON_AddNumberToObject(u, "output_tokens", (double)g->out_tokens);
  cJSON_AddObjectToObject(u, "output_tokens_details");
  cJSON_AddNumberToObject(cJSON_GetObjectItem(u, "output_tokens_details"), "reasoning_tokens", 0);
  cJSON_AddNumberToObject(u, "total_tokens", (double)(g->in_tokens + g->out_tokens));
  return u;
}

static cJSON *rs_response(const struct gen *g, const char *id, const char *status) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", id);
  cJSON_AddStringToObject(o, "object", "response");
  cJSON_AddNumberToObject(o, "created_at", (double)time(NULL));
  cJSON_AddStringToObject(o, "status", status);
  cJSON_AddNullToObject(o, "error");
  cJSON_AddNullToObject(o, "incomplete_details");
  cJSON_AddStringToObject(o, "model", g->model);
  cJSON_AddArrayToObject(o, "output");
  cJSON_AddNullToObject(o, "usage");
  return o;
}

/* The output items, whole: reasoning (when the spec has "reasoning"), the
 * message (when there is text, or nothing else), the function calls. */
static cJSON *rs_items(const struct gen *g, const char *id) {
  cJSON *a = cJSON_CreateArray();
  const cJSON *rs = cJSON_GetObjectItemCaseSensitive(g->spec, "reasoning");
  if (cJSON_IsString(rs)) {
    cJSON *it = cJSON_CreateObject();
    char iid[96];
    snprintf(iid, sizeof iid, "rs_%s", id);
    cJSON_AddStringToObject(it, "id", iid);
    cJSON_AddStringToObject(it, "type", "reasoning");
    cJSON *sum = cJSON_AddArrayToObject(it, "summary");
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", "summary_text");
    cJSON_AddStringToObject(p, "text", rs->valuestring);
    cJSON_AddItemToArray(sum, p);
    const cJSON *enc = cJSON_GetObjectItemCaseSensitive(g->spec, "encrypted_content");
    if (cJSON_IsString(enc)) cJSON_AddStringToObject(it, "encrypted_content", enc->valuestring);
    cJSON_AddItemToArray(a, it);
  }
  if ((g->text && *g->text) || !g->tools) {
    cJSON *it = cJSON_CreateObject();
    char iid[96];
    snprintf(iid, sizeof iid, "msg_%s", id);
    cJSON_AddStringToObject(it, "id", iid);
    cJSON_AddStringToObject(it, "type", "message");
    cJSON_AddStringToObject(it, "status", "completed");
    cJSON_AddStringToObject(it, "role", "assistant");
    cJSON *c = cJSON_AddArrayToObject(it, "content");
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", "output_text");
    cJSON_AddArrayToObject(p, "annotations");
    cJSON_AddStringToObject(p, "text", g->text ? g->text : "");
    cJSON_AddItemToArray(c, p);
    cJSON_AddItemToArray(a, it);
  }
  const cJSON *t;
  int i = 0;
  cJSON_ArrayForEach(t, g->tools) {
    cJSON *it = cJSON_CreateObject();
    char iid[96];
    snprintf(iid, sizeof iid, "fc_%s_%d", id, i);
    char *cid = tool_id(t, "call_mock", i++);
    char *args = tool_args_text(t);
    cJSON_AddStringToObject(it, "id", iid);
    cJSON_AddStringToObject(it, "type", "function_call");
    cJSON_AddStringToObject(it, "status", "completed");
    cJSON_AddStringToObject(it, "arguments", args);
    cJSON_AddStringToObject(it, "call_id", cid);
    cJSON_AddStringToObject(it, "name", tool_name(t));
    cJSON_AddItemToArray(a, it);
    free(cid);
    free(args);
  }
  return a;
}

/* Fragments of s as events of this type keyed by item_id. */
static void rs_deltas(struct rs_gen *x, const struct gen *g, const char *type,
                      const char *item_id, int index, const char *s) {
  size_t n = strlen(s);
  for (size_t off = 0; off < n;) {
    size_t k = mock_utf8_piece(s + off, n - off, g->frag);
    char *piece = xstrndup(s + off, k);
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "item_id", item_id);
    cJSON_AddNumberToObject(e, "output_index", index);
    if (strcmp(type, "response.function_call_arguments.delta") != 0)
      cJSON_AddNumberToObject(e, strstr(type, "summary") ? "summary_index" : "content_index", 0);
    cJSON_AddStringToObject(e, "delta", piece);
    rs_event(x, type, e);
    free(piece);
    off += k;
  }
}

void mock_gen_responses(const cJSON *spec, const struct mock_request *req,
                        struct mock_response *r) {
  struct gen g;
  gen_init(&g, spec, req);
  char id[64];
  const cJSON *idv = cJSON_GetObjectItemCaseSensitive(spec, "id");
  if (cJSON_IsString(idv)) snprintf(id, sizeof id, "%s", idv->valuestring);
  else snprintf(id, sizeof id, "resp_mock%ld", next_id());
  const char *status = g.finish ? g.finish : "completed";
  cJSON *items = rs_items(&g, id);
  if (!g.stream) {
    cJSON *o = rs_response(&g, id, status);
    cJSON_ReplaceItemInObject(o, "output", items);
    cJSON_ReplaceItemInObject(o, "usage", rs_usage(&g));
    body_json(r, o);
    gen_free(&g);
    return;
  }
  start_stream(r, "text/event-stream; charset=utf-8");
  struct rs_gen x = {r, 0};
  cJSON *e = cJSON_CreateObject();
  cJSON_AddItemToObject(e, "response", rs_response(&g, id, "in_progress"));
  rs_event(&x, "response.created", e);
  e = cJSON_CreateObject();
  cJSON_AddItemToObject(e, "response", rs_response(&g, id, "in_progress"));
  rs_event(&x, "response.in_progress", e);
  const cJSON *it;
  int index = 0;
  cJSON_ArrayForEach(it, items) {
    const char *type = cJSON_GetObjectItem(it, "type")->valuestring;
    const char *iid = cJSON_GetObjectItem(it, "id")->valuestring;
    /* added: the item without what the deltas will bring */
    cJSON *added = cJSON_Duplicate(it, 1);
    if (strcmp(type, "reasoning") == 0) {
      cJSON_ReplaceItemInObject(added, "summary", cJSON_CreateArray());
    } else if (strcmp(type, "message") == 0) {
      cJSON_ReplaceItemInObject(added, "content", cJSON_CreateArray());
      cJSON_ReplaceItemInObject(added, "status", cJSON_CreateString("in_progress"));
    } else {
      cJSON_ReplaceItemInObject(added, "arguments", cJSON_CreateString(""));
      cJSON_ReplaceItemInObject(added, "status", cJSON_CreateString("in_progress"));
    }
    e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "output_index", index);
    cJSON_AddItemToObject(e, "item", added);
    rs_event(&x, "response.output_item.added", e);
    if (strcmp(type, "reasoning") == 0) {
      const char *t = cJSON_GetArrayItem(cJSON_GetObjectItem(it, "summary"), 0)
                          ->child->next->valuestring;
      e = cJSON_CreateObject();
      cJSON_AddStringToObject(e, "item_id", iid);
      cJSON_AddNumberToObject(e, "output_index", index);
      cJSON_AddNumberToObject(e, "summary_index", 0);
      rs_event(&x, "response.reasoning_summary_part.added", e);
      rs_deltas(&x, &g, "response.reasoning_summary_text.delta", iid, index, t);
    } else if (strcmp(type, "message") == 0) {
      const char *t = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(it, "content"), 0),
                                          "text")->valuestring;
      rs_deltas(&x, &g, "response.output_text.delta", iid, index, t);
      e = cJSON_CreateObject();
      cJSON_AddStringToObject(e, "item_id", iid);
      cJSON_AddNumberToObject(e, "output_index", index);
      cJSON_AddNumberToObject(e, "content_index", 0);
      cJSON_AddStringToObject(e, "text", t);
      rs_event(&x, "response.output_text.done", e);
    } else {
      const char *a = cJSON_GetObjectItem(it, "arguments")->valuestring;
      rs_deltas(&x, &g, "response.function_call_arguments.delta", iid, index, a);
      e = cJSON_CreateObject();
      cJSON_AddStringToObject(e, "item_id", iid);
      cJSON_AddNumberToObject(e, "output_index", index);
      cJSON_AddStringToObject(e, "arguments", a);
      rs_event(&x, "response.function_call_arguments.done", e);
    }
    e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "output_index", index++);
    cJSON_AddItemToObject(e, "item", cJSON_Duplicate(it, 1));
    rs_event(&x, "response.output_item.done", e);
  }
  cJSON *o = rs_response(&g, id, status);
  cJSON_ReplaceItemInObject(o, "output", items);
  cJSON_ReplaceItemInObject(o, "usage", rs_usage(&g));
  e = cJSON_CreateObject();
  cJSON_AddItemToObject(e, "response", o);
  rs_event(&x, strcmp(status, "incomplete") == 0 ? "response.incomplete" : "response.completed", e);
  gen_free(&g);
}
