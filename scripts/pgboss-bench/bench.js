// bench.js: pg-boss (the reference PostgreSQL queue) claiming and
// completing JOBS jobs with WORKERS worker processes, for scripts/pg-bench.
//
//   node bench.js URL JOBS WORKERS BATCH [HOLD_MS [FETCH_MAX [SPREAD]]]
//   node bench.js --explain URL JOBS
//
// --explain: JOBS jobs inserted and analysed, then the plan of pg-boss's
// own fetch statement (its plans.fetchNextJob, for one job) with its
// timings and buffers (EXPLAIN ANALYZE: the fetch runs; the database is
// the bench's own). pg-bench's EXPLAIN_PGBOSS=1.
//
// The jobs are inserted first (as pg-bench queues luact's runs first), in
// a database of their own; then WORKERS processes, each with its own
// PgBoss and connection pool, loop fetch(BATCH) -> complete(ids) until the
// queue is empty (pg-boss's fastest path: no polling interval, one
// statement per fetch and one per completion of a batch). With HOLD_MS,
// each worker has BATCH slots and holds each job HOLD_MS before it is
// done (as pg-bench's RUN_MS runs last): whenever jobs are done it
// completes all of them in one call, then fetches as many as it has free
// slots, until a fetch finds the queue empty (as a luact daemon hands back
// its done runs and claims for its free slots). With FETCH_MAX, no fetch
// asks for more than that many jobs (pg-bench's PGBOSS_AT_LUACT_BATCH:
// pg-boss at the batch size a luact claim had). With SPREAD 1, a job is
// held a time drawn uniformly from HOLD_MS/2 to 3*HOLD_MS/2 (pg-bench's
// RUN_SPREAD). Prints one line:
//   workers=W jobs=N jobs_per_s=X fetch_p50_us=.. fetch_p99_us=.. fetch_us_per_job=..
//   complete_us_per_job=.. (the complete() calls' time per job)
//   backend_cpu_us_per_job=.. backend_cpu_wait_us_per_job=.. (the workers'
//   server backends' time on a CPU, and waiting for one, per job)
// jobs/s is from the jobs' own timestamps (first start to last completion),
// as pg-bench's runs/s is from the runs'.
'use strict'
const { fork } = require('child_process')
const fs = require('fs')
const PgBoss = require('pg-boss')

const QUEUE = 'bench'

// The server backends of this worker's connections (its pool's, named
// for it): their time on a CPU and waiting for one, in ns, from
// /proc/PID/schedstat (the server runs on this machine), read before the
// pool closes. The server's CPU per job, beside luact's fleet backends'
// (pg-bench), is a measure that waiting for a CPU does not inflate.
async function backendSched (b, name) {
  const r = await b.getDb().executeSql(
    'SELECT pid FROM pg_stat_activity WHERE application_name = $1', [name])
  let cpu = 0
  let wait = 0
  for (const { pid } of r.rows) {
    try {
      const [c, w] = fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ').map(Number)
      cpu += c
      wait += w
    } catch (e) { return null } // not readable (the server elsewhere): no figure
  }
  return { cpu, wait }
}

function boss (url, extra) {
  // No maintenance or cron work inside the measured window.
  const b = new PgBoss({ connectionString: url, supervise: false, schedule: false, ...extra })
  b.on('error', (e) => { console.error('pg-boss:', e.message); process.exitCode = 1 })
  return b
}

async function worker (url, batch, fetchMax) {
  const name = `pgboss-bench worker ${process.pid}`
  const b = boss(url, { migrate: false, max: 2, application_name: name })
  await b.start()
  const lat = []
  let jobs = 0
  let cus = 0 // complete()'s time: a luact claim also hands back the last runs' leases
  for (;;) {
    const t0 = process.hrtime.bigint()
    const got = await b.fetch(QUEUE, { batchSize: Math.min(batch, fetchMax) })
    const us = Number(process.hrtime.bigint() - t0) / 1000
    if (!got.length) break
    lat.push([us, got.length])
    jobs += got.length
    const t1 = process.hrtime.bigint()
    await b.complete(QUEUE, got.map((j) => j.id))
    cus += Number(process.hrtime.bigint() - t1) / 1000
  }
  const sched = await backendSched(b, name)
  await b.stop({ graceful: false, wait: true })
  process.send({ lat, jobs, cus, sched })
}

// A worker whose jobs last holdMs each, with batch slots.
async function holdingWorker (url, batch, holdMs, fetchMax, spread) {
  const name = `pgboss-bench worker ${process.pid}`
  const b = boss(url, { migrate: false, max: 2, application_name: name })
  await b.start()
  const lat = []
  let jobs = 0
  let cus = 0
  let active = 0
  let done = []
  let wake = null
  let empty = false
  for (;;) {
    if (done.length) {
      const ids = done
      done = []
      const t1 = process.hrtime.bigint()
      await b.complete(QUEUE, ids)
      cus += Number(process.hrtime.bigint() - t1) / 1000
    }
    if (!empty && active < batch) {
      const want = Math.min(batch - active, fetchMax) // (active falls while the fetch is awaited)
      const t0 = process.hrtime.bigint()
      const got = await b.fetch(QUEUE, { batchSize: want })
      const us = Number(process.hrtime.bigint() - t0) / 1000
      if (got.length) lat.push([us, got.length])
      if (got.length < want) empty = true
      jobs += got.length
      active += got.length
      for (const j of got) {
        setTimeout(() => { active--; done.push(j.id); if (wake) { const w = wake; wake = null; w() } },
          spread ? holdMs * (0.5 + Math.random()) : holdMs)
      }
    }
    if (!active && !done.length && empty) break
    // (free slots and jobs left: fetch again at once)
    if (!done.length && (empty || active >= batch)) await new Promise((resolve) => { wake = resolve })
  }
  const sched = await backendSched(b, name)
  await b.stop({ graceful: false, wait: true })
  process.send({ lat, jobs, cus, sched })
}

function pct (sorted, p) {
  if (!sorted.length) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
}

async function main () {
  const [url, jobsArg, workersArg, batchArg, holdArg, fetchArg, spreadArg] = process.argv.slice(2)
  const N = parseInt(jobsArg, 10)
  const W = parseInt(workersArg, 10)
  const B = parseInt(batchArg, 10)
  const b = boss(url, {})
  await b.start() // makes the schema
  await b.createQueue(QUEUE)
  for (let i = 0; i < N; i += 1000) {
    const chunk = []
    for (let k = i; k < Math.min(N, i + 1000); k++) chunk.push({ name: QUEUE, data: { i: k } })
    await b.insert(chunk)
  }
  const results = await Promise.all(Array.from({ length: W }, () => new Promise((resolve, reject) => {
    const c = fork(__filename, ['--worker', url, String(B), holdArg || '0', fetchArg || String(B),
      spreadArg || '0'])
    let msg = null
    c.on('message', (m) => { msg = m })
    c.on('exit', (code) => (code === 0 && msg ? resolve(msg) : reject(new Error('worker exit ' + code))))
  })))
  const db = b.getDb()
  const r = await db.executeSql(
    `SELECT count(*)::int AS n, extract(epoch FROM max(completed_on) - min(started_on))::float8 AS s
     FROM pgboss.job WHERE name = $1 AND state = 'completed'`, [QUEUE])
  await b.stop({ graceful: false, wait: true })
  const { n, s } = r.rows[0]
  // The latency a job sees: its fetch statement's, once per job in it.
  const perJob = []
  const perStmt = []
  let us = 0
  for (const w of results) {
    for (const [t, k] of w.lat) {
      perStmt.push(t)
      us += t
      for (let i = 0; i < k; i++) perJob.push(t)
    }
  }
  perJob.sort((x, y) => x - y)
  const jobs = results.reduce((a, w) => a + w.jobs, 0)
  const cus = results.reduce((a, w) => a + w.cus, 0)
  const sched = results.every((w) => w.sched)
    ? results.reduce((a, w) => ({ cpu: a.cpu + w.sched.cpu, wait: a.wait + w.sched.wait }), { cpu: 0, wait: 0 })
    : null
  if (n !== N || jobs !== N) {
    console.error(`pg-boss: ${n} jobs completed, ${jobs} fetched, of ${N}`)
    process.exit(1)
  }
  console.log(`workers=${W} jobs=${N} jobs_per_s=${(n / s).toFixed(1)} ` +
    `fetch_p50_us=${pct(perJob, 0.5).toFixed(0)} fetch_p99_us=${pct(perJob, 0.99).toFixed(0)} ` +
    `fetch_us_per_job=${(us / jobs).toFixed(0)} complete_us_per_job=${(cus / jobs).toFixed(0)} ` +
    `fetches=${perStmt.length}` +
    (sched ? ` backend_cpu_us_per_job=${(sched.cpu / 1000 / jobs).toFixed(1)} ` +
      `backend_cpu_wait_us_per_job=${(sched.wait / 1000 / jobs).toFixed(1)}` : ''))
}

async function explainFetch (url, n) {
  const plans = require('pg-boss/src/plans')
  const b = boss(url, {})
  await b.start()
  await b.createQueue(QUEUE)
  for (let i = 0; i < n; i += 1000) {
    const chunk = []
    for (let k = i; k < Math.min(n, i + 1000); k++) chunk.push({ name: QUEUE, data: { i: k } })
    await b.insert(chunk)
  }
  const db = b.getDb()
  await db.executeSql('ANALYZE')
  const r = await db.executeSql('EXPLAIN (ANALYZE, BUFFERS) ' + plans.fetchNextJob('pgboss')({}), [QUEUE, 1])
  for (const row of r.rows) console.log(row['QUERY PLAN'])
  await b.stop({ graceful: false, wait: true })
}

if (process.argv[2] === '--explain') {
  explainFetch(process.argv[3], parseInt(process.argv[4], 10)).catch((e) => { console.error(e); process.exit(1) })
} else if (process.argv[2] === '--worker') {
  const hold = parseInt(process.argv[5] || '0', 10)
  const batch = parseInt(process.argv[4], 10)
  const fetchMax = parseInt(process.argv[6] || process.argv[4], 10)
  const run = hold > 0 ? holdingWorker(process.argv[3], batch, hold, fetchMax, process.argv[7] === '1')
    : worker(process.argv[3], batch, fetchMax)
  run.catch((e) => { console.error(e); process.exit(1) })
} else {
  main().catch((e) => { console.error(e); process.exit(1) })
}
