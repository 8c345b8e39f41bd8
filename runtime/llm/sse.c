/* sse.c: incremental Server-Sent Events parser (see sse.h). */
#include "sse.h"

#include <stdio.h>
#include <string.h>

#include "lc.h"

static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};

void lc_sse_init(struct lc_sse *p, size_t max_event) {
  memset(p, 0, sizeof *p);
  p->max_event = max_event ? max_event : (size_t)1 << 20;
  /* A line carries at most one event's data plus the field name. */
  lc_buf_init(&p->line, p->max_event + 64);
  lc_buf_init(&p->data, p->max_event + 1); /* + the trailing "\n" */
  lc_buf_init(&p->event, 1024);
  lc_buf_init(&p->id, 1024);
  p->retry = -1;
}

void lc_sse_free(struct lc_sse *p) {
  lc_buf_free(&p->line);
  lc_buf_free(&p->data);
  lc_buf_free(&p->event);
  lc_buf_free(&p->id);
}

static int fail(struct lc_sse *p, int rc, const char *what) {
  p->failed = rc;
  snprintf(p->err, sizeof p->err, "%s", what);
  return rc;
}

static int dispatch(struct lc_sse *p, lc_sse_fn cb, void *ud) {
  p->pending = 0;
  if (!p->has_data) { /* WHATWG: no data field, nothing is dispatched */
    lc_buf_reset(&p->event);
    return 0;
  }
  if (p->data.len && p->data.data[p->data.len - 1] == '\n')
    p->data.len--;
  if (p->data.data)
    p->data.data[p->data.len] = '\0';
  struct lc_sse_event ev = {
      .event = p->event.len ? p->event.data : "message",
      .event_len = p->event.len ? p->event.len : 7,
      .data = p->data.data ? p->data.data : "",
      .data_len = p->data.len,
      .id = p->id.data ? p->id.data : "",
      .id_len = p->id.len,
      .retry = p->retry,
  };
  int rc = cb ? cb(ud, &ev) : 0;
  lc_buf_reset(&p->data);
  lc_buf_reset(&p->event);
  p->has_data = 0;
  return rc;
}

static int field(struct lc_sse *p, const char *line, size_t n) {
  const char *colon = memchr(line, ':', n);
  size_t nlen = colon ? (size_t)(colon - line) : n;
  const char *v = colon ? colon + 1 : line + n;
  size_t vlen = (size_t)(line + n - v);
  if (vlen && *v == ' ')
    v++, vlen--;
  int rc = 0;
  p->pending = 1;
  if (nlen == 5 && memcmp(line, "event", 5) == 0) {
    lc_buf_reset(&p->event);
    rc = lc_buf_append(&p->event, v, vlen);
  } else if (nlen == 4 && memcmp(line, "data", 4) == 0) {
    p->has_data = 1;
    rc = lc_buf_append(&p->data, v, vlen);
    if (!rc)
      rc = lc_buf_append(&p->data, "\n", 1);
    if (rc == LC_ETOOBIG)
      return fail(p, rc, "SSE event over the size limit");
  } else if (nlen == 2 && memcmp(line, "id", 2) == 0) {
    if (!memchr(v, '\0', vlen)) { /* WHATWG: ids with NUL are ignored */
      lc_buf_reset(&p->id);
      rc = lc_buf_append(&p->id, v, vlen);
    }
  } else if (nlen == 5 && memcmp(line, "retry", 5) == 0) {
    long ms = 0;
    size_t i;
    for (i = 0; i < vlen && v[i] >= '0' && v[i] <= '9'; i++)
      if (ms < 100000000L)
        ms = ms * 10 + (v[i] - '0');
    if (vlen && i == vlen)
      p->retry = ms;
  } /* other field names are ignored */
  if (rc == LC_ETOOBIG)
    return fail(p, rc, "SSE field over the size limit");
  if (rc)
    return fail(p, rc, "out of memory");
  return 0;
}

static int end_line(struct lc_sse *p, lc_sse_fn cb, void *ud) {
  const char *l = p->line.data ? p->line.data : "";
  size_t n = p->line.len;
  int rc = 0;
  if (n == 0)
    rc = dispatch(p, cb, ud);
  else if (l[0] != ':')
    rc = field(p, l, n);
  lc_buf_reset(&p->line);
  return rc;
}

/* Feeds bytes after the BOM check. */
static int feed_lines(struct lc_sse *p, const char *s, size_t n, lc_sse_fn cb,
                      void *ud) {
  size_t i = 0;
  while (i < n) {
    if (p->cr_seen) {
      p->cr_seen = 0;
      if (s[i] == '\n') { /* second half of a CRLF split anywhere */
        i++;
        continue;
      }
    }
    size_t j = i;
    while (j < n && s[j] != '\r' && s[j] != '\n')
      j++;
    if (j > i) {
      int rc = lc_buf_append(&p->line, s + i, j - i);
      if (rc == LC_ETOOBIG)
        return fail(p, rc, "SSE line over the size limit");
      if (rc)
        return fail(p, rc, "out of memory");
    }
    if (j == n)
      break;
    if (s[j] == '\r')
      p->cr_seen = 1;
    int rc = end_line(p, cb, ud);
    if (rc)
      return rc;
    i = j + 1;
  }
  return 0;
}

int lc_sse_feed(struct lc_sse *p, const char *buf, size_t n, lc_sse_fn cb,
                void *ud) {
  if (p->failed)
    return p->failed;
  /* The BOM may itself be split across feeds: match it byte by byte, and
   * replay the matched prefix as ordinary bytes if it turns out not to be
   * one. */
  while (p->bom_state >= 0 && p->bom_state < 3 && n > 0) {
    if ((unsigned char)*buf == bom[p->bom_state]) {
      p->bom_state++;
      buf++, n--;
      continue;
    }
    int matched = p->bom_state;
    p->bom_state = -1;
    if (matched) {
      int rc = feed_lines(p, (const char *)bom, (size_t)matched, cb, ud);
      if (rc)
        return rc;
    }
  }
  if (n == 0)
    return 0;
  return feed_lines(p, buf, n, cb, ud);
}

int lc_sse_end(struct lc_sse *p) {
  /* A failed parse never ended on a boundary, however much it buffered. */
  int partial = p->failed || p->line.len > 0 || p->pending ||
                (p->bom_state > 0 && p->bom_state < 3);
  lc_buf_reset(&p->line);
  lc_buf_reset(&p->data);
  lc_buf_reset(&p->event);
  p->has_data = p->pending = 0;
  return partial;
}
