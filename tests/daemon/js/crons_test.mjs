// The official LangGraph JS SDK's client.crons.* against `luact serve`
// (started by tests/daemon/check_serve_crons.c, case sdk_crons_js, with its
// cron clock at 2030-01-01T00:00:30Z in the file LUACT_CLOCK). A tick
// fires when this script moves that clock. Exits 0 when every check holds.
import { Client } from "@langchain/langgraph-sdk";
import assert from "node:assert/strict";
import { renameSync, writeFileSync } from "node:fs";

const client = new Client({ apiUrl: process.env.LUACT_URL, apiKey: null,
  defaultHeaders: { Authorization: `Bearer ${process.env.LUACT_TOKEN}` } });

function setClock(iso) {
  const tmp = `${process.env.LUACT_CLOCK}.tmp`;
  writeFileSync(tmp, `${Date.parse(iso) / 1000}\n`);
  renameSync(tmp, process.env.LUACT_CLOCK);
}

// Polls until cond() holds (the daemon looks every 20 ms).
async function until(what, cond) {
  const end = Date.now() + 60000;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// A stateless cron.
const c1 = await client.crons.create("echo", {
  schedule: "*/5 * * * *", input: { a: 1 }, metadata: { who: "sdk" } });
assert.equal(c1.assistant_id, "echo");
assert.equal(c1.schedule, "*/5 * * * *");
assert.equal(c1.thread_id, null);
assert.equal(c1.next_run_date, "2030-01-01T00:05:00.000Z");
assert.deepEqual(c1.metadata, { who: "sdk" });
assert.deepEqual(c1.payload.input, { a: 1 });

// A cron on a thread: its runs are the thread's.
const thread = await client.threads.create();
const c2 = await client.crons.createForThread(thread.thread_id, "echo", {
  schedule: "0 * * * *", input: { b: 2 }, multitaskStrategy: "enqueue" });
assert.equal(c2.thread_id, thread.thread_id);
assert.equal(c2.next_run_date, "2030-01-01T01:00:00.000Z");

// search and count, with their filters
let all = await client.crons.search({ limit: 10 });
assert.equal(all.length, 2);
const mine = await client.crons.search({ threadId: thread.thread_id });
assert.deepEqual(mine.map((c) => c.cron_id), [c2.cron_id]);
const sorted = await client.crons.search({ sortBy: "next_run_date", sortOrder: "asc" });
assert.deepEqual(sorted.map((c) => c.cron_id), [c1.cron_id, c2.cron_id]);
assert.equal((await client.crons.search({ limit: 1, offset: 1 })).length, 1);
assert.equal(await client.crons.count(), 2);
assert.equal(await client.crons.count({ assistantId: "echo" }), 2);
assert.equal(await client.crons.count({ threadId: thread.thread_id }), 1);

// 01:00:10: both fired once (the stateless one missed 00:05..00:55: once)
setClock("2030-01-01T01:00:10Z");
await until("both crons moved on", async () => {
  const cs = await client.crons.search({ sortBy: "cron_id" });
  const next = Object.fromEntries(cs.map((c) => [c.cron_id, c.next_run_date]));
  return next[c1.cron_id] === "2030-01-01T01:05:00.000Z" &&
    next[c2.cron_id] === "2030-01-01T02:00:00.000Z";
});
const runs = await until("the thread's run", async () => {
  const r = await client.runs.list(thread.thread_id);
  return r.length === 1 ? r : null;
});
assert.equal(runs[0].metadata.cron_id, c2.cron_id);
const values = await client.runs.join(thread.thread_id, runs[0].run_id);
assert.deepEqual(values.echo, { b: 2 });

// delete; a second delete and an unknown id are 404s
await client.crons.delete(c1.cron_id);
await client.crons.delete(c2.cron_id);
assert.equal(await client.crons.count(), 0);
await assert.rejects(client.crons.delete(c1.cron_id), /404/);
all = await client.crons.search();
assert.equal(all.length, 0);

// bad schedules are the SDK's errors (422)
await assert.rejects(client.crons.create("echo", { schedule: "61 * * * *" }), /422/);
console.error("crons_test: ok");
