/* ws.c: RFC 6455 WebSocket framing and handshake for `luact serve` (see
 * ws.h). Pure functions over buffers: wsconn.c does the I/O. */
#include "ws.h"

#include <stdlib.h>
#include <string.h>

/* ---- SHA-1, base64, the handshake ---- */

static uint32_t rol(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

static void sha1_block(uint32_t h[5], const unsigned char *b) {
  uint32_t w[80];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 | (uint32_t)b[4 * i + 2] << 8 |
           b[4 * i + 3];
  for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4];
  for (int i = 0; i < 80; i++) {
    uint32_t f, k;
    if (i < 20) {
      f = (bb & c) | (~bb & d);
      k = 0x5A827999;
    } else if (i < 40) {
      f = bb ^ c ^ d;
      k = 0x6ED9EBA1;
    } else if (i < 60) {
      f = (bb & c) | (bb & d) | (c & d);
      k = 0x8F1BBCDC;
    } else {
      f = bb ^ c ^ d;
      k = 0xCA62C1D6;
    }
    uint32_t t = rol(a, 5) + f + e + k + w[i];
    e = d;
    d = c;
    c = rol(bb, 30);
    bb = a;
    a = t;
  }
  h[0] += a;
  h[1] += bb;
  h[2] += c;
  h[3] += d;
  h[4] += e;
}

void lc_ws_sha1(const void *data, size_t n, unsigned char out[20]) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  const unsigned char *p = data;
  size_t left = n;
  for (; left >= 64; left -= 64, p += 64) sha1_block(h, p);
  unsigned char last[128];
  memset(last, 0, sizeof last);
  if (left) memcpy(last, p, left);
  last[left] = 0x80;
  size_t tot = left + 9 <= 64 ? 64 : 128;
  uint64_t bits = (uint64_t)n * 8;
  for (int i = 0; i < 8; i++) last[tot - 1 - i] = (unsigned char)(bits >> (8 * i));
  sha1_block(h, last);
  if (tot == 128) sha1_block(h, last + 64);
  for (int i = 0; i < 5; i++) {
    out[4 * i] = (unsigned char)(h[i] >> 24);
    out[4 * i + 1] = (unsigned char)(h[i] >> 16);
    out[4 * i + 2] = (unsigned char)(h[i] >> 8);
    out[4 * i + 3] = (unsigned char)h[i];
  }
}

void lc_ws_accept(const char *key, char out[29]) {
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char buf[256 + sizeof guid];
  size_t k = strlen(key);
  if (k > 256) k = 256; /* a longer key is refused before (wsconn.c) */
  memcpy(buf, key, k);
  memcpy(buf + k, guid, sizeof guid - 1);
  unsigned char d[21];
  lc_ws_sha1(buf, k + sizeof guid - 1, d);
  d[20] = 0;
  size_t o = 0;
  for (int i = 0; i < 21; i += 3) {
    uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)(i + 1 < 20 ? d[i + 1] : 0) << 8 |
                 (i + 2 < 20 ? d[i + 2] : 0);
    out[o++] = b64[(v >> 18) & 63];
    out[o++] = b64[(v >> 12) & 63];
    out[o++] = i + 1 < 20 ? b64[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < 20 ? b64[v & 63] : '=';
  }
  out[28] = 0;
}

/* ---- UTF-8 ---- */

int lc_ws_utf8_ok(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t k;
    unsigned min, cp;
    if ((c & 0xE0) == 0xC0) {
      k = 1;
      cp = c & 0x1F;
      min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      k = 2;
      cp = c & 0x0F;
      min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      k = 3;
      cp = c & 0x07;
      min = 0x10000;
    } else {
      return 0;
    }
    if (n - i <= k) return 0; /* truncated */
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xC0) != 0x80) return 0;
      cp = cp << 6 | (s[i + j] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    i += k + 1;
  }
  return 1;
}

/* ---- frames ---- */

size_t lc_ws_frame(unsigned char *out, int opcode, const void *payload, size_t len) {
  size_t h = 0;
  out[h++] = (unsigned char)(0x80 | (opcode & 0x0F));
  if (len < 126) {
    out[h++] = (unsigned char)len;
  } else if (len <= 0xFFFF) {
    out[h++] = 126;
    out[h++] = (unsigned char)(len >> 8);
    out[h++] = (unsigned char)len;
  } else {
    out[h++] = 127;
    for (int i = 7; i >= 0; i--) out[h++] = (unsigned char)((uint64_t)len >> (8 * i));
  }
  if (len) memcpy(out + h, payload, len);
  return h + len;
}

void lc_ws_parser_init(struct lc_ws_parser *p, size_t max_msg) {
  memset(p, 0, sizeof *p);
  p->max_msg = max_msg;
  p->hneed = 2;
}

void lc_ws_parser_free(struct lc_ws_parser *p) {
  free(p->msg);
  p->msg = NULL;
  p->mlen = p->mcap = 0;
}

int lc_ws_mid_frame(const struct lc_ws_parser *p) {
  return p->hlen > 0 || p->in_payload || p->mop != 0;
}

static int close_code_ok(int c) {
  return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) || (c >= 3000 && c <= 4999);
}

/* The frame just read whole: its result, or NEED for a fragment. */
static int frame_done(struct lc_ws_parser *p) {
  p->in_payload = 0;
  p->hlen = 0;
  p->hneed = 2;
  size_t n = (size_t)p->plen;
  if (p->opcode >= LC_WS_OP_CLOSE) {
    p->data = p->ctl;
    p->len = n;
    p->op = p->opcode;
    if (p->opcode == LC_WS_OP_PING) return LC_WS_PING;
    if (p->opcode == LC_WS_OP_PONG) return LC_WS_PONG;
    p->close_code = 0;
    if (n == 1) return -LC_WS_CLOSE_PROTOCOL;
    if (n >= 2) {
      p->close_code = p->ctl[0] << 8 | p->ctl[1];
      if (!close_code_ok(p->close_code)) return -LC_WS_CLOSE_PROTOCOL;
      if (!lc_ws_utf8_ok(p->ctl + 2, n - 2)) return -LC_WS_CLOSE_BAD_DATA;
      p->data = p->ctl + 2;
      p->len = n - 2;
    }
    return LC_WS_CLOSED;
  }
  if (!p->fin) return LC_WS_NEED;
  if (p->mop == LC_WS_OP_TEXT && !lc_ws_utf8_ok(p->msg, p->mlen)) return -LC_WS_CLOSE_BAD_DATA;
  p->op = p->mop;
  p->data = p->msg ? p->msg : (const unsigned char *)"";
  p->len = p->mlen;
  p->mop = 0;
  p->mlen = 0; /* the bytes stay until the next call */
  return LC_WS_MESSAGE;
}

/* The header is whole: check it against the state. */
static int header_done(struct lc_ws_parser *p) {
  const unsigned char *h = p->hdr;
  size_t k = 2;
  uint64_t len = h[1] & 0x7F;
  if (len == 126) {
    len = (uint64_t)h[2] << 8 | h[3];
    k = 4;
  } else if (len == 127) {
    len = 0;
    for (int i = 0; i < 8; i++) len = len << 8 | h[2 + i];
    if (len >> 63) return -LC_WS_CLOSE_PROTOCOL;
    k = 10;
  }
  memcpy(p->mask, h + k, 4);
  p->plen = len;
  p->pgot = 0;
  if (p->opcode < LC_WS_OP_CLOSE) {
    if (len > p->max_msg || p->mlen > p->max_msg - len) return -LC_WS_CLOSE_TOO_BIG;
    if (p->mlen + len > p->mcap) {
      size_t cap = p->mlen + (size_t)len;
      unsigned char *m = realloc(p->msg, cap ? cap : 1);
      if (!m) return -LC_WS_CLOSE_ERROR;
      p->msg = m;
      p->mcap = cap;
    }
  }
  p->in_payload = 1;
  return 0;
}

int lc_ws_feed(struct lc_ws_parser *p, const unsigned char *in, size_t n, size_t *used) {
  size_t i = 0;
  int rc = LC_WS_NEED;
  while (i < n) {
    if (!p->in_payload) {
      p->hdr[p->hlen++] = in[i++];
      if (p->hlen == 2) {
        int b0 = p->hdr[0], b1 = p->hdr[1];
        p->fin = b0 >> 7;
        p->opcode = b0 & 0x0F;
        if (b0 & 0x70) return *used = i, -LC_WS_CLOSE_PROTOCOL; /* no extension */
        if (!(b1 & 0x80)) return *used = i, -LC_WS_CLOSE_PROTOCOL; /* a client masks */
        int op = p->opcode;
        if (op > LC_WS_OP_BINARY && op < LC_WS_OP_CLOSE) return *used = i, -LC_WS_CLOSE_PROTOCOL;
        if (op > LC_WS_OP_PONG) return *used = i, -LC_WS_CLOSE_PROTOCOL;
        if (op >= LC_WS_OP_CLOSE && (!p->fin || (b1 & 0x7F) > 125))
          return *used = i, -LC_WS_CLOSE_PROTOCOL;
        if (op == LC_WS_OP_CONT && !p->mop) return *used = i, -LC_WS_CLOSE_PROTOCOL;
        if ((op == LC_WS_OP_TEXT || op == LC_WS_OP_BINARY) && p->mop)
          return *used = i, -LC_WS_CLOSE_PROTOCOL;
        if (op == LC_WS_OP_TEXT || op == LC_WS_OP_BINARY) {
          p->mop = op;
          p->mlen = 0;
        }
        int l7 = b1 & 0x7F;
        p->hneed = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + 4;
      }
      if (p->hlen >= 2 && p->hlen == p->hneed) {
        rc = header_done(p);
        if (rc < 0) return *used = i, rc;
        if (p->plen == 0) {
          rc = frame_done(p);
          if (rc != LC_WS_NEED) return *used = i, rc;
        }
      }
      continue;
    }
    size_t take = n - i;
    if ((uint64_t)take > p->plen - p->pgot) take = (size_t)(p->plen - p->pgot);
    unsigned char *dst = p->opcode >= LC_WS_OP_CLOSE ? p->ctl + p->pgot : p->msg + p->mlen;
    for (size_t j = 0; j < take; j++) dst[j] = in[i + j] ^ p->mask[(p->pgot + j) & 3];
    if (p->opcode < LC_WS_OP_CLOSE) p->mlen += take;
    p->pgot += take;
    i += take;
    if (p->pgot == p->plen) {
      rc = frame_done(p);
      if (rc != LC_WS_NEED) return *used = i, rc;
    }
  }
  *used = i;
  return LC_WS_NEED;
}
