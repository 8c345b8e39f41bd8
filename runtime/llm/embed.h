/* embed.h: embeddings on the wire: OpenAI /v1/embeddings (and servers
 * compatible with it: vLLM, llama.cpp, LM Studio), Ollama's /api/embed
 * (and its legacy /api/embeddings) and Gemini's
 * models/{model}:batchEmbedContents: request bodies for one batch, and
 * response parsing into float32 rows with every check a hostile server
 * needs (row count, one dimension count, finite values, whole base64).
 *
 * Ownership: a request owns its strings (lc_embed_request_free); a result
 * owns its rows (lc_embed_result_free). Parsing never keeps pointers into
 * the body.
 *
 * Errors: 0 or a negative LC_E* code; a response that cannot be used sets
 * err = LC_LLM_EBADRESP and err_message saying what was wrong. */
#ifndef LC_EMBED_H
#define LC_EMBED_H

#include <stddef.h>

#include "llm.h"

/* How base64 vectors are laid out. OpenAI sends little-endian float32;
 * vLLM's compatible server sends float64. AUTO takes float64 when the
 * requested dimension count says so, or when every value is a float32
 * widened to a double (the low 29 mantissa bits of every double zero,
 * which float32 data never shows across a whole vector). */
enum lc_embed_b64 { LC_EMBED_B64_AUTO = 0, LC_EMBED_B64_F32, LC_EMBED_B64_F64 };

/* Batch limits by provider: OpenAI takes at most 2048 inputs per request
 * (and 300k tokens); Gemini's batchEmbedContents refuses more than 100
 * requests; Ollama has no documented cap, so a modest one keeps one
 * request's time bounded. */
#define LC_EMBED_OPENAI_MAX_BATCH 2048
#define LC_EMBED_GEMINI_MAX_BATCH 100
#define LC_EMBED_OLLAMA_MAX_BATCH 256
#define LC_EMBED_MAX_BATCH_BYTES (1u << 20) /* ~250k tokens at 4 bytes each */
#define LC_EMBED_MAX_DIMS 65536

struct lc_embed_request {
  enum lc_llm_provider provider; /* OPENAI, OLLAMA or GEMINI */
  char *model;
  char *base_url; /* resolved like chat's (llm_call.h) */
  char *api_key;
  char **input;     /* n_input texts, each valid UTF-8 */
  size_t *input_len;
  size_t n_input;
  int dimensions;   /* 0: the model's own */
  int base64;       /* OpenAI: ask for encoding_format "base64" */
  enum lc_embed_b64 b64_type;
  int legacy;       /* Ollama: /api/embeddings, one "prompt" per request */
  size_t max_batch; /* 0: the provider's limit */
  char *task_type;  /* Gemini: taskType (RETRIEVAL_QUERY, ...); NULL: none */
};

/* "openai", "ollama" or "gemini": journal, governor and messages. */
const char *lc_embed_provider_name(enum lc_llm_provider p);

struct lc_embed_result {
  float *rows; /* n * dims, row-major */
  size_t n, dims;
  char *model;      /* as the provider reports it */
  long input_tokens;
  int http_status;
  int attempts;
  double latency_ms;
  enum lc_llm_err err;
  char *err_message;
  char *err_type;
  double retry_after_s; /* < 0 when absent */
};

void lc_embed_request_free(struct lc_embed_request *q);
void lc_embed_result_init(struct lc_embed_result *r);
void lc_embed_result_free(struct lc_embed_result *r);

/* The batch limit that applies to q (max_batch, else the provider's). */
size_t lc_embed_batch_limit(const struct lc_embed_request *q);
/* How many inputs from index from go into the next request: at most the
 * batch limit and LC_EMBED_MAX_BATCH_BYTES of text (always at least one). */
size_t lc_embed_next_batch(const struct lc_embed_request *q, size_t from);

/* Builds URL, headers and body for inputs [from, from + n). Returns 0,
 * LC_EINVAL (message in err) or LC_ENOMEM. */
int lc_embed_build(const struct lc_embed_request *q, size_t from, size_t n,
                   struct lc_llm_http *out, char *err, size_t errlen);

/* Parses a 2xx body holding want rows (want_dims of them when > 0) and
 * appends them to out (whose dims, once set, every later row must match).
 * Returns 0, or LC_EINVAL with out->err/err_message set, or LC_ENOMEM. */
int lc_embed_parse(const struct lc_embed_request *q, const char *body, size_t len,
                   size_t want, struct lc_embed_result *out);
/* Classifies a non-2xx answer into out (the chat adapters' rules). */
void lc_embed_parse_error(const struct lc_embed_request *q, int status, const char *body,
                          size_t len, struct lc_embed_result *out);

/* Strict base64 (RFC 4648, padding required when the length is not a
 * multiple of 4). Returns the byte count, or -1 on a bad or cut string.
 * out must hold len / 4 * 3 bytes. */
long lc_embed_b64_decode(const char *s, size_t len, unsigned char *out);
/* Standard base64 of n bytes into out (4 * ((n + 2) / 3) + 1 bytes). */
void lc_embed_b64_encode(const unsigned char *p, size_t n, char *out);

#endif
