// The LangGraph JS SDK calls that luact serve answers since the coverage
// table of docs/serve.md (started by tests/daemon/check_serve_routes.c,
// case sdk_routes_js; agents echo, twice, slowask, quiet). Exits 0 when
// every check holds.
import { Client } from "@langchain/langgraph-sdk";
import assert from "node:assert/strict";

const client = new Client({ apiUrl: process.env.LUACT_URL, apiKey: null,
  defaultHeaders: { Authorization: `Bearer ${process.env.LUACT_TOKEN}` } });

// assistants.create names an agent (if_exists has nothing to decide)
const a = await client.assistants.create({ graphId: "echo", ifExists: "do_nothing" });
assert.equal(a.assistant_id, "echo");
await assert.rejects(client.assistants.update("echo", { metadata: { k: 1 } }), /405/);
await assert.rejects(client.assistants.delete("echo"), /405/);
assert.equal((await client.assistants.search({ metadata: { k: 1 } })).length, 0);

// updateState / patchState / getState at a checkpoint object
const t = await client.threads.create({ metadata: { a: 1 } });
const up = await client.threads.updateState(t.thread_id, { values: { note: "hi" } });
assert.equal(up.checkpoint.thread_id, t.thread_id);
let st = await client.threads.getState(t.thread_id);
assert.equal(st.values.note, "hi");
const out = await client.runs.wait(t.thread_id, "echo", { input: 5 });
assert.equal(out.seen, "hi");
await client.threads.patchState(t.thread_id, { b: 2 });
st = await client.threads.getState(t.thread_id);
assert.equal(st.metadata.a, 1);
assert.equal(st.metadata.b, 2);
await client.runs.wait(t.thread_id, "echo", { input: 6 });
const hist = await client.threads.getHistory(t.thread_id);
const cp = hist.map((h) => h.checkpoint.checkpoint_id).find((id) => id);
assert.ok(cp, "history names the first run's checkpoint");
const at = await client.threads.getState(t.thread_id, { checkpoint_id: cp });
assert.equal(at.values.echo, 5); // as of the first run; the current state is 6
assert.equal((await client.threads.getState(t.thread_id)).values.echo, 6);
assert.equal(await client.threads.count({ values: { echo: 6 } }), 1);
assert.equal(await client.threads.count({ values: { echo: 5 } }), 0);

// getHistory pages with before; threads.create applies supersteps
const older = await client.threads.getHistory(t.thread_id, {
  before: { configurable: { checkpoint_id: cp } } });
assert.equal(older.length, 0); // cp is the oldest
const ss = await client.threads.create({ supersteps: [
  { updates: [{ values: { a: 1 }, asNode: "run" }] }, { updates: [{ values: { b: 2 } }] }] });
assert.deepEqual((await client.threads.getState(ss.thread_id)).values, { a: 1, b: 2 });

// runs.createBatch
const batch = await client.runs.createBatch([
  { assistantId: "echo", input: 1 }, { assistantId: "echo", input: 2 }]);
assert.equal(batch.length, 2);
assert.ok(batch.every((r) => r.run_id && r.status));

// store.listNamespaces by suffix
await client.store.putItem(["users", "ann", "prefs"], "k", { v: 1 });
await client.store.putItem(["users", "ann", "notes"], "k", { v: 2 });
const ns = await client.store.listNamespaces({ suffix: ["prefs"] });
assert.deepEqual(ns.namespaces, [["users", "ann", "prefs"]]);
console.error("routes_test: ok");
