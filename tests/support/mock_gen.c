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
#include <stdint.h>
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
  if (ct && strstr(ct, "amazon.eventstream")) {
    /* Same frames, one payload byte flipped: the message CRC fails. */
    if (r->body.len > 40) r->body.p[r->body.len / 2] ^= 0x20;
    return;
  }
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
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(blk, "toolResult"); /* Bedrock */
    if (tr) content_text(b, cJSON_GetObjectItemCaseSensitive(tr, "content"));
  }
}

char *mock_last_user_text(const cJSON *body) {
  const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(body, "messages");
  if (!msgs) msgs = cJSON_GetObjectItemCaseSensitive(body, "input"); /* Responses */
  struct mbuf b = {0};
  /* Gemini: "contents" of parts (text, functionResponse.response.*). */
  const cJSON *contents = cJSON_GetObjectItemCaseSensitive(body, "contents");
  for (int i = cJSON_GetArraySize(contents) - 1; i >= 0; i--) {
    const cJSON *c = cJSON_GetArrayItem(contents, i);
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(c, "role");
    if (!cJSON_IsString(role) || strcmp(role->valuestring, "user")) continue;
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(c, "parts")) {
      const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "text");
      const cJSON *fr = cJSON_GetObjectItemCaseSensitive(
          cJSON_GetObjectItemCaseSensitive(p, "functionResponse"), "response");
      if (cJSON_IsString(t)) mbuf_puts(&b, t->valuestring);
      const cJSON *o;
      cJSON_ArrayForEach(o, fr) if (cJSON_IsString(o)) mbuf_puts(&b, o->valuestring);
    }
    break;
  }
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

/* ---- Gemini (generateContent / streamGenerateContent) ----
 *
 * JSON: one GenerateContentResponse. Streams: with ?alt=sse, "data: {chunk}"
 * events ended by CRLF CRLF and no end marker; without it, one JSON array
 * streamed element by element ("[{...}\n,\r\n{...}\n]"). Chunks carry
 * cumulative usageMetadata; thoughts come first as {"text","thought":true}
 * parts; function calls come whole in the last chunk, with finishReason
 * "STOP" (Gemini has no tool-call reason), a thoughtSignature next to a
 * call when the spec gives one. */

struct gm {
  struct gen g;
  const char *thoughts; /* spec "thoughts": reasoning text, or NULL */
  const char *id;
  int sse, n_chunks;
  long cand; /* candidatesTokenCount so far */
};

static cJSON *gm_usage(const struct gm *m, long cand) {
  if (m->g.usage) return cJSON_Duplicate(m->g.usage, 1);
  cJSON *u = cJSON_CreateObject();
  cJSON_AddNumberToObject(u, "promptTokenCount", (double)m->g.in_tokens);
  cJSON_AddNumberToObject(u, "candidatesTokenCount", (double)cand);
  cJSON_AddNumberToObject(u, "totalTokenCount", (double)(m->g.in_tokens + cand));
  return u;
}

/* A GenerateContentResponse holding parts (taken), with finishReason when
 * finish is not NULL. */
static cJSON *gm_chunk(const struct gm *m, cJSON *parts, const char *finish, long cand) {
  cJSON *root = cJSON_CreateObject();
  cJSON *cands = cJSON_AddArrayToObject(root, "candidates");
  cJSON *c = cJSON_CreateObject();
  cJSON *content = cJSON_AddObjectToObject(c, "content");
  cJSON_AddItemToObject(content, "parts", parts);
  cJSON_AddStringToObject(content, "role", "model");
  if (finish) cJSON_AddStringToObject(c, "finishReason", finish);
  cJSON_AddNumberToObject(c, "index", 0);
  cJSON_AddItemToArray(cands, c);
  cJSON_AddItemToObject(root, "usageMetadata", gm_usage(m, cand));
  cJSON_AddStringToObject(root, "modelVersion", m->g.model);
  cJSON_AddStringToObject(root, "responseId", m->id);
  return root;
}

static cJSON *gm_text_part(const char *s, size_t n, int thought) {
  cJSON *p = cJSON_CreateObject();
  char *t = xstrndup(s, n);
  cJSON_AddStringToObject(p, "text", t);
  free(t);
  if (thought) cJSON_AddBoolToObject(p, "thought", 1);
  return p;
}

static void gm_calls(const struct gm *m, cJSON *parts) {
  const cJSON *t;
  cJSON_ArrayForEach(t, m->g.tools) {
    cJSON *p = cJSON_CreateObject();
    cJSON *fc = cJSON_AddObjectToObject(p, "functionCall");
    cJSON_AddStringToObject(fc, "name", tool_name(t));
    cJSON_AddItemToObject(fc, "args", tool_args_value(t));
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(t, "id");
    if (cJSON_IsString(id)) cJSON_AddStringToObject(fc, "id", id->valuestring);
    const cJSON *sig = cJSON_GetObjectItemCaseSensitive(t, "signature");
    if (cJSON_IsString(sig)) cJSON_AddStringToObject(p, "thoughtSignature", sig->valuestring);
    cJSON_AddItemToArray(parts, p);
  }
}

static void gm_emit(struct gm *m, struct mock_response *r, cJSON *chunk) {
  char *s = cJSON_PrintUnformatted(chunk);
  if (!s) abort();
  if (m->sse) {
    mbuf_printf(&r->body, "data: %s\r\n\r\n", s);
  } else {
    mbuf_puts(&r->body, m->n_chunks ? "\n,\r\n" : "[");
    mbuf_puts(&r->body, s);
  }
  mock_resp_mark(r);
  m->n_chunks++;
  free(s);
  cJSON_Delete(chunk);
}

/* Streamed pieces of s as text (or thought) chunks. */
static void gm_pieces(struct gm *m, struct mock_response *r, const char *s, int thought) {
  size_t n = strlen(s);
  for (size_t off = 0; off < n;) {
    size_t k = mock_utf8_piece(s + off, n - off, m->g.frag);
    cJSON *parts = cJSON_CreateArray();
    cJSON_AddItemToArray(parts, gm_text_part(s + off, k, thought));
    m->cand += thought ? 0 : 1;
    gm_emit(m, r, gm_chunk(m, parts, NULL, m->cand));
    off += k;
  }
}

void mock_gen_gemini(const cJSON *spec, const struct mock_request *req, struct mock_response *r) {
  struct gm m;
  memset(&m, 0, sizeof m);
  gen_init(&m.g, spec, req);
  m.g.stream = strstr(req->path, ":streamGenerateContent") != NULL;
  /* "json_array": true answers in the array framing whatever was asked. */
  m.sse = strstr(req->target, "alt=sse") != NULL &&
          !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(spec, "json_array"));
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(spec, "thoughts");
  m.thoughts = cJSON_IsString(v) ? v->valuestring : NULL;
  char id[64];
  v = cJSON_GetObjectItemCaseSensitive(spec, "id");
  if (cJSON_IsString(v)) snprintf(id, sizeof id, "%s", v->valuestring);
  else snprintf(id, sizeof id, "resp-mock%ld", next_id());
  m.id = id;
  const char *finish = m.g.finish ? m.g.finish : "STOP";
  if (!m.g.stream) {
    cJSON *parts = cJSON_CreateArray();
    if (m.thoughts) cJSON_AddItemToArray(parts, gm_text_part(m.thoughts, strlen(m.thoughts), 1));
    if (m.g.text || !m.g.tools)
      cJSON_AddItemToArray(parts, gm_text_part(m.g.text ? m.g.text : "",
                                               m.g.text ? strlen(m.g.text) : 0, 0));
    gm_calls(&m, parts);
    body_json(r, gm_chunk(&m, parts, finish, m.g.out_tokens));
    gen_free(&m.g);
    return;
  }
  start_stream(r, m.sse ? "text/event-stream" : "application/json; charset=UTF-8");
  if (m.thoughts) gm_pieces(&m, r, m.thoughts, 1);
  if (m.g.text) gm_pieces(&m, r, m.g.text, 0);
  /* The last chunk: the calls, whole, and the finishReason. */
  cJSON *parts = cJSON_CreateArray();
  if (!m.g.tools) cJSON_AddItemToArray(parts, gm_text_part("", 0, 0));
  gm_calls(&m, parts);
  gm_emit(&m, r, gm_chunk(&m, parts, finish, m.g.out_tokens));
  if (!m.sse) {
    mbuf_puts(&r->body, "\n]");
    mock_resp_mark(r);
  }
  gen_free(&m.g);
}

/* ---- Bedrock Converse / ConverseStream ----
 *
 * JSON: {"output":{"message":{"role":"assistant","content":[{text},
 * {toolUse:{toolUseId,name,input}}...]}},"stopReason","usage","metrics"}.
 * ConverseStream: AWS event-stream binary frames (prelude CRC32, headers
 * :event-type / :content-type / :message-type, JSON payload with a "p"
 * padding field, message CRC32): messageStart, text deltas for block 0
 * (no contentBlockStart for text, as recorded), contentBlockStop, per tool
 * contentBlockStart + toolUse.input fragments + contentBlockStop,
 * messageStop, metadata. "exception": {"type","message"} in the spec ends
 * the stream with an exception frame after the text. */

static uint32_t es_crc(const unsigned char *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
  }
  return ~c;
}

static void es_put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* One frame with string headers; names[i] / values[i]. */
static void es_frame(struct mock_response *r, const char *const *names,
                     const char *const *values, int nh, const char *payload) {
  struct mbuf h = {0};
  for (int i = 0; i < nh; i++) {
    size_t nl = strlen(names[i]), vl = strlen(values[i]);
    unsigned char b[3] = {7, (unsigned char)(vl >> 8), (unsigned char)vl};
    unsigned char l = (unsigned char)nl;
    mbuf_add(&h, &l, 1);
    mbuf_add(&h, names[i], nl);
    mbuf_add(&h, b, 3);
    mbuf_add(&h, values[i], vl);
  }
  size_t pl = strlen(payload), total = 12 + h.len + pl + 4;
  unsigned char *f = xmalloc(total);
  es_put32(f, (uint32_t)total);
  es_put32(f + 4, (uint32_t)h.len);
  es_put32(f + 8, es_crc(f, 8));
  if (h.len) memcpy(f + 12, h.p, h.len);
  memcpy(f + 12 + h.len, payload, pl);
  es_put32(f + total - 4, es_crc(f, total - 4));
  mbuf_add(&r->body, f, total);
  mock_resp_mark(r);
  free(f);
  mbuf_free(&h);
}

static void es_event(struct mock_response *r, const char *type, cJSON *payload) {
  /* The padding field real streams carry, of a varying length. */
  static const char pad[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";
  cJSON_AddStringToObject(payload, "p", pad + (next_id() % 20));
  char *s = cJSON_PrintUnformatted(payload);
  if (!s) abort();
  const char *names[] = {":event-type", ":content-type", ":message-type"};
  const char *values[] = {type, "application/json", "event"};
  es_frame(r, names, values, 3, s);
  free(s);
  cJSON_Delete(payload);
}

static cJSON *br_usage(const struct gen *g) {
  if (g->usage) return cJSON_Duplicate(g->usage, 1);
  cJSON *u = cJSON_CreateObject();
  cJSON_AddNumberToObject(u, "inputTokens", (double)g->in_tokens);
  cJSON_AddNumberToObject(u, "outputTokens", (double)g->out_tokens);
  cJSON_AddNumberToObject(u, "totalTokens", (double)(g->in_tokens + g->out_tokens));
  return u;
}

void mock_gen_bedrock(const cJSON *spec, const struct mock_request *req, struct mock_response *r) {
  struct gen g;
  gen_init(&g, spec, req);
  size_t pl = strlen(req->path);
  g.stream = pl >= 16 && strcmp(req->path + pl - 16, "/converse-stream") == 0;
  const char *stop = g.finish ? g.finish : g.tools ? "tool_use" : "end_turn";
  int with_text = (g.text && *g.text) || !g.tools;
  const char *text = g.text ? g.text : "";
  if (!g.stream) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(root, "metrics"), "latencyMs", 1);
    cJSON *msg = cJSON_AddObjectToObject(cJSON_AddObjectToObject(root, "output"), "message");
    cJSON *content = cJSON_AddArrayToObject(msg, "content");
    if (with_text) {
      cJSON *b = cJSON_CreateObject();
      cJSON_AddStringToObject(b, "text", text);
      cJSON_AddItemToArray(content, b);
    }
    const cJSON *t;
    int i = 0;
    cJSON_ArrayForEach(t, g.tools) {
      cJSON *b = cJSON_CreateObject();
      cJSON *tu = cJSON_AddObjectToObject(b, "toolUse");
      char *tid = tool_id(t, "tooluse_mock", i++);
      cJSON_AddItemToObject(tu, "input", tool_args_value(t));
      cJSON_AddStringToObject(tu, "name", tool_name(t));
      cJSON_AddStringToObject(tu, "toolUseId", tid);
      cJSON_AddItemToArray(content, b);
      free(tid);
    }
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(root, "stopReason", stop);
    cJSON_AddItemToObject(root, "usage", br_usage(&g));
    body_json(r, root);
    gen_free(&g);
    return;
  }
  mock_resp_set_header(r, "Content-Type", "application/vnd.amazon.eventstream");
  r->chunked = 1;
  cJSON *e = cJSON_CreateObject();
  cJSON_AddStringToObject(e, "role", "assistant");
  es_event(r, "messageStart", e);
  int index = 0;
  if (with_text) {
    size_t n = strlen(text);
    for (size_t off = 0; off < n;) {
      size_t k = mock_utf8_piece(text + off, n - off, g.frag);
      char *piece = xstrndup(text + off, k);
      e = cJSON_CreateObject();
      cJSON_AddNumberToObject(e, "contentBlockIndex", index);
      cJSON_AddStringToObject(cJSON_AddObjectToObject(e, "delta"), "text", piece);
      es_event(r, "contentBlockDelta", e);
      free(piece);
      off += k;
    }
    e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "contentBlockIndex", index++);
    es_event(r, "contentBlockStop", e);
  }
  const cJSON *exc = cJSON_GetObjectItemCaseSensitive(spec, "exception");
  if (cJSON_IsObject(exc)) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(exc, "type");
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(exc, "message");
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "message", cJSON_IsString(ms) ? ms->valuestring : "exception");
    char *s = cJSON_PrintUnformatted(p);
    const char *names[] = {":exception-type", ":content-type", ":message-type"};
    const char *values[] = {cJSON_IsString(ty) ? ty->valuestring : "internalServerException",
                            "application/json", "exception"};
    es_frame(r, names, values, 3, s);
    free(s);
    cJSON_Delete(p);
    gen_free(&g);
    return;
  }
  const cJSON *t;
  int i = 0;
  cJSON_ArrayForEach(t, g.tools) {
    char *tid = tool_id(t, "tooluse_mock", i++);
    e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "contentBlockIndex", index);
    cJSON *tu = cJSON_AddObjectToObject(cJSON_AddObjectToObject(e, "start"), "toolUse");
    cJSON_AddStringToObject(tu, "name", tool_name(t));
    cJSON_AddStringToObject(tu, "toolUseId", tid);
    es_event(r, "contentBlockStart", e);
    free(tid);
    char *args = tool_args_text(t);
    size_t n = strlen(args);
    for (size_t off = 0; off < n;) {
      size_t k = mock_utf8_piece(args + off, n - off, g.frag);
      char *piece = xstrndup(args + off, k);
      e = cJSON_CreateObject();
      cJSON_AddNumberToObject(e, "contentBlockIndex", index);
      cJSON *d = cJSON_AddObjectToObject(cJSON_AddObjectToObject(e, "delta"), "toolUse");
      cJSON_AddStringToObject(d, "input", piece);
      es_event(r, "contentBlockDelta", e);
      free(piece);
      off += k;
    }
    free(args);
    e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "contentBlockIndex", index++);
    es_event(r, "contentBlockStop", e);
  }
  e = cJSON_CreateObject();
  cJSON_AddStringToObject(e, "stopReason", stop);
  es_event(r, "messageStop", e);
  e = cJSON_CreateObject();
  cJSON_AddItemToObject(e, "usage", br_usage(&g));
  cJSON_AddNumberToObject(cJSON_AddObjectToObject(e, "metrics"), "latencyMs", 1);
  es_event(r, "metadata", e);
  gen_free(&g);
}

/* Standard or URL-safe base64, padding optional; NULL on a bad input. */
unsigned char *mock_base64_decode(const char *s, size_t *out_len) {
  size_t n = strlen(s);
  unsigned char *out = xmalloc(n / 4 * 3 + 3);
  size_t o = 0;
  unsigned acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int c = (unsigned char)s[i], v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+' || c == '-') v = 62;
    else if (c == '/' || c == '_') v = 63;
    else if (c == '=' || c == '\n' || c == '\r') continue;
    else {
      free(out);
      return NULL;
    }
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)(acc >> bits);
    }
  }
  *out_len = o;
  return out;
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
