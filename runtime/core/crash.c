/* crash.c: named crash points (crash.h). */
#include "crash.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char want_point[64], want_kind[32];
static long want_n = 1;
static int want_stop; /* "stop:point": SIGSTOP instead (a stall, resumed by SIGCONT) */
static atomic_long hits;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void parse(void) {
  const char *e = getenv("LUACT_CRASH_AT");
  if (!e || !*e) return;
  if (!strncmp(e, "stop:", 5)) {
    want_stop = 1;
    e += 5;
  }
  snprintf(want_point, sizeof want_point, "%s", e);
  char *hash = strchr(want_point, '#');
  if (hash) {
    *hash = '\0';
    want_n = strtol(hash + 1, NULL, 10);
    if (want_n < 1) want_n = 1;
  }
  char *at = strchr(want_point, '@');
  if (at) {
    *at = '\0';
    snprintf(want_kind, sizeof want_kind, "%s", at + 1);
  }
}

int lc_crash_due(const char *point, const char *kind) {
  pthread_once(&once, parse);
  if (!want_point[0] || strcmp(point, want_point)) return 0;
  if (want_kind[0] && (!kind || strcmp(kind, want_kind))) return 0;
  return atomic_fetch_add(&hits, 1) + 1 == want_n;
}

void lc_crash_now(void) { raise(want_stop ? SIGSTOP : SIGKILL); }

void lc_crash_point(const char *point, const char *kind) {
  if (lc_crash_due(point, kind)) lc_crash_now();
}
