// report.mjs DIR SYSTEM...: the table of scripts/serve-bench/run, with
// luact's ratios to LangGraph (x: luact's figure / LangGraph's for rates,
// LangGraph's / luact's for times and memory: above 1 is luact ahead).
import { readFileSync } from "node:fs";
const [dir, ...systems] = process.argv.slice(2);
const res = Object.fromEntries(systems.map((s) => [s, JSON.parse(readFileSync(`${dir}/${s}.json`, "utf8"))]));
const lg = res.langgraph;
const cols = [
  ["created_per_s", "runs created/s", 1], ["finished_per_s", "runs finished/s", 1],
  ["ttfe_p50_ms", "first event p50 ms", -1], ["ttfe_p99_ms", "first event p99 ms", -1],
  ["ttstep_p50_ms", "first step p50 ms", -1], ["ttstep_p99_ms", "first step p99 ms", -1],
  ["kib_per_active_run", "KiB per active run", -1],
];
const lines = [`| concurrency | figure | ${systems.join(" | ")}${lg ? " | " + systems.filter((s) => s !== "langgraph").map((s) => `${s} / langgraph`).join(" | ") : ""} |`];
lines.push("|" + " --- |".repeat(2 + systems.length + (lg ? systems.length - 1 : 0)));
const levels = res[systems[0]].levels.map((l) => l.concurrency);
for (const c of levels) {
  for (const [k, name, dirn] of cols) {
    const v = systems.map((s) => res[s].levels.find((l) => l.concurrency === c)?.[k]);
    let row = `| ${c} | ${name} | ${v.join(" | ")}`;
    if (lg) {
      const b = lg.levels.find((l) => l.concurrency === c)?.[k];
      row += " | " + systems.filter((s) => s !== "langgraph").map((s) => {
        const a = res[s].levels.find((l) => l.concurrency === c)?.[k];
        const r = dirn > 0 ? a / b : b / a;
        return Number.isFinite(r) ? `${r.toFixed(1)}x` : "-";
      }).join(" | ");
    }
    lines.push(row + " |");
  }
}
const w = systems.map((s) => res[s].waiting?.kib_per_waiting_run);
lines.push(`| waiting | KiB per waiting run | ${w.join(" | ")}${lg ? " | " + systems.filter((s) => s !== "langgraph").map(() => "").join(" | ") : ""} |`);
const bad = systems.flatMap((s) => res[s].levels.filter((l) => l.failed || l.wrong || l.stream_wrong)
  .map((l) => `${s} at ${l.concurrency}: ${l.failed} failed creates, ${l.wrong} runs without the right answer, ${l.stream_wrong} streams without it`));
console.log(lines.join("\n"));
if (bad.length) console.log("\nproblems:\n" + bad.join("\n"));
