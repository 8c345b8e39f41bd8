/* chunk.c: the recursive character splitter and Markdown sections
 * (chunk.h). Everything works on byte spans of the document, so chunks
 * are exact substrings and keep their offsets. */
#include "chunk.h"

#include <stdio.h>
#include <string.h>

#include "lc.h"
#include "utf8.h"

static const char *const SEPS[] = {"\n\n", "\n", " ", ""};
#define N_SEPS 4

struct span {
  size_t a, b;
  size_t cp;   /* code points in [a, b) */
  size_t lead; /* leading white space (ASCII): trimmed when it starts a chunk */
};

struct ctx {
  const char *d;
  size_t size, overlap;
  struct lc_chunks *out;
  const char *heading;
  size_t base_byte, base_cp; /* a known (byte, code point) pair before the next start */
  int rc;
};

static size_t count_cp(const char *d, size_t a, size_t b) {
  size_t n = 0;
  for (size_t i = a; i < b; i++) n += ((unsigned char)d[i] & 0xC0) != 0x80;
  return n;
}

static int is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

static void emit(struct ctx *c, size_t a, size_t b) {
  if (c->rc) return;
  while (a < b && is_space(c->d[a])) a++;
  while (b > a && is_space(c->d[b - 1])) b--;
  if (a == b) return;
  struct lc_chunks *o = c->out;
  /* Runs of white space make windows that trim to where the last chunk
   * began: keep the longer of the two, never two chunks at one start. */
  if (o->n && a <= o->v[o->n - 1].start) {
    struct lc_chunk *last = &o->v[o->n - 1];
    if (a < last->start || b <= last->start + last->len) return;
    last->len = b - a;
    last->len_cp = count_cp(c->d, a, b);
    return;
  }
  if (o->n == o->cap) {
    size_t cap = o->cap ? o->cap * 2 : 16;
    struct lc_chunk *v = lc_realloc(o->v, cap * sizeof *v);
    if (!v) {
      c->rc = LC_ENOMEM;
      return;
    }
    o->v = v;
    o->cap = cap;
  }
  /* Starts only grow, so counting from the last start is linear overall. */
  if (a < c->base_byte) c->base_byte = c->base_cp = 0;
  size_t start_cp = c->base_cp + count_cp(c->d, c->base_byte, a);
  c->base_byte = a;
  c->base_cp = start_cp;
  struct lc_chunk *k = &o->v[o->n];
  k->start = a;
  k->len = b - a;
  k->start_cp = start_cp;
  k->len_cp = count_cp(c->d, a, b);
  k->heading = NULL;
  if (c->heading && !(k->heading = lc_strdup(c->heading))) {
    c->rc = LC_ENOMEM;
    return;
  }
  o->n++;
}

/* Merges pieces (contiguous spans, each at most size) into chunks of at
 * most size code points, neighbours sharing at most overlap. */
static void merge(struct ctx *c, const struct span *p, size_t n) {
  /* A window's size leaves out its first piece's leading white space:
   * the chunk is trimmed of it, so "a b" fits size 1 + ... as "b". */
  size_t lo = 0, total = 0;
  for (size_t i = 0; i < n; i++) {
    if (i > lo && total + p[i].cp - p[lo].lead > c->size) {
      emit(c, p[lo].a, p[i - 1].b);
      while (lo < i && (total - p[lo].lead > c->overlap || total + p[i].cp - p[lo].lead > c->size))
        total -= p[lo++].cp;
    }
    total += p[i].cp;
  }
  if (lo < n) emit(c, p[lo].a, p[n - 1].b);
}

static const char *find(const char *h, size_t hn, const char *needle, size_t nn) {
  if (nn > hn) return NULL;
  for (size_t i = 0; i + nn <= hn; i++)
    if (h[i] == needle[0] && memcmp(h + i, needle, nn) == 0) return h + i;
  return NULL;
}

static void split(struct ctx *c, size_t a, size_t b, int si) {
  const char *d = c->d;
  int s = si;
  while (SEPS[s][0] && !find(d + a, b - a, SEPS[s], strlen(SEPS[s]))) s++;
  size_t sl = strlen(SEPS[s]);
  /* Pieces: cut before each separator, so it stays with what follows. */
  size_t cap = 16, n = 0;
  struct span *p = lc_malloc(cap * sizeof *p);
  if (!p) {
    c->rc = LC_ENOMEM;
    return;
  }
  size_t from = a;
  for (size_t i = a + 1; i <= b; i++) {
    int cut;
    if (i == b) cut = 1;
    else if (sl) cut = i + sl <= b && memcmp(d + i, SEPS[s], sl) == 0;
    else cut = ((unsigned char)d[i] & 0xC0) != 0x80; /* a code point starts */
    if (!cut) continue;
    if (n == cap) {
      struct span *q = lc_realloc(p, (cap *= 2) * sizeof *p);
      if (!q) {
        lc_free(p);
        c->rc = LC_ENOMEM;
        return;
      }
      p = q;
    }
    p[n].a = from;
    p[n].b = i;
    p[n].cp = count_cp(d, from, i);
    p[n].lead = 0;
    while (from + p[n].lead < i && is_space(d[from + p[n].lead])) p[n].lead++;
    n++;
    from = i;
    if (sl && i < b) i += sl - 1; /* a separator never cuts itself */
  }
  size_t good = 0; /* pieces [good_from, i) fit and wait for merging */
  size_t good_from = 0;
  for (size_t i = 0; i < n && !c->rc; i++) {
    if (p[i].cp - p[i].lead <= c->size) {
      if (!good) good_from = i;
      good++;
      continue;
    }
    if (good) merge(c, p + good_from, good);
    good = 0;
    split(c, p[i].a, p[i].b, s + 1 < N_SEPS ? s + 1 : s);
  }
  if (good && !c->rc) merge(c, p + good_from, good);
  lc_free(p);
}

int lc_chunk_check_doc(const char *doc, size_t len, char *err, size_t errlen) {
  size_t bad;
  if (len > LC_CHUNK_MAX_DOC) {
    snprintf(err, errlen, "document is %zu bytes, over the %u byte limit", len, LC_CHUNK_MAX_DOC);
    return LC_ETOOBIG;
  }
  if (memchr(doc, 0, len)) {
    snprintf(err, errlen, "document holds NUL bytes: binary, not text");
    return LC_EINVAL;
  }
  if (!lc_utf8_valid(doc, len, &bad)) {
    snprintf(err, errlen, "document is not UTF-8 (bad byte at offset %zu)", bad);
    return LC_EINVAL;
  }
  size_t i = 0;
  while (i < len && is_space(doc[i])) i++;
  if (i == len) {
    snprintf(err, errlen, "document is empty");
    return LC_EINVAL;
  }
  return 0;
}

/* ---- Markdown ---- */

/* Level of an ATX heading line at p (1..6), else 0. */
static int heading_level(const char *p, size_t n) {
  int l = 0;
  while ((size_t)l < n && p[l] == '#') l++;
  if (l < 1 || l > 6) return 0;
  return (size_t)l == n || p[l] == ' ' || p[l] == '\t' ? l : 0;
}

static int fence_line(const char *p, size_t n) {
  size_t i = 0;
  while (i < n && i < 3 && p[i] == ' ') i++;
  return n - i >= 3 && (memcmp(p + i, "```", 3) == 0 || memcmp(p + i, "~~~", 3) == 0);
}

#define MAX_HEAD 6
#define HEAD_TEXT 200

static int split_markdown(struct ctx *c, size_t len) {
  const char *d = c->d;
  char titles[MAX_HEAD + 1][HEAD_TEXT];
  int have[MAX_HEAD + 1] = {0};
  char path[(MAX_HEAD + 1) * (HEAD_TEXT + 3)];
  size_t sec = 0;
  int in_fence = 0;
  for (size_t ln = 0; ln <= len && !c->rc;) {
    size_t eol = ln;
    while (eol < len && d[eol] != '\n') eol++;
    int lvl = 0;
    if (ln < len) {
      if (fence_line(d + ln, eol - ln)) in_fence = !in_fence;
      else if (!in_fence) lvl = heading_level(d + ln, eol - ln);
    }
    if (lvl || ln >= len) {
      if (ln > sec) split(c, sec, ln, 0); /* the section above this heading */
      if (ln >= len) break;
      /* The new heading path: this title at its level, deeper ones gone. */
      size_t t = ln + (size_t)lvl;
      while (t < eol && (d[t] == ' ' || d[t] == '\t')) t++;
      size_t te = eol;
      while (te > t && (d[te - 1] == ' ' || d[te - 1] == '#' || d[te - 1] == '\r')) te--;
      size_t tl = te - t < HEAD_TEXT - 1 ? te - t : HEAD_TEXT - 1;
      /* Cut titles end on a whole code point (a whole one is not cut). */
      while (tl && tl < te - t && ((unsigned char)d[t + tl] & 0xC0) == 0x80) tl--;
      memcpy(titles[lvl], d + t, tl);
      titles[lvl][tl] = 0;
      have[lvl] = 1;
      for (int k = lvl + 1; k <= MAX_HEAD; k++) have[k] = 0;
      path[0] = 0;
      for (int k = 1; k <= MAX_HEAD; k++)
        if (have[k]) {
          if (path[0]) strcat(path, " > ");
          strcat(path, titles[k]);
        }
      c->heading = path;
      sec = ln;
    }
    /* A last line without its newline still ends at len, never past it:
     * the next pass flushes the last section. */
    ln = eol < len ? eol + 1 : len + (ln >= len);
  }
  return c->rc;
}

void (*lc_chunk_hold)(const char *point);

int lc_chunk_split(const char *doc, size_t len, const struct lc_chunk_opts *o,
                   struct lc_chunks *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (lc_chunk_hold) lc_chunk_hold("split");
  if (o->size < 1) {
    snprintf(err, errlen, "chunk size must be at least 1 code point");
    return LC_EINVAL;
  }
  if (o->overlap >= o->size) {
    snprintf(err, errlen, "overlap (%zu) must be smaller than size (%zu)", o->overlap, o->size);
    return LC_EINVAL;
  }
  int rc = lc_chunk_check_doc(doc, len, err, errlen);
  if (rc) return rc;
  struct ctx c = {.d = doc, .size = o->size, .overlap = o->overlap, .out = out};
  if (o->markdown) split_markdown(&c, len);
  else split(&c, 0, len, 0);
  if (c.rc) {
    lc_chunks_free(out);
    snprintf(err, errlen, "out of memory");
  }
  return c.rc;
}

void lc_chunks_free(struct lc_chunks *c) {
  for (size_t i = 0; i < c->n; i++) lc_free(c->v[i].heading);
  lc_free(c->v);
  memset(c, 0, sizeof *c);
}
