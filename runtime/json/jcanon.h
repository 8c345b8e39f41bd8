/* jcanon.h: canonical JSON: object keys in byte order, so that the same
 * value always prints (and hashes) the same, whatever order a Lua table
 * iterated in; and the first difference between two values, as a path.
 *
 * Ownership: sort works in place; print returns a cJSON_malloc'd string
 * (cJSON_free it); diff writes into the caller's buffer. */
#ifndef LC_JCANON_H
#define LC_JCANON_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* Sorts the members of every object in j by key (recursively when deep).
 * Stable; never allocates. */
void lc_jcanon_sort(cJSON *j, int deep);
/* Compact text of j with every object's keys sorted; j is not changed.
 * NULL on allocation failure. */
char *lc_jcanon_print(const cJSON *j);
/* SHA-256 hex of the canonical text of j (NULL j hashes "null"). Returns
 * 0 or LC_ENOMEM. */
int lc_jcanon_hash(const cJSON *j, char out[65]);
/* Compares a (recorded) with b (now). Returns 0 when equal; 1 when they
 * differ, with the first difference in out as
 * "<prefix>.key[2].x: recorded <json> / now <json>" (values cut at ~160
 * bytes; an absent member prints as (absent)). */
int lc_jcanon_diff(const cJSON *a, const cJSON *b, const char *prefix, char *out,
                   size_t outlen);

#endif
