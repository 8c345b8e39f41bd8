// The official LangGraph JS SDK against `luact serve` (started by
// tests/daemon/check_serve.c, case sdk_langgraph_js, which passes the
// address and a token). Agents: echo, asker (luact.ask), slow (sleeps in
// journaled steps) and react (luact.react with a tool, against lc-mockllm).
// Exits 0 when every check holds; the first failure throws.
import { Client } from "@langchain/langgraph-sdk";
import assert from "node:assert/strict";

const client = new Client({ apiUrl: process.env.LUACT_URL, apiKey: null,
  defaultHeaders: { Authorization: `Bearer ${process.env.LUACT_TOKEN}` } });

async function collect(gen) {
  const out = [];
  for await (const part of gen) out.push(part);
  return out;
}

// Agents are the SDK's assistants.
const assistants = await client.assistants.search({ limit: 100 });
const names = assistants.map((a) => a.assistant_id).sort();
for (const n of ["asker", "echo", "react", "slow"]) assert.ok(names.includes(n), n);
const echo = await client.assistants.get("echo");
assert.equal(echo.graph_id, "echo");

// Threads, wait: values carry across runs of one thread.
const thread = await client.threads.create({ metadata: { who: "sdk" } });
let values = await client.runs.wait(thread.thread_id, "echo", { input: { a: 1 } });
assert.equal(values.n, 1);
values = await client.runs.wait(thread.thread_id, "echo", { input: { a: 2 } });
assert.equal(values.n, 2);
const st = await client.threads.getState(thread.thread_id);
assert.equal(st.values.n, 2);
const found = await client.threads.search({ metadata: { who: "sdk" } });
assert.equal(found.length, 1);

// Background run + join.
const run = await client.runs.create(thread.thread_id, "echo", { input: { a: 3 } });
const joined = await client.runs.join(thread.thread_id, run.run_id);
assert.equal(joined.n, 3);
const got = await client.runs.get(thread.thread_id, run.run_id);
assert.equal(got.status, "success");
const list = await client.runs.list(thread.thread_id);
assert.equal(list.length, 3);

// Stream, then join the stream again from an id: no duplicate, no gap.
let created;
const parts = await collect(client.runs.stream(null, "slow", {
  input: { steps: 3 }, onRunCreated: (m) => { created = m; } }));
assert.ok(created && created.run_id, "onRunCreated got the run id");
const events = parts.map((p) => p.event);
assert.equal(events[0], "metadata");
assert.ok(events.includes("custom"));
assert.deepEqual(parts.find((p) => p.event === "values").data, { done: 3 });
// The SDK does not hand out SSE ids: read them with a plain request.
const url = `${process.env.LUACT_URL}/runs/${created.run_id}/stream`;
const hdr = { Authorization: `Bearer ${process.env.LUACT_TOKEN}` };
const full = await (await fetch(url, { headers: hdr })).text();
const ids = [...full.matchAll(/^id: (.*)$/gm)].map((m) => m[1]);
assert.equal(new Set(ids).size, ids.length, "ids are unique");
const mid = ids[Math.floor(ids.length / 2)];
const rest = await collect(client.runs.joinStream(null, created.run_id, { lastEventId: mid }));
const restCustom = rest.filter((p) => p.event === "custom").map((p) => p.data.seq);
const allCustom = parts.filter((p) => p.event === "custom").map((p) => p.data.seq);
assert.deepEqual(restCustom, allCustom.filter((s) => s > Number(mid)));

// Cancel a long run.
const t2 = await client.threads.create();
const long = await client.runs.create(t2.thread_id, "slow", { input: { steps: 100000 } });
await client.runs.cancel(t2.thread_id, long.run_id, true);
const after = await client.runs.get(t2.thread_id, long.run_id);
assert.equal(after.luact_status, "cancelled");

// Human in the loop: the interrupt, then the resume command.
const t3 = await client.threads.create();
const asked = await client.runs.wait(t3.thread_id, "asker", { input: null });
assert.equal(asked.__interrupt__[0].value, "your name?");
const th = await client.threads.get(t3.thread_id);
assert.equal(th.status, "interrupted");
const answered = await client.runs.wait(t3.thread_id, "asker", { command: { resume: "Ann" } });
assert.equal(answered.hello, "Ann");
// The same answer again is harmless.
const again = await client.runs.wait(t3.thread_id, "asker", { command: { resume: "Ann" } });
assert.equal(again.hello, "Ann");

// A plain ReAct agent (a tool call, then the answer) against the mock LLM.
const t4 = await client.threads.create();
const r = await client.runs.wait(t4.thread_id, "react", { input: { question: "What is 17 + 25?" } });
assert.equal(r.status, "finished");
assert.match(String(r.answer), /42/);
const rs = await collect(client.runs.stream(t4.thread_id, "react", {
  input: { question: "What is 17 + 25?" } }));
const kinds = rs.filter((p) => p.event === "custom").map((p) => p.data.step.kind);
assert.ok(kinds.includes("llm"), "the stream shows the LLM calls");
assert.ok(kinds.includes("tool"), "the stream shows the tool call");

// Token deltas (the model streams): streamMode messages-tuple yields the
// LLM's chunks live; those of the last message make up the answer.
const t5 = await client.threads.create();
const ms = await collect(client.runs.stream(t5.thread_id, "react", {
  input: { question: "What is 17 + 25?" }, streamMode: ["messages-tuple", "values"] }));
const chunks = ms.filter((p) => p.event === "messages");
assert.ok(chunks.length > 1, "the answer came in several chunks");
assert.ok(!ms.some((p) => p.event === "luact/gap"), "no gap: every delta was streamed");
const lastId = chunks[chunks.length - 1].data[0].id;
const text = chunks.filter((p) => p.data[0].id === lastId).map((p) => p.data[0].content).join("");
const fin = ms.filter((p) => p.event === "values").pop().data;
assert.equal(text, fin.answer);
assert.match(text, /42/);
// Joining the thread's stream (LangGraph's threads.joinStream) from an id
// of that run: the rest of its events, deltas included, none twice.
const tstream = await (await fetch(`${process.env.LUACT_URL}/threads/${t5.thread_id}/stream?stream_mode=messages-tuple`,
  { headers: { Authorization: `Bearer ${process.env.LUACT_TOKEN}` } })).text();
const tids = [...tstream.matchAll(/^id: (.*)$/gm)].map((m) => m[1]);
assert.equal(new Set(tids).size, tids.length, "thread stream ids are unique");
const tmid = tids[Math.floor(tids.length / 2)];
const trest = await collect(client.threads.joinStream(t5.thread_id, {
  lastEventId: tmid, streamMode: "messages-tuple" }));
const tail = tids.slice(tids.indexOf(tmid) + 1);
assert.equal(trest.filter((p) => p.event === "messages").length,
  tail.filter((id) => /\.0\.\d+$/.test(id)).length);
assert.ok(tids.every((id) => id.startsWith(`${ms.find((p) => p.event === "metadata").data.run_id}:`)),
  "a thread stream's ids name the run");

// Store.
await client.store.putItem(["users", "ann"], "prefs", { tz: "UTC" });
const item = await client.store.getItem(["users", "ann"], "prefs");
assert.equal(item.value.tz, "UTC");
const items = await client.store.searchItems(["users"]);
assert.equal(items.items.length, 1);
await client.store.deleteItem(["users", "ann"], "prefs");

console.log("sdk: all checks passed");
