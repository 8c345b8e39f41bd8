/* cnum.c: locale-independent number formatting and parsing (cnum.h). */
#include "cnum.h"

#include <locale.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static locale_t c_loc;
static pthread_once_t c_once = PTHREAD_ONCE_INIT;

/* glibc hands back its static "C" object here without allocating; kept
 * for the life of the process (nothing to free at exit). */
static void make_c(void) { c_loc = newlocale(LC_ALL_MASK, "C", (locale_t)0); }

/* The calling thread's locale before the switch, or 0 when no "C" object
 * could be made (then the call runs in whatever locale is current). */
static locale_t enter(void) {
  pthread_once(&c_once, make_c);
  return c_loc ? uselocale(c_loc) : (locale_t)0;
}

static void leave(locale_t old) {
  if (old) uselocale(old);
}

int lc_cnum_fmt(char *out, size_t n, const char *fmt, ...) {
  locale_t old = enter();
  va_list ap;
  va_start(ap, fmt);
  int r = vsnprintf(out, n, fmt, ap);
  va_end(ap);
  leave(old);
  return r;
}

double lc_cnum_strtod(const char *s, char **end) {
  locale_t old = enter();
  double d = strtod(s, end);
  leave(old);
  return d;
}
