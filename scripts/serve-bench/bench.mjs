// scripts/serve-bench/bench.mjs: one server under load (driven by
// scripts/serve-bench/run, which starts the servers and the mock LLM). The
// same client for every server: Node's fetch, the same request bodies
// (LangGraph's run shape), so the client's cost is the same on each side.
//
// For each concurrency C (LEVELS), N = max(RUNS_MIN, 2C) runs of the bench
// task (assistant "lookup": ReAct with the lookup tool against the mock):
//  - created/s: N POST /runs (background), C in flight, until every 2xx;
//  - finished/s: N / the time from the first create until the mock has
//    served every run's K+1 chat calls (server-agnostic: the mock counts);
//  - ttfe: POST /runs/stream, C at once (at most 1000 streams): the time
//    to the first event (metadata) and to the first step event (luact: its
//    journal's header, "custom"; LangGraph: the input state, "values"),
//    p50 and p99;
//  - RSS of the server: idle before, peak while the N runs execute;
//    per active run = (peak - idle) / C.
// First, WAITING runs that wait for a person (assistant "asker", each on a
// thread of its own): the RSS they add, per run (2 s after the last).
// Prints one JSON object.
const url = process.env.SERVER_URL;
const mock = process.env.MOCK_URL_ROOT;
const pid = Number(process.env.SERVER_PID);
const levels = (process.env.LEVELS || "1,100,1000").split(",").map(Number);
const steps = Number(process.env.STEPS || 5);
const runsMin = Number(process.env.RUNS_MIN || 200);
const waiting = Number(process.env.WAITING || 1000);
const stepEvent = process.env.STEP_EVENT; // "custom" (luact) or "values" (LangGraph)
const perC = Number(process.env.RUNS_PER_C || 2); // N = max(RUNS_MIN, RUNS_PER_C * C)
const drainMax = Number(process.env.DRAIN_MAX_S || 600) * 1000; // then finished/s counts what finished
// STREAM_CUT=1: a stream is closed at its first step event (its run goes
// on, unwatched); the answers are checked in the background phase.
const streamCut = process.env.STREAM_CUT === "1";
import { readFileSync } from "node:fs";

const hdr = { "Content-Type": "application/json" };
const prompt = `Look up key-1 through key-${steps} with the lookup tool, one call each, then report all values.`;
const body = JSON.stringify({
  assistant_id: "lookup",
  input: { messages: [{ role: "user", content: prompt }] },
  config: { recursion_limit: 2 * steps + 10 },
});

async function pool(n, c, fn) {
  let next = 0;
  const workers = Array.from({ length: Math.min(c, n) }, async () => {
    while (next < n) { const i = next++; await fn(i); }
  });
  await Promise.all(workers);
}
const pct = (a, p) => { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function rssKiB() {
  const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/);
  return m ? Number(m[1]) : 0;
}
async function mockStats() { return (await fetch(`${mock}/_stats`)).json(); }

// One run first, untimed: both servers load the graph/script and warm up.
{
  const r = await fetch(`${url}/runs/wait`, { method: "POST", headers: hdr, body });
  const j = await r.json();
  if (r.status !== 200) throw new Error(`warm-up run: ${r.status} ${JSON.stringify(j).slice(0, 300)}`);
}
// Waiting runs first, on a server that ran one run only (the load phases
// leave allocator caches that shrink at their own pace).
let wait = null;
if (waiting > 0) {
  await sleep(500);
  const idle = rssKiB();
  let bad = 0;
  await pool(waiting, 100, async () => {
    try {
      const t = await (await fetch(`${url}/threads`, { method: "POST", headers: hdr, body: "{}" })).json();
      const r = await fetch(`${url}/threads/${t.thread_id}/runs/wait`, { method: "POST", headers: hdr,
        body: JSON.stringify({ assistant_id: "asker", input: {} }) });
      const j = await r.json();
      if (!JSON.stringify(j).includes("__interrupt__")) bad++;
    } catch { bad++; }
  });
  await sleep(2000);
  const after = rssKiB();
  wait = { runs: waiting, not_waiting: bad, rss_before_kib: idle, rss_after_kib: after,
           kib_per_waiting_run: +((after - idle) / (waiting - bad)).toFixed(2) };
}
const expected = `DONE ${Array.from({ length: steps }, (_, i) => `value-of-key-${i + 1}`).join(",")}`;
const rows = [];
for (const c of levels) {
  const n = Math.max(runsMin, perC * c);
  await sleep(300);
  const idle = rssKiB();
  let peak = idle, sampling = true;
  const sampler = (async () => { while (sampling) { peak = Math.max(peak, rssKiB()); await sleep(20); } })();
  const before = await mockStats();
  let failed = 0;
  const t0 = performance.now();
  // A create that fails (an error status, or no connection within the
  // client's 10 s) counts as failed; the others are waited for.
  await pool(n, c, async () => {
    try {
      const r = await fetch(`${url}/runs`, { method: "POST", headers: hdr, body });
      await r.arrayBuffer();
      if (r.status !== 200 && r.status !== 201 && r.status !== 202) failed++;
    } catch { failed++; }
  });
  const made = n - failed;
  const tCreated = performance.now();
  // Done when the mock gave every run its final answer (or nothing moved
  // for 60 s: the missing ones count as wrong).
  let st, last = -1, lastT = performance.now();
  for (;;) {
    st = await mockStats();
    if (st.final_replies - before.final_replies >= made) break;
    if (st.chat + st.chat_stream !== last) { last = st.chat + st.chat_stream; lastT = performance.now(); }
    if (performance.now() - lastT > 60_000 || performance.now() - t0 > drainMax) break;
    await sleep(10);
  }
  const tDone = performance.now();
  sampling = false;
  await sampler;
  const finals = st.final_replies - before.final_replies;
  // Streams.
  const ttfe = [], ttstep = [];
  let streamBad = 0;
  await pool(Math.min(n, 1000), c, async () => {
    const s0 = performance.now();
    let text = "", first = 0, step = 0;
    try {
      const r = await fetch(`${url}/runs/stream`, { method: "POST", headers: hdr,
        body: JSON.stringify({ ...JSON.parse(body), stream_mode: ["values"] }) });
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += dec.decode(value, { stream: true });
        if (!first && text.includes("event: ")) first = performance.now() - s0;
        if (!step && text.includes(`event: ${stepEvent}`)) step = performance.now() - s0;
        if (step && streamCut) { await reader.cancel(); break; }
      }
    } catch { /* counted below */ }
    if (streamCut ? !step : !text.includes(expected)) { streamBad++; return; }
    ttfe.push(first); ttstep.push(step);
  });
  rows.push({
    concurrency: c, runs: n, failed, wrong: made - finals, stream_wrong: streamBad,
    created_per_s: +(made / ((tCreated - t0) / 1000)).toFixed(1),
    finished_per_s: +(finals / ((tDone - t0) / 1000)).toFixed(1),
    ttfe_p50_ms: +pct(ttfe, 0.5).toFixed(1), ttfe_p99_ms: +pct(ttfe, 0.99).toFixed(1),
    ttstep_p50_ms: +pct(ttstep, 0.5).toFixed(1), ttstep_p99_ms: +pct(ttstep, 0.99).toFixed(1),
    rss_idle_kib: idle, rss_peak_kib: peak,
    kib_per_active_run: +((peak - idle) / Math.min(c, n)).toFixed(1),
  });
}
console.log(JSON.stringify({ levels: rows, waiting: wait }));
