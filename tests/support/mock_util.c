/* mock_util.c: allocation, byte buffers, clock and small helpers for lc-mockllm. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mock.h"

/* A mock that runs out of memory cannot give meaningful answers: stop loudly. */
void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fputs("lc-mockllm: out of memory\n", stderr);
    abort();
  }
  return p;
}

void *xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (!p) {
    fputs("lc-mockllm: out of memory\n", stderr);
    abort();
  }
  return p;
}

char *xstrndup(const char *s, size_t n) {
  char *p = xmalloc(n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

void mbuf_add(struct mbuf *b, const void *p, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->len, p, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void mbuf_puts(struct mbuf *b, const char *s) { mbuf_add(b, s, strlen(s)); }

void mbuf_printf(struct mbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  char *tmp = xmalloc((size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(tmp, (size_t)n + 1, fmt, ap);
  va_end(ap);
  mbuf_add(b, tmp, (size_t)n);
  free(tmp);
}

void mbuf_free(struct mbuf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

double mock_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

char *mock_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  struct mbuf b = {0};
  char tmp[8192];
  size_t n;
  while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) mbuf_add(&b, tmp, n);
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    mbuf_free(&b);
    return NULL;
  }
  if (!b.p) mbuf_add(&b, "", 0);
  if (len) *len = b.len;
  return b.p;
}

size_t mock_utf8_piece(const char *s, size_t n, size_t max) {
  if (max == 0 || n <= max) return n;
  size_t cut = max;
  /* back off continuation bytes so a fragment never ends mid-character */
  while (cut > 1 && ((unsigned char)s[cut] & 0xC0) == 0x80) cut--;
  return cut;
}

/* ---- request / response helpers ---- */

const char *mock_req_header(const struct mock_request *r, const char *name) {
  for (size_t i = 0; i < r->nheaders; i++)
    if (strcasecmp(r->headers[i].name, name) == 0) return r->headers[i].value;
  return NULL;
}

void mock_request_free(struct mock_request *r) {
  free(r->method);
  free(r->target);
  free(r->path);
  for (size_t i = 0; i < r->nheaders; i++) {
    free(r->headers[i].name);
    free(r->headers[i].value);
  }
  free(r->headers);
  free(r->body);
  cJSON_Delete(r->json);
  memset(r, 0, sizeof *r);
}

void mock_resp_init(struct mock_response *r) {
  memset(r, 0, sizeof *r);
  r->status = 200;
  r->cut_after_bytes = -1;
  r->stall_after_bytes = -1;
  r->stall_max_ms = 120000;
}

void mock_resp_free(struct mock_response *r) {
  for (size_t i = 0; i < r->nheaders; i++) {
    free(r->headers[i].name);
    free(r->headers[i].value);
  }
  free(r->headers);
  mbuf_free(&r->body);
  free(r->marks);
  memset(r, 0, sizeof *r);
}

void mock_resp_set_header(struct mock_response *r, const char *name, const char *value) {
  for (size_t i = 0; i < r->nheaders; i++)
    if (strcasecmp(r->headers[i].name, name) == 0) {
      free(r->headers[i].value);
      r->headers[i].value = xstrdup(value);
      return;
    }
  r->headers = xrealloc(r->headers, (r->nheaders + 1) * sizeof *r->headers);
  r->headers[r->nheaders].name = xstrdup(name);
  r->headers[r->nheaders].value = xstrdup(value);
  r->nheaders++;
}

const char *mock_resp_header(const struct mock_response *r, const char *name) {
  for (size_t i = 0; i < r->nheaders; i++)
    if (strcasecmp(r->headers[i].name, name) == 0) return r->headers[i].value;
  return NULL;
}

void mock_resp_mark(struct mock_response *r) {
  r->marks = xrealloc(r->marks, (r->nmarks + 1) * sizeof *r->marks);
  r->marks[r->nmarks++] = r->body.len;
}

void mock_resp_json(struct mock_response *r, int status, const cJSON *v) {
  char *s = cJSON_PrintUnformatted(v);
  if (!s) abort();
  r->status = status;
  r->body.len = 0;
  mbuf_puts(&r->body, s);
  free(s);
  mock_resp_set_header(r, "Content-Type", "application/json");
}

void mock_resp_error(struct mock_response *r, int status, const char *type, const char *msg) {
  cJSON *root = cJSON_CreateObject();
  cJSON *e = cJSON_AddObjectToObject(root, "error");
  cJSON_AddStringToObject(e, "message", msg);
  cJSON_AddStringToObject(e, "type", type);
  mock_resp_json(r, status, root);
  cJSON_Delete(root);
}
