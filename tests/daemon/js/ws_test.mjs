// ws_test.mjs: Node's WebSocket client (node --experimental-websocket)
// against `luact serve`'s thread stream WebSocket (the Agent Protocol's
// WebSocket transport). Run by tests/daemon/check_serve_ws.c, case
// ws_node_client, which passes LUACT_URL and LUACT_TOKEN. Exits non-zero
// on the first failed check.
import assert from "node:assert/strict";

const base = process.env.LUACT_URL;
const token = process.env.LUACT_TOKEN;
const auth = { Authorization: `Bearer ${token}` };

// A WebSocket with a queue of received messages.
function connect(thread) {
  const ws = new WebSocket(`${base.replace(/^http/, "ws")}/threads/${thread}/stream`, {
    headers: auth,
  });
  const queue = [];
  let waiter = null;
  ws.onmessage = (ev) => {
    queue.push(JSON.parse(ev.data));
    if (waiter) waiter();
  };
  const closed = new Promise((res) => (ws.onclose = (ev) => res(ev)));
  const opened = new Promise((res, rej) => {
    ws.onopen = res;
    ws.onerror = rej;
  });
  async function next(pred, what) {
    const deadline = Date.now() + 30000;
    for (;;) {
      const i = queue.findIndex(pred);
      if (i >= 0) return queue.splice(i, 1)[0];
      assert.ok(Date.now() < deadline, `no ${what} came`);
      await new Promise((res) => {
        waiter = res;
        setTimeout(res, 1000);
      });
      waiter = null;
    }
  }
  let id = 0;
  async function command(method, params) {
    const my = ++id;
    ws.send(JSON.stringify({ id: my, method, params }));
    return next((m) => m.type !== "event" && m.id === my, `answer to ${method}`);
  }
  const event = (pred, what) => next((m) => m.type === "event" && pred(m), what);
  return { ws, opened, closed, command, event };
}

const thread = `node-ws-${process.pid}`;
const c = connect(thread);
await c.opened;

// A subscription before the thread has any run: it idles until run.start.
let r = await c.command("subscription.subscribe", { channels: ["values", "lifecycle"] });
assert.equal(r.type, "success");
const sub = r.result.subscriptionId;
assert.ok(sub);

r = await c.command("run.start", { assistant_id: "echo", input: { n: 42 } });
assert.equal(r.type, "success", JSON.stringify(r));
const run = r.result.run_id;
let v = await c.event((m) => m.method === "values", "values");
assert.equal(v.params.data.echo.n, 42);
assert.ok(v.eventId.startsWith(`${run}:`));
let end = await c.event((m) => m.method === "lifecycle" && m.params.event === "end", "end");
assert.equal(end.params.data.status, "success");

// An interrupt: the run asks, input.respond answers, the same run ends.
r = await c.command("run.start", { assistant_id: "asker", input: null });
assert.equal(r.type, "success", JSON.stringify(r));
const asker = r.result.run_id;
v = await c.event(
  (m) => m.method === "values" && m.params.data.__interrupt__,
  "the interrupt",
);
assert.equal(v.params.data.__interrupt__[0].value, "your name?");
end = await c.event((m) => m.method === "lifecycle" && m.params.event === "end", "end");
assert.equal(end.params.data.status, "interrupted");
r = await c.command("input.respond", { interrupt_id: asker, response: "Ann" });
assert.equal(r.type, "success", JSON.stringify(r));
v = await c.event((m) => m.method === "values" && m.params.data.hello, "the answer");
assert.equal(v.params.data.hello, "Ann");

r = await c.command("state.get", {});
assert.equal(r.type, "success");
assert.equal(r.result.values.hello, "Ann");
r = await c.command("nope.nope", {});
assert.equal(r.type, "error");
assert.equal(r.error, "unknown_command");
r = await c.command("subscription.unsubscribe", { subscriptionId: sub });
assert.equal(r.type, "success");
r = await c.command("subscription.unsubscribe", { subscriptionId: sub });
assert.equal(r.error, "no_such_subscription");

c.ws.close(1000, "done");
const ev = await c.closed;
assert.equal(ev.code, 1000);

// Without a token: the upgrade is refused (401), the socket never opens.
const bad = new WebSocket(`${base.replace(/^http/, "ws")}/threads/${thread}/stream`);
const failed = await new Promise((res) => {
  bad.onopen = () => res(false);
  bad.onerror = () => res(true);
});
assert.ok(failed, "an upgrade without a token must fail");
console.log("ws_test: ok");
