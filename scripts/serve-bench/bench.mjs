// scripts/serve-bench/bench.mjs: luact serve under load (driven by
// scripts/serve-bench/run). For each concurrency C: N runs of the echo
// agent through POST /runs/wait, C in flight at once -> runs finished per
// second; then streams (POST /runs/stream), C at once -> time to the
// first step event, p50 and p99. Node's own fetch, no dependencies.
const url = process.env.LUACT_URL;
const levels = (process.env.LEVELS || "1,100,1000").split(",").map(Number);

async function pool(n, c, fn) {
  let next = 0;
  const workers = Array.from({ length: Math.min(c, n) }, async () => {
    while (next < n) { const i = next++; await fn(i); }
  });
  await Promise.all(workers);
}

function pct(a, p) {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

const body = JSON.stringify({ assistant_id: "echo", input: { x: 1 } });
const hdr = { "Content-Type": "application/json" };
const rows = [];
for (const c of levels) {
  const n = Math.max(200, c * 2);
  let failed = 0;
  const t0 = performance.now();
  await pool(n, c, async () => {
    const r = await fetch(`${url}/runs/wait`, { method: "POST", headers: hdr, body });
    const j = await r.json();
    if (r.status !== 200 || j.__error__) failed++;
  });
  const secs = (performance.now() - t0) / 1000;
  const ttfe = [];
  await pool(Math.min(n, 1000), c, async () => {
    const s0 = performance.now();
    const r = await fetch(`${url}/runs/stream`, { method: "POST", headers: hdr, body });
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let text = "", first = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
      if (!first && text.includes("event: custom")) first = performance.now() - s0;
    }
    ttfe.push(first);
  });
  rows.push({ concurrency: c, runs: n, failed, runs_per_s: +(n / secs).toFixed(1),
              ttfe_p50_ms: +pct(ttfe, 0.5).toFixed(1), ttfe_p99_ms: +pct(ttfe, 0.99).toFixed(1) });
}
console.log(JSON.stringify(rows));
