/* llm_accum.h: the response accumulator every adapter feeds, plus the small
 * helpers the three adapters share (error classification, JSON access).
 *
 * An adapter, streaming or not, reports what it parsed: text and reasoning
 * fragments, tool-call starts and argument fragments keyed by the provider's
 * own index, finish reason and usage. The accumulator forwards each piece
 * as an lc_llm_delta (tool deltas carry the call's ordinal, 0..n-1, so it
 * indexes response.tool_calls) and at the end builds the lc_llm_response:
 * arguments parsed with lc_json_parse, "" -> "{}", missing ids "call_<n>".
 *
 * Ownership: struct lc_llm_accum is embedded by its user; lc_accum_free
 * releases everything still inside it. lc_accum_build moves the contents
 * into the response (which must be freshly initialised).
 *
 * Errors: functions return 0 or a negative LC_E*; the first error is
 * recorded in a->err / a->errmsg (a->err_type) and the accumulator stays
 * failed: lc_accum_build then fills out->err and returns LC_EINVAL. */
#ifndef LC_LLM_ACCUM_H
#define LC_LLM_ACCUM_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "buf.h"
#include "jsonr.h"
#include "llm.h"
#include "ndjson.h"
#include "sse.h"

/* Hard cap on text, reasoning and each call's arguments. */
#define LC_ACCUM_MAX_TEXT ((size_t)64 << 20)

struct lc_accum_call {
  int key; /* provider index or a synthesised key */
  char *id;
  char *name;
  int empty_name; /* a name was given, and it was "" */
  struct lc_buf args;
};

struct lc_llm_accum {
  struct lc_buf text, reasoning;
  struct lc_accum_call *calls;
  size_t n_calls, cap_calls;
  int next_key; /* for calls the provider gives no index */
  enum lc_llm_finish finish;
  char *finish_raw;
  struct lc_llm_usage usage;
  char *model, *id, *request_id;
  lc_llm_delta_fn cb;
  void *ud;
  /* Ollama models such as qwen3 put "<think>...</think>" in the content;
   * with split_think set it is routed to reasoning instead. */
  int split_think;
  int think_state;
  struct lc_buf think_pend;
  enum lc_llm_err err;
  char *err_type;
  char errmsg[512];
};

void lc_accum_init(struct lc_llm_accum *a);
void lc_accum_free(struct lc_llm_accum *a);
/* Where deltas go from now on (NULL: nowhere). */
void lc_accum_set_cb(struct lc_llm_accum *a, lc_llm_delta_fn cb, void *ud);

int lc_accum_text(struct lc_llm_accum *a, const char *s, size_t n);
int lc_accum_reasoning(struct lc_llm_accum *a, const char *s, size_t n);
/* Starts call `key`, or completes its id/name if it already exists (servers
 * that repeat id and name in every chunk). Emits LC_DELTA_TOOL_START once. */
int lc_accum_tool_start(struct lc_llm_accum *a, int key, const char *id,
                        const char *name);
/* The same with the name's length as decoded: a name holding a NUL
 * (from \u0000) keeps it written out as the text \u0000, so it can
 * never equal a declared name (which holds no backslash) that it would
 * equal if it ended at the NUL ("search\u0000x" is not "search"). */
int lc_accum_tool_start_n(struct lc_llm_accum *a, int key, const char *id,
                          const char *name, size_t name_len);
int lc_accum_tool_args(struct lc_llm_accum *a, int key, const char *s,
                       size_t n);
/* Key lookups for providers without indexes: -1 when none. */
int lc_accum_key_by_id(const struct lc_llm_accum *a, const char *id);
int lc_accum_last_key(const struct lc_llm_accum *a);
int lc_accum_fresh_key(struct lc_llm_accum *a);
struct lc_accum_call *lc_accum_call_by_key(struct lc_llm_accum *a, int key);

void lc_accum_finish(struct lc_llm_accum *a, enum lc_llm_finish f,
                     const char *raw);
/* Copies s into *dst unless *dst is already set (first value wins). */
int lc_accum_set_once(char **dst, const char *s);

/* Records the first error (printf-style message); returns LC_EINVAL. */
int lc_accum_fail(struct lc_llm_accum *a, enum lc_llm_err kind,
                  const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Records an in-band error object ({"error":{...}} / {"type":"error",...}
 * / {"error":"text"}) seen inside a 2xx answer; returns LC_EINVAL. */
int lc_accum_fail_json(struct lc_llm_accum *a, const cJSON *root);

/* Moves the result into out. 0, or LC_EINVAL with out->err set. */
int lc_accum_build(struct lc_llm_accum *a, struct lc_llm_response *out);

/* ---- helpers shared by the adapters ---- */

/* Maps a provider's finish word to the normalised kind. */
enum lc_llm_finish lc_accum_map_finish(const char *raw);

/* Classifies a non-2xx answer (or an in-band error, status 0): sets err,
 * err_message, err_type (and request_id when the body has one). Handles
 * JSON envelopes of all three providers and non-JSON bodies (HTML pages,
 * text/plain), from which a short clean excerpt becomes the message. */
void lc_accum_classify(int status, const char *body, size_t len,
                       struct lc_llm_response *out);
/* Kind for an error described by type/code/message at a given status. */
enum lc_llm_err lc_accum_kind(int status, const char *type, const char *code,
                              const char *msg);

/* Parses a 2xx body as JSON: NULL with out->err = EBADRESP and a message
 * ("not JSON: an HTML page ...") on failure. */
cJSON *lc_accum_parse_body(const char *body, size_t len, const char *what,
                           struct lc_llm_response *out);
/* The same check and messages without a tree: 0 when body is one JSON
 * object, whose members walk has read (jsonr.h). */
int lc_accum_walk_body(const char *body, size_t len, const char *what,
                       lc_jsonr_walk_fn walk, void *ud,
                       struct lc_llm_response *out);
/* Short, printable, valid-UTF-8 excerpt of a non-JSON body (tags stripped
 * from HTML, whitespace collapsed). Heap (lc_free). */
char *lc_accum_excerpt(const char *body, size_t len, size_t max);

const char *lc_accum_str(const cJSON *obj, const char *key); /* or NULL */
long lc_accum_long(const cJSON *obj, const char *key, long dflt);
/* Heap string for a cJSON value (strings verbatim, others printed). */
char *lc_accum_print(const cJSON *v);
/* Moves an lc_malloc'd copy of a cJSON-printed string (cJSON allocator). */
char *lc_accum_own(char *cjson_str);

/* ---- request building ---- */

/* out->url = base (trailing '/' dropped) + path. */
int lc_accum_http_url(struct lc_llm_http *out, const char *base,
                      const char *path);
int lc_accum_http_header(struct lc_llm_http *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints root as the body and deletes it (takes ownership). */
int lc_accum_http_body(struct lc_llm_http *out, cJSON *root);
/* Moves the bytes of b into out->body (b is left empty). */
int lc_accum_http_body_buf(struct lc_llm_http *out, struct lc_buf *b);
/* Length of a message's text: content_len, or strlen when a producer left
 * it 0 (the text may hold NULs only when content_len says so). */
size_t lc_accum_msg_len(const struct lc_llm_msg *m);
/* Writes a tool's argument schema: schema_json verbatim, else the schema
 * tree, else dflt (JSON text). */
struct lc_jsonw;
/* The request body's opening (Anthropic's): clears out, refuses a
 * request without a model (LC_EINVAL, message in err), starts body (owned
 * by the caller, lc_buf_free) with room for a typical request, and writes
 * '{"model":...'. */
int lc_accum_body_begin(struct lc_llm_http *out, const struct lc_llm_request *req,
                        struct lc_buf *body, struct lc_jsonw *w, char *err,
                        size_t errlen);
/* The chat body OpenAI and Ollama share, into out->body (out cleared
 * first): {"model":..., <head>, "messages":[<msg>, ...]}. head writes the
 * members that do not change between turns (keys and values); msg writes
 * one message (0, or LC_EINVAL with a message). With req->cache_wire the
 * body goes through req->prefix (llm.h): only messages the prefix does not
 * cover are written, and out->body is the prefix's buffer, lent (given
 * back with lc_llm_prefix_give_back). Returns 0, or LC_EINVAL (no model,
 * msg's failure), LC_ENOMEM or LC_ETOOBIG with a message in err; on
 * failure the prefix is left empty. */
typedef void (*lc_accum_head_fn)(struct lc_jsonw *w,
                                 const struct lc_llm_request *req);
typedef int (*lc_accum_msg_fn)(struct lc_jsonw *w, const struct lc_llm_msg *m,
                               char *err, size_t errlen);
int lc_accum_chat_body(struct lc_llm_http *out, const struct lc_llm_request *req,
                       enum lc_llm_provider p, lc_accum_head_fn head,
                       lc_accum_msg_fn msg, char *err, size_t errlen);
/* req's tools as an array of {"type":"function","function":{name,
 * description, parameters[, strict]}} (OpenAI's tool object, which Ollama's
 * /api/chat shares without strict). */
void lc_accum_w_function_tools(struct lc_jsonw *w, const struct lc_llm_request *req,
                               int with_strict);
void lc_accum_w_schema(struct lc_jsonw *w, const struct lc_llm_tool *t,
                       const char *dflt);
/* An image part as the URL string OpenAI's chat image_url.url and the
 * Responses input_image.image_url take: its https URL, or a data: URL
 * ("data:image/png;base64,...") of its bytes. */
void lc_accum_w_image_url(struct lc_jsonw *w, const struct lc_llm_part *p);
/* A JSON string: prefix (no escaping needed) then base64 of data. */
void lc_accum_w_base64(struct lc_jsonw *w, const char *prefix,
                       const void *data, size_t n);
/* Writes the arguments of a call as a JSON object (lc_accum_args_object);
 * LC_EINVAL with a message when they are not one. */
int lc_accum_w_args_object(struct lc_jsonw *w,
                           const struct lc_llm_tool_call *c, char *err,
                           size_t errlen);
/* The arguments of a call as a new JSON object: c->args copied, else
 * args_json parsed ("" -> {}). NULL with a message when not an object. */
cJSON *lc_accum_args_object(const struct lc_llm_tool_call *c, char *err,
                            size_t errlen);

/* ---- stream state shared by the adapters ---- */

#define LC_STREAM_MAX_EVENT ((size_t)8 << 20)

struct lc_llm_stream {
  struct lc_sse sse;
  struct lc_ndjson nd;
  struct lc_llm_accum acc;
  int done; /* the provider's end marker arrived */
  /* Adapter-private state beyond the above (Gemini's framing, Bedrock's
   * event-stream decoder); lc_accum_stream_free calls ext_free(ext). */
  void *ext;
  void (*ext_free)(void *ext);
};

struct lc_llm_stream *lc_accum_stream_new(void);
void lc_accum_stream_free(struct lc_llm_stream *st);
/* Completes a stream: an error recorded earlier, or a missing end marker
 * ("stream ended before <marker>"), becomes out->err and LC_EINVAL. */
int lc_accum_stream_end(struct lc_llm_stream *st, struct lc_llm_response *out,
                        const char *marker);
/* The SSE providers' stream_feed / stream_end: bytes through the SSE parser
 * into on_event (the adapter's per-event handler); a parser failure is a
 * bad_response. */
int lc_accum_sse_feed(struct lc_llm_stream *st, const char *data, size_t len,
                      lc_llm_delta_fn cb, void *ud, lc_sse_fn on_event);
int lc_accum_sse_end(struct lc_llm_stream *st, struct lc_llm_response *out,
                     const char *marker);

struct lc_jsonw;
/* Writes the sampling fields that are set: temperature, top_p, top_k (when
 * top_k_key is not NULL), max_tokens under max_tokens_key, seed, stop. */
void lc_accum_write_sampling(struct lc_jsonw *w, const struct lc_llm_request *req,
                             const char *top_k_key, const char *max_tokens_key);

#endif
