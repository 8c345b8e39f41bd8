/* pq_dl.h: libpq, loaded with dlopen on first use (pq_dl.c) instead of
 * linked: only a PostgreSQL store (a fleet of daemons) needs it, and a
 * linked libpq (with its Kerberos, LDAP and TLS libraries) was mapped by
 * every `luact run`, lengthening start-up (docs/BENCHMARKS.md, start-up).
 *
 * The PQ* functions luact calls keep libpq's own prototypes
 * (<libpq-fe.h>); the first call loads the library. When it cannot be
 * loaded, PQconnectdb returns NULL (the reason is printed once on stderr)
 * and lc_pq_available says so. */
#ifndef LC_PQ_DL_H
#define LC_PQ_DL_H

/* 1 when libpq is loaded (loading it now if it was not tried yet). */
int lc_pq_available(void);
/* 1 when the loaded libpq has pipeline mode (libpq 14 and later:
 * PQenterPipelineMode and the rest); the store's writer sends a group in
 * one round trip with it, statement by statement without. */
int lc_pq_has_pipeline(void);

#endif
