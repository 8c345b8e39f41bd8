/* sql.c: the SQL tool's core: open/close, one bound statement per query with
 * capped JSON results, trusted setup scripts, read-only enforcement. */
#include "sql.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "utf8.h"

/* Appends to a fixed buffer, silently stopping at its end (messages only). */
static void cat(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void cat(char *dst, size_t cap, const char *fmt, ...) {
  size_t used = strlen(dst);
  if (used + 1 >= cap) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(dst + used, cap - used, fmt, ap);
  va_end(ap);
}

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...) {
  if (errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

/* ---- base64 (RFC 4648, padded) for BLOB values both ways ---- */

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64_encode(const unsigned char *p, size_t n) {
  size_t outlen = 4 * ((n + 2) / 3);
  char *o = malloc(outlen + 1); /* handed to cJSON, which uses malloc */
  if (!o) return NULL;
  size_t j = 0;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)p[i] << 16;
    if (i + 1 < n) v |= (unsigned)p[i + 1] << 8;
    if (i + 2 < n) v |= p[i + 2];
    o[j++] = b64chars[(v >> 18) & 63];
    o[j++] = b64chars[(v >> 12) & 63];
    o[j++] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
    o[j++] = i + 2 < n ? b64chars[v & 63] : '=';
  }
  o[j] = '\0';
  return o;
}

static int b64_val(int c) {
  const char *q = c ? strchr(b64chars, c) : NULL;
  return q ? (int)(q - b64chars) : -1;
}

/* Returns a malloc'd buffer (length *n) or NULL if s is not padded base64. */
static unsigned char *b64_decode(const char *s, size_t *n) {
  size_t len = strlen(s);
  if (len % 4) return NULL;
  unsigned char *o = malloc(len / 4 * 3 + 1);
  if (!o) return NULL;
  size_t j = 0;
  for (size_t i = 0; i < len; i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; k++) {
      if (s[i + k] == '=' && i + 4 == len && k >= 2) {
        v[k] = 0;
        pad++;
      } else if (pad || (v[k] = b64_val((unsigned char)s[i + k])) < 0) {
        free(o);
        return NULL;
      }
    }
    unsigned x = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 |
                 (unsigned)v[2] << 6 | (unsigned)v[3];
    o[j++] = (unsigned char)(x >> 16);
    if (pad < 2) o[j++] = (unsigned char)(x >> 8);
    if (pad < 1) o[j++] = (unsigned char)x;
  }
  *n = j;
  return o;
}

static cJSON *b64_object(const void *p, size_t n) {
  char *s = b64_encode(p, n);
  cJSON *o = cJSON_CreateObject();
  cJSON *v = s ? cJSON_CreateString(s) : NULL;
  free(s);
  if (!o || !v) {
    cJSON_Delete(o);
    cJSON_Delete(v);
    return NULL;
  }
  cJSON_AddItemToObject(o, "$base64", v);
  return o;
}

/* ---- open / close ---- */

/* Pragmas that only report, even when given an argument (a table name). */
static const char *const introspect_pragmas[] = {
    "table_info",  "table_xinfo",      "index_info",        "index_xinfo",
    "index_list",  "foreign_key_list", "foreign_key_check", "integrity_check",
    "quick_check", NULL};
/* Pragmas that change the file or the connection even without a value. */
static const char *const acting_pragmas[] = {
    "optimize", "wal_checkpoint", "incremental_vacuum", "shrink_memory", NULL};

static int in_list(const char *const *list, const char *s) {
  for (; s && *list; list++)
    if (strcasecmp(*list, s) == 0) return 1;
  return 0;
}

/* sqlite3_set_authorizer callback, called by SQLite while preparing a
 * statement on a read-only connection. SQLITE_OPEN_READONLY already stops
 * writes to the file; this also stops changes to the connection (attaching
 * another, writable, file or flipping pragmas such as foreign_keys). */
static int ro_authorizer(void *ud, int action, const char *a1, const char *a2,
                         const char *dbname, const char *trigger) {
  struct lc_sql_db *db = ud;
  (void)dbname;
  (void)trigger;
  switch (action) {
    case SQLITE_ATTACH:
      snprintf(db->denied, sizeof db->denied, "ATTACH");
      return SQLITE_DENY;
    case SQLITE_DETACH:
      snprintf(db->denied, sizeof db->denied, "DETACH");
      return SQLITE_DENY;
    case SQLITE_PRAGMA:
      if (in_list(acting_pragmas, a1) ||
          (a2 && !in_list(introspect_pragmas, a1))) {
        snprintf(db->denied, sizeof db->denied, "PRAGMA %s%s", a1 ? a1 : "?",
                 a2 ? " with a value" : "");
        return SQLITE_DENY;
      }
      return SQLITE_OK;
    default:
      return SQLITE_OK;
  }
}

int lc_sql_open(struct lc_sql_db *db, const char *path, unsigned flags,
                char *err, size_t errlen) {
  if (errlen) err[0] = '\0';
  if (!db || !path) return fail(err, errlen, LC_EINVAL, "no database path");
  memset(db, 0, sizeof *db);
  if ((flags & LC_SQL_READONLY) && (flags & LC_SQL_CREATE))
    return fail(err, errlen, LC_EINVAL, "readonly and create exclude each other");
  int oflags = (flags & LC_SQL_READONLY)
                   ? SQLITE_OPEN_READONLY
                   : SQLITE_OPEN_READWRITE |
                         ((flags & LC_SQL_CREATE) ? SQLITE_OPEN_CREATE : 0);
  sqlite3 *h = NULL;
  int rc = sqlite3_open_v2(path, &h, oflags, NULL);
  if (rc != SQLITE_OK) {
    int r = fail(err, errlen, LC_SQL_ESQL, "cannot open %s: %s", path,
                 h ? sqlite3_errmsg(h) : sqlite3_errstr(rc));
    sqlite3_close(h);
    return r;
  }
  sqlite3_extended_result_codes(h, 1);
  sqlite3_busy_timeout(h, LC_SQL_BUSY_TIMEOUT_MS);
  sqlite3_db_config(h, SQLITE_DBCONFIG_ENABLE_FKEY, 1, (int *)NULL);
  /* Defensive: no writable_schema tricks that corrupt the file. Untrusted
   * schema: functions with side effects cannot hide in views or triggers. */
  sqlite3_db_config(h, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
  sqlite3_db_config(h, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
  /* Read the header now so that "not a database" is an open error rather
   * than a surprise on the first query. */
  char *msg = NULL;
  if (sqlite3_exec(h, "SELECT 1 FROM sqlite_schema LIMIT 1", NULL, NULL,
                   &msg) != SQLITE_OK) {
    int r = fail(err, errlen, LC_SQL_ESQL, "cannot open %s: %s", path,
                 msg ? msg : sqlite3_errmsg(h));
    sqlite3_free(msg);
    sqlite3_close(h);
    return r;
  }
  db->db = h;
  db->flags = flags;
  if (flags & LC_SQL_READONLY) sqlite3_set_authorizer(h, ro_authorizer, db);
  return 0;
}

void lc_sql_close(struct lc_sql_db *db) {
  if (!db || !db->db) return;
  /* sqlite3_close_v2 never fails for busy statements; we finalize ours in
   * every path, so nothing is left behind. */
  sqlite3_close_v2(db->db);
  db->db = NULL;
}

/* ---- parameters ---- */

/* Binds one JSON value to parameter i; label names it in messages. */
static int bind_one(sqlite3_stmt *st, int i, const cJSON *v, const char *label,
                    char *err, size_t errlen) {
  int rc;
  if (cJSON_IsNull(v)) {
    rc = sqlite3_bind_null(st, i);
  } else if (cJSON_IsBool(v)) {
    rc = sqlite3_bind_int(st, i, cJSON_IsTrue(v) ? 1 : 0);
  } else if (cJSON_IsNumber(v)) {
    double d = v->valuedouble;
    /* Integral values inside the int64 range bind as integers so that
     * `id = ?` compares as INTEGER; others (1.5, 1e300) stay REAL. */
    if (d == trunc(d) && d >= -0x1p63 && d < 0x1p63)
      rc = sqlite3_bind_int64(st, i, (sqlite3_int64)d);
    else
      rc = sqlite3_bind_double(st, i, d);
  } else if (cJSON_IsString(v)) {
    /* params are borrowed for the whole call, so no copy is needed. */
    rc = sqlite3_bind_text(st, i, v->valuestring, -1, SQLITE_STATIC);
  } else if (cJSON_IsRaw(v)) {
    const char *s = v->valuestring;
    char *end = NULL;
    errno = 0;
    long long x = s ? strtoll(s, &end, 10) : 0;
    if (!s || end == s || *end || errno || isspace((unsigned char)*s))
      return fail(err, errlen, LC_SQL_EPARAMS,
                  "%s: raw value is not a 64-bit decimal integer", label);
    rc = sqlite3_bind_int64(st, i, x);
  } else if (cJSON_IsObject(v)) {
    const cJSON *c = v->child;
    if (!c || c->next || strcmp(c->string, "$base64") != 0 ||
        !cJSON_IsString(c))
      return fail(err, errlen, LC_SQL_EPARAMS,
                  "%s is an object; nested objects and arrays are not allowed "
                  "(a BLOB is {\"$base64\": \"...\"})",
                  label);
    size_t n = 0;
    unsigned char *blob = b64_decode(c->valuestring, &n);
    if (!blob)
      return fail(err, errlen, LC_SQL_EPARAMS, "%s: $base64 is not valid base64",
                  label);
    rc = sqlite3_bind_blob64(st, i, blob, n, SQLITE_TRANSIENT);
    free(blob);
  } else if (cJSON_IsArray(v)) {
    return fail(err, errlen, LC_SQL_EPARAMS,
                "%s is an array; nested arrays and objects are not allowed",
                label);
  } else {
    return fail(err, errlen, LC_SQL_EPARAMS, "%s has an unsupported type",
                label);
  }
  if (rc == SQLITE_NOMEM) return fail(err, errlen, LC_ENOMEM, "out of memory");
  if (rc != SQLITE_OK)
    return fail(err, errlen, LC_SQL_EPARAMS, "%s: %s", label, sqlite3_errstr(rc));
  return 0;
}

static int is_positional(const char *name) { return !name || name[0] == '?'; }

/* Index of the statement parameter a JSON object key names, or 0. */
static int key_index(sqlite3_stmt *st, const char *key) {
  if (key[0] == ':' || key[0] == '@' || key[0] == '$')
    return sqlite3_bind_parameter_index(st, key);
  static const char prefixes[] = ":@$";
  char buf[256];
  for (const char *p = prefixes; *p; p++) {
    if ((size_t)snprintf(buf, sizeof buf, "%c%s", *p, key) >= sizeof buf)
      return 0;
    int i = sqlite3_bind_parameter_index(st, buf);
    if (i) return i;
  }
  return 0;
}

static int bind_named(sqlite3_stmt *st, int n, const cJSON *params, char *err,
                      size_t errlen) {
  char missing[256] = "", unexpected[256] = "", expected[256] = "";
  for (int i = 1; i <= n; i++) {
    const char *name = sqlite3_bind_parameter_name(st, i);
    if (is_positional(name))
      return fail(err, errlen, LC_SQL_EPARAMS,
                  "statement uses positional parameter %s; pass params as an "
                  "array",
                  name ? name : "?");
    cat(expected, sizeof expected, "%s%s", i > 1 ? ", " : "", name);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, name);
    if (!v) v = cJSON_GetObjectItemCaseSensitive(params, name + 1);
    if (!v) {
      cat(missing, sizeof missing, "%s%s", missing[0] ? ", " : "", name);
      continue;
    }
    char label[128];
    snprintf(label, sizeof label, "parameter %s", name);
    int rc = bind_one(st, i, v, label, err, errlen);
    if (rc) return rc;
  }
  for (const cJSON *c = params->child; c; c = c->next)
    if (!key_index(st, c->string))
      cat(unexpected, sizeof unexpected, "%s'%s'", unexpected[0] ? ", " : "",
          c->string);
  if (missing[0] || unexpected[0]) {
    snprintf(err, errlen, "parameter mismatch: statement expects %d named "
             "parameter(s) (%s), got %d",
             n, n ? expected : "none", cJSON_GetArraySize(params));
    if (missing[0]) cat(err, errlen, "; missing %s", missing);
    if (unexpected[0]) cat(err, errlen, "; unexpected %s", unexpected);
    return LC_SQL_EPARAMS;
  }
  return 0;
}

static int bind_params(sqlite3_stmt *st, const cJSON *params, char *err,
                       size_t errlen) {
  int n = sqlite3_bind_parameter_count(st);
  if (!params || cJSON_IsNull(params)) {
    if (n == 0) return 0;
    return fail(err, errlen, LC_SQL_EPARAMS,
                "parameter mismatch: statement expects %d parameter(s), got "
                "none",
                n);
  }
  if (cJSON_IsObject(params)) return bind_named(st, n, params, err, errlen);
  if (!cJSON_IsArray(params))
    return fail(err, errlen, LC_SQL_EPARAMS,
                "params must be a JSON array or object");
  for (int i = 1; i <= n; i++) {
    const char *name = sqlite3_bind_parameter_name(st, i);
    if (!is_positional(name))
      return fail(err, errlen, LC_SQL_EPARAMS,
                  "statement uses named parameter %s; pass params as an object",
                  name);
  }
  int given = cJSON_GetArraySize(params);
  if (given != n)
    return fail(err, errlen, LC_SQL_EPARAMS,
                "parameter mismatch: statement expects %d positional "
                "parameter(s), got %d",
                n, given);
  int i = 1;
  for (const cJSON *c = params->child; c; c = c->next, i++) {
    char label[64];
    snprintf(label, sizeof label, "parameter %d", i);
    int rc = bind_one(st, i, c, label, err, errlen);
    if (rc) return rc;
  }
  return 0;
}

/* ---- statements ---- */

/* Is the rest of the SQL only whitespace, semicolons and comments? */
static const char *extra_text(const char *p) {
  while (*p) {
    if (isspace((unsigned char)*p) || *p == ';') {
      p++;
    } else if (p[0] == '-' && p[1] == '-') {
      while (*p && *p != '\n') p++;
    } else if (p[0] == '/' && p[1] == '*') {
      const char *e = strstr(p + 2, "*/");
      p = e ? e + 2 : p + strlen(p); /* SQLite ends an open comment at EOF */
    } else {
      return p;
    }
  }
  return NULL;
}

/* The error for a failed prepare or step: the authorizer's reason when it
 * was the cause, else SQLite's message. */
static int sql_fail(struct lc_sql_db *db, char *err, size_t errlen) {
  if (db->denied[0])
    return fail(err, errlen, LC_SQL_EREADONLY,
                "read-only database: %s is not allowed", db->denied);
  int code = sqlite3_errcode(db->db);
  if (code == SQLITE_NOMEM) return fail(err, errlen, LC_ENOMEM, "out of memory");
  if ((code & 0xff) == SQLITE_READONLY)
    return fail(err, errlen, LC_SQL_EREADONLY, "read-only database: %s",
                sqlite3_errmsg(db->db));
  return fail(err, errlen, LC_SQL_ESQL, "%s", sqlite3_errmsg(db->db));
}

/* cJSON prints numbers beyond int range with 15 significant digits, so only
 * integers below 10^15 print exactly; larger ones go out as Raw literals. */
static int exact_number(sqlite3_int64 v) {
  return v > -1000000000000000LL && v < 1000000000000000LL;
}

/* One cell as JSON; adds its approximate printed size to *bytes. */
static cJSON *cell(sqlite3_stmt *st, int i, size_t *bytes) {
  switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER: {
      sqlite3_int64 v = sqlite3_column_int64(st, i);
      *bytes += 20;
      if (exact_number(v)) return cJSON_CreateNumber((double)v);
      char b[32];
      snprintf(b, sizeof b, "%lld", (long long)v);
      return cJSON_CreateRaw(b);
    }
    case SQLITE_FLOAT:
      *bytes += 24;
      return cJSON_CreateNumber(sqlite3_column_double(st, i));
    case SQLITE_TEXT: {
      const char *p = (const char *)sqlite3_column_text(st, i);
      size_t n = (size_t)sqlite3_column_bytes(st, i);
      if (!p) return NULL; /* NOMEM */
      if (!memchr(p, 0, n) && lc_utf8_valid(p, n, NULL)) {
        *bytes += n + 2;
        return cJSON_CreateString(p);
      }
      *bytes += 4 * ((n + 2) / 3) + 14;
      return b64_object(p, n);
    }
    case SQLITE_BLOB: {
      const void *p = sqlite3_column_blob(st, i);
      size_t n = (size_t)sqlite3_column_bytes(st, i);
      *bytes += 4 * ((n + 2) / 3) + 14;
      return b64_object(p ? p : "", n);
    }
    default:
      *bytes += 4;
      return cJSON_CreateNull();
  }
}

/* Unique keys for the row objects: a repeated column name gets _2, _3... */
static int column_keys(sqlite3_stmt *st, int ncol, char **keys) {
  for (int i = 0; i < ncol; i++) {
    const char *name = sqlite3_column_name(st, i);
    if (!name) return LC_ENOMEM;
    size_t sz = strlen(name) + 24;
    keys[i] = lc_malloc(sz);
    if (!keys[i]) return LC_ENOMEM;
    snprintf(keys[i], sz, "%s", name);
    for (int suffix = 2;; suffix++) {
      int dup = 0;
      for (int k = 0; k < i && !dup; k++) dup = strcmp(keys[k], keys[i]) == 0;
      if (!dup) break;
      snprintf(keys[i], sz, "%s_%d", name, suffix);
    }
  }
  return 0;
}

static int run(struct lc_sql_db *db, sqlite3_stmt *st,
               const struct lc_sql_opts *opts, cJSON **result, char *err,
               size_t errlen) {
  size_t max_rows = opts && opts->max_rows ? opts->max_rows
                                           : LC_SQL_DEFAULT_MAX_ROWS;
  size_t max_bytes = opts && opts->max_bytes ? opts->max_bytes
                                             : LC_SQL_DEFAULT_MAX_BYTES;
  int ncol = sqlite3_column_count(st);
  char **keys = lc_calloc((size_t)ncol + 1, sizeof *keys);
  cJSON *res = cJSON_CreateObject();
  cJSON *cols = cJSON_AddArrayToObject(res, "columns");
  cJSON *rows = cJSON_AddArrayToObject(res, "rows");
  int rc = 0;
  if (!keys || !res || !cols || !rows || column_keys(st, ncol, keys)) {
    rc = fail(err, errlen, LC_ENOMEM, "out of memory");
    goto out;
  }
  for (int i = 0; i < ncol; i++) {
    cJSON *s = cJSON_CreateString(keys[i]);
    if (!s) {
      rc = fail(err, errlen, LC_ENOMEM, "out of memory");
      goto out;
    }
    cJSON_AddItemToArray(cols, s);
  }
  sqlite3_int64 before = sqlite3_total_changes64(db->db);
  size_t bytes = 64, nrows = 0;
  int truncated = 0;
  for (;;) {
    int s = sqlite3_step(st);
    if (s == SQLITE_DONE) break;
    if (s != SQLITE_ROW) {
      rc = sql_fail(db, err, errlen);
      goto out;
    }
    /* One row past the cap tells us there was more: truncated, not silent. */
    if (nrows == max_rows) {
      truncated = 1;
      break;
    }
    size_t rb = 2;
    cJSON *row = cJSON_CreateObject();
    for (int i = 0; row && i < ncol; i++) {
      cJSON *v = cell(st, i, &rb);
      if (!v) {
        cJSON_Delete(row);
        row = NULL;
        break;
      }
      rb += strlen(keys[i]) + 4;
      cJSON_AddItemToObject(row, keys[i], v);
    }
    if (!row) {
      rc = fail(err, errlen, LC_ENOMEM, "out of memory");
      goto out;
    }
    if (bytes + rb > max_bytes) {
      cJSON_Delete(row);
      truncated = 1;
      break;
    }
    bytes += rb;
    cJSON_AddItemToArray(rows, row);
    nrows++;
  }
  /* sqlite3_changes64 keeps the count of the last INSERT/UPDATE/DELETE, so
   * it would be stale for a SELECT or DDL; only report it if this statement
   * changed something. */
  sqlite3_int64 changes = 0;
  if (!sqlite3_stmt_readonly(st) && sqlite3_total_changes64(db->db) != before)
    changes = sqlite3_changes64(db->db);
  sqlite3_int64 lid = sqlite3_last_insert_rowid(db->db);
  char b[32];
  snprintf(b, sizeof b, "%lld", (long long)lid);
  if (!cJSON_AddNumberToObject(res, "row_count", (double)nrows) ||
      !cJSON_AddBoolToObject(res, "truncated", truncated) ||
      !cJSON_AddNumberToObject(res, "changes", (double)changes) ||
      !(exact_number(lid)
            ? cJSON_AddNumberToObject(res, "last_insert_id", (double)lid)
            : cJSON_AddRawToObject(res, "last_insert_id", b)))
    rc = fail(err, errlen, LC_ENOMEM, "out of memory");
out:
  if (keys) {
    for (int i = 0; i < ncol; i++) lc_free(keys[i]);
    lc_free(keys);
  }
  if (rc) {
    cJSON_Delete(res);
    return rc;
  }
  *result = res;
  return 0;
}

int lc_sql_query(struct lc_sql_db *db, const char *sql, const cJSON *params,
                 const struct lc_sql_opts *opts, cJSON **result, char *err,
                 size_t errlen) {
  if (errlen) err[0] = '\0';
  if (result) *result = NULL;
  if (!db || !sql || !result) return fail(err, errlen, LC_EINVAL, "no SQL");
  if (!db->db) return fail(err, errlen, LC_ESTATE, "database is closed");
  db->denied[0] = '\0';
  sqlite3_stmt *st = NULL;
  const char *tail = NULL;
  if (sqlite3_prepare_v3(db->db, sql, -1, 0, &st, &tail) != SQLITE_OK)
    return sql_fail(db, err, errlen);
  if (!st) return fail(err, errlen, LC_SQL_ESQL, "no SQL statement to run");
  const char *extra = tail ? extra_text(tail) : NULL;
  int rc;
  if (extra) {
    rc = fail(err, errlen, LC_SQL_ESQL,
              "multiple statements are not allowed (extra text at byte %zu: "
              "\"%.20s\")",
              (size_t)(extra - sql), extra);
  } else if ((db->flags & LC_SQL_READONLY) && !sqlite3_stmt_readonly(st)) {
    rc = fail(err, errlen, LC_SQL_EREADONLY,
              "read-only database: this statement would write");
  } else {
    rc = bind_params(st, params, err, errlen);
    if (rc == 0) rc = run(db, st, opts, result, err, errlen);
  }
  sqlite3_finalize(st);
  return rc;
}

int lc_sql_exec_script(struct lc_sql_db *db, const char *sql, char *err,
                       size_t errlen) {
  if (errlen) err[0] = '\0';
  if (!db || !sql) return fail(err, errlen, LC_EINVAL, "no SQL");
  if (!db->db) return fail(err, errlen, LC_ESTATE, "database is closed");
  if (db->flags & LC_SQL_READONLY)
    return fail(err, errlen, LC_SQL_EREADONLY,
                "read-only database: scripts are not allowed");
  char *msg = NULL;
  if (sqlite3_exec(db->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    int code = sqlite3_errcode(db->db);
    int rc = code == SQLITE_NOMEM
                 ? fail(err, errlen, LC_ENOMEM, "out of memory")
                 : fail(err, errlen, LC_SQL_ESQL, "%s",
                        msg ? msg : sqlite3_errmsg(db->db));
    sqlite3_free(msg);
    return rc;
  }
  return 0;
}

const char *lc_sql_errcode(int rc) {
  switch (rc) {
    case 0: return "ok";
    case LC_SQL_EREADONLY: return "readonly";
    case LC_SQL_EPARAMS: return "bad_params";
    case LC_SQL_ESQL: return "sql_error";
    case LC_ESTATE: return "closed";
    case LC_ENOMEM: return "no_memory";
    default: return "invalid";
  }
}
