/* eventstream.c: the AWS event-stream decoder (see eventstream.h). */
#include "eventstream.h"

#include <stdio.h>
#include <string.h>

#include "lc.h"

#define DEFAULT_MAX ((size_t)16 << 20)

static uint32_t crc_table[256];
static int crc_ready;

static void crc_init(void) {
  /* Idempotent, so a race between threads writes the same values. */
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++)
      c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    crc_table[i] = c;
  }
  __atomic_store_n(&crc_ready, 1, __ATOMIC_RELEASE);
}

uint32_t lc_es_crc32(uint32_t crc, const void *data, size_t n) {
  if (!__atomic_load_n(&crc_ready, __ATOMIC_ACQUIRE))
    crc_init();
  const unsigned char *p = data;
  crc = ~crc;
  for (size_t i = 0; i < n; i++)
    crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

void lc_es_init(struct lc_es *p, size_t max_msg) {
  memset(p, 0, sizeof *p);
  p->max_msg = max_msg ? max_msg : DEFAULT_MAX;
  lc_buf_init(&p->buf, 0);
}

void lc_es_free(struct lc_es *p) { lc_buf_free(&p->buf); }

static int fail(struct lc_es *p, int rc, const char *fmt, unsigned long a,
                unsigned long b) {
  p->failed = 1;
  snprintf(p->err, sizeof p->err, fmt, a, b);
  return rc;
}

/* Value length of a fixed-size header type, or -1 (variable or unknown). */
static int fixed_len(int type) {
  switch (type) {
  case 0: case 1: return 0;
  case 2: return 1;
  case 3: return 2;
  case 4: return 4;
  case 5: case 8: return 8;
  case 9: return 16;
  }
  return -1;
}

static int parse_headers(struct lc_es *p, const unsigned char *h, size_t n,
                         struct lc_es_msg *m) {
  size_t i = 0;
  m->n_headers = 0;
  while (i < n) {
    if (m->n_headers == LC_ES_MAX_HEADERS)
      return fail(p, LC_EINVAL, "event-stream message with over %lu headers",
                  LC_ES_MAX_HEADERS, 0);
    struct lc_es_header *x = &m->headers[m->n_headers];
    size_t nl = h[i++];
    if (nl == 0 || nl + 1 > n - i)
      return fail(p, LC_EINVAL, "event-stream header name of %lu bytes at %lu",
                  nl, i);
    x->name = (const char *)h + i;
    x->name_len = nl;
    i += nl;
    x->type = h[i++];
    int fl = fixed_len(x->type);
    if (fl >= 0) {
      if ((size_t)fl > n - i)
        return fail(p, LC_EINVAL, "event-stream header value cut (type %lu)",
                    (unsigned long)x->type, 0);
      x->value = (const char *)h + i;
      x->value_len = (size_t)fl;
      i += (size_t)fl;
    } else if (x->type == 6 || x->type == 7) {
      if (n - i < 2)
        return fail(p, LC_EINVAL, "event-stream header value cut (type %lu)",
                    (unsigned long)x->type, 0);
      size_t vl = (size_t)h[i] << 8 | h[i + 1];
      i += 2;
      if (vl > n - i)
        return fail(p, LC_EINVAL, "event-stream header value of %lu bytes, %lu left",
                    vl, n - i);
      x->value = (const char *)h + i;
      x->value_len = vl;
      i += vl;
    } else {
      return fail(p, LC_EINVAL, "event-stream header of unknown type %lu",
                  (unsigned long)x->type, 0);
    }
    m->n_headers++;
  }
  return 0;
}

/* One complete message at q[0..total). */
static int message(struct lc_es *p, const unsigned char *q, size_t total,
                   lc_es_fn cb, void *ud) {
  uint32_t want = be32(q + total - 4);
  uint32_t got = lc_es_crc32(0, q, total - 4);
  if (want != got)
    return fail(p, LC_EINVAL, "event-stream message CRC mismatch (%08lx, computed %08lx)",
                want, got);
  size_t hl = be32(q + 4);
  struct lc_es_msg m;
  int rc = parse_headers(p, q + LC_ES_PRELUDE, hl, &m);
  if (rc)
    return rc;
  m.payload = (const char *)q + LC_ES_PRELUDE + hl;
  m.payload_len = total - LC_ES_PRELUDE - hl - 4;
  return cb ? cb(ud, &m) : 0;
}

/* Checks a prelude: 0 and *total, or the error after fail. */
static int prelude(struct lc_es *p, const unsigned char *q, size_t *total_out) {
  uint32_t total = be32(q), hl = be32(q + 4);
  uint32_t want = be32(q + 8), got = lc_es_crc32(0, q, 8);
  if (want != got) {
    return fail(p, LC_EINVAL,
                "event-stream prelude CRC mismatch (%08lx, computed %08lx)", want, got);
  }
  if (total < LC_ES_PRELUDE + 4 || hl > total - LC_ES_PRELUDE - 4)
    return fail(p, LC_EINVAL,
                "event-stream lengths do not add up (total %lu, headers %lu)", total, hl);
  if (total > p->max_msg)
    return fail(p, LC_ETOOBIG, "event-stream message of %lu bytes over the limit of %lu",
                total, (unsigned long)p->max_msg);
  *total_out = total;
  return 0;
}

int lc_es_feed(struct lc_es *p, const void *data, size_t n, lc_es_fn cb, void *ud) {
  if (p->failed)
    return LC_EINVAL;
  const unsigned char *in = data;
  while (n) {
    /* Whole messages straight from the input when nothing is buffered. */
    if (p->buf.len == 0 && n >= LC_ES_PRELUDE) {
      size_t total;
      int rc = prelude(p, in, &total);
      if (rc)
        return rc;
      if (n >= total) {
        if ((rc = message(p, in, total, cb, ud)))
          return rc;
        in += total;
        n -= total;
        continue;
      }
    }
    /* Buffer up to the prelude, then up to the message's end. */
    size_t need = LC_ES_PRELUDE;
    if (p->buf.len >= LC_ES_PRELUDE)
      need = be32((const unsigned char *)p->buf.data);
    size_t take = need - p->buf.len < n ? need - p->buf.len : n;
    if (lc_buf_append(&p->buf, in, take))
      return fail(p, LC_ENOMEM, "out of memory (%lu, %lu)", (unsigned long)take, 0);
    in += take;
    n -= take;
    if (p->buf.len == LC_ES_PRELUDE && need == LC_ES_PRELUDE) {
      size_t total;
      int rc = prelude(p, (const unsigned char *)p->buf.data, &total);
      if (rc)
        return rc;
      continue;
    }
    if (p->buf.len >= LC_ES_PRELUDE && p->buf.len == need) {
      int rc = message(p, (const unsigned char *)p->buf.data, need, cb, ud);
      lc_buf_reset(&p->buf);
      if (rc)
        return rc;
    }
  }
  return 0;
}

int lc_es_end(struct lc_es *p) { return p->buf.len != 0; }

const char *lc_es_header_str(const struct lc_es_msg *m, const char *name, size_t *len) {
  size_t nl = strlen(name);
  for (size_t i = 0; i < m->n_headers; i++) {
    const struct lc_es_header *h = &m->headers[i];
    if (h->type == 7 && h->name_len == nl && memcmp(h->name, name, nl) == 0) {
      if (len)
        *len = h->value_len;
      return h->value;
    }
  }
  if (len)
    *len = 0;
  return NULL;
}

int lc_es_encode(struct lc_buf *out, const char *const *names,
                 const char *const *values, size_t n_headers,
                 const void *payload, size_t payload_len) {
  size_t hl = 0;
  for (size_t i = 0; i < n_headers; i++) {
    size_t nl = strlen(names[i]), vl = strlen(values[i]);
    if (nl == 0 || nl > 255 || vl > 65535)
      return LC_ETOOBIG;
    hl += 1 + nl + 1 + 2 + vl;
  }
  size_t total = LC_ES_PRELUDE + hl + payload_len + 4;
  if (total > 0xffffffffu)
    return LC_ETOOBIG;
  size_t at = out->len;
  if (lc_buf_reserve(out, total))
    return LC_ENOMEM;
  unsigned char *q = (unsigned char *)out->data + at;
  put32(q, (uint32_t)total);
  put32(q + 4, (uint32_t)hl);
  put32(q + 8, lc_es_crc32(0, q, 8));
  unsigned char *h = q + LC_ES_PRELUDE;
  for (size_t i = 0; i < n_headers; i++) {
    size_t nl = strlen(names[i]), vl = strlen(values[i]);
    *h++ = (unsigned char)nl;
    memcpy(h, names[i], nl);
    h += nl;
    *h++ = 7;
    *h++ = (unsigned char)(vl >> 8);
    *h++ = (unsigned char)vl;
    memcpy(h, values[i], vl);
    h += vl;
  }
  if (payload_len)
    memcpy(h, payload, payload_len);
  h += payload_len;
  put32(h, lc_es_crc32(0, q, total - 4));
  out->len = at + total;
  out->data[out->len] = '\0';
  return 0;
}
