/* util_mcp.h: the servers the MCP suites start (tests/mcp/): a node
 * script that prints "listening PORT", and `luact mcp serve --http`. */
#ifndef LC_TEST_UTIL_MCP_H
#define LC_TEST_UTIL_MCP_H

#include <stdio.h>
#include <sys/types.h>

/* The Lua check(c, ...) of the MCP suites' scripts: raises the rest of its
 * arguments, joined, when c is falsy; else returns c. */
#define LC_TEST_LUA_CHECK \
  "function check(c, ...) if not c then error(table.concat({...}, ' '), 2) end return c end\n"

/* Starts `node tests/mcp/SCRIPT ARG...` (the arguments end with NULL) and
 * reads its stdout up to the "listening PORT" line; its pid in *pid. The
 * port; fails the test when none comes. */
int lc_test_node_server_start(pid_t *pid, const char *script, ...);
/* Kills and reaps a server of lc_test_node_server_start. */
void lc_test_node_server_stop(pid_t pid);

/* Starts `luact mcp serve --http 0 tests/mcp/DIR` with LUACT_MCP_TOKEN
 * set to token, and reads its stderr (kept open in *err, the caller's to
 * fclose) up to the listening line; its port in *port. The pid; fails the
 * test when no port comes. The server ends with the test process. */
pid_t lc_test_mcp_serve_http(const char *dir, const char *token, int *port, FILE **err);

#endif
