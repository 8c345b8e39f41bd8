/* apiagents.h: agents as assistants over HTTP for `luact serve`
 * (apiagents.c): /agents and LangGraph's /assistants (search, count, get,
 * schemas, graph, subgraphs, versions, create). An assistant is its
 * agent's script in AGENTS_DIR, version 1, with no configuration of its
 * own: what would change one (PATCH, DELETE, a configured create) is
 * refused. No store access: the agents are in memory. */
#ifndef LC_APIAGENTS_H
#define LC_APIAGENTS_H

#include <cjson/cJSON.h>
#include <microhttpd.h>

struct lc_serve;

/* seg are the path's parts from "agents" (or "assistants") on. */
enum MHD_Result lc_api_agent_routes(struct lc_serve *s, struct MHD_Connection *c,
                                    const char *method, char **seg, int nseg, const cJSON *body);

#endif
