/* apiagents.c: agents as assistants (apiagents.h). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "apiagents.h"
#include "apireq.h"
#include "apiview.h"
#include "serve.h"

static cJSON *agent_json(const struct lc_agent *a) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "assistant_id", a->id);
  cJSON_AddStringToObject(o, "agent_id", a->id);
  cJSON_AddStringToObject(o, "graph_id", a->id);
  cJSON_AddStringToObject(o, "name", a->id);
  if (a->description) cJSON_AddStringToObject(o, "description", a->description);
  else cJSON_AddNullToObject(o, "description");
  cJSON_AddItemToObject(o, "config", cJSON_CreateObject());
  cJSON_AddItemToObject(o, "metadata", cJSON_CreateObject());
  cJSON_AddItemToObject(o, "context", cJSON_CreateObject());
  cJSON_AddNumberToObject(o, "version", 1);
  cJSON_AddStringToObject(o, "created_at", "1970-01-01T00:00:00.000Z");
  cJSON_AddStringToObject(o, "updated_at", "1970-01-01T00:00:00.000Z");
  cJSON *caps = cJSON_AddObjectToObject(o, "capabilities");
  cJSON_AddBoolToObject(caps, "ap.io.messages", 0);
  cJSON_AddBoolToObject(caps, "ap.io.streaming", 1);
  return o;
}

static cJSON *schema_or_null(const char *t) {
  cJSON *v = t ? cJSON_Parse(t) : NULL;
  return v ? v : cJSON_CreateNull();
}

enum MHD_Result lc_api_agent_routes(struct lc_serve *s, struct MHD_Connection *c,
                                    const char *method, char **seg, int nseg, const cJSON *body) {
  if (nseg == 2 && !strcmp(seg[1], "count") && !strcmp(method, "POST")) {
    /* LangGraph's assistants.count */
    const char *gid = jstr(body, "graph_id");
    int n = 0;
    for (int i = 0; i < s->nagents; i++) n += !gid || !strcmp(s->agents[i].id, gid);
    if (cJSON_GetArraySize(cJSON_GetObjectItem(body, "metadata"))) n = 0; /* agents have none */
    return lc_api_reply_json(c, 200, cJSON_CreateNumber(n));
  }
  if (nseg == 2 && !strcmp(seg[1], "search") && !strcmp(method, "POST")) {
    struct lc_serve_page pg = {lc_api_qnum(c, body, "limit", 10), lc_api_qnum(c, body, "offset", 0), 0,
                               0};
    const char *name = jstr(body, "name");
    const char *gid = jstr(body, "graph_id");
    /* LangGraph's sort_by: by id (assistant_id, graph_id and name are the
     * agent's id; created_at, updated_at are the same for every agent:
     * the folder's order), sort_order asc or desc. */
    const char *sb = jstr(body, "sort_by"), *so = jstr(body, "sort_order");
    int by_id = sb && (!strcmp(sb, "assistant_id") || !strcmp(sb, "graph_id") ||
                       !strcmp(sb, "name"));
    if (sb && !by_id && strcmp(sb, "created_at") && strcmp(sb, "updated_at"))
      return lc_api_reply_err(s, c, 422, "sort_by is one of assistant_id, graph_id, name, created_at, "
                                  "updated_at");
    if (so && strcasecmp(so, "asc") && strcasecmp(so, "desc"))
      return lc_api_reply_err(s, c, 422, "sort_order is asc or desc");
    int desc = so && !strcasecmp(so, "desc");
    const struct lc_agent **order = malloc(sizeof *order * (size_t)(s->nagents + 1));
    if (!order) return lc_api_reply_err(s, c, 500, "out of memory");
    for (int i = 0; i < s->nagents; i++) { /* insertion sort: a folder's agents are few */
      int k = i;
      while (by_id && k > 0 && strcmp(order[k - 1]->id, s->agents[i].id) > 0) {
        order[k] = order[k - 1];
        k--;
      }
      order[k] = &s->agents[i];
    }
    cJSON *arr = cJSON_CreateArray();
    /* An agent's metadata is empty: a filter with a key matches none. */
    int none = cJSON_GetArraySize(cJSON_GetObjectItem(body, "metadata")) > 0;
    for (int n = 0; n < s->nagents && !none; n++) {
      const struct lc_agent *a = order[desc ? s->nagents - 1 - n : n];
      if (name && !strstr(a->id, name)) continue;
      if (gid && strcmp(a->id, gid)) continue;
      /* offset counts matches (it counted the folder's agents) */
      if (!lc_serve_page_take(&pg)) continue;
      cJSON_AddItemToArray(arr, agent_json(a));
    }
    free(order);
    return lc_api_reply_json(c, 200, arr);
  }
  if (nseg == 1 && !strcmp(method, "POST")) {
    /* LangGraph's assistants.create: an assistant is its agent's script,
     * so "creating" one names an agent and answers it (if_exists has
     * nothing to decide); configured variants are refused. */
    const char *gid = jstr(body, "graph_id"), *aid = jstr(body, "assistant_id");
    const struct lc_agent *a = gid ? lc_serve_agent(s, gid) : NULL;
    if (!gid) return lc_api_reply_err(s, c, 422, "graph_id (an agent) is required");
    if (!a) return lc_api_reply_err(s, c, 404, "unknown agent: agents are the scripts of AGENTS_DIR");
    if ((aid && strcmp(aid, gid)) || cJSON_GetArraySize(cJSON_GetObjectItem(body, "config")) ||
        cJSON_GetArraySize(cJSON_GetObjectItem(body, "context")) ||
        cJSON_GetArraySize(cJSON_GetObjectItem(body, "metadata")))
      return lc_api_reply_err(s, c, 422, "an agent has one assistant, itself: no id, config, context or "
                                  "metadata of its own");
    return lc_api_reply_json(c, 200, agent_json(a));
  }
  if (nseg == 2 && (!strcmp(method, "PATCH") || !strcmp(method, "DELETE")))
    return lc_api_reply_err(s, c, 405, "agents are the scripts of AGENTS_DIR: change the folder");
  if (nseg == 3 && !strcmp(method, "POST") &&
      (!strcmp(seg[2], "versions") || !strcmp(seg[2], "latest"))) {
    /* LangGraph's assistant versions: an agent is its script, version 1. */
    const struct lc_agent *a = lc_serve_agent(s, seg[1]);
    if (!a) return lc_api_reply_err(s, c, 404, "unknown agent");
    if (body && !cJSON_IsObject(body)) return lc_api_reply_err(s, c, 422, "the body must be an object");
    if (!strcmp(seg[2], "latest")) {
      const cJSON *v = cJSON_GetObjectItem(body, "version");
      if (!cJSON_IsNumber(v)) return lc_api_reply_err(s, c, 422, "version (a number) is required");
      if (v->valuedouble != 1) return lc_api_reply_err(s, c, 404, "an agent has one version: 1");
      return lc_api_reply_json(c, 200, agent_json(a));
    }
    cJSON *arr = cJSON_CreateArray();
    if (lc_api_qnum(c, body, "offset", 0) == 0 && lc_api_qnum(c, body, "limit", 10) > 0)
      cJSON_AddItemToArray(arr, agent_json(a));
    return lc_api_reply_json(c, 200, arr);
  }
  if (nseg >= 2 && !strcmp(method, "GET")) {
    const struct lc_agent *a = lc_serve_agent(s, seg[1]);
    if (!a) return lc_api_reply_err(s, c, 404, "unknown agent");
    if (nseg == 3 && !strcmp(seg[2], "graph")) {
      /* LangGraph's drawing of the graph: an agent is one step. */
      cJSON *g = cJSON_CreateObject();
      cJSON *nodes = cJSON_AddArrayToObject(g, "nodes"), *edges = cJSON_AddArrayToObject(g, "edges");
      const char *ids[] = {"__start__", "run", "__end__"};
      for (int i = 0; i < 3; i++) {
        cJSON *n = cJSON_CreateObject();
        cJSON_AddStringToObject(n, "id", ids[i]);
        cJSON_AddStringToObject(n, "type", i == 1 ? "runnable" : "schema");
        cJSON_AddStringToObject(n, "data", i == 1 ? a->id : ids[i]);
        cJSON_AddItemToArray(nodes, n);
        if (i) {
          cJSON *e = cJSON_CreateObject();
          cJSON_AddStringToObject(e, "source", ids[i - 1]);
          cJSON_AddStringToObject(e, "target", ids[i]);
          cJSON_AddItemToArray(edges, e);
        }
      }
      return lc_api_reply_json(c, 200, g);
    }
    if ((nseg == 3 || nseg == 4) && !strcmp(seg[2], "subgraphs"))
      return lc_api_reply_json(c, 200, cJSON_CreateObject()); /* none */
    if (nseg == 2) return lc_api_reply_json(c, 200, agent_json(a));
    if (nseg == 3 && !strcmp(seg[2], "schemas")) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "agent_id", a->id);
      cJSON_AddStringToObject(o, "graph_id", a->id);
      cJSON_AddItemToObject(o, "input_schema", schema_or_null(a->input_schema));
      cJSON_AddItemToObject(o, "output_schema", schema_or_null(a->output_schema));
      cJSON_AddItemToObject(o, "state_schema", schema_or_null(a->output_schema));
      cJSON_AddNullToObject(o, "config_schema");
      return lc_api_reply_json(c, 200, o);
    }
  }
  return lc_api_reply_err(s, c, 404, "no such route");
}
