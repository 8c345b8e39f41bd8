/* lc_testnative.c: a small shared library that check_ffi declares and calls,
 * one function per signature shape the FFI layer must handle. */
#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int lc_tn_add(int a, int b) { return a + b; }
double lc_tn_hypot(double a, double b) { return a * a + b * b; }
float lc_tn_fhalf(float f) { return f / 2; }
size_t lc_tn_strlen(const char *s) { return strlen(s); }
bool lc_tn_not(bool b) { return !b; }
int8_t lc_tn_i8(int8_t v) { return v; }
uint8_t lc_tn_u8(uint8_t v) { return v; }
int16_t lc_tn_i16(int16_t v) { return v; }
uint16_t lc_tn_u16(uint16_t v) { return v; }
uint32_t lc_tn_u32(uint32_t v) { return v; }
int64_t lc_tn_i64(int64_t v) { return v; }
uint64_t lc_tn_u64(uint64_t v) { return v; }
int64_t lc_tn_i64_min(void) { return INT64_MIN; }
uint64_t lc_tn_u64_max(void) { return UINT64_MAX; }
long lc_tn_long_neg(long v) { return -v; }

/* The classic "fill this buffer" API: returns the full length, writes at
 * most n-1 bytes plus a NUL. */
int lc_tn_upper(const char *in, char *out, size_t n) {
  size_t len = strlen(in), i = 0;
  for (; n && i < n - 1 && i < len; i++) out[i] = (char)toupper((unsigned char)in[i]);
  if (n) out[i] = '\0';
  return (int)len;
}

/* Two output buffers of 16 bytes each: the text before and after a comma. */
void lc_tn_split(const char *s, char *a, char *b) {
  const char *c = strchr(s, ',');
  size_t la = c ? (size_t)(c - s) : strlen(s);
  if (la > 15) la = 15;
  memcpy(a, s, la);
  a[la] = '\0';
  if (c) strncpy(b, c + 1, 15);
}

/* Fills all n bytes with no terminator. */
void lc_tn_fill(char *buf, size_t n) { memset(buf, 'x', n); }

const char *lc_tn_static(void) { return "hello, world"; }
const char *lc_tn_null(void) { return NULL; }
const char *lc_tn_badutf8(void) { return "ok\xff"; }
char *lc_tn_owned(const char *s) {
  char *p = malloc(strlen(s) + 7);
  strcpy(p, "owned:");
  strcat(p, s);
  return p;
}
double lc_tn_div(double a, double b) { return a / b; }

static int counter;
void lc_tn_bump(void) { counter++; }
int lc_tn_counter(void) { return counter; }

int lc_tn_sum16(int a1, int a2, int a3, int a4, int a5, int a6, int a7, int a8,
                int a9, int a10, int a11, int a12, int a13, int a14, int a15,
                int a16) {
  return a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11 + a12 + a13 +
         a14 + a15 + a16;
}

/* For the hostile corpus: reads exactly n bytes of s (a callee that trusts
 * the length it is given), and writes exactly n bytes into buf. */
size_t lc_tn_count_nonzero(const char *s, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) k += s[i] != 0;
  return k;
}
int lc_tn_fill_int(char *buf, int n) {
  for (int i = 0; i < n; i++) buf[i] = 'y';
  return n;
}
