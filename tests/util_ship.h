/* util_ship.h: the ShopBot example's shipping service (shopbot-shipping,
 * built beside luact) as a child process, for the suites that run the
 * example (tests/examples/check_shopbot.c, tests/cli/check_durable.c). */
#ifndef LC_TEST_UTIL_SHIP_H
#define LC_TEST_UTIL_SHIP_H

#include <stddef.h>
#include <sys/types.h>

/* Starts it on a free loopback port with its database at db, and reads
 * the port from its "listening on 127.0.0.1:PORT" line (poll, no sleep):
 * its pid, and "http://127.0.0.1:PORT" in url. Fails the test when no
 * port comes. */
pid_t lc_test_ship_start(const char *db, char *url, size_t n);

#endif
