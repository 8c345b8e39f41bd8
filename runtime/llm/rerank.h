/* rerank.h: reranking on the wire: a cross-encoder scores each document
 * for a query. Four request shapes cover the providers in use:
 *  - Cohere: POST {base}/v2/rerank {model, query, documents, top_n}
 *    -> {results:[{index, relevance_score}]}
 *  - Jina, vLLM, llama.cpp (and other Jina-compatible servers):
 *    POST {base}/v1/rerank, the same body and answer
 *  - Voyage: POST {base}/v1/rerank {model, query, documents, top_k}
 *    -> {data:[{index, relevance_score}]}
 *  - Hugging Face TEI: POST {base}/rerank {query, texts, truncate}
 *    -> [{index, score}]
 * Request bodies for one batch, and response parsing with every check a
 * hostile server needs: each index in range and seen once, each score a
 * finite number, no more results than documents, whole JSON.
 *
 * Ownership: a request owns its strings (lc_rerank_request_free); a
 * result owns its rows (lc_rerank_result_free). Parsing keeps no
 * pointers into the body.
 *
 * Errors: 0 or a negative LC_E* code; a response that cannot be used
 * sets err = LC_LLM_EBADRESP and err_message saying what was wrong. */
#ifndef LC_RERANK_H
#define LC_RERANK_H

#include <stddef.h>

#include "llm.h"

enum lc_rerank_provider {
  LC_RERANK_COHERE = 0,
  LC_RERANK_JINA,
  LC_RERANK_VOYAGE,
  LC_RERANK_TEI,
  LC_RERANK_VLLM, /* also llama.cpp's server: Jina's shape on a local base */
  LC_RERANK__COUNT
};

/* Documents per request. Cohere and Voyage document 1000 (Cohere takes
 * up to 10,000 but advises 1000); TEI's server refuses more than its
 * --max-client-batch-size, 32 by default; the others take 1000. */
#define LC_RERANK_MAX_BATCH 1000
#define LC_RERANK_TEI_MAX_BATCH 32
#define LC_RERANK_MAX_BATCH_BYTES (1u << 20)

struct lc_rerank_request {
  enum lc_rerank_provider provider;
  char *model;    /* TEI: unused (one model per server) */
  char *base_url; /* NULL: the provider's (lc_rerank_resolve) */
  char *api_key;  /* NULL: from the provider's environment variable */
  char *query;
  char **docs; /* n_docs texts, each valid UTF-8 without NUL */
  size_t *doc_len;
  size_t n_docs;
  size_t top_n;     /* 0: every document */
  size_t max_batch; /* 0: the provider's limit */
  int truncate;     /* ask the server to cut over-long documents (TEI: truncate, Voyage: truncation) */
};

struct lc_rerank_hit {
  size_t index; /* into the request's documents, 0-based */
  double score;
};

struct lc_rerank_result {
  struct lc_rerank_hit *hits; /* best first; ties by index */
  size_t n;
  char *model;
  long tokens; /* as reported (usage.total_tokens, billed search units) */
  int http_status;
  int attempts;
  double latency_ms;
  enum lc_llm_err err;
  char *err_message;
  char *err_type;
  double retry_after_s; /* < 0 when absent */
};

/* "cohere", "jina", "voyage", "tei", "vllm": journal, governor, messages. */
const char *lc_rerank_provider_name(enum lc_rerank_provider p);
/* The provider for a name ("llamacpp" is vllm's shape); -1 when unknown. */
int lc_rerank_provider_from(const char *name);

void lc_rerank_request_free(struct lc_rerank_request *q);
void lc_rerank_result_init(struct lc_rerank_result *r);
void lc_rerank_result_free(struct lc_rerank_result *r);

/* Fills the default base URL and the key from the provider's variable
 * (COHERE_API_KEY or CO_API_KEY, JINA_API_KEY, VOYAGE_API_KEY,
 * VLLM_API_KEY, TEI_API_KEY). Returns 0, LC_EINVAL (message in err: a
 * hosted provider with no key, a local one with no base_url) or LC_ENOMEM. */
int lc_rerank_resolve(struct lc_rerank_request *q, char *err, size_t errlen);

size_t lc_rerank_batch_limit(const struct lc_rerank_request *q);
/* How many documents from index from go into the next request. */
size_t lc_rerank_next_batch(const struct lc_rerank_request *q, size_t from);

/* Builds URL, headers and body for documents [from, from + n). top_n is
 * sent only when the whole request is one batch (scores from several
 * batches are merged and cut here). Returns 0, LC_EINVAL or LC_ENOMEM. */
int lc_rerank_build(const struct lc_rerank_request *q, size_t from, size_t n,
                    struct lc_llm_http *out, char *err, size_t errlen);

/* Parses a 2xx body for documents [from, from + n) and appends its hits
 * (indexes shifted by from) to out. A batch goes in whole or not at all.
 * Returns 0, or LC_EINVAL with out->err/err_message set, or LC_ENOMEM. */
int lc_rerank_parse(const struct lc_rerank_request *q, const char *body, size_t len,
                    size_t from, size_t n, struct lc_rerank_result *out);
/* Classifies a non-2xx answer into out. */
void lc_rerank_parse_error(const struct lc_rerank_request *q, int status, const char *body,
                           size_t len, struct lc_rerank_result *out);
/* Sorts out's hits best first (ties by index) and keeps top_n. */
void lc_rerank_finish(const struct lc_rerank_request *q, struct lc_rerank_result *out);

#endif
