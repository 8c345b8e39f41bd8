/* seccomp_dl.c: libseccomp, loaded with dlopen by the sandbox child that
 * uses it instead of at every start.
 *
 * Only the PAL sandbox's child (sandbox.c child_filter, in a process of its
 * own made by posix_spawn) builds a filter; linked, libseccomp was mapped by
 * every run and lengthened the search list of every symbol libcurl's dlopen
 * resolves. The functions below carry libseccomp's names and forward to the
 * loaded library; the child loads it first thing (lc_seccomp_dl_load),
 * before its resource caps and its filter are in place. If it cannot be loaded, seccomp_init
 * returns NULL, as libseccomp does on failure, and the child stops before
 * running anything. seccomp_rule_add's comparisons are passed on as an
 * array (seccomp_rule_add_array), which is what the variadic form builds. */
#include "seccomp_dl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <seccomp.h>
#include <stdarg.h>
#include <stdio.h>

#ifndef LUACT_SECCOMP_SONAME
#define LUACT_SECCOMP_SONAME "libseccomp.so.2"
#endif

static struct {
  scmp_filter_ctx (*init)(uint32_t);
  int (*rule_add_array)(scmp_filter_ctx, uint32_t, int, unsigned int,
                        const struct scmp_arg_cmp *);
  int (*load)(const scmp_filter_ctx);
  void (*release)(scmp_filter_ctx);
} fn;
static int loaded; /* 1 when every pointer above is set */
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static void load(void) {
  void *h = dlopen(LUACT_SECCOMP_SONAME, RTLD_LAZY | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "luact: cannot load %s: %s\n", LUACT_SECCOMP_SONAME, dlerror());
    return;
  }
  struct {
    const char *name;
    void **slot;
  } t[] = {
      {"seccomp_init", (void **)&fn.init},
      {"seccomp_rule_add_array", (void **)&fn.rule_add_array},
      {"seccomp_load", (void **)&fn.load},
      {"seccomp_release", (void **)&fn.release},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    /* POSIX: a data pointer from dlsym may be converted to a function pointer. */
    *t[i].slot = dlsym(h, t[i].name);
    if (!*t[i].slot) {
      fprintf(stderr, "luact: %s has no %s\n", LUACT_SECCOMP_SONAME, t[i].name);
      return;
    }
  }
  loaded = 1;
}

static int ready(void) {
  pthread_once(&load_once, load);
  return loaded;
}

int lc_seccomp_dl_load(void) { return ready(); }

scmp_filter_ctx seccomp_init(uint32_t def_action) {
  return ready() ? fn.init(def_action) : NULL;
}

/* The filter's limit on comparisons per rule (libseccomp: 6 arguments). */
#define MAX_CMP 6

int seccomp_rule_add(scmp_filter_ctx ctx, uint32_t action, int syscall, unsigned int arg_cnt,
                     ...) {
  if (!ready()) return -1;
  if (arg_cnt > MAX_CMP) return -22; /* -EINVAL, as libseccomp */
  struct scmp_arg_cmp cmp[MAX_CMP];
  va_list ap;
  va_start(ap, arg_cnt);
  for (unsigned int i = 0; i < arg_cnt; i++) cmp[i] = va_arg(ap, struct scmp_arg_cmp);
  va_end(ap);
  return fn.rule_add_array(ctx, action, syscall, arg_cnt, cmp);
}

/* Reached only with a context from seccomp_init, hence after loading. */
int seccomp_load(const scmp_filter_ctx ctx) { return ready() ? fn.load(ctx) : -1; }
void seccomp_release(scmp_filter_ctx ctx) {
  if (ctx && ready()) fn.release(ctx);
}
