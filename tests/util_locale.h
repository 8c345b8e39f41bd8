/* util_locale.h: a real decimal-comma locale for tests that prove output
 * does not depend on LC_NUMERIC. */
#ifndef LC_TEST_UTIL_LOCALE_H
#define LC_TEST_UTIL_LOCALE_H

/* Switches the process (setlocale LC_ALL) to a locale whose decimal point
 * is ',' and returns its name: de_DE.UTF-8 when installed, else de_DE
 * compiled now with localedef from Debian's locales package into a
 * temporary LOCPATH (offline). Never skips: without one the test fails
 * with a message saying what to install. Call lc_test_locale_done at the
 * end (back to "C", the temporary files removed). */
const char *lc_test_comma_locale(void);
void lc_test_locale_done(void);

#endif
