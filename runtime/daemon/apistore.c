/* apistore.c: LangGraph's store items (apistore.h). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "apireq.h"
#include "apistore.h"
#include "apiview.h"
#include "serve.h"

/* Namespace (array of strings) as stored: labels each ended by \x1f. */
static char *ns_key(const cJSON *ns, int allow_empty) {
  if (!cJSON_IsArray(ns) || (!allow_empty && !cJSON_GetArraySize(ns))) return NULL;
  size_t n = 1;
  const cJSON *x;
  cJSON_ArrayForEach(x, ns) {
    if (!cJSON_IsString(x) || !x->valuestring[0] || strchr(x->valuestring, '\x1f')) return NULL;
    n += strlen(x->valuestring) + 1;
  }
  char *k = calloc(1, n);
  if (!k) return NULL;
  cJSON_ArrayForEach(x, ns) {
    strcat(k, x->valuestring);
    strcat(k, "\x1f");
  }
  return k;
}

/* A namespace listed by the namespaces route: its labels, their JSON (to
 * sort and compare), its place in the listing, and whether an earlier one
 * is the same. */
struct nsm {
  cJSON *a;
  char *k;
  int i, dup;
};

static int nsm_by_key(const void *x, const void *y) {
  const struct nsm *a = x, *b = y;
  int c = strcmp(a->k ? a->k : "", b->k ? b->k : "");
  return c ? c : (a->i > b->i) - (a->i < b->i); /* the first one first */
}

static int nsm_by_index(const void *x, const void *y) {
  const struct nsm *a = x, *b = y;
  return (a->i > b->i) - (a->i < b->i);
}

static cJSON *ns_array(const char *k) {
  cJSON *a = cJSON_CreateArray();
  while (k && *k) {
    const char *e = strchr(k, '\x1f');
    if (!e) break;
    char *lab = strndup(k, (size_t)(e - k));
    cJSON_AddItemToArray(a, cJSON_CreateString(lab ? lab : ""));
    free(lab);
    k = e + 1;
  }
  return a;
}

static cJSON *item_json(const cJSON *row) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddItemToObject(o, "namespace", ns_array(jstr(row, "ns")));
  cJSON_AddStringToObject(o, "key", jstr(row, "key"));
  cJSON_AddItemToObject(o, "value", lc_api_jcol(row, "value"));
  lc_api_add_time(o, "created_at", row, "created");
  lc_api_add_time(o, "updated_at", row, "updated");
  return o;
}

enum MHD_Result lc_api_store_routes(struct lc_serve *s, struct MHD_Connection *c,
                                    const char *method, char **seg, int nseg, const char *tenant,
                                    const cJSON *body) {
  char err[256];
  if (nseg == 2 && !strcmp(seg[1], "items")) {
    if (!strcmp(method, "PUT")) {
      char *k = ns_key(cJSON_GetObjectItem(body, "namespace"), 0);
      const char *key = jstr(body, "key");
      const cJSON *v = cJSON_GetObjectItem(body, "value");
      if (!k || !key || !cJSON_IsObject(v)) {
        free(k);
        return lc_api_reply_err(s, c, 422, "namespace (non-empty list of labels), key and value "
                                    "(an object) are required");
      }
      char *vt = cJSON_PrintUnformatted(v);
      double now = lc_serve_now();
      int rc = lc_dstore_exec(s->ds, NULL, err, sizeof err,
                              "INSERT INTO d_items(tenant, ns, key, value, created, updated) "
                              "VALUES(?,?,?,?,?,?) ON CONFLICT(tenant, ns, key) DO UPDATE SET "
                              "value=excluded.value, updated=excluded.updated",
                              "ssssdd", tenant, k, key, vt, now, now);
      cJSON_free(vt);
      free(k);
      return rc ? lc_api_reply_err(s, c, 500, err) : lc_api_reply_json(c, 204, NULL);
    }
    if (!strcmp(method, "GET") || !strcmp(method, "DELETE")) {
      const char *key = jstr(body, "key");
      char *k = ns_key(cJSON_GetObjectItem(body, "namespace"), 0);
      if (!key) key = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "key");
      if (!k) {
        /* LangGraph's client: ?namespace=a.b */
        const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "namespace");
        if (q && *q) {
          k = malloc(strlen(q) + 2);
          if (k) {
            size_t j = 0;
            for (const char *p = q; *p; p++) k[j++] = *p == '.' ? '\x1f' : *p;
            k[j++] = '\x1f';
            k[j] = 0;
          }
        }
      }
      if (!k || !key) {
        free(k);
        return lc_api_reply_err(s, c, 422, "namespace and key are required");
      }
      cJSON *rows = NULL;
      int rc;
      if (!strcmp(method, "GET"))
        rc = lc_dstore_exec(s->ds, &rows, err, sizeof err,
                            "SELECT * FROM d_items WHERE tenant=? AND ns=? AND key=?", "sss",
                            tenant, k, key);
      else
        rc = lc_dstore_exec(s->ds, NULL, err, sizeof err,
                            "DELETE FROM d_items WHERE tenant=? AND ns=? AND key=?", "sss", tenant,
                            k, key);
      free(k);
      if (rc) return lc_api_reply_err(s, c, 500, err);
      if (!strcmp(method, "DELETE")) return lc_api_reply_json(c, 204, NULL);
      const cJSON *r = cJSON_GetArrayItem(rows, 0);
      enum MHD_Result res = r ? lc_api_reply_json(c, 200, item_json(r)) : lc_api_reply_err(s, c, 404, "no such item");
      cJSON_Delete(rows);
      return res;
    }
  }
  if (nseg == 3 && !strcmp(seg[1], "items") && !strcmp(seg[2], "search") && !strcmp(method, "POST")) {
    const cJSON *qy = cJSON_GetObjectItem(body, "query");
    if (qy && !cJSON_IsNull(qy) && !(cJSON_IsString(qy) && !*qy->valuestring))
      return lc_api_reply_err(s, c, 422, "query (semantic search) is not supported: use filter");
    const cJSON *p = cJSON_GetObjectItem(body, "namespace_prefix");
    char *k = p ? ns_key(p, 1) : strdup("");
    if (!k) return lc_api_reply_err(s, c, 422, "namespace_prefix must be a list of labels");
    struct lc_serve_page pg = {lc_api_qnum(c, body, "limit", 10), lc_api_qnum(c, body, "offset", 0), 0,
                               0};
    cJSON *rows = NULL;
    const cJSON *filter = cJSON_GetObjectItem(body, "filter");
    if (!filter) {
      /* Unfiltered, the page is the database's to cut: only its rows are
       * read (a negative limit lists none, a negative offset skips none). */
      long lim = pg.limit < 0 ? 0 : pg.limit, off = pg.offset < 0 ? 0 : pg.offset;
      lc_dstore_exec(s->ds, &rows, err, sizeof err,
                     "SELECT * FROM d_items WHERE tenant=? AND substr(ns, 1, length(?))=? ORDER BY "
                     "updated DESC LIMIT ? OFFSET ?",
                     "sssii", tenant, k, k, lim, off);
      pg.limit = LONG_MAX;
      pg.offset = 0;
    } else {
      lc_dstore_exec(s->ds, &rows, err, sizeof err,
                     "SELECT * FROM d_items WHERE tenant=? AND substr(ns, 1, length(?))=? ORDER BY "
                     "updated DESC",
                     "sss", tenant, k, k);
    }
    free(k);
    cJSON *items = cJSON_CreateArray();
    const cJSON *r;
    cJSON_ArrayForEach(r, rows) {
      cJSON *it = item_json(r);
      if (filter && !lc_api_md_match(cJSON_GetObjectItem(it, "value"), filter)) {
        cJSON_Delete(it);
        continue;
      }
      if (!lc_serve_page_take(&pg)) {
        cJSON_Delete(it);
        continue;
      }
      cJSON_AddItemToArray(items, it);
    }
    cJSON_Delete(rows);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "items", items);
    return lc_api_reply_json(c, 200, o);
  }
  if (nseg == 2 && !strcmp(seg[1], "namespaces") && !strcmp(method, "POST")) {
    const cJSON *suf = cJSON_GetObjectItem(body, "suffix"); /* LangGraph's */
    if (suf && !cJSON_IsNull(suf) && !cJSON_IsArray(suf))
      return lc_api_reply_err(s, c, 422, "suffix must be a list of labels");
    const cJSON *p = cJSON_GetObjectItem(body, "prefix");
    char *k = p ? ns_key(p, 1) : strdup("");
    if (!k) return lc_api_reply_err(s, c, 422, "prefix must be a list of labels");
    long maxd = lc_api_qnum(c, body, "max_depth", 0), limit = lc_api_qnum(c, body, "limit", 100),
         offset = lc_api_qnum(c, body, "offset", 0);
    cJSON *rows = NULL;
    lc_dstore_exec(s->ds, &rows, err, sizeof err,
                   "SELECT DISTINCT ns FROM d_items WHERE tenant=? AND substr(ns, 1, length(?))=? "
                   "ORDER BY ns",
                   "sss", tenant, k, k);
    free(k);
    /* The matches (cut to max_depth) in order, then each one's first
     * occurrence found by sorting: comparing each with the page (as
     * before) was quadratic in the namespaces, and missed the duplicates
     * of those the offset skipped. */
    int nrows = cJSON_GetArraySize(rows), nm = 0;
    struct nsm *m = calloc((size_t)nrows + 1, sizeof *m);
    if (!m) {
      cJSON_Delete(rows);
      return lc_api_reply_err(s, c, 500, "out of memory");
    }
    const cJSON *r;
    cJSON_ArrayForEach(r, rows) {
      cJSON *a = ns_array(jstr(r, "ns"));
      int na = cJSON_GetArraySize(a), ns_ = cJSON_GetArraySize(suf), sok = ns_ <= na;
      const cJSON *sq = suf ? suf->child : NULL, *aq = cJSON_GetArrayItem(a, na - ns_);
      for (; sok && sq && aq; sq = sq->next, aq = aq->next) /* "*" matches any label, as in LangGraph */
        sok = cJSON_IsString(sq) && (!strcmp(sq->valuestring, "*") || cJSON_Compare(sq, aq, 1));
      if (!sok) {
        cJSON_Delete(a);
        continue;
      }
      while (maxd > 0 && na > maxd) cJSON_DeleteItemFromArray(a, --na);
      m[nm].a = a;
      m[nm].k = cJSON_PrintUnformatted(a);
      m[nm].i = nm;
      nm++;
    }
    qsort(m, (size_t)nm, sizeof *m, nsm_by_key);
    for (int i = 1; i < nm; i++) m[i].dup = m[i].k && m[i - 1].k && !strcmp(m[i].k, m[i - 1].k);
    qsort(m, (size_t)nm, sizeof *m, nsm_by_index);
    struct lc_serve_page pg = {limit, offset, 0, 0};
    cJSON *out = cJSON_CreateArray();
    for (int i = 0; i < nm; i++) {
      if (!m[i].dup && lc_serve_page_take(&pg)) cJSON_AddItemToArray(out, m[i].a);
      else cJSON_Delete(m[i].a);
      cJSON_free(m[i].k);
    }
    free(m);
    cJSON_Delete(rows);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "namespaces", out);
    return lc_api_reply_json(c, 200, o);
  }
  return lc_api_reply_err(s, c, 404, "no such route");
}
