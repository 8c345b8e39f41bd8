/* util_toolsrv.c: a loopback tool server that counts calls (util_toolsrv.h). */
#include "util_toolsrv.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define CAP (1 << 15) /* slots per table: far above the runs of one test */

struct key_slot {
  char key[160]; /* an Idempotency-Key already charged ("": free) */
};

struct run_slot {
  char run[72]; /* "": free */
  long charges, calls, notified;
  int opened; /* /open/RUN came */
};

struct lc_toolsrv {
  int fd;
  pthread_t acceptor;
  pthread_mutex_t mu;
  pthread_cond_t idle;
  pthread_cond_t gate; /* an /open/ came, or the server stops */
  int stopping;
  int conns; /* connection threads alive */
  long bad; /* whole requests that fit no route, or too big */
  long cut; /* connections that ended before a whole request arrived */
  struct key_slot *keys;
  struct run_slot *runs;
};

static unsigned long hash(const char *s) {
  unsigned long h = 5381;
  while (*s) h = h * 33 + (unsigned char)*s++;
  return h;
}

/* The run's slot, made if new; NULL when the table is full (mu held). */
static struct run_slot *run_of(struct lc_toolsrv *t, const char *run) {
  if (strlen(run) >= sizeof t->runs[0].run) return NULL;
  for (unsigned long i = hash(run), n = 0; n < CAP; i++, n++) {
    struct run_slot *r = &t->runs[i & (CAP - 1)];
    if (!r->run[0]) {
      snprintf(r->run, sizeof r->run, "%s", run);
      return r;
    }
    if (!strcmp(r->run, run)) return r;
  }
  return NULL;
}

/* 1 when key is new (now recorded), 0 when seen, -1 when it cannot be
 * recorded (mu held). */
static int key_new(struct lc_toolsrv *t, const char *key) {
  if (strlen(key) >= sizeof t->keys[0].key) return -1;
  for (unsigned long i = hash(key), n = 0; n < CAP; i++, n++) {
    struct key_slot *k = &t->keys[i & (CAP - 1)];
    if (!k->key[0]) {
      snprintf(k->key, sizeof k->key, "%s", key);
      return 1;
    }
    if (!strcmp(k->key, key)) return 0;
  }
  return -1;
}

/* The value of header name in the head (NUL-ended, CRLF lines), copied. */
static int header(const char *head, const char *name, char *out, size_t n) {
  size_t nl = strlen(name);
  for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
    const char *h = p + 2;
    if (!strncasecmp(h, name, nl) && h[nl] == ':') {
      h += nl + 1;
      while (*h == ' ') h++;
      const char *e = strstr(h, "\r\n");
      size_t len = e ? (size_t)(e - h) : strlen(h);
      if (len >= n) return -1;
      memcpy(out, h, len);
      out[len] = '\0';
      return 0;
    }
  }
  return -1;
}

/* Handles one request; 0, or -1 when it fit no route. */
static int handle(struct lc_toolsrv *t, const char *path, const char *head, const char *body) {
  int rc = -1;
  pthread_mutex_lock(&t->mu);
  if (!strncmp(path, "/notify/", 8)) {
    struct run_slot *r = run_of(t, path + 8);
    if (r) {
      r->notified++;
      rc = 0;
    }
  } else if (!strncmp(path, "/open/", 6)) {
    struct run_slot *r = run_of(t, path + 6);
    if (r) {
      r->opened = 1;
      pthread_cond_broadcast(&t->gate);
      rc = 0;
    }
  } else if (!strncmp(path, "/wait/", 6)) {
    struct run_slot *r = run_of(t, path + 6);
    while (r && !r->opened && !t->stopping) pthread_cond_wait(&t->gate, &t->mu);
    if (r && r->opened) rc = 0;
  } else if (!strcmp(path, "/charge")) {
    cJSON *j = cJSON_Parse(body);
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(j, "run");
    struct run_slot *r = cJSON_IsString(run) ? run_of(t, run->valuestring) : NULL;
    char key[200];
    int fresh = header(head, "Idempotency-Key", key, sizeof key) ? 1 : key_new(t, key);
    if (r && fresh >= 0) {
      r->calls++;
      r->charges += fresh;
      rc = 0;
    }
    cJSON_Delete(j);
  }
  if (rc) t->bad++;
  pthread_mutex_unlock(&t->mu);
  return rc;
}

struct conn {
  struct lc_toolsrv *t;
  int fd;
};

static void *serve_conn(void *ud) {
  struct conn *c = ud;
  struct lc_toolsrv *t = c->t;
  char buf[16384];
  size_t len = 0;
  char *end = NULL;
  long want = -1;
  int ended = 0;
  for (;;) { /* the head, then the body its Content-Length says */
    if (end && want >= 0 && len - (size_t)(end + 4 - buf) >= (size_t)want) break;
    if (len + 1 >= sizeof buf) break;
    ssize_t r = recv(c->fd, buf + len, sizeof buf - 1 - len, 0);
    if (r <= 0) {
      ended = 1;
      break;
    }
    len += (size_t)r;
    buf[len] = '\0';
    if (!end && (end = strstr(buf, "\r\n\r\n"))) {
      *end = '\0';
      char cl[32];
      want = header(buf, "Content-Length", cl, sizeof cl) ? 0 : atol(cl);
    }
  }
  char method[16] = "", path[256] = "";
  int ok = end && want >= 0 && len - (size_t)(end + 4 - buf) >= (size_t)want &&
           sscanf(buf, "%15s %255s", method, path) == 2 && !strcmp(method, "POST");
  int whole = end && want >= 0 && len - (size_t)(end + 4 - buf) >= (size_t)want;
  if (ok) {
    ok = handle(t, path, buf, end + 4) == 0;
  } else {
    /* A caller SIGKILLed in the middle of a request (the fault tests do
     * that) leaves a connection that ends early: no call, and no fault of
     * the protocol. A whole request that is wrong is one. */
    pthread_mutex_lock(&t->mu);
    if (!whole && ended) t->cut++;
    else t->bad++;
    pthread_mutex_unlock(&t->mu);
  }
  static const char yes[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                            "Content-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}";
  static const char no[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  const char *a = ok ? yes : no;
  size_t n = ok ? sizeof yes - 1 : sizeof no - 1;
  while (n > 0) {
    ssize_t w = send(c->fd, a, n, MSG_NOSIGNAL);
    if (w <= 0) break;
    a += w;
    n -= (size_t)w;
  }
  close(c->fd);
  free(c);
  pthread_mutex_lock(&t->mu);
  if (--t->conns == 0) pthread_cond_broadcast(&t->idle);
  pthread_mutex_unlock(&t->mu);
  return NULL;
}

static void *accept_main(void *ud) {
  struct lc_toolsrv *t = ud;
  for (;;) {
    int fd = accept(t->fd, NULL, NULL);
    if (fd < 0) break; /* shut down (or out of descriptors: the test sees errors) */
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct conn *c = malloc(sizeof *c);
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&t->mu);
    t->conns++;
    pthread_mutex_unlock(&t->mu);
    if (c) *c = (struct conn){t, fd};
    if (!c || pthread_create(&th, &at, serve_conn, c)) {
      free(c);
      close(fd);
      pthread_mutex_lock(&t->mu);
      t->bad++;
      if (--t->conns == 0) pthread_cond_broadcast(&t->idle);
      pthread_mutex_unlock(&t->mu);
    }
    pthread_attr_destroy(&at);
  }
  return NULL;
}

int lc_toolsrv_start(struct lc_toolsrv **out, int *port) {
  struct lc_toolsrv *t = calloc(1, sizeof *t);
  if (!t) return -1;
  t->keys = calloc(CAP, sizeof *t->keys);
  t->runs = calloc(CAP, sizeof *t->runs);
  t->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (!t->keys || !t->runs || t->fd < 0 || bind(t->fd, (struct sockaddr *)&a, sizeof a) ||
      listen(t->fd, 512) || getsockname(t->fd, (struct sockaddr *)&a, &al)) {
    if (t->fd >= 0) close(t->fd);
    free(t->keys);
    free(t->runs);
    free(t);
    return -1;
  }
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->idle, NULL);
  pthread_cond_init(&t->gate, NULL);
  if (pthread_create(&t->acceptor, NULL, accept_main, t)) {
    close(t->fd);
    free(t->keys);
    free(t->runs);
    free(t);
    return -1;
  }
  *port = ntohs(a.sin_port);
  *out = t;
  return 0;
}

void lc_toolsrv_stop(struct lc_toolsrv *t) {
  if (!t) return;
  shutdown(t->fd, SHUT_RDWR); /* accept() returns: the acceptor ends */
  pthread_join(t->acceptor, NULL);
  close(t->fd);
  pthread_mutex_lock(&t->mu);
  t->stopping = 1;
  pthread_cond_broadcast(&t->gate);
  while (t->conns > 0) pthread_cond_wait(&t->idle, &t->mu);
  pthread_mutex_unlock(&t->mu);
  pthread_mutex_destroy(&t->mu);
  pthread_cond_destroy(&t->idle);
  pthread_cond_destroy(&t->gate);
  free(t->keys);
  free(t->runs);
  free(t);
}

static struct run_slot *find_run(struct lc_toolsrv *t, const char *run) {
  for (unsigned long i = hash(run), n = 0; n < CAP; i++, n++) {
    struct run_slot *r = &t->runs[i & (CAP - 1)];
    if (!r->run[0]) return NULL;
    if (!strcmp(r->run, run)) return r;
  }
  return NULL;
}

void lc_toolsrv_charges(struct lc_toolsrv *t, const char *run, long *charges, long *calls) {
  pthread_mutex_lock(&t->mu);
  struct run_slot *r = find_run(t, run);
  *charges = r ? r->charges : 0;
  *calls = r ? r->calls : 0;
  pthread_mutex_unlock(&t->mu);
}

long lc_toolsrv_notified(struct lc_toolsrv *t, const char *run) {
  pthread_mutex_lock(&t->mu);
  struct run_slot *r = find_run(t, run);
  long n = r ? r->notified : 0;
  pthread_mutex_unlock(&t->mu);
  return n;
}

long lc_toolsrv_bad(struct lc_toolsrv *t) {
  pthread_mutex_lock(&t->mu);
  long n = t->bad;
  pthread_mutex_unlock(&t->mu);
  return n;
}

long lc_toolsrv_cut(struct lc_toolsrv *t) {
  pthread_mutex_lock(&t->mu);
  long n = t->cut;
  pthread_mutex_unlock(&t->mu);
  return n;
}
