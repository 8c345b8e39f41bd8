/* apistore.h: LangGraph's store over HTTP for `luact serve` (apistore.c):
 * PUT, GET and DELETE /store/items, POST /store/items/search (by
 * namespace prefix and value filter, paged) and /store/namespaces (prefix,
 * suffix with "*", max_depth, paged), each tenant's own (d_items). A
 * namespace is stored as its labels each ended by \x1f, so a label may not
 * hold that byte. Runs on apiwork.c's workers (the store). */
#ifndef LC_APISTORE_H
#define LC_APISTORE_H

#include <cjson/cJSON.h>
#include <microhttpd.h>

struct lc_serve;

/* seg are the path's parts from "store" on. */
enum MHD_Result lc_api_store_routes(struct lc_serve *s, struct MHD_Connection *c,
                                    const char *method, char **seg, int nseg, const char *tenant,
                                    const cJSON *body);

#endif
