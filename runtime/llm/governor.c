/* governor.c: process-wide GCRA rate limiting per provider+endpoint+key. */
#include "governor.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lc.h"

/* The registry lives as long as the process (it is shared by every worker
 * and run), so it uses plain calloc/free, outside lc_malloc's per-run
 * accounting. */
#include <stdlib.h>

struct lc_governor {
  struct lc_governor *next;
  char provider[32];
  uint64_t key_hash; /* of base_url + api_key: the key itself is not kept */
  struct lc_governor_limits lim;
  double next_req_ms; /* theoretical arrival time of the next request */
  double next_tok_ms;
};

struct provider_limits {
  struct provider_limits *next;
  char provider[32];
  struct lc_governor_limits lim;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
/* Set once any limits exist: until then every call skips the mutex. */
static _Atomic int configured;
static struct lc_governor *govs;
static struct provider_limits *limits;

static uint64_t fnv1a(uint64_t h, const char *s) {
  for (; s && *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
  return (h ^ 0xff) * 0x100000001b3ull; /* separator */
}

int lc_governor_configure(const char *provider, const struct lc_governor_limits *l) {
  pthread_mutex_lock(&mu);
  struct provider_limits *p = limits;
  while (p && strcmp(p->provider, provider) != 0) p = p->next;
  if (!p) {
    p = calloc(1, sizeof *p);
    if (!p) {
      pthread_mutex_unlock(&mu);
      return LC_ENOMEM;
    }
    snprintf(p->provider, sizeof p->provider, "%s", provider);
    p->next = limits;
    limits = p;
  }
  p->lim = *l;
  configured = 1;
  /* Existing governors pick the new limits up at once. */
  for (struct lc_governor *g = govs; g; g = g->next)
    if (strcmp(g->provider, provider) == 0) g->lim = *l;
  pthread_mutex_unlock(&mu);
  return 0;
}

struct lc_governor *lc_governor_for(const char *provider, const char *base_url,
                                    const char *api_key) {
  if (!configured) return NULL;
  uint64_t h = fnv1a(fnv1a(0xcbf29ce484222325ull, base_url), api_key);
  pthread_mutex_lock(&mu);
  struct provider_limits *p = limits;
  while (p && strcmp(p->provider, provider) != 0) p = p->next;
  struct lc_governor *g = NULL;
  if (p && (p->lim.rpm > 0 || p->lim.tpm > 0)) {
    for (g = govs; g; g = g->next)
      if (g->key_hash == h && strcmp(g->provider, provider) == 0) break;
    if (!g && (g = calloc(1, sizeof *g))) {
      snprintf(g->provider, sizeof g->provider, "%s", provider);
      g->key_hash = h;
      g->lim = p->lim;
      g->next = govs;
      govs = g;
    }
  }
  pthread_mutex_unlock(&mu);
  return g;
}

/* GCRA: each unit costs T = 60000/rate ms; a burst of b units may run
 * ahead of schedule by (b - 1) * T. */
static double gcra(double *tat, double now, double units, double rate, double burst) {
  if (rate <= 0) return 0;
  double T = 60000.0 / rate;
  if (burst < 1) burst = 1;
  double start = *tat > now ? *tat : now;
  double allowed_at = start - (burst - 1) * T;
  if (allowed_at < now) allowed_at = now;
  *tat = start + units * T;
  return allowed_at - now;
}

double lc_governor_reserve_ticket(struct lc_governor *g, double est_tokens, double now_ms,
                                  struct lc_governor_ticket *t) {
  if (t) *t = (struct lc_governor_ticket){0};
  if (!g) return 0;
  pthread_mutex_lock(&mu);
  double burst_tok = g->lim.burst_tok > 0 ? g->lim.burst_tok : g->lim.tpm / 6;
  double r0 = g->next_req_ms, t0 = g->next_tok_ms;
  double d1 = gcra(&g->next_req_ms, now_ms, 1, g->lim.rpm, g->lim.burst_req);
  double d2 = gcra(&g->next_tok_ms, now_ms, est_tokens, g->lim.tpm, burst_tok);
  if (t) {
    /* What the schedule moved by, not units * T: gcra first brings an
     * instant in the past up to now, and that part is not ours to undo. */
    double rs = r0 > now_ms ? r0 : now_ms, ts = t0 > now_ms ? t0 : now_ms;
    t->req_ms = g->lim.rpm > 0 ? g->next_req_ms - rs : 0;
    t->tok_ms = g->lim.tpm > 0 ? g->next_tok_ms - ts : 0;
  }
  pthread_mutex_unlock(&mu);
  return d1 > d2 ? d1 : d2;
}

double lc_governor_reserve(struct lc_governor *g, double est_tokens, double now_ms) {
  return lc_governor_reserve_ticket(g, est_tokens, now_ms, NULL);
}

void lc_governor_refund(struct lc_governor *g, const struct lc_governor_ticket *t) {
  if (!g || !t) return;
  pthread_mutex_lock(&mu);
  g->next_req_ms -= t->req_ms;
  g->next_tok_ms -= t->tok_ms;
  pthread_mutex_unlock(&mu);
}

void lc_governor_settle(struct lc_governor *g, double est_tokens, double actual_tokens) {
  if (!g) return;
  /* The limit is read under the lock: lc_governor_configure may change it
   * from another worker, and a tpm set to 0 between a check outside and
   * the division inside would put the schedule at infinity. */
  pthread_mutex_lock(&mu);
  if (g->lim.tpm > 0) g->next_tok_ms += (actual_tokens - est_tokens) * 60000.0 / g->lim.tpm;
  pthread_mutex_unlock(&mu);
}

void lc_governor_state(struct lc_governor *g, double *next_req_ms, double *next_tok_ms) {
  pthread_mutex_lock(&mu);
  if (next_req_ms) *next_req_ms = g ? g->next_req_ms : 0;
  if (next_tok_ms) *next_tok_ms = g ? g->next_tok_ms : 0;
  pthread_mutex_unlock(&mu);
}

void lc_governor_reset_all(void) {
  pthread_mutex_lock(&mu);
  while (govs) {
    struct lc_governor *g = govs;
    govs = g->next;
    free(g);
  }
  while (limits) {
    struct provider_limits *p = limits;
    limits = p->next;
    free(p);
  }
  configured = 0;
  pthread_mutex_unlock(&mu);
}
