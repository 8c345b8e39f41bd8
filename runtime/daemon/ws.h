/* ws.h: RFC 6455 WebSocket pieces for `luact serve` (ws.c): the opening
 * handshake's Sec-WebSocket-Accept, an incremental parser of client frames
 * and the encoder of server frames. No I/O and no libmicrohttpd here, so
 * the parser can be fuzzed alone (tests/fuzz/fuzz_ws.c).
 *
 * The parser enforces what a server must: every client frame masked, no
 * reserved bits or opcodes, control frames whole and at most 125 bytes,
 * continuation frames only inside a fragmented message, a message at most
 * max_msg bytes (checked on each frame's header, before its payload is
 * read), text and close reasons valid UTF-8, close codes a client may
 * send. A violation is a negative return: minus the close status to send
 * (1002, 1007, 1009). */
#ifndef LC_WS_H
#define LC_WS_H

#include <stddef.h>
#include <stdint.h>

enum {
  LC_WS_OP_CONT = 0,
  LC_WS_OP_TEXT = 1,
  LC_WS_OP_BINARY = 2,
  LC_WS_OP_CLOSE = 8,
  LC_WS_OP_PING = 9,
  LC_WS_OP_PONG = 10
};

/* Close statuses (RFC 6455 7.4.1). */
enum {
  LC_WS_CLOSE_NORMAL = 1000,
  LC_WS_CLOSE_GOING_AWAY = 1001,
  LC_WS_CLOSE_PROTOCOL = 1002,
  LC_WS_CLOSE_UNSUPPORTED = 1003,
  LC_WS_CLOSE_BAD_DATA = 1007,
  LC_WS_CLOSE_POLICY = 1008,
  LC_WS_CLOSE_TOO_BIG = 1009,
  LC_WS_CLOSE_ERROR = 1011
};

/* What lc_ws_feed found. */
enum {
  LC_WS_NEED = 0,  /* every byte taken: more input needed */
  LC_WS_MESSAGE,   /* a whole text or binary message */
  LC_WS_PING,
  LC_WS_PONG,
  LC_WS_CLOSED     /* a close frame (code 0: it had none) */
};

struct lc_ws_parser {
  size_t max_msg;           /* a message's limit (reassembled) */
  unsigned char hdr[14];    /* the frame header being read */
  size_t hlen, hneed;
  int in_payload;
  int opcode, fin;
  unsigned char mask[4];
  uint64_t plen, pgot;      /* this frame's payload: length, read */
  int mop;                  /* the message being assembled: its opcode, 0: none */
  unsigned char *msg;       /* its bytes (owned) */
  size_t mlen, mcap;
  unsigned char ctl[125];   /* a control frame's payload */
  /* The result of the last LC_WS_MESSAGE/PING/PONG/CLOSED, valid until
   * the next call: data points into msg or ctl. */
  int op;
  const unsigned char *data;
  size_t len;
  int close_code;           /* LC_WS_CLOSED: the code, 0 when none */
};

void lc_ws_parser_init(struct lc_ws_parser *p, size_t max_msg);
void lc_ws_parser_free(struct lc_ws_parser *p);
/* Takes up to n bytes; *used says how many. Returns LC_WS_NEED (all taken),
 * one of the results above (call again with the rest), or minus a close
 * status on a violation (the connection is then done). */
int lc_ws_feed(struct lc_ws_parser *p, const unsigned char *in, size_t n, size_t *used);
/* Is a frame partly read (a header or payload begun, or a fragmented
 * message unfinished)? */
int lc_ws_mid_frame(const struct lc_ws_parser *p);

/* A server frame (FIN set, unmasked) into out, which has room for
 * len + 10 bytes; returns its length. */
size_t lc_ws_frame(unsigned char *out, int opcode, const void *payload, size_t len);
/* Is s[0..n) valid UTF-8 (no overlongs, surrogates, or > U+10FFFF)? */
int lc_ws_utf8_ok(const unsigned char *s, size_t n);
/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key GUID)),
 * 28 characters and a NUL. */
void lc_ws_accept(const char *key, char out[29]);
/* SHA-1 (RFC 3174) of n bytes. */
void lc_ws_sha1(const void *data, size_t n, unsigned char out[20]);

#endif
