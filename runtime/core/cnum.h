/* cnum.h: number text for JSON and the wire, independent of the locale.
 *
 * printf's %g and strtod follow LC_NUMERIC: under de_DE, 0.7 prints as
 * "0,7" and strtod("0.7") stops at the '.'. Anything that writes or reads
 * numbers in JSON, HTTP headers or messages meant to be parsed goes through
 * these, which switch the calling thread to the "C" locale (uselocale) for
 * the one call and back, so neither another thread's setlocale nor the
 * process's own locale can change the bytes.
 *
 * Thread-safe; the "C" locale object is made once per process. */
#ifndef LC_CNUM_H
#define LC_CNUM_H

#include <stddef.h>

/* snprintf in the "C" locale: same return value and truncation. */
int lc_cnum_fmt(char *out, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* strtod in the "C" locale: '.' is the decimal point, always. */
double lc_cnum_strtod(const char *s, char **end);

#endif
