/* curl_dl.c: libcurl, loaded on the first call instead of at start.
 *
 * Debian's libcurl pulls in about 30 shared libraries (OpenSSL, GnuTLS
 * through librtmp, LDAP, GSSAPI, ...) whose relocation was over half of
 * an empty script's start-up, plus OpenSSL's initialisation inside
 * curl_global_init. A script that never makes a request should pay none of
 * that. So luact_core defines the libcurl functions the runtime uses; the
 * first call dlopens libcurl, resolves them all and runs curl_global_init
 * once (pthread_once: safe from any worker thread). Everything else is a
 * forwarding call. If libcurl cannot be loaded, every call fails the way
 * libcurl itself reports failure (NULL, CURLE_FAILED_INIT, ...) and the
 * reason is printed once on stderr.
 *
 * lc_curl_preload (curl_dl.h) runs the same dlopen and dlsym on a thread
 * of its own, started by `luact run` for a script that looks as if it will
 * make requests: the loader's work then overlaps the script's start
 * instead of following it; the first call waits in the same pthread_once,
 * then runs curl_global_init itself.
 *
 * The variadic setopt/getinfo forwarders take their one argument by the
 * type the option number encodes (curl.h's CURLOPTTYPE_* ranges), so no
 * argument is reinterpreted through the wrong type.
 *
 * Programs that link libcurl themselves (the test runner) still work:
 * dlopen of an already loaded library returns it, and dlsym on its handle
 * finds libcurl's own definitions, not these. */
#define CURL_DISABLE_TYPECHECK /* the macros would rename the definitions below */
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "curl_dl.h"

#ifndef LUACT_CURL_SONAME
#define LUACT_CURL_SONAME "libcurl.so.4"
#endif

static struct {
  CURLcode (*global_init)(long);
  CURL *(*easy_init)(void);
  CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
  CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
  CURLcode (*easy_perform)(CURL *);
  void (*easy_cleanup)(CURL *);
  void (*easy_reset)(CURL *);
  const char *(*easy_strerror)(CURLcode);
  struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
  void (*slist_free_all)(struct curl_slist *);
  CURLM *(*multi_init)(void);
  CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
  CURLMcode (*multi_add_handle)(CURLM *, CURL *);
  CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
  CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
  CURLMcode (*multi_assign)(CURLM *, curl_socket_t, void *);
  CURLMsg *(*multi_info_read)(CURLM *, int *);
  CURLMcode (*multi_perform)(CURLM *, int *);
  CURLMcode (*multi_poll)(CURLM *, struct curl_waitfd[], unsigned int, int, int *);
  CURLMcode (*multi_cleanup)(CURLM *);
  CURLU *(*url)(void);
  CURLUcode (*url_set)(CURLU *, CURLUPart, const char *, unsigned int);
  CURLUcode (*url_get)(CURLU *, CURLUPart, char **, unsigned int);
  void (*url_cleanup)(CURLU *);
  const char *(*url_strerror)(CURLUcode);
  time_t (*getdate)(const char *, const time_t *);
  void (*free)(void *);
} fn;
static int resolved; /* 1 when every pointer above is set */
static int loaded;   /* ... and curl_global_init succeeded */

static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static void load(void) {
  void *h = dlopen(LUACT_CURL_SONAME, RTLD_LAZY | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "luact: cannot load %s: %s\n", LUACT_CURL_SONAME, dlerror());
    return;
  }
  struct {
    const char *name;
    void **slot;
  } t[] = {
#define S(f) {"curl_" #f, (void **)&fn.f}
      S(global_init),  S(easy_init),        S(easy_setopt),         S(easy_getinfo),
      S(easy_perform), S(easy_cleanup),     S(easy_reset),          S(easy_strerror),
      S(slist_append), S(slist_free_all),   S(multi_init),          S(multi_setopt),
      S(multi_add_handle), S(multi_remove_handle), S(multi_socket_action), S(multi_assign),
      S(multi_info_read), S(multi_perform), S(multi_poll),          S(multi_cleanup),
      S(url),          S(url_set),          S(url_get),             S(url_cleanup),
      S(url_strerror), S(getdate),          S(free),
#undef S
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    /* POSIX: a data pointer from dlsym may be converted to a function pointer. */
    *t[i].slot = dlsym(h, t[i].name);
    if (!*t[i].slot) {
      fprintf(stderr, "luact: %s has no %s\n", LUACT_CURL_SONAME, t[i].name);
      return;
    }
  }
  resolved = 1;
}

/* Separate from load(): the preloading thread only loads. OpenSSL's
 * initialisation registers its atexit cleanup part way through, and a run
 * that exits meanwhile would run that cleanup while the initialisation
 * went on (exit runs later registrations first; the likely cause of a
 * SIGSEGV seen once in testing). The first call initialises. */
static void init(void) {
  if (!resolved) return;
  if (fn.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    fprintf(stderr, "luact: curl_global_init failed\n");
    return;
  }
  loaded = 1;
}
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static int ready(void) {
  pthread_once(&load_once, load);
  pthread_once(&init_once, init);
  return loaded;
}

int lc_curl_usable(void) { return ready(); }

/* The preloading thread (lc_curl_preload). It only runs load() inside the
 * same pthread_once as every other caller: a first libcurl call made while
 * it runs waits in pthread_once for it to finish, then initialises. */
static pthread_t preload_thread;
static pid_t preload_pid; /* the process that started it; 0: none */

static void *preload_main(void *arg) {
  (void)arg;
  pthread_once(&load_once, load);
  return NULL;
}

/* At exit: the loader must not run while exit unloads the libraries. A
 * forked child (which has no such thread) skips. */
static void preload_join(void) {
  if (preload_pid == getpid()) {
    pthread_join(preload_thread, NULL);
    preload_pid = 0;
  }
}

void lc_curl_preload(void) {
  if (preload_pid) return;
  /* Every signal blocked on the thread: one meant for the run's loop (a
   * signalfd, Ctrl-C in luact chat) must not be delivered to it. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&preload_thread, NULL, preload_main, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc) return;
  preload_pid = getpid();
  atexit(preload_join);
}

/* Already initialised on load; a later call is a no-op, as in libcurl. */
CURLcode curl_global_init(long flags) {
  (void)flags;
  return ready() ? CURLE_OK : CURLE_FAILED_INIT;
}

CURL *curl_easy_init(void) { return ready() ? fn.easy_init() : NULL; }

CURLcode curl_easy_setopt(CURL *h, CURLoption opt, ...) {
  if (!ready()) return CURLE_FAILED_INIT;
  va_list ap;
  va_start(ap, opt);
  CURLcode rc;
  if (opt < CURLOPTTYPE_OBJECTPOINT) {
    rc = fn.easy_setopt(h, opt, va_arg(ap, long));
  } else if (opt < CURLOPTTYPE_FUNCTIONPOINT) {
    rc = fn.easy_setopt(h, opt, va_arg(ap, void *));
  } else if (opt < CURLOPTTYPE_OFF_T) {
    rc = fn.easy_setopt(h, opt, va_arg(ap, void (*)(void)));
  } else if (opt < CURLOPTTYPE_BLOB) {
    rc = fn.easy_setopt(h, opt, va_arg(ap, curl_off_t));
  } else {
    rc = fn.easy_setopt(h, opt, va_arg(ap, void *));
  }
  va_end(ap);
  return rc;
}

CURLcode curl_easy_getinfo(CURL *h, CURLINFO info, ...) {
  if (!ready()) return CURLE_FAILED_INIT;
  va_list ap;
  va_start(ap, info);
  CURLcode rc = fn.easy_getinfo(h, info, va_arg(ap, void *)); /* always a pointer */
  va_end(ap);
  return rc;
}

CURLcode curl_easy_perform(CURL *h) { return ready() ? fn.easy_perform(h) : CURLE_FAILED_INIT; }
void curl_easy_cleanup(CURL *h) {
  if (h && ready()) fn.easy_cleanup(h);
}
void curl_easy_reset(CURL *h) {
  if (h && ready()) fn.easy_reset(h);
}
const char *curl_easy_strerror(CURLcode c) {
  return ready() ? fn.easy_strerror(c) : "libcurl could not be loaded";
}
struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s) {
  return ready() ? fn.slist_append(l, s) : NULL;
}
void curl_slist_free_all(struct curl_slist *l) {
  if (l && ready()) fn.slist_free_all(l);
}

CURLM *curl_multi_init(void) { return ready() ? fn.multi_init() : NULL; }

CURLMcode curl_multi_setopt(CURLM *m, CURLMoption opt, ...) {
  if (!ready()) return CURLM_INTERNAL_ERROR;
  va_list ap;
  va_start(ap, opt);
  CURLMcode rc;
  if (opt < CURLOPTTYPE_OBJECTPOINT) rc = fn.multi_setopt(m, opt, va_arg(ap, long));
  else if (opt < CURLOPTTYPE_FUNCTIONPOINT) rc = fn.multi_setopt(m, opt, va_arg(ap, void *));
  else if (opt < CURLOPTTYPE_OFF_T) rc = fn.multi_setopt(m, opt, va_arg(ap, void (*)(void)));
  else rc = fn.multi_setopt(m, opt, va_arg(ap, curl_off_t));
  va_end(ap);
  return rc;
}

CURLMcode curl_multi_add_handle(CURLM *m, CURL *h) {
  return ready() ? fn.multi_add_handle(m, h) : CURLM_INTERNAL_ERROR;
}
CURLMcode curl_multi_remove_handle(CURLM *m, CURL *h) {
  return ready() ? fn.multi_remove_handle(m, h) : CURLM_INTERNAL_ERROR;
}
CURLMcode curl_multi_socket_action(CURLM *m, curl_socket_t s, int ev, int *running) {
  return ready() ? fn.multi_socket_action(m, s, ev, running) : CURLM_INTERNAL_ERROR;
}
CURLMcode curl_multi_assign(CURLM *m, curl_socket_t s, void *p) {
  return ready() ? fn.multi_assign(m, s, p) : CURLM_INTERNAL_ERROR;
}
CURLMsg *curl_multi_info_read(CURLM *m, int *left) {
  return ready() ? fn.multi_info_read(m, left) : NULL;
}
CURLMcode curl_multi_perform(CURLM *m, int *running) {
  return ready() ? fn.multi_perform(m, running) : CURLM_INTERNAL_ERROR;
}
CURLMcode curl_multi_poll(CURLM *m, struct curl_waitfd extra[], unsigned int n, int ms, int *ret) {
  return ready() ? fn.multi_poll(m, extra, n, ms, ret) : CURLM_INTERNAL_ERROR;
}
CURLMcode curl_multi_cleanup(CURLM *m) { return ready() ? fn.multi_cleanup(m) : CURLM_INTERNAL_ERROR; }

CURLU *curl_url(void) { return ready() ? fn.url() : NULL; }
CURLUcode curl_url_set(CURLU *u, CURLUPart p, const char *s, unsigned int fl) {
  return ready() ? fn.url_set(u, p, s, fl) : CURLUE_OUT_OF_MEMORY;
}
CURLUcode curl_url_get(CURLU *u, CURLUPart p, char **s, unsigned int fl) {
  return ready() ? fn.url_get(u, p, s, fl) : CURLUE_OUT_OF_MEMORY;
}
void curl_url_cleanup(CURLU *u) {
  if (u && ready()) fn.url_cleanup(u);
}
const char *curl_url_strerror(CURLUcode c) {
  return ready() ? fn.url_strerror(c) : "libcurl could not be loaded";
}
time_t curl_getdate(const char *s, const time_t *now) { return ready() ? fn.getdate(s, now) : -1; }
void curl_free(void *p) {
  if (p && ready()) fn.free(p);
}
