/* store_rows.c: rows, checksums and integrity checks shared by the SQLite
 * and PostgreSQL run stores (store_rows.h). */
#include "store_rows.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lc.h"

/* ---- CRC-32 ---- */

/* Slicing-by-8 (eight bytes per step from eight tables): every line is
 * checksummed on the writer thread at every commit, and lines run to
 * kilobytes (an LLM call's intent holds its whole request); a byte at a
 * time was a tenth of the writer's instructions. */
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    crc_table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++)
    for (int t = 1; t < 8; t++)
      crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

/* Carry-less multiplication (PCLMULQDQ) folds 64 bytes a step into the
 * same CRC (the method of Intel's "Fast CRC Computation for Generic
 * Polynomials Using PCLMULQDQ", with zlib's polynomial, reflected): the
 * writer checksums every journal line, about 7% of its CPU with the
 * tables. Chosen at run time (cpuid); lc_store_crc32_set_hw lets the
 * tests check both against each other. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_CLMUL 1

/* c: the running CRC as the table loop keeps it (inverted); len >= 64
 * and a multiple of 16. Returns it, likewise. */
__attribute__((target("pclmul,sse4.1"))) static uint32_t crc_fold(const unsigned char *buf,
                                                                   size_t len, uint32_t c) {
  const __m128i k1k2 = _mm_set_epi64x(0x01c6e41596LL, 0x0154442bd4LL);
  const __m128i k3k4 = _mm_set_epi64x(0x00ccaa009eLL, 0x01751997d0LL);
  const __m128i k5k0 = _mm_set_epi64x(0, 0x0163cd6124LL);
  const __m128i poly = _mm_set_epi64x(0x01f7011641LL, 0x01db710641LL);
  __m128i x1 = _mm_loadu_si128((const __m128i *)(buf + 0x00));
  __m128i x2 = _mm_loadu_si128((const __m128i *)(buf + 0x10));
  __m128i x3 = _mm_loadu_si128((const __m128i *)(buf + 0x20));
  __m128i x4 = _mm_loadu_si128((const __m128i *)(buf + 0x30));
  __m128i x0, x5;
  x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int)c));
  buf += 64;
  len -= 64;
  for (; len >= 64; buf += 64, len -= 64) { /* four lanes, 64 bytes a step */
    __m128i y1 = _mm_clmulepi64_si128(x1, k1k2, 0x00), y2 = _mm_clmulepi64_si128(x2, k1k2, 0x00);
    __m128i y3 = _mm_clmulepi64_si128(x3, k1k2, 0x00), y4 = _mm_clmulepi64_si128(x4, k1k2, 0x00);
    x1 = _mm_clmulepi64_si128(x1, k1k2, 0x11);
    x2 = _mm_clmulepi64_si128(x2, k1k2, 0x11);
    x3 = _mm_clmulepi64_si128(x3, k1k2, 0x11);
    x4 = _mm_clmulepi64_si128(x4, k1k2, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, y1), _mm_loadu_si128((const __m128i *)(buf + 0x00)));
    x2 = _mm_xor_si128(_mm_xor_si128(x2, y2), _mm_loadu_si128((const __m128i *)(buf + 0x10)));
    x3 = _mm_xor_si128(_mm_xor_si128(x3, y3), _mm_loadu_si128((const __m128i *)(buf + 0x20)));
    x4 = _mm_xor_si128(_mm_xor_si128(x4, y4), _mm_loadu_si128((const __m128i *)(buf + 0x30)));
  }
  /* the four lanes into one, then the 16-byte blocks left */
  x0 = k3k4;
  x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, x0, 0x11), x2), x5);
  x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, x0, 0x11), x3), x5);
  x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, x0, 0x11), x4), x5);
  for (; len >= 16; buf += 16, len -= 16) {
    x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
    x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, _mm_loadu_si128((const __m128i *)buf)), x5);
  }
  /* 128 bits to 64, then Barrett's reduction to 32 */
  x2 = _mm_clmulepi64_si128(x1, x0, 0x10);
  x3 = _mm_setr_epi32(~0, 0, ~0, 0);
  x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x2);
  x2 = _mm_srli_si128(x1, 4);
  x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, x3), k5k0, 0x00), x2);
  x2 = _mm_and_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, x3), poly, 0x10), x3);
  x1 = _mm_xor_si128(x1, _mm_clmulepi64_si128(x2, poly, 0x00));
  return (uint32_t)_mm_extract_epi32(x1, 1);
}

static int clmul_detect(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
  return (c >> 1) & 1 && (c >> 19) & 1; /* PCLMULQDQ and SSE4.1 */
}

static atomic_int crc_hw = -1; /* -1: not looked at yet */
#endif

int lc_store_crc32_set_hw(int on) {
#ifdef HAVE_CLMUL
  int was = crc_hw < 0 ? clmul_detect() : crc_hw;
  crc_hw = on && clmul_detect();
  return was;
#else
  (void)on;
  return 0;
#endif
}

uint32_t lc_store_crc32(const char *p, size_t n) {
  pthread_once(&crc_once, crc_init);
  const unsigned char *b = (const unsigned char *)p;
  uint32_t c = 0xffffffffu;
#ifdef HAVE_CLMUL
  if (n >= 64) {
    if (crc_hw < 0) crc_hw = clmul_detect(); /* (a benign race: same answer) */
    if (crc_hw) {
      size_t m = n & ~(size_t)15; /* the tables take the last n % 16 */
      c = crc_fold(b, m, c);
      b += m;
      n -= m;
    }
  }
#endif
  for (; n >= 8; b += 8, n -= 8) {
    /* little-endian byte order, whatever the host's */
    uint32_t lo = c ^ ((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                       (uint32_t)b[3] << 24);
    uint32_t hi = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 |
                  (uint32_t)b[7] << 24;
    c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
        crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xff] ^
        crc_table[2][(hi >> 8) & 0xff] ^ crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
  }
  for (; n; b++, n--) c = crc_table[0][(c ^ *b) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

double lc_store_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- rows ---- */

int lc_store_status_terminal(const char *st) {
  return !strcmp(st, "finished") || !strcmp(st, "failed") || !strcmp(st, "cancelled");
}

int lc_store_pid_alive(long pid) { return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM); }

static char *dup_or_null(const char *v) { return v ? strdup(v) : NULL; }

void lc_store_row_fill(struct lc_run_row *r, const char *const text[9], double created,
                       double updated, long pid, int cancel_requested) {
  memset(r, 0, sizeof *r);
  snprintf(r->id, sizeof r->id, "%s", text[0] ? text[0] : "");
  r->script = dup_or_null(text[1]);
  r->script_sha256 = dup_or_null(text[2]);
  r->args = dup_or_null(text[3]);
  r->cwd = dup_or_null(text[4]);
  r->status = dup_or_null(text[5]);
  r->result = dup_or_null(text[6]);
  r->error = dup_or_null(text[7]);
  r->question = dup_or_null(text[8]);
  r->created = created;
  r->updated = updated;
  r->pid = pid;
  r->cancel_requested = cancel_requested;
}

struct lc_run_row *lc_store_row_for_create(const struct lc_run_row *r) {
  struct lc_run_row *x = calloc(1, sizeof *x);
  if (!x) return NULL;
  snprintf(x->id, sizeof x->id, "%s", r->id);
  x->script = dup_or_null(r->script);
  x->script_sha256 = dup_or_null(r->script_sha256);
  x->args = dup_or_null(r->args);
  x->cwd = dup_or_null(r->cwd);
  x->status = dup_or_null(r->status);
  x->pid = r->pid;
  return x;
}

/* ---- the journal ---- */

int lc_store_line_check(const char *where, const char *run_id, long want, long seq,
                        const char *text, size_t len, uint32_t crc, char *err, size_t errlen) {
  if (seq != want) {
    snprintf(err, errlen,
             "store %s: integrity error: run %s's journal has no line %ld (next is %ld)", where,
             run_id, want, seq);
    return LC_EINVAL;
  }
  if (!text || lc_store_crc32(text, len) != crc) {
    snprintf(err, errlen,
             "store %s: integrity error: run %s's journal line %ld does not match its checksum",
             where, run_id, seq);
    return LC_EINVAL;
  }
  return 0;
}

int lc_store_no_journal(const char *where, const char *run_id, char *err, size_t errlen) {
  snprintf(err, errlen, "store %s: run %s has no journal", where, run_id);
  return LC_ENOTFOUND;
}
