/* shipping_service.c: the shipping partner's return-label API for the
 * ShopBot example: a small real HTTP service (libmicrohttpd) that keeps its
 * labels and a log of every request in its own SQLite file.
 *
 *   shopbot-shipping --db FILE [--port N] [--background --watch-pid PID]
 *   prints "listening on 127.0.0.1:PORT" once it accepts connections.
 *
 * API
 *   POST /labels      {order_number, items: [...], customer: {...}} with an
 *                     Idempotency-Key header (required). The first request
 *                     with a key creates a label (201); every later request
 *                     with that key returns the same label (200,
 *                     Idempotent-Replayed: true), never a second one. The
 *                     same key with a different body is refused (422).
 *   GET  /labels/ID   one label
 *   GET  /_requests   every request received, as JSON (tests read it)
 *   POST /_fail       {"count": N, "when": "before"|"after"}: the next N
 *                     POST /labels answer 503. "after" creates the label
 *                     first and loses the answer, as a gateway timeout
 *                     would: only the Idempotency-Key keeps a retry from
 *                     making a second label.
 *
 * One MHD polling thread serves every request, so the SQLite handle is only
 * ever used from that thread. SIGTERM/SIGINT end it cleanly. */
#include <cjson/cJSON.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <microhttpd.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_BODY (64 * 1024)

static sqlite3 *db;
static int fail_count;      /* POST /labels left to fail with 503 */
static int fail_after;      /* 1: create the label, then fail */

struct req {
  char *body;
  size_t len;
  int too_big;
};

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS labels ("
    "  id INTEGER PRIMARY KEY,"
    "  label_id TEXT UNIQUE NOT NULL,"
    "  idempotency_key TEXT UNIQUE NOT NULL,"
    "  request_body TEXT NOT NULL,"
    "  order_number TEXT,"
    "  tracking_number TEXT NOT NULL,"
    "  label_text TEXT NOT NULL,"
    "  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')));"
    "CREATE TABLE IF NOT EXISTS requests ("
    "  id INTEGER PRIMARY KEY,"
    "  method TEXT NOT NULL, path TEXT NOT NULL,"
    "  idempotency_key TEXT, body TEXT, status INTEGER NOT NULL,"
    "  label_id TEXT,"
    "  at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')));";

static void log_request(const char *method, const char *path, const char *key,
                        const char *body, int status, const char *label_id) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "INSERT INTO requests(method, path, idempotency_key, body, status, "
                         "label_id) VALUES (?,?,?,?,?,?)",
                         -1, &st, NULL) != SQLITE_OK)
    return;
  sqlite3_bind_text(st, 1, method, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, path, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 3, key, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 4, body, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(st, 5, status);
  sqlite3_bind_text(st, 6, label_id, -1, SQLITE_TRANSIENT);
  sqlite3_step(st);
  sqlite3_finalize(st);
}

/* Queues a response; takes ownership of text (malloc'd, may be NULL). */
static enum MHD_Result reply(struct MHD_Connection *c, int status, char *text,
                             int replayed) {
  const char *t = text ? text : "{}";
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(t), (void *)t, MHD_RESPMEM_MUST_COPY);
  free(text);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, "Content-Type", "application/json");
  if (replayed) MHD_add_response_header(r, "Idempotent-Replayed", "true");
  enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
  MHD_destroy_response(r);
  return ok;
}

static char *error_json(const char *msg) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "error"), "message", msg);
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

/* The label row with this column = value as JSON, or NULL. */
static char *label_json(const char *col, const char *value, char *body_out,
                        size_t body_len) {
  char sql[200];
  snprintf(sql, sizeof sql,
           "SELECT label_id, tracking_number, order_number, label_text, created_at, "
           "request_body FROM labels WHERE %s = ?",
           col);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return NULL;
  sqlite3_bind_text(st, 1, value, -1, SQLITE_TRANSIENT);
  char *out = NULL;
  if (sqlite3_step(st) == SQLITE_ROW) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "label_id", (const char *)sqlite3_column_text(st, 0));
    cJSON_AddStringToObject(o, "tracking_number", (const char *)sqlite3_column_text(st, 1));
    cJSON_AddStringToObject(o, "carrier", "Parcelo");
    const char *on = (const char *)sqlite3_column_text(st, 2);
    if (on) cJSON_AddStringToObject(o, "order_number", on);
    cJSON_AddStringToObject(o, "label_text", (const char *)sqlite3_column_text(st, 3));
    cJSON_AddStringToObject(o, "created_at", (const char *)sqlite3_column_text(st, 4));
    if (body_out) snprintf(body_out, body_len, "%s", (const char *)sqlite3_column_text(st, 5));
    out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
  }
  sqlite3_finalize(st);
  return out;
}

/* POST /labels. Returns the status; *json gets the body (malloc'd). */
static int create_label(const char *key, const char *body, char **json, int *replayed,
                        char *label_id_out, size_t lid_len) {
  if (!key || !*key || strlen(key) > 255) {
    *json = error_json("an Idempotency-Key header (1-255 bytes) is required");
    return 400;
  }
  cJSON *in = cJSON_Parse(body ? body : "");
  cJSON *order = in ? cJSON_GetObjectItem(in, "order_number") : NULL;
  cJSON *items = in ? cJSON_GetObjectItem(in, "items") : NULL;
  if (!cJSON_IsString(order) || !cJSON_IsArray(items) || cJSON_GetArraySize(items) == 0) {
    cJSON_Delete(in);
    *json = error_json("body must be {\"order_number\": \"...\", \"items\": [...]}");
    return 400;
  }
  char prev_body[MAX_BODY + 1];
  char *existing = label_json("idempotency_key", key, prev_body, sizeof prev_body);
  if (existing) {
    cJSON_Delete(in);
    if (strcmp(prev_body, body) != 0) {
      free(existing);
      *json = error_json("this Idempotency-Key was used with a different request body");
      return 422;
    }
    cJSON *o = cJSON_Parse(existing);
    snprintf(label_id_out, lid_len, "%s",
             cJSON_GetStringValue(cJSON_GetObjectItem(o, "label_id")));
    cJSON_Delete(o);
    *json = existing;
    *replayed = 1;
    return 200;
  }
  /* Label numbers follow the row id: deterministic for tests. */
  sqlite3_int64 next = 1;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "SELECT COALESCE(MAX(id), 0) + 1 FROM labels", -1, &st, NULL) ==
      SQLITE_OK) {
    if (sqlite3_step(st) == SQLITE_ROW) next = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  char lid[32], tracking[32], text[1024];
  snprintf(lid, sizeof lid, "LBL-%06lld", (long long)next);
  snprintf(tracking, sizeof tracking, "PX%010lld", 4711000000LL + (long long)next);
  int nitems = cJSON_GetArraySize(items);
  snprintf(text, sizeof text,
           "PARCELO RETURN LABEL %s\nTracking: %s\nOrder: %s (%d item%s)\n"
           "Ship to: Returns Dept, Shop Example, 1 Warehouse Way, Springfield\n"
           "Drop off at any Parcelo point within 14 days. Postage paid.\n",
           lid, tracking, order->valuestring, nitems, nitems == 1 ? "" : "s");
  if (sqlite3_prepare_v2(db,
                         "INSERT INTO labels(label_id, idempotency_key, request_body, "
                         "order_number, tracking_number, label_text) VALUES (?,?,?,?,?,?)",
                         -1, &st, NULL) != SQLITE_OK) {
    cJSON_Delete(in);
    *json = error_json(sqlite3_errmsg(db));
    return 500;
  }
  sqlite3_bind_text(st, 1, lid, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 3, body, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 4, order->valuestring, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 5, tracking, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 6, text, -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  cJSON_Delete(in);
  if (rc != SQLITE_DONE) {
    *json = error_json(sqlite3_errmsg(db));
    return 500;
  }
  snprintf(label_id_out, lid_len, "%s", lid);
  *json = label_json("label_id", lid, NULL, 0);
  return 201;
}

static char *requests_json(void) {
  cJSON *arr = cJSON_CreateArray();
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "SELECT method, path, idempotency_key, status, label_id FROM "
                         "requests ORDER BY id",
                         -1, &st, NULL) == SQLITE_OK) {
    while (sqlite3_step(st) == SQLITE_ROW) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "method", (const char *)sqlite3_column_text(st, 0));
      cJSON_AddStringToObject(o, "path", (const char *)sqlite3_column_text(st, 1));
      const char *k = (const char *)sqlite3_column_text(st, 2);
      if (k) cJSON_AddStringToObject(o, "idempotency_key", k);
      cJSON_AddNumberToObject(o, "status", sqlite3_column_int(st, 3));
      const char *l = (const char *)sqlite3_column_text(st, 4);
      if (l) cJSON_AddStringToObject(o, "label_id", l);
      cJSON_AddItemToArray(arr, o);
    }
    sqlite3_finalize(st);
  }
  char *s = cJSON_PrintUnformatted(arr);
  cJSON_Delete(arr);
  return s;
}

/* MHD access handler: called by the polling thread, several times per
 * request (headers, each body piece, then once with no data). */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls) {
  struct req *r = *con_cls;
  if (!r) {
    if (!(r = calloc(1, sizeof *r))) return MHD_NO;
    *con_cls = r;
    return MHD_YES;
  }
  if (*upload_size) {
    if (r->len + *upload_size > MAX_BODY) {
      r->too_big = 1;
    } else {
      char *p = realloc(r->body, r->len + *upload_size + 1);
      if (!p) return MHD_NO;
      memcpy(p + r->len, upload, *upload_size);
      r->body = p;
      r->len += *upload_size;
      r->body[r->len] = '\0';
    }
    *upload_size = 0;
    return MHD_YES;
  }
  const char *body = r->body ? r->body : "";
  if (r->too_big) return reply(c, 413, error_json("body too large"), 0);

  if (strcmp(method, "POST") == 0 && strcmp(url, "/labels") == 0) {
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
    char lid[64] = "";
    if (fail_count > 0 && !fail_after) {
      fail_count--;
      log_request(method, url, key, body, 503, NULL);
      return reply(c, 503, error_json("label service temporarily unavailable"), 0);
    }
    char *json = NULL;
    int replayed = 0;
    int status = create_label(key, body, &json, &replayed, lid, sizeof lid);
    if (fail_count > 0 && fail_after && status < 300) {
      /* The label exists now; the answer is lost on the way back. */
      fail_count--;
      free(json);
      log_request(method, url, key, body, 503, lid);
      return reply(c, 503, error_json("gateway timeout talking to the label printer"), 0);
    }
    log_request(method, url, key, body, status, lid[0] ? lid : NULL);
    return reply(c, status, json, replayed);
  }
  if (strcmp(method, "GET") == 0 && strncmp(url, "/labels/", 8) == 0) {
    char *json = label_json("label_id", url + 8, NULL, 0);
    log_request(method, url, NULL, NULL, json ? 200 : 404, json ? url + 8 : NULL);
    if (!json) return reply(c, 404, error_json("no such label"), 0);
    return reply(c, 200, json, 0);
  }
  if (strcmp(method, "GET") == 0 && strcmp(url, "/_requests") == 0)
    return reply(c, 200, requests_json(), 0);
  if (strcmp(method, "POST") == 0 && strcmp(url, "/_fail") == 0) {
    cJSON *in = cJSON_Parse(body);
    cJSON *n = cJSON_GetObjectItem(in, "count");
    const char *when = cJSON_GetStringValue(cJSON_GetObjectItem(in, "when"));
    fail_count = cJSON_IsNumber(n) ? n->valueint : 0;
    fail_after = when && strcmp(when, "after") == 0;
    cJSON_Delete(in);
    return reply(c, 200, strdup("{\"ok\":true}"), 0);
  }
  log_request(method, url, NULL, body, 404, NULL);
  return reply(c, 404, error_json("no such endpoint"), 0);
}

/* MHD completion callback: frees the per-request buffer. */
static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode toe) {
  struct req *r = *con_cls;
  if (r) {
    free(r->body);
    free(r);
    *con_cls = NULL;
  }
}

static const char usage[] =
    "usage: shopbot-shipping --db FILE [--port N] [--fail N] [--background --watch-pid PID]\n"
    "  The ShopBot example's shipping partner: POST /labels with an Idempotency-Key.\n"
    "  Prints \"listening on 127.0.0.1:PORT\". --background: detach after that line\n"
    "  (prints \"pid N\" too) and exit when process PID is gone.\n";

int main(int argc, char **argv) {
  const char *dbpath = NULL;
  int port = 0, background = 0;
  long watch = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) dbpath = argv[++i];
    else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = atoi(argv[++i]);
    else if (strcmp(argv[i], "--fail") == 0 && i + 1 < argc) fail_count = atoi(argv[++i]);
    else if (strcmp(argv[i], "--background") == 0) background = 1;
    else if (strcmp(argv[i], "--watch-pid") == 0 && i + 1 < argc) watch = atol(argv[++i]);
    else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      fputs(usage, stdout);
      return 0;
    } else {
      fputs(usage, stderr);
      return 2;
    }
  }
  if (!dbpath) {
    fputs(usage, stderr);
    return 2;
  }
  if (sqlite3_open(dbpath, &db) != SQLITE_OK ||
      sqlite3_exec(db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK) {
    fprintf(stderr, "shopbot-shipping: %s: %s\n", dbpath, db ? sqlite3_errmsg(db) : "open failed");
    sqlite3_close(db);
    return 1;
  }
  sqlite3_busy_timeout(db, 5000); /* tests read the file while we write */
  /* Block the stop signals in every thread (MHD's inherit the mask); the
   * main thread takes them with sigwait. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);

  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (background) {
    /* Detach before MHD starts its thread: fork keeps only this one. The
     * parent waits for the child's line on a pipe, prints it, and exits. */
    int p[2];
    if (pipe(p) < 0) return 1;
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid > 0) {
      close(p[1]);
      char line[128];
      ssize_t n = read(p[0], line, sizeof line - 1);
      if (n <= 0) return 1;
      line[n] = '\0';
      printf("%spid %ld\n", line, (long)pid);
      fflush(stdout);
      return 0;
    }
    close(p[0]);
    setsid();
    if (dup2(p[1], 1) < 0) return 1;
    close(p[1]);
  }
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, NULL,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, on_done,
      NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
  if (!d) {
    fprintf(stderr, "shopbot-shipping: cannot listen on 127.0.0.1:%d\n", port);
    sqlite3_close(db);
    return 1;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  printf("listening on 127.0.0.1:%u\n", info ? info->port : 0);
  fflush(stdout);
  if (background) {
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) {
      dup2(devnull, 1);
      dup2(devnull, 2); /* whoever started us may wait for EOF on these */
      close(devnull);
    }
  }
  for (;;) {
    int sig = 0;
    if (watch > 0) {
      /* Check on the watched process once a second; a signal ends it now. */
      struct timespec ts = {1, 0};
      sig = sigtimedwait(&set, NULL, &ts);
      if (sig > 0) break;
      if (kill((pid_t)watch, 0) < 0 && errno == ESRCH) break;
    } else if (sigwait(&set, &sig) == 0) {
      break;
    }
  }
  MHD_stop_daemon(d);
  sqlite3_close(db);
  return 0;
}
