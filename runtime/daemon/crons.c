/* crons.c: cron expressions, the cron routes (LangGraph's /runs/crons) and
 * the thread that fires them (crons.h says how a tick fires once). */
#include "crons.h"

#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "inbox.h"
#include "lc.h"
#include "serve.h"

/* ---- expressions ---- */

static const char *const mon_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                        "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const dow_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

/* A number or (names: month or day names, base: the first name's value)
 * a three-letter name at *p; advances *p. -1: neither. */
static int field_value(const char **p, const char *const *names, int nnames, int base) {
  const char *s = *p;
  if (isdigit((unsigned char)*s)) {
    long v = 0;
    while (isdigit((unsigned char)*s) && v < 1000) v = v * 10 + (*s++ - '0');
    if (isdigit((unsigned char)*s)) return -1;
    *p = s;
    return (int)v;
  }
  for (int i = 0; names && i < nnames; i++) {
    if (!strncasecmp(s, names[i], 3) && !isalpha((unsigned char)s[3])) {
      *p = s + 3;
      return base + i;
    }
  }
  return -1;
}

/* One field: a comma list of *, N, N-M, each with an optional /STEP
 * (N/STEP: from N to the field's end). Sets bits lo..hi of *bits. */
static int parse_field(const char *f, int lo, int hi, const char *const *names, int nnames,
                       int base, unsigned long long *bits, int *star, const char *what,
                       char *err, size_t n) {
  *bits = 0;
  *star = f[0] == '*';
  const char *p = f;
  for (;;) {
    int a, b, step = 1, range = 0;
    if (*p == '*') {
      a = lo;
      b = hi;
      p++;
      range = 1;
    } else {
      a = field_value(&p, names, nnames, base);
      if (a < 0) goto bad;
      b = a;
      if (*p == '-') {
        p++;
        b = field_value(&p, names, nnames, base);
        if (b < 0) goto bad;
        range = 1;
      }
    }
    if (*p == '/') {
      p++;
      if (!isdigit((unsigned char)*p)) goto bad;
      step = field_value(&p, NULL, 0, 0);
      if (step < 1 || step > hi - lo + 1) {
        snprintf(err, n, "%s: step out of range in '%.40s'", what, f);
        return LC_EINVAL;
      }
      if (!range) b = hi; /* Vixie: N/STEP runs to the end */
    }
    if (a < lo || a > hi || b < lo || b > hi || a > b) {
      snprintf(err, n, "%s: '%.40s' is outside %d-%d (or a range that runs backwards)", what, f,
               lo, hi);
      return LC_EINVAL;
    }
    for (int v = a; v <= b; v += step) *bits |= 1ULL << v;
    if (*p == ',') {
      p++;
      continue;
    }
    if (*p) goto bad;
    return 0;
  }
bad:
  snprintf(err, n, "%s: cannot read '%.40s'", what, f);
  return LC_EINVAL;
}

int lc_cron_parse(const char *expr, struct lc_cron *c, char *err, size_t n) {
  static const struct {
    const char *name, *expr;
  } macros[] = {{"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
                {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
                {"@hourly", "0 * * * *"}};
  memset(c, 0, sizeof *c);
  if (!expr) {
    snprintf(err, n, "schedule is required");
    return LC_EINVAL;
  }
  while (isspace((unsigned char)*expr)) expr++;
  if (*expr == '@') {
    for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++) {
      size_t l = strlen(macros[i].name);
      if (!strncasecmp(expr, macros[i].name, l) && !expr[l + strspn(expr + l, " \t")])
        return lc_cron_parse(macros[i].expr, c, err, n);
    }
    snprintf(err, n, "unknown schedule '%.40s' (@reboot has no time)", expr);
    return LC_EINVAL;
  }
  char f[5][64];
  int nf = 0;
  const char *p = expr;
  while (*p) {
    size_t l = strcspn(p, " \t");
    if (nf == 5 || l >= sizeof f[0]) {
      snprintf(err, n, "a schedule is 5 fields: minute hour day-of-month month day-of-week");
      return LC_EINVAL;
    }
    memcpy(f[nf], p, l);
    f[nf++][l] = '\0';
    p += l;
    p += strspn(p, " \t");
  }
  if (nf != 5) {
    snprintf(err, n, "a schedule is 5 fields: minute hour day-of-month month day-of-week");
    return LC_EINVAL;
  }
  unsigned long long b;
  int star;
  if (parse_field(f[0], 0, 59, NULL, 0, 0, &b, &star, "minute", err, n)) return LC_EINVAL;
  c->min = b;
  if (parse_field(f[1], 0, 23, NULL, 0, 0, &b, &star, "hour", err, n)) return LC_EINVAL;
  c->hour = (unsigned long)b;
  if (parse_field(f[2], 1, 31, NULL, 0, 0, &b, &c->dom_star, "day of month", err, n))
    return LC_EINVAL;
  c->dom = (unsigned long)b;
  if (parse_field(f[3], 1, 12, mon_names, 12, 1, &b, &star, "month", err, n)) return LC_EINVAL;
  c->mon = (unsigned)b;
  if (parse_field(f[4], 0, 7, dow_names, 7, 0, &b, &c->dow_star, "day of week", err, n))
    return LC_EINVAL;
  if (b & (1ULL << 7)) b |= 1; /* 7 is Sunday too */
  c->dow = (unsigned)(b & 0x7f);
  return 0;
}

static int day_matches(const struct lc_cron *c, const struct tm *tm) {
  int dom = (c->dom >> tm->tm_mday) & 1, dow = (c->dow >> tm->tm_wday) & 1;
  /* Vixie cron: both day fields restricted (neither begins with '*'):
   * either may match; otherwise both must (the '*' one always does). */
  if (!c->dom_star && !c->dow_star) return dom || dow;
  return dom && dow;
}

time_t lc_cron_next(const struct lc_cron *c, time_t after) {
  if (after < 0) after = 0;
  time_t t = after - after % 60 + 60; /* the next whole minute */
  struct tm tm;
  gmtime_r(&t, &tm);
  int first = 1;
  for (int day = 0; day < 366 * 9; day++) {
    if (!first) { /* midnight of the next day */
      tm.tm_mday++;
      tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
      time_t m = timegm(&tm);
      gmtime_r(&m, &tm);
    }
    int h0 = first ? tm.tm_hour : 0, m0 = first ? tm.tm_min : 0;
    first = 0;
    if (!((c->mon >> (tm.tm_mon + 1)) & 1) || !day_matches(c, &tm)) continue;
    for (int h = h0; h < 24; h++) {
      if (!((c->hour >> h) & 1)) continue;
      for (int m = h == h0 ? m0 : 0; m < 60; m++) {
        if (!((c->min >> m) & 1)) continue;
        tm.tm_hour = h;
        tm.tm_min = m;
        tm.tm_sec = 0;
        return timegm(&tm);
      }
    }
  }
  return -1;
}

/* ---- the clock ---- */

/* Real time, or the test clock: the seconds in $LUACT_CRON_CLOCK_FILE. */
static double cron_now(void) {
  const char *f = getenv("LUACT_CRON_CLOCK_FILE");
  if (f && *f) {
    FILE *fp = fopen(f, "r");
    double v = 0;
    int ok = fp && fscanf(fp, "%lf", &v) == 1;
    if (fp) fclose(fp);
    if (ok) return v;
  }
  return lc_serve_now();
}

/* ---- rows and replies ---- */

static const char *jstr(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void iso(double t, char *buf, size_t n) {
  time_t s = (time_t)t;
  struct tm tm;
  gmtime_r(&s, &tm);
  char b[32];
  strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, n, "%s.%03dZ", b, (int)((t - (double)s) * 1000) % 1000);
}

static void add_time(cJSON *o, const char *k, const cJSON *row, const char *col) {
  const cJSON *v = cJSON_GetObjectItem(row, col);
  if (!cJSON_IsNumber(v)) {
    cJSON_AddNullToObject(o, k);
    return;
  }
  char b[40];
  iso(v->valuedouble, b, sizeof b);
  cJSON_AddStringToObject(o, k, b);
}

static cJSON *parsed(const cJSON *row, const char *col) {
  const char *t = jstr(row, col);
  cJSON *v = t ? cJSON_Parse(t) : NULL;
  return v ? v : cJSON_CreateObject();
}

/* A d_crons row as LangGraph's Cron. */
static cJSON *cron_json(const cJSON *row) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "cron_id", jstr(row, "id"));
  cJSON_AddStringToObject(o, "assistant_id", jstr(row, "agent"));
  if (jstr(row, "thread_id")) cJSON_AddStringToObject(o, "thread_id", jstr(row, "thread_id"));
  else cJSON_AddNullToObject(o, "thread_id");
  add_time(o, "end_time", row, "end_time");
  cJSON_AddStringToObject(o, "schedule", jstr(row, "schedule"));
  cJSON_AddStringToObject(o, "timezone", "UTC");
  add_time(o, "created_at", row, "created");
  add_time(o, "updated_at", row, "updated");
  cJSON_AddItemToObject(o, "payload", parsed(row, "payload"));
  cJSON_AddNullToObject(o, "user_id"); /* tenants are not users: not told */
  add_time(o, "next_run_date", row, "next_run_at");
  cJSON_AddItemToObject(o, "metadata", parsed(row, "metadata"));
  return o;
}

static cJSON *cron_row(struct lc_serve *s, const char *tenant, const char *id) {
  char err[256];
  cJSON *rows = NULL;
  lc_dstore_exec(s->ds, &rows, err, sizeof err, "SELECT * FROM d_crons WHERE id=? AND tenant=?",
                 "ss", id, tenant);
  cJSON *r = cJSON_DetachItemFromArray(rows, 0);
  cJSON_Delete(rows);
  return r;
}

static unsigned fail(cJSON **out, unsigned code, const char *fmt, const char *arg) {
  char m[512];
  snprintf(m, sizeof m, fmt, arg ? arg : "");
  *out = cJSON_CreateObject();
  cJSON_AddStringToObject(*out, "detail", m);
  return code;
}

/* "2030-01-01T00:00:00[.fff][Z|+HH:MM|-HH:MM]" (or a space for the T) as
 * epoch seconds; -1 when it is not one. */
static double parse_iso(const char *t) {
  int y, mo, d, h, mi, used = 0;
  double sec;
  if (!t || sscanf(t, "%4d-%2d-%2d%*1[T ]%2d:%2d:%lf%n", &y, &mo, &d, &h, &mi, &sec, &used) < 6 ||
      mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec < 0 || sec >= 61)
    return -1;
  const char *z = t + used;
  long off = 0;
  if (*z == 'Z' || *z == 'z') {
    z++;
  } else if (*z == '+' || *z == '-') {
    int oh, om, k = 0;
    if (sscanf(z + 1, "%2d:%2d%n", &oh, &om, &k) != 2 || oh > 23 || om > 59) return -1;
    off = (oh * 3600L + om * 60L) * (*z == '-' ? -1 : 1);
    z += 1 + k;
  }
  if (*z) return -1;
  struct tm tm = {0};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  return (double)timegm(&tm) + sec - (double)off;
}

/* Only UTC: a zone would need the process's TZ (not thread safe in a
 * daemon whose runs read the local time) or a zoneinfo reader. */
static int utc_zone(const cJSON *tz) {
  if (!tz || cJSON_IsNull(tz)) return 1;
  if (!cJSON_IsString(tz)) return 0;
  const char *z = tz->valuestring;
  return !strcasecmp(z, "UTC") || !strcasecmp(z, "Etc/UTC") || !strcasecmp(z, "GMT") ||
         !strcasecmp(z, "Etc/GMT") || !strcasecmp(z, "Z") || !strcmp(z, "+00:00");
}

/* The run a tick creates: the request's fields but the cron's own. */
static char *payload_of(const cJSON *body, const cJSON *old) {
  static const char *const keys[] = {"input", "config", "context", "metadata", "multitask_strategy",
                                     "stream_mode", "interrupt_before", "interrupt_after",
                                     "webhook", "if_not_exists", "durability"};
  cJSON *p = old ? cJSON_Duplicate(old, 1) : cJSON_CreateObject();
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    const cJSON *v = cJSON_GetObjectItem(body, keys[i]);
    if (!v) continue;
    cJSON_DeleteItemFromObjectCaseSensitive(p, keys[i]);
    if (!cJSON_IsNull(v)) cJSON_AddItemToObject(p, keys[i], cJSON_Duplicate(v, 1));
  }
  char *t = cJSON_PrintUnformatted(p);
  cJSON_Delete(p);
  return t;
}

/* Checks the fields a create or an update may carry. 0, or the status. */
static unsigned check_fields(const cJSON *body, struct lc_cron *cr, int need_schedule,
                             double *end, cJSON **out) {
  char err[256];
  const cJSON *sch = cJSON_GetObjectItem(body, "schedule");
  if (sch || need_schedule) {
    if (!cJSON_IsString(sch))
      return fail(out, 422, "schedule (a cron expression) is required%s", NULL);
    if (lc_cron_parse(sch->valuestring, cr, err, sizeof err))
      return fail(out, 422, "schedule: %s", err);
    if (lc_cron_next(cr, 0) < 0 && lc_cron_next(cr, (time_t)lc_serve_now()) < 0)
      return fail(out, 422, "schedule '%.60s' never fires", sch->valuestring);
  }
  if (!utc_zone(cJSON_GetObjectItem(body, "timezone")))
    return fail(out, 422, "timezone: only UTC is supported%s", NULL);
  const cJSON *et = cJSON_GetObjectItem(body, "end_time");
  *end = -2; /* not given */
  if (et && cJSON_IsNull(et)) *end = -1;
  else if (et && (!cJSON_IsString(et) || (*end = parse_iso(et->valuestring)) < 0))
    return fail(out, 422, "end_time must be an ISO 8601 date-time%s", NULL);
  /* Later SDKs' enabled: a paused cron would be a state of its own; not
   * silently a running one. */
  if (cJSON_IsFalse(cJSON_GetObjectItem(body, "enabled")))
    return fail(out, 422, "enabled: false is not supported (DELETE the cron)%s", NULL);
  const char *mt = jstr(body, "multitask_strategy");
  const cJSON *mtv = cJSON_GetObjectItem(body, "multitask_strategy");
  if ((mtv && !cJSON_IsNull(mtv) && !mt) || (mt && strcmp(mt, "reject") && strcmp(mt, "enqueue")))
    return fail(out, 422, "multitask_strategy %.40s is not supported (reject, enqueue)", mt);
  const cJSON *md = cJSON_GetObjectItem(body, "metadata");
  if (md && !cJSON_IsObject(md) && !cJSON_IsNull(md))
    return fail(out, 422, "metadata must be an object%s", NULL);
  return 0;
}

/* The next fire time after `after` within end (< 0: none), or -1. */
static double next_fire(const struct lc_cron *cr, double after, double end) {
  time_t t = lc_cron_next(cr, (time_t)after);
  if (t < 0 || (end >= 0 && (double)t > end)) return -1;
  return (double)t;
}

static unsigned create(struct lc_serve *s, const char *tenant, const char *thread,
                       const cJSON *body, cJSON **out) {
  const char *agent = jstr(body, "assistant_id");
  if (!agent) agent = jstr(body, "agent_id");
  if (!agent) return fail(out, 422, "assistant_id is required%s", NULL);
  if (!lc_serve_agent(s, agent)) return fail(out, 404, "unknown agent '%.200s'", agent);
  struct lc_cron cr;
  double end;
  unsigned code = check_fields(body, &cr, 1, &end, out);
  if (code) return code;
  double now = cron_now();
  double next = next_fire(&cr, now, end);
  const cJSON *md = cJSON_GetObjectItem(body, "metadata");
  char *mtext = cJSON_IsObject(md) ? cJSON_PrintUnformatted(md) : strdup("{}");
  char *ptext = payload_of(body, NULL);
  char id[37], err[256];
  lc_serve_uuid(id);
  char *nsched = strdup(jstr(body, "schedule"));
  int rc = !mtext || !ptext || !nsched
               ? LC_ENOMEM
               : lc_dstore_exec(s->ds, NULL, err, sizeof err,
                                "INSERT INTO d_crons(id, tenant, thread_id, agent, schedule, "
                                "payload, metadata, end_time, next_run_at, created, updated) "
                                "VALUES(?,?,?,?,?,?,?,CASE WHEN ?<0 THEN NULL ELSE ? END,"
                                "CASE WHEN ?<0 THEN NULL ELSE ? END,?,?)",
                                "sssssssdddddd", id, tenant, thread, agent, nsched, ptext, mtext,
                                end, end, next, next, lc_serve_now(), lc_serve_now());
  cJSON_free(mtext);
  cJSON_free(ptext);
  free(nsched);
  /* (-1 binds for none: one bind spec for both stores, no NULL double.) */
  if (rc) return fail(out, 500, "cannot store the cron: %.300s", err);
  cJSON *row = cron_row(s, tenant, id);
  if (!row) return fail(out, 500, "the cron vanished%s", NULL);
  *out = cron_json(row);
  cJSON_Delete(row);
  lc_serve_log(s, "info", "cron_created", NULL, id);
  return 200;
}

static long num(const cJSON *body, const char *k, long def) {
  const cJSON *v = cJSON_GetObjectItem(body, k);
  if (!cJSON_IsNumber(v)) return def;
  if (v->valuedouble < 0) return 0;
  return v->valuedouble > 1e9 ? 1000000000L : (long)v->valuedouble;
}

static unsigned search(struct lc_serve *s, const char *tenant, const cJSON *body, int count,
                       cJSON **out) {
  static const char *const sorts[] = {"cron_id", "id",         "assistant_id", "agent",
                                      "thread_id", "thread_id", "created_at",   "created",
                                      "updated_at", "updated",  "next_run_date", "next_run_at"};
  const char *af = jstr(body, "assistant_id"), *tf = jstr(body, "thread_id");
  const char *sb = jstr(body, "sort_by"), *so = jstr(body, "sort_order");
  const char *col = "created";
  for (size_t i = 0; sb && i < sizeof sorts / sizeof sorts[0]; i += 2)
    if (!strcmp(sb, sorts[i])) col = sorts[i + 1];
  if (sb && !strcmp(col, "created") && strcmp(sb, "created_at"))
    return fail(out, 422, "sort_by %.40s is not one of cron_id, assistant_id, thread_id, "
                          "created_at, updated_at, next_run_date", sb);
  int desc = !so || strcasecmp(so, "asc");
  if (so && strcasecmp(so, "asc") && strcasecmp(so, "desc"))
    return fail(out, 422, "sort_order %.10s is not asc or desc", so);
  char sql[300];
  snprintf(sql, sizeof sql,
           "SELECT * FROM d_crons WHERE tenant=? AND (? IS NULL OR agent=?) AND "
           "(? IS NULL OR thread_id=?) ORDER BY %s %s, id",
           col, desc ? "DESC" : "ASC");
  char err[256];
  cJSON *rows = NULL;
  if (lc_dstore_exec(s->ds, &rows, err, sizeof err, sql, "sssss", tenant, af, af, tf, tf))
    return fail(out, 500, "%s", err);
  if (count) {
    *out = cJSON_CreateNumber(cJSON_GetArraySize(rows));
    cJSON_Delete(rows);
    return 200;
  }
  struct lc_serve_page pg = {num(body, "limit", 10), num(body, "offset", 0), 0, 0};
  cJSON *arr = cJSON_CreateArray();
  const cJSON *r;
  cJSON_ArrayForEach(r, rows) {
    if (!lc_serve_page_take(&pg)) continue;
    cJSON_AddItemToArray(arr, cron_json(r));
  }
  cJSON_Delete(rows);
  *out = arr;
  return 200;
}

static unsigned update(struct lc_serve *s, const char *tenant, const char *id, const cJSON *body,
                       cJSON **out) {
  cJSON *row = cron_row(s, tenant, id);
  if (!row) return fail(out, 404, "cron not found%s", NULL);
  struct lc_cron cr;
  double end;
  unsigned code = check_fields(body, &cr, 0, &end, out);
  if (code) {
    cJSON_Delete(row);
    return code;
  }
  const char *sched = jstr(body, "schedule") ? jstr(body, "schedule") : jstr(row, "schedule");
  char err[256];
  if (lc_cron_parse(sched, &cr, err, sizeof err)) { /* the stored one: parsed before */
    cJSON_Delete(row);
    return fail(out, 500, "%s", err);
  }
  const cJSON *oe = cJSON_GetObjectItem(row, "end_time");
  if (end == -2) end = cJSON_IsNumber(oe) ? oe->valuedouble : -1;
  double next = next_fire(&cr, cron_now(), end);
  cJSON *op = parsed(row, "payload");
  char *ptext = payload_of(body, op);
  cJSON_Delete(op);
  const cJSON *md = cJSON_GetObjectItem(body, "metadata");
  char *mtext = cJSON_IsObject(md) ? cJSON_PrintUnformatted(md) : NULL;
  int rc = lc_dstore_exec(
      s->ds, NULL, err, sizeof err,
      "UPDATE d_crons SET schedule=?, payload=?, metadata=COALESCE(?, metadata), "
      "end_time=CASE WHEN ?<0 THEN NULL ELSE ? END, next_run_at=CASE WHEN ?<0 THEN NULL ELSE ? "
      "END, updated=? WHERE id=? AND tenant=?",
      "sssdddddss", sched, ptext ? ptext : "{}", mtext, end, end,
      next, next, lc_serve_now(), id, tenant);
  cJSON_free(ptext);
  cJSON_free(mtext);
  cJSON_Delete(row);
  if (rc) return fail(out, 500, "cannot store the cron: %.300s", err);
  row = cron_row(s, tenant, id);
  if (!row) return fail(out, 404, "cron not found%s", NULL);
  *out = cron_json(row);
  cJSON_Delete(row);
  return 200;
}

unsigned lc_crons_route(struct lc_serve *s, const char *method, char **seg, int nseg,
                        const char *tenant, const char *thread, const cJSON *body, int body_ok,
                        cJSON **out) {
  *out = NULL;
  if (!body_ok) return fail(out, 400, "the body is not valid JSON%s", NULL);
  if (body && !cJSON_IsObject(body)) return fail(out, 422, "the body must be an object%s", NULL);
  if (nseg == 0 && !strcmp(method, "POST")) return create(s, tenant, thread, body, out);
  if (thread) return fail(out, 404, "no such route%s", NULL);
  if (nseg == 1 && (!strcmp(seg[0], "search") || !strcmp(seg[0], "count")) &&
      !strcmp(method, "POST"))
    return search(s, tenant, body, !strcmp(seg[0], "count"), out);
  if (nseg != 1) return fail(out, 404, "no such route%s", NULL);
  if (!strcmp(method, "PATCH")) return update(s, tenant, seg[0], body, out);
  cJSON *row = cron_row(s, tenant, seg[0]);
  if (!row) return fail(out, 404, "cron not found%s", NULL);
  unsigned code = 200;
  if (!strcmp(method, "GET")) {
    *out = cron_json(row);
  } else if (!strcmp(method, "DELETE")) {
    char err[256];
    if (lc_dstore_exec(s->ds, NULL, err, sizeof err, "DELETE FROM d_crons WHERE id=? AND tenant=?",
                       "ss", seg[0], tenant))
      code = fail(out, 500, "%s", err);
    else code = 204;
    lc_serve_log(s, "info", "cron_deleted", NULL, seg[0]);
  } else {
    code = fail(out, 404, "no such route%s", NULL);
  }
  cJSON_Delete(row);
  return code;
}

/* ---- firing ---- */

static pthread_t fire_thread;
static pthread_mutex_t fire_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fire_cv = PTHREAD_COND_INITIALIZER;
static int fire_stop, fire_started;

/* Is a run of the thread pending, running or waiting for an answer? */
static int thread_busy(struct lc_serve *s, const char *thread) {
  char err[256];
  cJSON *rows = NULL;
  lc_dstore_exec(s->ds, &rows, err, sizeof err,
                 "SELECT id FROM d_runs WHERE thread_id=? AND deleted=0", "s", thread);
  int busy = 0;
  const cJSON *r;
  cJSON_ArrayForEach(r, rows) {
    char st[32] = "";
    lc_serve_run_status(s, jstr(r, "id"), st, sizeof st);
    busy |= !strcmp(st, "pending") || !strcmp(st, "running") || !strcmp(st, "waiting_input");
  }
  cJSON_Delete(rows);
  return busy;
}

int lc_crons_make_run(struct lc_serve *s, const char *tenant, const char *thread,
                      const char *agent, const char *input, const char *metadata,
                      const char *idem, const char *multitask, const char *stream_mode,
                      char run[33], char *err, size_t n) {
  const struct lc_agent *a = lc_serve_agent(s, agent);
  if (!a) {
    snprintf(err, n, "unknown agent '%.200s'", agent);
    return LC_ENOTFOUND;
  }
  char uu[37];
  lc_serve_uuid(uu);
  size_t j = 0; /* a run id is 32 hex digits (the journal's form) */
  for (const char *p = uu; *p && j < 32; p++)
    if (*p != '-') run[j++] = *p;
  run[j] = 0;
  int rc = lc_dstore_exec(s->ds, NULL, err, n,
                          "INSERT INTO d_runs(id, thread_id, tenant, agent, input, metadata, idem, "
                          "multitask, stream_mode, created) VALUES(?,?,?,?,?,?,?,?,?,?)",
                          "sssssssssd", run, thread, tenant, agent, input, metadata, idem,
                          multitask, stream_mode, lc_serve_now());
  if (rc) {
    run[0] = 0;
    return rc;
  }
  atomic_fetch_add(&s->runs_created, 1);
  atomic_fetch_add(&((struct lc_agent *)a)->created, 1);
  lc_serve_log(s, "info", "run_created", run, agent);
  lc_serve_enqueue(s, run, thread, agent, 0);
  return 0;
}

/* Creates the run of one tick (at most once: its key is the tick), then
 * moves the cron on past now. */
static void fire(struct lc_serve *s, const cJSON *row, double now) {
  const char *id = jstr(row, "id"), *tenant = jstr(row, "tenant"), *thread = jstr(row, "thread_id"),
             *agent = jstr(row, "agent");
  const cJSON *tv = cJSON_GetObjectItem(row, "next_run_at");
  if (!id || !tenant || !agent || !cJSON_IsNumber(tv)) return;
  double tick = tv->valuedouble;
  char err[512], key[128], run[33] = "";
  snprintf(key, sizeof key, "luact-cron:%s:%.0f", id, tick);
  cJSON *payload = parsed(row, "payload");
  const char *mt = jstr(payload, "multitask_strategy");
  const struct lc_agent *a = lc_serve_agent(s, agent);
  int gone = 0;
  if (thread) {
    cJSON *t = NULL;
    lc_dstore_exec(s->ds, &t, err, sizeof err,
                   "SELECT id FROM d_threads WHERE id=? AND tenant=?", "ss", thread, tenant);
    gone = cJSON_GetArraySize(t) == 0;
    cJSON_Delete(t);
  }
  if (gone) {
    /* Its thread was deleted: so is the cron (LangGraph's behaviour). */
    lc_dstore_exec(s->ds, NULL, err, sizeof err, "DELETE FROM d_crons WHERE id=?", "s", id);
    lc_serve_log(s, "info", "cron_deleted", NULL, "its thread was deleted");
    cJSON_Delete(payload);
    return;
  }
  if (!a) {
    lc_serve_log(s, "warn", "cron_skipped", NULL, "its agent is no longer served");
  } else if (thread && (!mt || !strcmp(mt, "reject")) && thread_busy(s, thread)) {
    lc_serve_log(s, "info", "cron_skipped", NULL, "its thread is busy (multitask_strategy reject)");
  } else {
    cJSON *md = cJSON_Duplicate(cJSON_GetObjectItem(payload, "metadata"), 1);
    if (!cJSON_IsObject(md)) {
      cJSON_Delete(md);
      md = cJSON_CreateObject();
    }
    cJSON_DeleteItemFromObjectCaseSensitive(md, "cron_id");
    cJSON_AddStringToObject(md, "cron_id", id);
    const cJSON *in = cJSON_GetObjectItem(payload, "input");
    const cJSON *sm = cJSON_GetObjectItem(payload, "stream_mode");
    char *itext = in ? cJSON_PrintUnformatted(in) : strdup("null");
    char *mtext = cJSON_PrintUnformatted(md);
    char *smtext = sm ? cJSON_PrintUnformatted(sm) : NULL;
    cJSON_Delete(md);
    int rc = !itext || !mtext ? LC_ENOMEM
                              : lc_crons_make_run(s, tenant, thread, agent, itext, mtext, key,
                                                  mt ? mt : "reject", smtext, run, err, sizeof err);
    cJSON_free(itext);
    cJSON_free(mtext);
    cJSON_free(smtext);
    if (rc == 0) {
      lc_serve_log(s, "info", "cron_fired", run, id);
    } else if (rc == LC_ESTATE) {
      run[0] = 0; /* this tick's run exists: made by another daemon, or before a crash */
    } else {
      lc_serve_log(s, "error", "cron_fire", NULL, err);
      cJSON_Delete(payload);
      return; /* the tick stays due: tried again at the next look */
    }
  }
  cJSON_Delete(payload);
  /* Missed ticks fire once: the next time is after now, not after tick. */
  struct lc_cron cr;
  const cJSON *ev = cJSON_GetObjectItem(row, "end_time");
  double end = cJSON_IsNumber(ev) ? ev->valuedouble : -1;
  double next = lc_cron_parse(jstr(row, "schedule"), &cr, err, sizeof err)
                    ? -1
                    : next_fire(&cr, now > tick ? now : tick, end);
  lc_dstore_exec(s->ds, NULL, err, sizeof err,
                 "UPDATE d_crons SET next_run_at=CASE WHEN ?<0 THEN NULL ELSE ? END, "
                 "last_run_id=COALESCE(?, last_run_id), updated=? WHERE id=? AND next_run_at=?",
                 "ddsdsd", next, next, run[0] ? run : NULL, lc_serve_now(), id, tick);
}

static long poll_ms(void) {
  const char *p = getenv("LUACT_CRON_POLL_MS");
  long v = p ? atol(p) : 1000;
  return v < 10 ? 10 : v > 60000 ? 60000 : v;
}

static long test_pause_ms(void) {
  const char *p = getenv("LUACT_CRON_TEST_PAUSE_MS");
  long v = p ? atol(p) : 0;
  return v < 0 ? 0 : v > 10000 ? 10000 : v;
}

static void *fire_loop(void *ud) {
  struct lc_serve *s = ud;
  long ms = poll_ms();
  pthread_mutex_lock(&fire_mu);
  while (!fire_stop) {
    pthread_mutex_unlock(&fire_mu);
    double now = cron_now();
    char err[256];
    cJSON *rows = NULL;
    if (lc_dstore_exec(s->ds, &rows, err, sizeof err,
                       "SELECT * FROM d_crons WHERE next_run_at IS NOT NULL AND next_run_at<=? "
                       "ORDER BY next_run_at LIMIT 100",
                       "d", now) == 0) {
      /* Tests: a pause between the look and the firing, so that two
       * daemons of a fleet surely see the same tick due. */
      long pause = cJSON_GetArraySize(rows) ? test_pause_ms() : 0;
      if (pause) {
        struct timespec p = {pause / 1000, (pause % 1000) * 1000000L};
        nanosleep(&p, NULL);
      }
      const cJSON *r;
      cJSON_ArrayForEach(r, rows) {
        if (atomic_load(&s->stopping)) break;
        fire(s, r, now);
      }
    } else {
      lc_serve_log(s, "error", "cron_look", NULL, err);
    }
    cJSON_Delete(rows);
    if (!atomic_load(&s->stopping)) lc_inbox_deliver(s); /* input.inject (inbox.c) */
    pthread_mutex_lock(&fire_mu);
    if (fire_stop) break;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&fire_cv, &fire_mu, &ts);
  }
  pthread_mutex_unlock(&fire_mu);
  return NULL;
}

int lc_crons_start(struct lc_serve *s, char *err, size_t n) {
  if (pthread_create(&fire_thread, NULL, fire_loop, s)) {
    snprintf(err, n, "cannot start the cron thread");
    return LC_ENOMEM;
  }
  fire_started = 1;
  return 0;
}

void lc_crons_stop(void) {
  if (!fire_started) return;
  pthread_mutex_lock(&fire_mu);
  fire_stop = 1;
  pthread_cond_signal(&fire_cv);
  pthread_mutex_unlock(&fire_mu);
  pthread_join(fire_thread, NULL);
  fire_started = 0;
}
