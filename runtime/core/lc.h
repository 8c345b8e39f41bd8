/* lc.h: error codes, allocation and small helpers shared by every module.
 *
 * Errors: functions return 0 on success and a negative LC_E* code on failure;
 * the human-readable text lives in the object the function worked on. */
#ifndef LC_H
#define LC_H

#include <stddef.h>
#include <stdint.h>

#define LC_OK 0
#define LC_ENOMEM (-1)    /* allocation failed */
#define LC_EINVAL (-2)    /* bad argument or malformed input */
#define LC_ETOOBIG (-3)   /* input over a size limit */
#define LC_EIO (-4)       /* system or transfer error */
#define LC_ESTATE (-5)    /* call not valid in the object's current state */
#define LC_ECANCEL (-6)   /* operation cancelled */
#define LC_ETIMEOUT (-7)  /* deadline passed */
#define LC_ENOTFOUND (-8) /* no such thing */

/* Allocation goes through these so that tests can inject failures
 * (lc_alloc_fail_after) and count live blocks. */
void *lc_malloc(size_t n);
void *lc_calloc(size_t n, size_t size);
void *lc_realloc(void *p, size_t n);
void lc_free(void *p);
char *lc_strdup(const char *s);
char *lc_strndup(const char *s, size_t n);

/* Test hooks: fail the Nth allocation from now (0 = never), count live
 * blocks. lc_alloc_fail_after returns what the previous setting had left:
 * > 0 when its failure has not happened (so a caller can tell a run that
 * survived its failure from one that never met it). */
long lc_alloc_fail_after(long n);
long lc_alloc_live(void);

/* Numbers from scripts (doubles) into integer types: 0 and *out when v is
 * finite and lo <= v <= hi (the fraction dropped), else LC_EINVAL: NaN,
 * infinities and values out of range make the cast undefined. */
int lc_dbl_to_long(double v, long lo, long hi, long *out);
int lc_dbl_to_size(double v, size_t hi, size_t *out);
/* Levenshtein distance between a and b, for "did you mean" hints; 99
 * when either is longer than 64 bytes. */
size_t lc_edit_distance(const char *a, const char *b);

/* Monotonic clock in milliseconds (double: sub-ms resolution). */
double lc_now_ms(void);
/* Wall clock, seconds since the epoch. */
double lc_wall_s(void);

/* Random 64-bit value from a per-thread xorshift seeded from the OS. */
uint64_t lc_rand64(void);

#define LC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
