/* edit_dl.c: libedit, loaded with dlopen on first use (see edit_dl.h).
 * Like core/curl_dl.c: the functions below carry libedit's names and
 * forward to the loaded library; a program that links libedit itself
 * still gets its own definitions from dlsym on the library's handle. */
#include "edit_dl.h"

#include <dlfcn.h>
#include <pthread.h>

#ifndef LUACT_EDIT_SONAME
#define LUACT_EDIT_SONAME "libedit.so.2"
#endif

struct lc_edit_dl_vars lc_edit_dl_vars;

static struct {
  int (*rl_initialize)(void);
  int (*add_history)(const char *);
  void (*clear_history)(void);
  void (*stifle_history)(int);
  HIST_ENTRY *(*history_get)(int);
  int (*read_history)(const char *);
  int (*write_history)(const char *);
  void (*rl_callback_read_char)(void);
  void (*rl_callback_handler_install)(const char *, rl_vcpfunc_t *);
  void (*rl_callback_handler_remove)(void);
} fn;
static int loaded; /* 1 when every pointer above and in lc_edit_dl_vars is set */
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static void load(void) {
  void *h = dlopen(LUACT_EDIT_SONAME, RTLD_LAZY | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "luact: cannot load %s (no line editing): %s\n", LUACT_EDIT_SONAME,
            dlerror());
    return;
  }
  struct lc_edit_dl_vars *v = &lc_edit_dl_vars;
  struct {
    const char *name;
    void **slot;
  } t[] = {
#define S(f) {#f, (void **)&fn.f}
      S(rl_initialize),         S(add_history),     S(clear_history),
      S(stifle_history),        S(history_get),     S(read_history),
      S(write_history),         S(rl_callback_read_char),
      S(rl_callback_handler_install), S(rl_callback_handler_remove),
#undef S
      {"rl_end", (void **)&v->end},
      {"rl_catch_signals", (void **)&v->catch_signals},
      {"rl_catch_sigwinch", (void **)&v->catch_sigwinch},
      {"rl_readline_name", (void **)&v->readline_name},
      {"rl_instream", (void **)&v->instream},
      {"rl_outstream", (void **)&v->outstream},
      {"history_base", (void **)&v->hist_base},
      {"history_length", (void **)&v->hist_length},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    /* POSIX: a data pointer from dlsym may be converted to a function pointer. */
    *t[i].slot = dlsym(h, t[i].name);
    if (!*t[i].slot) {
      fprintf(stderr, "luact: %s has no %s (no line editing)\n", LUACT_EDIT_SONAME, t[i].name);
      return;
    }
  }
  loaded = 1;
}

int lc_edit_dl_ready(void) {
  pthread_once(&load_once, load);
  return loaded;
}

/* Reached only after lc_edit_dl_ready() returned 1 (edit_dl.h). */
int rl_initialize(void) { return fn.rl_initialize(); }
int add_history(const char *l) { return fn.add_history(l); }
void clear_history(void) { fn.clear_history(); }
void stifle_history(int n) { fn.stifle_history(n); }
HIST_ENTRY *history_get(int i) { return fn.history_get(i); }
int read_history(const char *p) { return fn.read_history(p); }
int write_history(const char *p) { return fn.write_history(p); }
void rl_callback_read_char(void) { fn.rl_callback_read_char(); }
void rl_callback_handler_install(const char *p, rl_vcpfunc_t *f) {
  fn.rl_callback_handler_install(p, f);
}
void rl_callback_handler_remove(void) { fn.rl_callback_handler_remove(); }
