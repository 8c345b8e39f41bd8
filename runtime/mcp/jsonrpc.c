/* jsonrpc.c: MCP's JSON-RPC 2.0 framing: stdio lines and message shapes. */
#include "jsonrpc.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "conv.h"
#include "lc.h"
#include "utf8.h"

void lc_jr_split_init(struct lc_jr_split *s, size_t max_line) {
  lc_buf_init(&s->line, 0);
  s->max_line = max_line ? max_line : (4u << 20);
  s->failed = 0;
}

void lc_jr_split_free(struct lc_jr_split *s) { lc_buf_free(&s->line); }

size_t lc_jr_split_pending(const struct lc_jr_split *s) { return s->line.len; }

static int emit(struct lc_jr_split *s, const char *p, size_t n,
                lc_jr_line_fn cb, void *ud) {
  if (n && p[n - 1] == '\r') n--;
  size_t i = 0;
  while (i < n && (p[i] == ' ' || p[i] == '\t')) i++;
  if (i == n) return 0; /* blank line */
  return cb(ud, p, n);
}

int lc_jr_split_feed(struct lc_jr_split *s, const char *p, size_t n,
                     lc_jr_line_fn cb, void *ud) {
  if (s->failed) return LC_ETOOBIG;
  while (n) {
    const char *nl = memchr(p, '\n', n);
    size_t take = nl ? (size_t)(nl - p) : n;
    if (s->line.len + take > s->max_line) {
      s->failed = 1;
      lc_buf_reset(&s->line);
      return LC_ETOOBIG;
    }
    if (!nl) return lc_buf_append(&s->line, p, take) < 0 ? LC_ENOMEM : 0;
    int rc;
    if (s->line.len) {
      if (lc_buf_append(&s->line, p, take) < 0) return LC_ENOMEM;
      rc = emit(s, s->line.data, s->line.len, cb, ud);
      lc_buf_reset(&s->line);
    } else {
      rc = emit(s, p, take, cb, ud);
    }
    if (rc) return rc;
    p += take + 1;
    n -= take + 1;
  }
  return 0;
}

static int fail(char *err, size_t errlen, const char *msg) {
  snprintf(err, errlen, "%s", msg);
  return LC_EINVAL;
}

int lc_jr_parse(const char *p, size_t n, struct lc_jr_msg *msg, char *err,
                size_t errlen) {
  memset(msg, 0, sizeof *msg);
  msg->id_num = -1;
  char perr[96];
  cJSON *root = lc_json_parse(p, n, perr, sizeof perr);
  if (!root) {
    snprintf(err, errlen, "not JSON (%s)", perr);
    return LC_EINVAL;
  }
  msg->root = root;
  int rc = LC_EINVAL;
  if (!cJSON_IsObject(root)) {
    fail(err, errlen, cJSON_IsArray(root) ? "a JSON-RPC batch (MCP has none)"
                                          : "not a JSON-RPC object");
    goto bad;
  }
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "jsonrpc");
  if (!cJSON_IsString(v) || strcmp(v->valuestring, "2.0")) {
    fail(err, errlen, "missing \"jsonrpc\": \"2.0\"");
    goto bad;
  }
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
  if (id) {
    if (cJSON_IsNumber(id)) {
      double d = id->valuedouble;
      if (!(d >= 0 && d < 9e15) || floor(d) != d) {
        fail(err, errlen, "id is not a non-negative integer or a string");
        goto bad;
      }
      msg->id_num = (long long)d;
    } else if (!cJSON_IsString(id)) {
      /* null ids appear only in error responses to unparseable requests */
      if (!cJSON_IsNull(id)) {
        fail(err, errlen, "id is not a string or an integer");
        goto bad;
      }
    }
    msg->id = id;
  }
  const cJSON *method = cJSON_GetObjectItemCaseSensitive(root, "method");
  const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "params");
  if (method) {
    if (!cJSON_IsString(method) || !method->valuestring[0]) {
      fail(err, errlen, "method is not a non-empty string");
      goto bad;
    }
    if (params && !cJSON_IsObject(params) && !cJSON_IsArray(params)) {
      fail(err, errlen, "params is not an object or an array");
      goto bad;
    }
    if (id && cJSON_IsNull(id)) {
      fail(err, errlen, "a request with a null id");
      goto bad;
    }
    msg->kind = id ? LC_JR_REQUEST : LC_JR_NOTIFICATION;
    msg->method = method->valuestring;
    msg->params = params;
    return 0;
  }
  if (!id) {
    fail(err, errlen, "neither a method nor an id");
    goto bad;
  }
  const cJSON *result = cJSON_GetObjectItemCaseSensitive(root, "result");
  const cJSON *error = cJSON_GetObjectItemCaseSensitive(root, "error");
  if (!!result == !!error) {
    fail(err, errlen, "a response needs exactly one of result and error");
    goto bad;
  }
  msg->kind = LC_JR_RESPONSE;
  msg->result = result;
  msg->error = error;
  msg->err_msg = "";
  if (error) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(error, "code");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(error, "message");
    if (!cJSON_IsObject(error) || !cJSON_IsNumber(c)) {
      fail(err, errlen, "error is not an object with a numeric code");
      goto bad;
    }
    double d = c->valuedouble;
    msg->err_code = (d > -9e15 && d < 9e15) ? (long long)d : 0;
    if (cJSON_IsString(m)) msg->err_msg = m->valuestring;
  }
  return 0;
bad:
  cJSON_Delete(root);
  msg->root = NULL;
  return rc;
}

int lc_jr_text_answer(const char *p, size_t n, long long *id, const char **text, size_t *len) {
  static const char head[] = "{\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"";
  static const char mid[] = "\"}]},\"jsonrpc\":\"2.0\",\"id\":";
  const size_t hl = sizeof head - 1, ml = sizeof mid - 1;
  if (n < hl + ml + 2 || p[n - 1] != '}' || memcmp(p, head, hl)) return 0;
  const char *t = p + hl, *end = p + n - 1, *q = t;
  while (q < end && *q != '"') {
    if (*q == '\\' || (unsigned char)*q < 0x20) return 0;
    q++;
  }
  if ((size_t)(end - q) < ml + 1 || memcmp(q, mid, ml)) return 0;
  const char *d = q + ml;
  size_t nd = (size_t)(end - d);
  if (nd < 1 || nd > 15 || (d[0] == '0' && nd > 1)) return 0; /* lc_jr_parse: < 9e15 */
  long long v = 0;
  for (size_t i = 0; i < nd; i++) {
    if (d[i] < '0' || d[i] > '9') return 0;
    v = v * 10 + (d[i] - '0');
  }
  if (!lc_utf8_valid(t, (size_t)(q - t), NULL)) return 0;
  *id = v;
  *text = t;
  *len = (size_t)(q - t);
  return 1;
}
