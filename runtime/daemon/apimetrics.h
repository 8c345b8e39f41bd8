/* apimetrics.h: GET /metrics of `luact serve` (apimetrics.c), in
 * Prometheus' text format: requests, rejections, runs by outcome and by
 * agent, effects by kind, tokens, queue and run times, open streams, and
 * the store's runs by status (one query: a worker's route). Labels are
 * bounded sets (agents are the folder's files) and escaped. */
#ifndef LC_APIMETRICS_H
#define LC_APIMETRICS_H

#include <microhttpd.h>

struct lc_serve;

enum MHD_Result lc_api_metrics(struct lc_serve *s, struct MHD_Connection *c);

#endif
