/* mock.h: internals shared by the lc-mockllm source files.
 *
 * lc-mockllm is a test tool, not part of the runtime: allocation failure
 * aborts (xmalloc) because a half-working mock would only produce confusing
 * test failures. Ownership: a struct owns every pointer inside it; the
 * *_free functions release them.
 *
 * Threads: one thread per connection. Everything mutable that is shared
 * (script pointer, rule counters, request log, stats) is guarded by
 * mock_server.lock. A script is reference counted so that POST /_script can
 * swap it while other connections are still building replies from the old one. */
#ifndef LC_MOCK_H
#define LC_MOCK_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stddef.h>

/* ---- mock_util.c ---- */
struct mbuf {
  char *p;
  size_t len, cap;
};
void *xmalloc(size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void mbuf_add(struct mbuf *b, const void *p, size_t n);
void mbuf_puts(struct mbuf *b, const char *s);
void mbuf_printf(struct mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mbuf_free(struct mbuf *b);
double mock_now_ms(void);
char *mock_read_file(const char *path, size_t *len);
/* Pieces of `len` bytes at most, never splitting a UTF-8 sequence: returns the
 * length of the next piece of s[0..n). */
size_t mock_utf8_piece(const char *s, size_t n, size_t max);

/* ---- request / response ---- */
struct mock_header {
  char *name;
  char *value;
};

struct mock_request {
  char *method;
  char *target; /* as sent, with the query string */
  char *path;   /* target without the query string */
  struct mock_header *headers;
  size_t nheaders;
  char *body;   /* NUL-terminated copy */
  size_t body_len;
  cJSON *json;  /* parsed body, NULL when it is not JSON */
};
const char *mock_req_header(const struct mock_request *r, const char *name);
void mock_request_free(struct mock_request *r);

struct mock_response {
  int status;
  struct mock_header *headers;
  size_t nheaders;
  struct mbuf body;
  size_t *marks; /* event boundaries (offsets) used to pace streams */
  size_t nmarks;
  int chunked;   /* Transfer-Encoding: chunked instead of Content-Length */
  int close;     /* close the connection after this response */
  long delay_ms;
  long chunk_bytes;      /* 0 = natural pieces (events) */
  long gap_ms;           /* pause between pieces */
  long cut_after_bytes;  /* -1 = off */
  long stall_after_bytes;/* -1 = off */
  long stall_max_ms;
};
void mock_resp_init(struct mock_response *r);
void mock_resp_free(struct mock_response *r);
void mock_resp_set_header(struct mock_response *r, const char *name, const char *value);
const char *mock_resp_header(const struct mock_response *r, const char *name);
void mock_resp_mark(struct mock_response *r); /* event boundary at body.len */
/* Sets status + a JSON error body {"error":{"message","type"}}. */
void mock_resp_error(struct mock_response *r, int status, const char *type, const char *msg);
void mock_resp_json(struct mock_response *r, int status, const cJSON *v);

/* ---- mock_script.c ---- */
struct mock_rule {
  const cJSON *match; /* may be NULL: matches everything */
  const cJSON *reply;
  long times;         /* -1 = unlimited */
  long used;          /* guarded by the server lock */
  /* "fixture": loaded once at script load so errors show up early */
  int fx_status;
  cJSON *fx_headers;
  char *fx_body;
  size_t fx_len;
};

struct mock_script {
  cJSON *root;
  struct mock_rule *rules;
  size_t nrules;
  int refs; /* guarded by the server lock */
};

/* base_dir resolves relative fixture paths. NULL + err on a bad script. */
struct mock_script *mock_script_parse(const char *json, const char *base_dir, char *err,
                                      size_t errlen);
void mock_script_free(struct mock_script *s);
int mock_rule_matches(const struct mock_rule *rule, const struct mock_request *req);
/* Fills resp from a rule's reply (status, body, generators, faults). */
void mock_reply_build(const struct mock_rule *rule, const struct mock_request *req,
                      long default_delay_ms, struct mock_response *resp);

/* ---- mock_gen.c: wire-format generators ---- */
void mock_gen_openai(const cJSON *spec, const struct mock_request *req, struct mock_response *r);
void mock_gen_anthropic(const cJSON *spec, const struct mock_request *req,
                        struct mock_response *r);
void mock_gen_ollama(const cJSON *spec, const struct mock_request *req, struct mock_response *r);
void mock_gen_gemini(const cJSON *spec, const struct mock_request *req, struct mock_response *r);
void mock_gen_bedrock(const cJSON *spec, const struct mock_request *req, struct mock_response *r);
/* Standard or URL-safe base64 (padding optional): heap bytes, or NULL. */
unsigned char *mock_base64_decode(const char *s, size_t *out_len);
/* mock_embed.c: {"rerank": {}}: Cohere, Jina/vLLM, Voyage or TEI rerank by path. */
void mock_gen_rerank(const cJSON *spec, const struct mock_request *req, struct mock_response *r);
/* mock_embed.c: {"embeddings": {"dims": n}}: vectors by feature hashing. */
void mock_gen_embeddings(const cJSON *spec, const struct mock_request *req,
                         struct mock_response *r);
void mock_gen_responses(const cJSON *spec, const struct mock_request *req,
                        struct mock_response *r);
/* Replaces the body by a broken variant of the same framing (JSON/SSE/NDJSON). */
void mock_gen_malform(struct mock_response *r);
/* Text of the last user or tool message in an OpenAI/Anthropic/Ollama body. */
char *mock_last_user_text(const cJSON *body);

/* ---- the server ---- */
struct mock_server {
  int listen_fd;
  int stop_fd;   /* read end of the stop pipe: readable once stopping, never read */
  int stop_wfd;
  long latency_ms;
  size_t max_body;
  char *script_dir; /* for relative fixture paths in POST /_script */
  double t0;

  pthread_mutex_t lock;
  pthread_cond_t conns_cv;
  struct mock_script *script;
  cJSON *log; /* array of request records */
  long requests, in_flight, peak_in_flight, unmatched;
  long connections, live_conns, peak_conns;
};

/* mock_http.c: a connection thread; arg is a heap mock_conn_arg it frees. */
struct mock_conn_arg {
  struct mock_server *srv;
  int fd;
};
void *mock_conn_main(void *arg);

/* mock_control.c: request log, stats, /_ endpoints, rule selection. */
/* Logs a request with the delay its response was given (tests read the
 * delay instead of timing the response). */
void mock_log_request(struct mock_server *srv, const struct mock_request *req, long delay_ms);
void mock_control(struct mock_server *srv, const struct mock_request *req,
                  struct mock_response *resp);
void mock_answer(struct mock_server *srv, const struct mock_request *req,
                 struct mock_response *resp);
void mock_script_release(struct mock_server *srv, struct mock_script *s);

#endif
