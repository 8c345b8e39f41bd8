/* sha256.c: SHA-256 as specified in FIPS 180-4 section 6.2. */
#include "sha256.h"

#include <stdatomic.h>
#include <string.h>

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void compress(uint32_t h[8], const unsigned char *p) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
           (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = hh + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
    uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    hh = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h[0] += a; h[1] += b; h[2] += c; h[3] += d;
  h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

/* The SHA extensions (x86 SHA-NI) do a block in a few dozen instructions
 * where compress takes ~2,500: every LLM call's intent hashes its whole
 * prompt, 15% of a durable run's instructions at 1,000 agents. Chosen at
 * run time (cpuid), so one binary runs everywhere; lc_sha256_set_hw lets
 * the tests check both against each other. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_SHA_NI 1

__attribute__((target("sha,sse4.1"))) static void compress_ni(uint32_t h[8],
                                                              const unsigned char *p) {
  const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i tmp = _mm_loadu_si128((const __m128i *)&h[0]);    /* DCBA (lanes a..d) */
  __m128i st1 = _mm_loadu_si128((const __m128i *)&h[4]);    /* HGFE */
  tmp = _mm_shuffle_epi32(tmp, 0xB1);                        /* CDAB */
  st1 = _mm_shuffle_epi32(st1, 0x1B);                        /* EFGH */
  __m128i st0 = _mm_alignr_epi8(tmp, st1, 8);                /* ABEF */
  st1 = _mm_blend_epi16(st1, tmp, 0xF0);                     /* CDGH */
  const __m128i save0 = st0, save1 = st1;
  __m128i m[4];
  for (int i = 0; i < 16; i++) {
    __m128i w;
    if (i < 4) {
      w = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
    } else {
      /* W[t..t+3] from W[t-16..t-1]: sigma0 part, + W[t-7..t-4], sigma1 part */
      w = _mm_sha256msg1_epu32(m[i & 3], m[(i + 1) & 3]);
      w = _mm_add_epi32(w, _mm_alignr_epi8(m[(i + 3) & 3], m[(i + 2) & 3], 4));
      w = _mm_sha256msg2_epu32(w, m[(i + 3) & 3]);
    }
    m[i & 3] = w;
    __m128i k = _mm_add_epi32(w, _mm_loadu_si128((const __m128i *)&K[4 * i]));
    st1 = _mm_sha256rnds2_epu32(st1, st0, k);
    st0 = _mm_sha256rnds2_epu32(st0, st1, _mm_shuffle_epi32(k, 0x0E));
  }
  st0 = _mm_add_epi32(st0, save0);
  st1 = _mm_add_epi32(st1, save1);
  tmp = _mm_shuffle_epi32(st0, 0x1B);      /* FEBA */
  st1 = _mm_shuffle_epi32(st1, 0xB1);      /* DCHG */
  st0 = _mm_blend_epi16(tmp, st1, 0xF0);   /* DCBA */
  st1 = _mm_alignr_epi8(st1, tmp, 8);      /* HGFE */
  _mm_storeu_si128((__m128i *)&h[0], st0);
  _mm_storeu_si128((__m128i *)&h[4], st1);
}

static int hw_detect(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
  int sha = (b >> 29) & 1;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
  return sha && (c >> 19) & 1 && (c >> 9) & 1; /* and SSE4.1, SSSE3 */
}

static atomic_int use_hw = -1; /* -1: not looked at yet */
#endif

int lc_sha256_set_hw(int on) {
#ifdef HAVE_SHA_NI
  int was = use_hw < 0 ? hw_detect() : use_hw;
  use_hw = on && hw_detect();
  return was;
#else
  (void)on;
  return 0;
#endif
}

static void compress_any(uint32_t h[8], const unsigned char *p) {
#ifdef HAVE_SHA_NI
  if (use_hw < 0) use_hw = hw_detect(); /* (a benign race: same answer) */
  if (use_hw) {
    compress_ni(h, p);
    return;
  }
#endif
  compress(h, p);
}

void lc_sha256_init(struct lc_sha256 *s) {
  static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, iv, sizeof iv);
  s->len = 0;
  s->used = 0;
}

void lc_sha256_update(struct lc_sha256 *s, const void *data, size_t n) {
  const unsigned char *p = data;
  s->len += n;
  if (s->used) {
    size_t take = 64 - s->used < n ? 64 - s->used : n;
    memcpy(s->block + s->used, p, take);
    s->used += take;
    p += take;
    n -= take;
    if (s->used < 64) return;
    compress_any(s->h, s->block);
    s->used = 0;
  }
  for (; n >= 64; p += 64, n -= 64) compress_any(s->h, p);
  memcpy(s->block, p, n);
  s->used = n;
}

void lc_sha256_final(struct lc_sha256 *s, unsigned char out[32]) {
  uint64_t bits = s->len * 8;
  s->block[s->used++] = 0x80;
  if (s->used > 56) {
    memset(s->block + s->used, 0, 64 - s->used);
    compress_any(s->h, s->block);
    s->used = 0;
  }
  memset(s->block + s->used, 0, 56 - s->used);
  for (int i = 0; i < 8; i++) s->block[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
  compress_any(s->h, s->block);
  for (int i = 0; i < 8; i++) {
    out[4 * i] = (unsigned char)(s->h[i] >> 24);
    out[4 * i + 1] = (unsigned char)(s->h[i] >> 16);
    out[4 * i + 2] = (unsigned char)(s->h[i] >> 8);
    out[4 * i + 3] = (unsigned char)s->h[i];
  }
}

void lc_sha256_to_hex(const unsigned char d[32], char out[65]) {
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    out[2 * i] = hex[d[i] >> 4];
    out[2 * i + 1] = hex[d[i] & 15];
  }
  out[64] = '\0';
}

void lc_sha256_hex(const void *data, size_t n, char out[65]) {
  struct lc_sha256 s;
  unsigned char d[32];
  lc_sha256_init(&s);
  lc_sha256_update(&s, data, n);
  lc_sha256_final(&s, d);
  lc_sha256_to_hex(d, out);
}
