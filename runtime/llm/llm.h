/* llm.h: the normalised LLM request and response, the provider adapter
 * interface, and the non-blocking client that runs a call on a loop.
 *
 * Ownership: every string and array inside a request or response is heap
 * memory owned by that struct; lc_llm_request_free / lc_llm_response_free
 * release it all. cJSON members (tool schemas, parsed tool arguments) are
 * owned the same way. The one exception: a tool's name, description and
 * schema may be borrowed (struct lc_llm_tool.borrowed), as luact.react's
 * requests borrow them from the run's shared actions. Adapters never keep pointers into a request after
 * build() returns.
 *
 * Body prefix cache: a request that is built again and again as it grows
 * (the ReAct engine's conversation) sets cache_wire. The OpenAI and Ollama
 * adapters then write everything that does not change between turns
 * before "messages" and keep the body's bytes up to the end of its last
 * message in req->prefix (struct lc_llm_prefix), with the number of
 * messages covered, the provider and a fingerprint of the head (model,
 * tools, settings); the next build with the same head truncates there and
 * appends only the new messages and "]}". The conversation is so held
 * once, as the body the next call extends. The built body is the cache's
 * own buffer, lent to the caller (out->body): lc_llm_prefix_give_back
 * returns it (the LLM call does so when it completes or is freed), and a
 * build that finds it still lent starts a fresh one. build() writing
 * req->prefix through its const request is the cache's one write, so such
 * a request must live in writable memory; a shallow copy shares the
 * buffer, so only the LLM call makes one (its view), and it copies the
 * cache back after build.
 *   What the cache checks itself: the head (fingerprint: strings by
 * content, schemas and descriptions by identity), appended messages, and
 * the last message covered (written again and compared, so replacing the
 * last message, as text mode does with its scratchpad, is seen). What it
 * cannot see: an earlier message changed in place, or a tool schema or
 * description changed in place: whoever does that must call
 * lc_llm_prefix_cut or lc_llm_prefix_drop first. Builds with
 * LUACT_DEBUG_CHECKS compare every cached body with a fresh one and abort
 * on a difference.
 *   Anthropic merges tool results into user turns and does not use the
 * prefix; its tools array has its own cache (tools_wire, struct
 * lc_llm_wire), dropped by whoever changes the tools.
 *
 * Errors: calls return 0 or a negative LC_E* code. A failed LLM call is not a
 * C error: it completes with response->err set to a kind (auth, rate limit,
 * ...) and response->err_message holding the provider's own message. */
#ifndef LC_LLM_H
#define LC_LLM_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "buf.h"

struct lc_loop;

enum lc_llm_provider {
  LC_PROV_OPENAI,    /* Chat Completions and compatible servers */
  LC_PROV_ANTHROPIC, /* Messages API */
  LC_PROV_OLLAMA,    /* native /api/chat */
  LC_PROV_OPENAI_RESPONSES, /* "openai-responses:": POST /responses */
  LC_PROV_GEMINI,    /* "gemini:": generateContent / streamGenerateContent */
  LC_PROV_BEDROCK,   /* "bedrock:": Converse / ConverseStream, SigV4 */
  LC_PROV__COUNT
};

enum lc_llm_role { LC_ROLE_SYSTEM, LC_ROLE_USER, LC_ROLE_ASSISTANT, LC_ROLE_TOOL };

/* Error kinds: stable names via lc_llm_err_name(). */
enum lc_llm_err {
  LC_LLM_OK = 0,
  LC_LLM_EAUTH,       /* 401/403, bad key */
  LC_LLM_ERATE,       /* 429 rate limit (retryable) */
  LC_LLM_EQUOTA,      /* 429 insufficient quota / billing (not retryable) */
  LC_LLM_EOVERLOADED, /* 529, 503 overloaded (retryable) */
  LC_LLM_ESERVER,     /* other 5xx (retryable) */
  LC_LLM_EBADREQ,     /* 400/404/422: the request is wrong */
  LC_LLM_ECONTEXT,    /* prompt longer than the model's context */
  LC_LLM_ETIMEOUT,    /* connect, idle or total timeout */
  LC_LLM_ENETWORK,    /* connection refused/reset, DNS, TLS */
  LC_LLM_EBADRESP,    /* malformed body, cut stream, non-JSON, over the size limit */
  LC_LLM_ECANCEL,     /* cancelled by the caller */
  LC_LLM_ECONFIG,     /* unknown provider, missing key: never sent */
  LC_LLM_E__COUNT
};

enum lc_llm_finish {
  LC_FINISH_NONE = 0, /* not reported */
  LC_FINISH_STOP,     /* natural end or a stop sequence */
  LC_FINISH_LENGTH,   /* max_tokens reached */
  LC_FINISH_TOOL_CALLS, /* also when calls came with "stop" or no reason
                           (Ollama, OpenRouter); finish_raw keeps theirs */
  LC_FINISH_CONTENT_FILTER,
  LC_FINISH_OTHER     /* see finish_raw */
};

enum lc_llm_tool_choice {
  LC_TOOL_CHOICE_AUTO = 0, /* default: omitted from the request */
  LC_TOOL_CHOICE_NONE,
  LC_TOOL_CHOICE_REQUIRED, /* must call some tool */
  LC_TOOL_CHOICE_NAMED     /* must call tool_choice_name */
};

enum lc_llm_format {
  LC_FORMAT_TEXT = 0,
  LC_FORMAT_JSON,       /* any JSON object */
  LC_FORMAT_JSON_SCHEMA /* JSON that fits response_schema */
};

struct lc_llm_tool_call {
  char *id;        /* provider's call id; synthesised "call_<n>" if absent */
  char *name;
  char *args_json; /* arguments as the model wrote them ("{}" if empty) */
  cJSON *args;     /* parsed; NULL when args_json is not valid JSON */
  /* Opaque per-call state the provider wants echoed back verbatim with
   * this call in the next request (Gemini's thoughtSignature, a Responses
   * function_call item's own "id" as "fc_..."); NULL when none. Never
   * interpreted, never shown. */
  char *signature;
};

/* ---- Content parts: images (and text between them) in a message ----
 *
 * A message's text stays in msg.content. A message that carries images
 * also has parts: when n_parts > 0 an adapter sends, in order, content
 * (when non-NULL) as a leading text part and then every part. So
 * {content = "What is in this image?", parts = [image]} is the common
 * case, and code that only reads content (prompts, token estimates) keeps
 * working. Parts are valid in user messages (every provider) and in tool
 * results where the provider takes them (Anthropic, Responses); an adapter
 * refuses the request (ECONFIG-like build error) where it cannot send one.
 *
 * An image part holds EITHER bytes (data, from a file, a Lua string or a
 * data: URL, always decoded: adapters base64 them in their own form) OR an
 * https URL (url, passed as is, never fetched by luact; Ollama and Bedrock
 * take no URLs and refuse it). media_type is sniffed from the bytes' magic
 * (PNG, JPEG, GIF, WebP are the four every provider takes); for a URL it
 * is guessed from the extension and may be "". sha256 is the hex SHA-256
 * of the bytes (of the URL text for a URL): the journal records
 * {type:"image", sha256, media_type, bytes:<size>} and never the bytes, so
 * a replayed run's request hash still changes when the image does, and
 * journals stay small. detail is OpenAI's "low"/"high"/"auto" ("" = omit).
 *
 * Build one with lc_llm_part_image_* below (they check and hash); the
 * per-provider limits are in lc_llm_image_check, which every adapter's
 * build() calls for each image it sends. */
enum lc_llm_part_kind { LC_PART_TEXT = 0, LC_PART_IMAGE };

struct lc_llm_part {
  enum lc_llm_part_kind kind;
  char *text; /* LC_PART_TEXT: owned, NUL-terminated */
  size_t text_len;
  unsigned char *data; /* LC_PART_IMAGE bytes (owned), or NULL for a URL */
  size_t data_len;
  char *url;           /* LC_PART_IMAGE https URL (owned), or NULL */
  char media_type[32]; /* "image/png", "image/jpeg", "image/gif", "image/webp" */
  char sha256[65];     /* hex; of data, or of url */
  char detail[8];      /* "low", "high", "auto" or "" */
};

/* Largest image luact accepts at all, before any provider's own limit
 * (OpenAI's 50 MB per request is the largest documented). */
#define LC_LLM_IMAGE_MAX (20u * 1024u * 1024u)

/* One value as the provider's JSON (exactly the bytes build() would write),
 * or empty (data == NULL). */
struct lc_llm_wire {
  char *data;
  size_t len;
  signed char prov; /* enum lc_llm_provider the bytes are for */
};

struct lc_llm_msg {
  enum lc_llm_role role;
  char *content; /* text; may be NULL for an assistant message with only calls */
  size_t content_len;
  struct lc_llm_tool_call *tool_calls; /* assistant only */
  size_t n_tool_calls;
  char *tool_call_id; /* tool result: which call it answers */
  char *name;         /* tool result: the tool's name (Ollama wants it) */
  int is_error;       /* tool result: the tool failed (Anthropic is_error) */
  struct lc_llm_part *parts; /* see "Content parts" above; owned */
  size_t n_parts;
  /* Assistant messages replayed to the provider: the reasoning the
   * provider returned with them (struct lc_llm_response.reasoning_state,
   * copied as is). Sent back only to the provider that wrote it
   * (reasoning_prov), where it requires it: Responses reasoning items
   * (with encrypted_content) before the calls, Anthropic thinking blocks
   * (with signature) before tool_use. Other providers drop it. */
  char *reasoning_state; /* owned JSON text, or NULL */
  signed char reasoning_prov; /* enum lc_llm_provider of reasoning_state */
};

struct lc_llm_tool {
  char *name;
  char *description;
  cJSON *schema; /* JSON schema of the arguments (object) */
  /* The same schema as compact JSON text, when the producer has it (the
   * Lua binding encodes the table straight to text): adapters then send it
   * verbatim and schema may be NULL. Must be valid JSON text. */
  char *schema_json;
  int strict; /* ask for strict schema adherence where supported */
  /* What the tool does not own (LC_LLM_TOOL_BORROWED_*): someone else
   * keeps those members alive and unchanged while the tool lives, and
   * lc_llm_request_free leaves them. 0 (everything owned) unless set. */
  unsigned borrowed;
};

#define LC_LLM_TOOL_BORROWED_TEXT 0x1u   /* name and description */
#define LC_LLM_TOOL_BORROWED_SCHEMA 0x2u /* schema */
#define LC_LLM_TOOL_BORROWED (LC_LLM_TOOL_BORROWED_TEXT | LC_LLM_TOOL_BORROWED_SCHEMA)

/* Which optional sampling fields are set (bit flags in request.set). */
#define LC_SET_TEMPERATURE 0x01u
#define LC_SET_TOP_P 0x02u
#define LC_SET_TOP_K 0x04u
#define LC_SET_MAX_TOKENS 0x08u
#define LC_SET_SEED 0x10u

/* The body prefix cache of a cache_wire request (see the top of this
 * file); all zero when empty. */
struct lc_llm_prefix {
  char *data;       /* the bytes (cap allocated); NULL while lent or empty */
  const char *lent; /* the body a build handed out, compared, never read */
  size_t len;       /* through the end of message n_msgs - 1 */
  size_t cap;
  size_t last_at;   /* the length covering n_msgs - 1 messages, or
                       LC_LLM_PREFIX_NO_LAST when not known */
  size_t n_msgs;    /* messages covered */
  unsigned long long fp; /* lc_llm_request_head_fp when built */
  signed char prov; /* enum lc_llm_provider */
};
#define LC_LLM_PREFIX_NO_LAST ((size_t)-1)

struct lc_llm_request {
  enum lc_llm_provider provider;
  char *model;    /* without the "provider:" prefix */
  char *base_url; /* resolved by the client: option, env, or default */
  char *api_key;  /* resolved by the client; never logged or journaled */
  struct lc_llm_msg *msgs;
  size_t n_msgs;
  struct lc_llm_tool *tools;
  size_t n_tools;
  enum lc_llm_tool_choice tool_choice;
  char *tool_choice_name;
  unsigned set; /* LC_SET_* */
  double temperature, top_p;
  int top_k;
  int max_tokens; /* Anthropic requires one: the adapter defaults to 4096 */
  long long seed;
  char **stop;
  size_t n_stop;
  enum lc_llm_format format;
  cJSON *response_schema;     /* LC_FORMAT_JSON_SCHEMA */
  char *response_schema_name; /* defaults to "response" */
  int stream;
  /* Keep the body prefix (OpenAI, Ollama) and the tools array
   * (Anthropic) between builds (see the top of this file). */
  int cache_wire;
  /* Reasoning, caching and server state (0/NULL = provider default):
   * reasoning_effort is OpenAI's reasoning.effort ("minimal" .. "high",
   * chat and Responses); reasoning_summary is Responses' reasoning.summary
   * ("auto", "concise", "detailed"; with it the adapter also asks for
   * reasoning.encrypted_content so stateless turns can pass it back);
   * thinking_budget is Anthropic's thinking.budget_tokens (>= 1024) and
   * Ollama's "think": true when > 0. cache_key is OpenAI's
   * prompt_cache_key (chat and Responses); cache_control asks Anthropic to
   * cache the prefix (an ephemeral breakpoint on the last tool, the system
   * prompt and the last message). previous_response_id continues a
   * Responses conversation the server stored: only then is "store" sent
   * true; luact is stateless by default ("store": false, the whole
   * history in every request). */
  char *reasoning_effort;
  char *reasoning_summary;
  int thinking_budget;
  char *cache_key;
  int cache_control;
  char *previous_response_id;
  int store; /* Responses "store": 1 keeps the response server-side */
  struct lc_llm_wire tools_wire; /* Anthropic's "tools" array */
  struct lc_llm_prefix prefix;
};

struct lc_llm_usage {
  long input;       /* prompt tokens (including cached) */
  long output;      /* completion tokens */
  long cached;      /* prompt tokens served from cache */
  long cache_write; /* Anthropic cache_creation_input_tokens */
  long reasoning;   /* reasoning tokens, where reported */
  double cost;      /* provider-reported cost (OpenRouter), else 0 */
  int has_cost;
};

struct lc_llm_response {
  char *text; /* assistant text, NUL-terminated; NULL if none */
  size_t text_len;
  /* Reasoning, in one place for every provider: the text shown
   * (Anthropic thinking, Responses summaries or reasoning_text, Ollama
   * "thinking", llama.cpp/DeepSeek reasoning_content, Gemini thought
   * parts), and what must go back with this turn (reasoning_state: JSON
   * text, an array of the provider's own items, e.g. Responses reasoning
   * items with encrypted_content, Anthropic thinking blocks with their
   * signature; NULL when there is none). A caller replaying this turn
   * copies reasoning_state into the assistant message (llm.h msg). */
  char *reasoning;
  char *reasoning_state;
  struct lc_llm_tool_call *tool_calls;
  size_t n_tool_calls;
  enum lc_llm_finish finish;
  char *finish_raw; /* the provider's own word ("end_turn", "tool_calls") */
  struct lc_llm_usage usage;
  char *model;      /* model the provider says answered */
  char *id;         /* response id (chatcmpl-..., msg_...) */
  char *request_id; /* provider request id header (x-request-id, request-id) */
  double latency_ms;
  int http_status;
  int attempts; /* HTTP attempts made, retries included */
  enum lc_llm_err err;
  char *err_message; /* provider's message, or ours for local failures */
  char *err_type;    /* provider's error type/code ("rate_limit_error") */
  double retry_after_s; /* from Retry-After/retry-after-ms; < 0 when absent */
};

/* One streamed piece, delivered in order as it is parsed. Pointers are
 * borrowed for the duration of the callback. */
enum lc_llm_delta_kind {
  LC_DELTA_TEXT,
  LC_DELTA_REASONING,
  LC_DELTA_TOOL_START, /* index, id, name */
  LC_DELTA_TOOL_ARGS   /* index, text = argument fragment */
};
struct lc_llm_delta {
  enum lc_llm_delta_kind kind;
  int index;
  const char *id;
  const char *name;
  const char *text;
  size_t len;
};
typedef void (*lc_llm_delta_fn)(void *ud, const struct lc_llm_delta *d);

/* What an adapter produces to send a request. All heap-owned. */
struct lc_llm_http {
  char *url;
  char **headers; /* "Name: value" lines, including auth */
  size_t n_headers;
  char *body;
  size_t body_len;
  /* AWS SigV4 signing by libcurl (Bedrock): CURLOPT_AWS_SIGV4's
   * "aws:amz:<region>:<service>" and CURLOPT_USERPWD's "<key id>:<secret>"
   * (a secret: registered, never logged); NULL when not signed. */
  char *aws_sigv4;
  char *aws_userpwd;
};
void lc_llm_http_free(struct lc_llm_http *h);

struct lc_llm_stream; /* adapter-private incremental parser state */

struct lc_llm_adapter {
  const char *name; /* "openai", "anthropic", "ollama" */
  const char *default_base_url;
  const char *base_url_env; /* OPENAI_BASE_URL, ANTHROPIC_BASE_URL, OLLAMA_HOST */
  const char *api_key_env;  /* NULL when the provider takes no key */
  const char *api_key_env2; /* read when api_key_env is unset (or NULL) */
  /* Builds URL, headers and JSON body. err gets a message on failure. */
  int (*build)(const struct lc_llm_request *req, struct lc_llm_http *out,
               char *err, size_t errlen);
  /* Parses a whole 2xx body. On malformed input sets out->err =
   * LC_LLM_EBADRESP with a message and returns LC_EINVAL. */
  int (*parse)(const char *body, size_t len, struct lc_llm_response *out);
  /* Classifies a non-2xx answer: sets out->err, err_message, err_type. */
  void (*parse_error)(int status, const char *body, size_t len,
                      struct lc_llm_response *out);
  /* Streaming: new state, feed bytes as they arrive (split anywhere),
   * then end. feed/end return 0, or LC_EINVAL with out->err/err_message set
   * (feed reports into the response passed to end: it keeps it in state). */
  struct lc_llm_stream *(*stream_new)(void);
  int (*stream_feed)(struct lc_llm_stream *st, const char *data, size_t len,
                     lc_llm_delta_fn cb, void *ud);
  /* Completes the response; a stream without its end marker is an error
   * (LC_LLM_EBADRESP "stream ended before ..."), never a short answer. */
  int (*stream_end)(struct lc_llm_stream *st, struct lc_llm_response *out);
  void (*stream_free)(struct lc_llm_stream *st);
};

extern const struct lc_llm_adapter lc_llm_openai;
extern const struct lc_llm_adapter lc_llm_anthropic;
extern const struct lc_llm_adapter lc_llm_ollama;
extern const struct lc_llm_adapter lc_llm_openai_responses;
extern const struct lc_llm_adapter lc_llm_gemini;
extern const struct lc_llm_adapter lc_llm_bedrock;

const struct lc_llm_adapter *lc_llm_adapter_for(enum lc_llm_provider p);
/* "openai:gpt-4o-mini" -> provider + model. Returns LC_EINVAL for an
 * unknown provider or a missing model; *model is heap-owned by the caller. */
int lc_llm_parse_model(const char *spec, enum lc_llm_provider *p, char **model);

const char *lc_llm_err_name(enum lc_llm_err e); /* "rate_limit", ... */
const char *lc_llm_finish_name(enum lc_llm_finish f);
const char *lc_llm_role_name(enum lc_llm_role r);
int lc_llm_err_retryable(enum lc_llm_err e);
/* Classification shared by adapters: HTTP status to kind, before the body
 * refines it (context length, quota). */
enum lc_llm_err lc_llm_err_from_status(int status);
/* Seconds to wait from one response header: "retry-after" (delta seconds
 * or an HTTP-date, relative to now_s = lc_wall_s()) or "retry-after-ms".
 * Returns < 0 when the header is another one or its value is unusable. */
double lc_llm_retry_after_s(const char *name, const char *value, double now_s);
/* Removes known secrets (secrets.h) from the text a provider or proxy
 * wrote into r's error fields: a 401 that echoes the key must not carry it
 * into stderr, the journal or Lua. Adapters call it where they form error
 * text, and the call path once more before the response leaves it. */
void lc_llm_response_scrub(struct lc_llm_response *r);

/* Copies provider, sampling fields (set, temperature, top_p, top_k,
 * max_tokens, seed), stream, thinking_budget, cache_control and store
 * from src; nothing owned. */
void lc_llm_request_copy_settings(struct lc_llm_request *dst,
                                  const struct lc_llm_request *src);
/* Moves the owned reasoning and caching strings (reasoning_effort,
 * reasoning_summary, cache_key, previous_response_id) from src to dst. */
void lc_llm_request_move_reasoning(struct lc_llm_request *dst,
                                   struct lc_llm_request *src);
void lc_llm_request_free(struct lc_llm_request *r);
/* lc_llm_request_free, then frees r itself (a heap request); NULL is fine. */
void lc_llm_request_delete(struct lc_llm_request *r);
/* Frees what a message owns and zeroes it. */
void lc_llm_msg_free(struct lc_llm_msg *m);

/* ---- the body prefix cache (see the top of this file) ---- */
/* Frees the cached bytes and forgets a lent body: for any change the
 * cache cannot see (a message before the last, a tool's schema). */
void lc_llm_prefix_drop(struct lc_llm_request *q);
/* The messages from index keep on are about to change or go: the cache
 * keeps what covers the first keep (only keep >= n_msgs - 1 is kept
 * without a rebuild; anything shorter drops it). */
void lc_llm_prefix_cut(struct lc_llm_request *q, size_t keep);
/* Gives *body back to q's cache when it is the body q's cache lent (then
 * *body = NULL); else changes nothing and the caller still owns *body. */
void lc_llm_prefix_give_back(struct lc_llm_request *q, char **body);
/* Fingerprint of everything a body holds before "messages" (provider
 * aside): model, tools, tool choice, sampling, stop, format, stream. */
unsigned long long lc_llm_request_head_fp(const struct lc_llm_request *q);

/* ---- Anthropic's tools wire cache, for its build() ---- */
struct lc_jsonw;
/* Appends c as the next value when it holds bytes for provider p:
 * returns 1; else writes nothing and returns 0. */
int lc_llm_wire_put(struct lc_jsonw *w, const struct lc_llm_wire *c,
                    enum lc_llm_provider p);
/* Stores the bytes written since mark (lc_jsonw_value_at, taken just
 * before the value) as c's cache for p, when w has no error. Best effort:
 * out of memory just leaves c empty. */
void lc_llm_wire_keep(struct lc_llm_wire *c, enum lc_llm_provider p,
                      const struct lc_jsonw *w, size_t mark);
void lc_llm_wire_drop(struct lc_llm_wire *c);
void lc_llm_response_free(struct lc_llm_response *r);
void lc_llm_response_init(struct lc_llm_response *r);
/* An answer that could not be assembled for want of memory: r emptied,
 * err bad_response "out of memory". Returns LC_EINVAL, a parser's code for
 * a response it refuses. */
int lc_llm_response_nomem(struct lc_llm_response *r);
void lc_llm_tool_call_free(struct lc_llm_tool_call *c);

/* ---- images (see "Content parts") ----
 * Each fills *p (zeroed first; lc_llm_part_free releases it) and returns
 * 0, or LC_EINVAL with a message in err for a refused image (unknown
 * format, empty, over LC_LLM_IMAGE_MAX, not https, bad data: URL), or
 * LC_ENOMEM. media_type may be NULL: the bytes' magic decides, and a given
 * one that disagrees with the bytes is refused. */
int lc_llm_part_image_bytes(struct lc_llm_part *p, const void *data, size_t len,
                            const char *media_type, char *err, size_t errlen);
int lc_llm_part_image_data_url(struct lc_llm_part *p, const char *url,
                               size_t len, char *err, size_t errlen);
/* https:// (or data:, handed to the above); http:// only to loopback. */
int lc_llm_part_image_url(struct lc_llm_part *p, const char *url,
                          char *err, size_t errlen);
int lc_llm_part_image_file(struct lc_llm_part *p, const char *path,
                           char *err, size_t errlen);
int lc_llm_part_text(struct lc_llm_part *p, const char *text, size_t len);
void lc_llm_part_free(struct lc_llm_part *p);
/* "image/png" etc. from magic bytes, or NULL when none of the four. */
const char *lc_llm_image_sniff(const void *data, size_t len);
/* Width and height from the image's own header (PNG IHDR, GIF screen,
 * WebP VP8/VP8L/VP8X, JPEG's first frame): 1, or 0 when not found
 * (*w = *h = 0). Read-only, bounded by len. */
int lc_llm_image_dims(const void *data, size_t len, unsigned long *w, unsigned long *h);
/* Frames (image descriptors) of a GIF, 0 for anything else. */
int lc_llm_image_gif_frames(const void *data, size_t len);
/* The provider's documented limits for one image of a request: media
 * type, size, URL allowed. 0, or LC_EINVAL with a message in err. */
int lc_llm_image_check(const struct lc_llm_part *p, enum lc_llm_provider prov,
                       char *err, size_t errlen);
/* The provider's documented limits for all images of one request (count,
 * total size); build() calls it first. 0, or LC_EINVAL with a message. */
int lc_llm_images_check(const struct lc_llm_request *req, enum lc_llm_provider prov,
                        char *err, size_t errlen);
/* Standard base64 (with padding) of n bytes into a fresh NUL-terminated
 * string; NULL on out of memory. data: URLs are "data:<mt>;base64,<this>". */
char *lc_llm_base64(const void *data, size_t n, size_t *out_len);

#endif
