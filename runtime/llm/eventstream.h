/* eventstream.h: incremental decoder of the AWS event-stream binary
 * framing (application/vnd.amazon.eventstream, Bedrock ConverseStream),
 * fed arbitrary byte fragments.
 *
 * A message: total length (u32 BE), headers length (u32 BE), prelude CRC32
 * (of the 8 bytes before it), headers, payload, message CRC32 (of every
 * byte before it). A header: name length (u8), name, value type (u8),
 * value: 0 true, 1 false, 2 byte, 3 int16, 4 int32, 5 int64, 6 bytes and
 * 7 string (u16 BE length, then the bytes), 8 timestamp (int64), 9 UUID
 * (16 bytes). Both CRCs are checked; a mismatch, a length that does not
 * add up, an unknown header type or a message over max_msg is an error
 * (the decoder then stays failed), never a skipped frame.
 *
 * Ownership: struct lc_es is caller-owned (embedded); lc_es_free releases
 * its buffer. Messages passed to the callback are borrowed for the call.
 *
 * Errors: feed returns 0, LC_EINVAL (malformed; p->err says why),
 * LC_ETOOBIG (over max_msg), LC_ENOMEM, or the callback's non-zero. */
#ifndef LC_EVENTSTREAM_H
#define LC_EVENTSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define LC_ES_MAX_HEADERS 32
#define LC_ES_PRELUDE 12 /* total, headers length, prelude CRC */

struct lc_es_header {
  const char *name;
  size_t name_len;
  int type;          /* 0..9, see above */
  const char *value; /* the value's bytes (strings and bytes: without length) */
  size_t value_len;
};

struct lc_es_msg {
  struct lc_es_header headers[LC_ES_MAX_HEADERS];
  size_t n_headers;
  const char *payload;
  size_t payload_len;
};

typedef int (*lc_es_fn)(void *ud, const struct lc_es_msg *m);

struct lc_es {
  struct lc_buf buf; /* bytes of the message not yet complete */
  size_t max_msg;
  int failed;
  char err[128];
};

/* max_msg: limit on one whole message; 0 = 16 MiB (the format's own). */
void lc_es_init(struct lc_es *p, size_t max_msg);
int lc_es_feed(struct lc_es *p, const void *data, size_t n, lc_es_fn cb, void *ud);
/* End of input: 1 if a partial message was left (a cut stream), else 0. */
int lc_es_end(struct lc_es *p);
void lc_es_free(struct lc_es *p);
/* A string-typed (7) header's value, or NULL (then *len is 0). */
const char *lc_es_header_str(const struct lc_es_msg *m, const char *name, size_t *len);
/* CRC-32 (IEEE 802.3, zlib's): crc = 0 to start. */
uint32_t lc_es_crc32(uint32_t crc, const void *data, size_t n);
/* Encodes one message with string headers (names[i], values[i]) into out:
 * for the mock server and tests. 0 or LC_ENOMEM/LC_ETOOBIG. */
int lc_es_encode(struct lc_buf *out, const char *const *names,
                 const char *const *values, size_t n_headers,
                 const void *payload, size_t payload_len);

#endif
