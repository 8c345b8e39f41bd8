// raw_elicit.mjs: a hostile MCP client for `luact mcp serve` over stdio,
// raw JSON-RPC lines: it declares elicitation, then answers a served run's
// elicitation/create with the wrong id, a malformed result, an error, not
// at all (the tool's timeout ends the call), or cancels the call instead;
// and as a 2026-07-28 client, retries with a state never given, without
// answers, and with a state already used.
// node raw_elicit.mjs LUACT_BINARY AGENTS_DIR -> one JSON object
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const [bin, dir] = process.argv.slice(2);
const srv = spawn(bin, ['mcp', 'serve', dir], { stdio: ['pipe', 'pipe', 'inherit'] });
const seen = [];
let wake = null;
createInterface({ input: srv.stdout }).on('line', (l) => {
  seen.push(JSON.parse(l));
  if (wake) wake();
});
const send = (m) => srv.stdin.write(JSON.stringify({ jsonrpc: '2.0', ...m }) + '\n');
// the first message (from now on) that pred accepts
async function next(pred) {
  for (;;) {
    const i = seen.findIndex(pred);
    if (i >= 0) return seen.splice(i, 1)[0];
    await new Promise((r) => { wake = r; });
  }
}
const answer = (id) => next((m) => m.id === id && m.method === undefined);
const asked = () => next((m) => m.method === 'elicitation/create');
const text = (r) => (r.result ? r.result.content[0].text : 'error: ' + JSON.stringify(r.error));
const call = (id, name) => send({ id, method: 'tools/call', params: { name, arguments: {} } });
const out = {};

send({ id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25',
  capabilities: { elicitation: {} }, clientInfo: { name: 'raw', version: '1' } } });
await answer(0);
send({ method: 'notifications/initialized' });

// a response with the wrong id (a string and a number) is not the answer;
// the right one, after it, still is
call(1, 'greet');
let q = await asked();
out.id_is_string = typeof q.id === 'string';
send({ id: q.id + 'x', result: { action: 'accept', content: { answer: 'Mallory' } } });
send({ id: 12345, result: { action: 'accept', content: { answer: 'Mallory' } } });
send({ id: 2, method: 'ping' });
await answer(2);
out.pending_after_wrong_ids = !seen.some((m) => m.id === 1);
send({ id: q.id, result: { action: 'accept', content: { answer: 'Ada' } } });
out.wrong_id = text(await answer(1));

// malformed results and an error response fail the ask, clearly
const bad = [{ result: { action: 'maybe' } }, { result: { action: 'accept', content: 'Ada' } },
  { result: 'accept' }, { result: { action: 'accept', content: { answer: { first: 'Ada' } } } },
  { error: { code: -32601, message: 'no forms here' } }];
out.malformed = [];
for (let i = 0; i < bad.length; i++) {
  call(10 + i, 'greet');
  q = await asked();
  send({ id: q.id, ...bad[i] });
  out.malformed.push(text(await answer(10 + i)));
}

// never answered: the tool's timeout ends the call; a late answer is dropped
call(20, 'greet_soon');
q = await asked();
const r20 = await answer(20);
out.never = { text: text(r20), isError: r20.result.isError === true };
send({ id: q.id, result: { action: 'accept', content: { answer: 'late' } } });

// cancelled while it waits: no answer to the call, the server goes on
call(21, 'greet');
q = await asked();
send({ method: 'notifications/cancelled', params: { requestId: 21 } });
send({ id: q.id, result: { action: 'accept', content: { answer: 'late' } } });
send({ id: 22, method: 'tools/call', params: { name: 'echo', arguments: { text: 'still here' } } });
out.after_cancel = text(await answer(22));
out.cancelled_call_answered = seen.some((m) => m.id === 21);
// 2026-07-28: the question is an input_required result; a retry must
// carry the state it gave, once
const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientCapabilities': { elicitation: {} } };
const call26 = (id, extra) => send({ id, method: 'tools/call',
  params: { name: 'greet', arguments: {}, _meta: meta, ...extra } });
call26(30);
const ir = (await answer(30)).result;
out.mrtr_first = { resultType: ir.resultType, methods: Object.values(ir.inputRequests).map((r) => r.method) };
call26(31, { requestState: ir.requestState + 'x', inputResponses: {} });
out.mrtr_forged = (await answer(31)).error;
call26(32, { requestState: ir.requestState, inputResponses: { nope: { action: 'accept' } } });
out.mrtr_no_answer = text(await answer(32));
call26(33, { requestState: ir.requestState, inputResponses: {} });
out.mrtr_reused = (await answer(33)).error;
srv.stdin.end();
srv.on('exit', (code) => { out.exit = code; console.log(JSON.stringify(out)); });
