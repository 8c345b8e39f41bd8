/* l_batch.h: what luact.llm.embed (l_embed.c) and luact.llm.rerank
 * (l_rerank.c) check and push alike: a text to send, a whole-number
 * option within bounds, and the nil, message, code, details of a failed
 * call. */
#ifndef LC_L_BATCH_H
#define LC_L_BATCH_H

#include <lua.h>
#include <stddef.h>

#include "llm.h"

/* [-0, +0, e] The string at idx as a copy (lc_malloc'd; its length in
 * *len): a non-empty UTF-8 string without NUL of at most max bytes. The
 * script chose the text, so misuse raises "WHO: WHAT must be a string"
 * (is empty, is N bytes over max_input_bytes (M)HINT, is not UTF-8 text). */
char *lc_l_batch_text(lua_State *L, int idx, const char *who, const char *what, size_t max,
                      const char *hint, size_t *len);

/* [-0, +0, e] Option field of the table at idx: dflt when absent, else an
 * integer from lo to hi (hi 0: no upper bound); raises "WHO: 'FIELD' must
 * be >= LO" (or "be LO..HI") outside them. */
lua_Integer lc_l_batch_int(lua_State *L, int idx, const char *who, const char *field,
                           lua_Integer lo, lua_Integer hi, lua_Integer dflt);

/* [-0, +4, m] nil, message (the error's name when none), its name, and
 * {http_status, attempts, type}. Returns 4. */
int lc_l_batch_error(lua_State *L, enum lc_llm_err err, const char *message, const char *type,
                     int http_status, int attempts);

#endif
