/* fuzz_ws.c: libFuzzer target for the WebSocket frame parser of `luact
 * serve` (runtime/daemon/ws.c). Input: bytes from a client. The first
 * byte chooses how the rest is cut into fragments; the split feed must
 * give the same results as the whole feed, a result's length must stay
 * within the message limit, a text message must be valid UTF-8, and
 * nothing may crash or leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../runtime/daemon/ws.c"

#define MAX_MSG 4096

/* Feeds in pieces; writes a summary of each result into out. */
static size_t run(const uint8_t *d, size_t n, uint32_t seed, unsigned char *out, size_t cap) {
  struct lc_ws_parser p;
  lc_ws_parser_init(&p, MAX_MSG);
  size_t o = 0, i = 0;
  uint32_t st = seed | 1;
  while (i < n) {
    size_t k = n - i;
    if (seed) {
      st ^= st << 13;
      st ^= st >> 17;
      st ^= st << 5;
      size_t m = (st % 17) + 1;
      if (m < k) k = m;
    }
    size_t used = 0;
    int rc = lc_ws_feed(&p, d + i, k, &used);
    if (used > k) abort();
    i += used;
    if (rc == LC_WS_NEED && used != k) abort();
    if (rc < 0) {
      if (o + 3 <= cap) {
        out[o++] = 'E';
        out[o++] = (unsigned char)(-rc >> 8);
        out[o++] = (unsigned char)-rc;
      }
      break;
    }
    if (rc == LC_WS_NEED) continue;
    if (p.len > MAX_MSG) abort();
    if (rc == LC_WS_MESSAGE && p.op == LC_WS_OP_TEXT && !lc_ws_utf8_ok(p.data, p.len)) abort();
    if (o + 2 + p.len <= cap) {
      out[o++] = (unsigned char)rc;
      out[o++] = (unsigned char)p.op;
      memcpy(out + o, p.data, p.len);
      o += p.len;
    }
  }
  lc_ws_parser_free(&p);
  return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 65536) return 0;
  static unsigned char a[1 << 18], b[1 << 18];
  size_t na = run(data + 1, size - 1, 0, a, sizeof a);
  size_t nb = run(data + 1, size - 1, data[0], b, sizeof b);
  if (na != nb || memcmp(a, b, na)) abort();
  return 0;
}
