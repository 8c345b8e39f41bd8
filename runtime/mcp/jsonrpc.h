/* jsonrpc.h: JSON-RPC 2.0 framing for MCP: the newline-delimited splitter
 * of the stdio transport and the classification of one message.
 *
 * Everything here reads hostile bytes (a server's stdout or HTTP body):
 * a line over the limit is an error, never a truncation; a message that is
 * not a JSON-RPC 2.0 object is LC_EINVAL with a reason, and the caller
 * decides what that costs the session.
 *
 * Ownership: struct lc_jr_split is caller-owned (lc_jr_split_free releases
 * its buffer); lines passed to the callback are borrowed for the call.
 * lc_jr_parse gives the caller the tree in msg->root (cJSON_Delete it);
 * the other msg fields point into it. */
#ifndef LC_JSONRPC_H
#define LC_JSONRPC_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "buf.h"

struct lc_jr_split {
  struct lc_buf line;
  size_t max_line;
  int failed;
};

/* A complete line (without its "\n" or a trailing "\r"); non-zero stops
 * the feed, which returns that value. Blank lines are skipped. */
typedef int (*lc_jr_line_fn)(void *ud, const char *line, size_t n);

void lc_jr_split_init(struct lc_jr_split *s, size_t max_line);
/* 0, the callback's non-zero value, or LC_ETOOBIG (line over max_line; the
 * splitter stays failed) / LC_ENOMEM. */
int lc_jr_split_feed(struct lc_jr_split *s, const char *p, size_t n,
                     lc_jr_line_fn cb, void *ud);
/* Bytes of an unterminated line pending. */
size_t lc_jr_split_pending(const struct lc_jr_split *s);
void lc_jr_split_free(struct lc_jr_split *s);

enum lc_jr_kind { LC_JR_REQUEST, LC_JR_NOTIFICATION, LC_JR_RESPONSE };

struct lc_jr_msg {
  cJSON *root;
  enum lc_jr_kind kind;
  const char *method;  /* requests and notifications */
  const cJSON *id;     /* requests and responses: a string or integer */
  long long id_num;    /* the id when it is an integer, else -1 */
  const cJSON *params; /* may be NULL */
  const cJSON *result; /* responses: exactly one of result and error */
  const cJSON *error;
  long long err_code;  /* error.code */
  const char *err_msg; /* error.message ("" if none) */
};

/* Parses one message (a batch array is refused: MCP since 2025-06-18 has
 * none). Returns 0 with msg filled, or LC_EINVAL/LC_ENOMEM with a reason
 * in err. */
int lc_jr_parse(const char *p, size_t n, struct lc_jr_msg *msg, char *err,
                size_t errlen);

/* The usual answer to a tool call, byte for byte as the SDK's servers
 * write it: {"result":{"content":[{"type":"text","text":"T"}]},"jsonrpc":"2.0","id":N}
 * with T free of escapes and control bytes and valid UTF-8, and N a JSON
 * integer below 1e15. Returns 1 and sets *id, *text (pointing into p) and
 * *len; 0 for any other line (lc_jr_parse reads those). Whatever it
 * accepts, lc_jr_parse reads as a response with that id whose result is
 * that one text item (fixed keys: no duplicates; fuzz_jsonrpc checks). */
int lc_jr_text_answer(const char *p, size_t n, long long *id, const char **text, size_t *len);

#endif
