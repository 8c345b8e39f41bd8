/* sigv4.c: AWS Signature Version 4 (see sigv4.h). */
#include "sigv4.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "lc.h"
#include "sha256.h"

static void hmac(const unsigned char *key, size_t klen, const void *msg, size_t n,
                 unsigned char out[32]) {
  unsigned char k[64] = {0}, pad[64], inner[32];
  struct lc_sha256 s;
  if (klen > 64) {
    lc_sha256_init(&s);
    lc_sha256_update(&s, key, klen);
    lc_sha256_final(&s, k);
  } else {
    memcpy(k, key, klen);
  }
  for (int i = 0; i < 64; i++)
    pad[i] = k[i] ^ 0x36;
  lc_sha256_init(&s);
  lc_sha256_update(&s, pad, 64);
  lc_sha256_update(&s, msg, n);
  lc_sha256_final(&s, inner);
  for (int i = 0; i < 64; i++)
    pad[i] = k[i] ^ 0x5c;
  lc_sha256_init(&s);
  lc_sha256_update(&s, pad, 64);
  lc_sha256_update(&s, inner, 32);
  lc_sha256_final(&s, out);
  memset(k, 0, sizeof k);
  memset(pad, 0, sizeof pad);
}

static int unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_' || c == '.' || c == '~';
}

/* The path of url (from the first '/' after "//host"), its length, and the
 * host[:port] as libcurl sends it in Host (a default port left out). */
static int split_url(const char *url, const char **path, size_t *plen, char *host,
                     size_t hostlen) {
  const char *p = strstr(url, "://");
  if (!p)
    return LC_EINVAL;
  int https = (size_t)(p - url) == 5 && strncasecmp(url, "https", 5) == 0;
  const char *h = p + 3, *slash = strchr(h, '/');
  size_t hn = slash ? (size_t)(slash - h) : strlen(h);
  if (!hn || hn >= hostlen || memchr(h, '@', hn) || memchr(h, '?', hn))
    return LC_EINVAL;
  memcpy(host, h, hn);
  host[hn] = '\0';
  const char *colon = strrchr(host, ':');
  if (colon && !strchr(colon, ']') &&
      strcmp(colon + 1, https ? "443" : "80") == 0)
    host[colon - host] = '\0';
  *path = slash ? slash : "/";
  *plen = slash ? strcspn(slash, "?#") : 1;
  return 0;
}

int lc_sigv4_needed(const char *url) {
  const char *path;
  size_t n;
  char host[256];
  if (!url || split_url(url, &path, &n, host, sizeof host))
    return 0;
  return memchr(path, '%', n) != NULL && path[n] != '?';
}

static char *canonical_path_n(const char *path, size_t n) {
  struct lc_buf b;
  lc_buf_init(&b, 0);
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    unsigned char c = (unsigned char)path[i];
    rc = unreserved(c) || c == '/' ? lc_buf_append(&b, path + i, 1)
                                   : lc_buf_printf(&b, "%%%02X", c);
  }
  if (!rc && !n)
    rc = lc_buf_puts(&b, "/");
  char *out = rc ? NULL : lc_buf_steal(&b, NULL);
  lc_buf_free(&b);
  return out;
}

char *lc_sigv4_canonical_path(const char *path) {
  return canonical_path_n(path, strlen(path));
}

/* The value of header name among "Name: value" lines, trimmed, or NULL. */
static const char *header(const char *const *h, size_t n, const char *name, size_t *len) {
  size_t nl = strlen(name);
  for (size_t i = 0; i < n; i++) {
    if (strncasecmp(h[i], name, nl) || h[i][nl] != ':')
      continue;
    const char *v = h[i] + nl + 1;
    while (*v == ' ' || *v == '\t')
      v++;
    size_t k = strlen(v);
    while (k && (v[k - 1] == ' ' || v[k - 1] == '\t'))
      k--;
    *len = k;
    return v;
  }
  return NULL;
}

static void hex(const unsigned char *d, size_t n, char *out) {
  static const char x[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = x[d[i] >> 4];
    out[2 * i + 1] = x[d[i] & 15];
  }
  out[2 * n] = '\0';
}

int lc_sigv4_sign(const char *spec, const char *userpwd, const char *method,
                  const char *url, const char *const *headers, size_t n_headers,
                  const char *body, size_t body_len, time_t now, char **auth,
                  char **date) {
  *auth = *date = NULL;
  char region[64], service[64], host[256];
  if (!spec || strncmp(spec, "aws:amz:", 8) != 0 ||
      sscanf(spec + 8, "%63[^:]:%63[^:]", region, service) != 2 || !userpwd)
    return LC_EINVAL;
  const char *colon = strchr(userpwd, ':');
  const char *path;
  size_t plen;
  if (!colon || colon == userpwd || split_url(url, &path, &plen, host, sizeof host))
    return LC_EINVAL;
  struct tm tm;
  char stamp[17], day[9];
  if (!gmtime_r(&now, &tm) || !strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm))
    return LC_EINVAL;
  memcpy(day, stamp, 8);
  day[8] = '\0';
  size_t ctn = 0, tkn = 0;
  const char *ct = header(headers, n_headers, "content-type", &ctn);
  const char *tk = header(headers, n_headers, "x-amz-security-token", &tkn);
  char *cpath = canonical_path_n(path, plen);
  struct lc_buf cr, sts, b;
  lc_buf_init(&cr, 0);
  lc_buf_init(&sts, 0);
  lc_buf_init(&b, 0);
  char signed_h[80];
  snprintf(signed_h, sizeof signed_h, "%shost;x-amz-date%s", ct ? "content-type;" : "",
           tk ? ";x-amz-security-token" : "");
  unsigned char d[32], k1[32], k2[32];
  char payload[65], crh[65], sig[65];
  lc_sha256_hex(body ? body : "", body ? body_len : 0, payload);
  int rc = cpath ? 0 : LC_ENOMEM;
  if (!rc)
    rc = lc_buf_printf(&cr, "%s\n%s\n\n", method, cpath);
  if (!rc && ct)
    rc = lc_buf_printf(&cr, "content-type:%.*s\n", (int)ctn, ct);
  if (!rc)
    rc = lc_buf_printf(&cr, "host:%s\nx-amz-date:%s\n", host, stamp);
  if (!rc && tk)
    rc = lc_buf_printf(&cr, "x-amz-security-token:%.*s\n", (int)tkn, tk);
  if (!rc)
    rc = lc_buf_printf(&cr, "\n%s\n%s", signed_h, payload);
  if (!rc) {
    lc_sha256_hex(cr.data, cr.len, crh);
    rc = lc_buf_printf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", stamp, day,
                       region, service, crh);
  }
  if (!rc) {
    /* kSecret = "AWS4" + secret; then date, region, service, request. */
    size_t sl = strlen(colon + 1);
    unsigned char *ks = lc_malloc(sl + 4);
    rc = ks ? 0 : LC_ENOMEM;
    if (ks) {
      memcpy(ks, "AWS4", 4);
      memcpy(ks + 4, colon + 1, sl);
      hmac(ks, sl + 4, day, 8, k1);
      memset(ks, 0, sl + 4);
      lc_free(ks);
      hmac(k1, 32, region, strlen(region), k2);
      hmac(k2, 32, service, strlen(service), k1);
      hmac(k1, 32, "aws4_request", 12, k2);
      hmac(k2, 32, sts.data, sts.len, d);
      hex(d, 32, sig);
      memset(k1, 0, sizeof k1);
      memset(k2, 0, sizeof k2);
    }
  }
  if (!rc)
    rc = lc_buf_printf(&b,
                       "Authorization: AWS4-HMAC-SHA256 Credential=%.*s/%s/%s/%s/aws4_request, "
                       "SignedHeaders=%s, Signature=%s",
                       (int)(colon - userpwd), userpwd, day, region, service, signed_h, sig);
  if (!rc && !(*auth = lc_buf_steal(&b, NULL)))
    rc = LC_ENOMEM;
  if (!rc && (lc_buf_printf(&b, "x-amz-date: %s", stamp) || !(*date = lc_buf_steal(&b, NULL))))
    rc = LC_ENOMEM;
  if (rc) {
    lc_free(*auth);
    *auth = NULL;
  }
  lc_free(cpath);
  lc_buf_free(&cr);
  lc_buf_free(&sts);
  lc_buf_free(&b);
  return rc;
}
