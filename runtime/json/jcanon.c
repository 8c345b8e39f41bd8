/* jcanon.c: canonical JSON ordering, printing, hashing and diffs. */
#include "jcanon.h"

#include <stdio.h>
#include <string.h>

#include "lc.h"
#include "sha256.h"

/* Merge sort of a singly linked run of n members (by ->next). */
static cJSON *merge_sort(cJSON *head, size_t n) {
  if (n < 2) {
    if (head) head->next = NULL;
    return head;
  }
  size_t half = n / 2;
  cJSON *mid = head;
  for (size_t i = 0; i < half; i++) mid = mid->next;
  cJSON *a = merge_sort(head, half); /* every member ends unlinked first */
  cJSON *b = merge_sort(mid, n - half);
  cJSON dummy, *t = &dummy;
  while (a && b) {
    /* <= keeps equal keys (duplicates) in their original order. */
    if (strcmp(a->string ? a->string : "", b->string ? b->string : "") <= 0) {
      t->next = a;
      a = a->next;
    } else {
      t->next = b;
      b = b->next;
    }
    t = t->next;
  }
  t->next = a ? a : b;
  return dummy.next;
}

void lc_jcanon_sort(cJSON *j, int deep) {
  if (!j) return;
  if (deep)
    for (cJSON *c = j->child; c; c = c->next) lc_jcanon_sort(c, 1);
  if (!cJSON_IsObject(j) || !j->child) return;
  size_t n = 0;
  for (cJSON *c = j->child; c; c = c->next) n++;
  /* Count first: merge_sort unlinks the members as it goes. */
  cJSON *head = merge_sort(j->child, n);
  /* cJSON keeps child->prev pointing at the tail for fast appends. */
  cJSON *prev = NULL, *c = head;
  for (; c; prev = c, c = c->next) c->prev = prev;
  head->prev = prev;
  j->child = head;
}

char *lc_jcanon_print(const cJSON *j) {
  if (!j) {
    char *s = cJSON_malloc(5);
    if (s) memcpy(s, "null", 5);
    return s;
  }
  cJSON *d = cJSON_Duplicate(j, 1);
  if (!d) return NULL;
  lc_jcanon_sort(d, 1);
  char *s = cJSON_PrintUnformatted(d);
  cJSON_Delete(d);
  return s;
}

int lc_jcanon_hash(const cJSON *j, char out[65]) {
  char *s = lc_jcanon_print(j);
  if (!s) return LC_ENOMEM;
  lc_sha256_hex(s, strlen(s), out);
  cJSON_free(s);
  return 0;
}

static void show(const cJSON *v, char *out, size_t n) {
  if (!v) {
    snprintf(out, n, "(absent)");
    return;
  }
  char *s = cJSON_IsString(v) ? NULL : lc_jcanon_print(v);
  if (cJSON_IsString(v)) s = cJSON_PrintUnformatted(v);
  if (!s) {
    snprintf(out, n, "(?)");
    return;
  }
  if (strlen(s) > 160) snprintf(out, n, "%.150s...", s);
  else snprintf(out, n, "%s", s);
  cJSON_free(s);
}

static int same_type(const cJSON *a, const cJSON *b) {
  if (cJSON_IsBool(a) && cJSON_IsBool(b)) return 1;
  return (a->type & 0xff) == (b->type & 0xff);
}

/* Depth-first; path is the running prefix (truncated if very deep). */
static int diff(const cJSON *a, const cJSON *b, char *path, size_t plen, size_t cap, char *out,
                size_t outlen) {
  if (!a && !b) return 0;
  if (!a || !b || !same_type(a, b)) goto differ;
  if (cJSON_IsArray(a)) {
    int i = 0;
    const cJSON *x = a->child, *y = b->child;
    for (; x || y; i++, x = x ? x->next : NULL, y = y ? y->next : NULL) {
      int n = snprintf(path + plen, cap - plen, "[%d]", i);
      size_t np = plen + (size_t)n < cap ? plen + (size_t)n : cap - 1;
      if (diff(x, y, path, np, cap, out, outlen)) return 1;
      path[plen] = '\0';
    }
    return 0;
  }
  if (cJSON_IsObject(a)) {
    /* Keys in sorted order over the union, so "first" is well defined. */
    const char *last = NULL;
    for (;;) {
      const char *next = NULL;
      for (int side = 0; side < 2; side++)
        for (const cJSON *c = (side ? b : a)->child; c; c = c->next) {
          const char *k = c->string ? c->string : "";
          if ((!last || strcmp(k, last) > 0) && (!next || strcmp(k, next) < 0)) next = k;
        }
      if (!next) return 0;
      int n = snprintf(path + plen, cap - plen, ".%s", next);
      size_t np = plen + (size_t)n < cap ? plen + (size_t)n : cap - 1;
      if (diff(cJSON_GetObjectItemCaseSensitive(a, next), cJSON_GetObjectItemCaseSensitive(b, next),
               path, np, cap, out, outlen))
        return 1;
      path[plen] = '\0';
      last = next;
    }
  }
  if (cJSON_IsString(a) && strcmp(a->valuestring, b->valuestring) == 0) return 0;
  if (cJSON_IsNumber(a) && a->valuedouble == b->valuedouble) return 0;
  if (cJSON_IsBool(a) && cJSON_IsTrue(a) == cJSON_IsTrue(b)) return 0;
  if (cJSON_IsNull(a)) return 0;
  if (cJSON_IsRaw(a) && strcmp(a->valuestring, b->valuestring) == 0) return 0;
differ : {
  if (cJSON_IsString(a) && cJSON_IsString(b)) {
    /* Long prompts share long prefixes: show where they part. */
    const char *x = a->valuestring, *y = b->valuestring;
    size_t k = 0;
    while (x[k] && x[k] == y[k]) k++;
    size_t from = k > 40 ? k - 40 : 0;
    snprintf(out, outlen, "%s: differs at character %zu: recorded \"%s%.100s\" / now \"%s%.100s\"",
             path, k, from ? "..." : "", x + from, from ? "..." : "", y + from);
    return 1;
  }
  char va[192], vb[192];
  show(a, va, sizeof va);
  show(b, vb, sizeof vb);
  snprintf(out, outlen, "%s: recorded %s / now %s", path, va, vb);
  return 1;
}
}

int lc_jcanon_diff(const cJSON *a, const cJSON *b, const char *prefix, char *out,
                   size_t outlen) {
  char path[512];
  snprintf(path, sizeof path, "%s", prefix ? prefix : "$");
  if (outlen) out[0] = '\0';
  return diff(a, b, path, strlen(path), sizeof path, out, outlen);
}
