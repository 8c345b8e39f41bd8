// raw_server.mjs: a hostile MCP client for what `luact mcp serve` offers
// beyond tools (tests/mcp/agents_features), raw JSON-RPC: malformed params
// for every new method (wrong types, unknown URIs and names, huge values,
// too many subscriptions), a method that is not a string, hostile answers
// to sampling/createMessage (a wrong id, malformed results, an error); each
// must get a JSON-RPC error (or a clear tool error) and leave the server
// serving. Prints one JSON object.
// node raw_server.mjs LUACT_BINARY DIR           (stdio)
// node raw_server.mjs --http URL TOKEN           (HTTP: sessions, GET, DELETE)
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const [a, b, c] = process.argv.slice(2);
const out = {};
const BIG = 'x'.repeat(1 << 20);

if (a !== '--http') {
  const start = (dir) => {
    const srv = spawn(a, ['mcp', 'serve', dir], { stdio: ['pipe', 'pipe', 'inherit'] });
    const seen = [];
    let wake = null;
    createInterface({ input: srv.stdout, crlfDelay: Infinity }).on('line', (l) => {
      seen.push(JSON.parse(l));
      if (wake) wake();
    });
    const send = (m) => srv.stdin.write(JSON.stringify({ jsonrpc: '2.0', ...m }) + '\n');
    const next = async (pred) => {
      for (;;) {
        const i = seen.findIndex(pred);
        if (i >= 0) return seen.splice(i, 1)[0];
        await new Promise((r) => { wake = r; });
      }
    };
    let id = 0;
    const ask = async (method, params) => {
      const me = ++id;
      send({ id: me, method, params });
      return next((m) => m.id === me && m.method === undefined);
    };
    return { srv, send, next, ask };
  };
  const s = start(b);
  const code = (r) => (r.error ? r.error.code : 'ok');
  await s.ask('initialize', { protocolVersion: '2025-11-25', capabilities: { sampling: {} },
    clientInfo: { name: 'raw', version: '1' } });
  s.send({ method: 'notifications/initialized' });

  const cases = {
    read_no_params: ['resources/read', undefined],
    read_params_string: ['resources/read', 'info://about'],
    read_uri_number: ['resources/read', { uri: 5 }],
    read_unknown: ['resources/read', { uri: 'nope://x' }],
    read_huge_uri: ['resources/read', { uri: 'nope://' + BIG }],
    read_template_slash: ['resources/read', { uri: 'notes://a/b' }],
    subscribe_uri_table: ['resources/subscribe', { uri: {} }],
    subscribe_unknown: ['resources/subscribe', { uri: 'nope://x' }],
    unsubscribe_never: ['resources/unsubscribe', { uri: 'notes://never' }],
    prompt_no_name: ['prompts/get', {}],
    prompt_name_number: ['prompts/get', { name: 123 }],
    prompt_unknown: ['prompts/get', { name: 'nope' + BIG }],
    prompt_args_string: ['prompts/get', { name: 'plan', arguments: 'day=monday' }],
    prompt_arg_number: ['prompts/get', { name: 'plan', arguments: { day: 5 } }],
    prompt_missing_arg: ['prompts/get', { name: 'plan', arguments: { mood: 'x' } }],
    complete_no_ref: ['completion/complete', { argument: { name: 'day', value: '' } }],
    complete_bad_ref: ['completion/complete', { ref: { type: 'ref/tool', name: 'plan' }, argument: { name: 'day', value: '' } }],
    complete_value_number: ['completion/complete', { ref: { type: 'ref/prompt', name: 'plan' }, argument: { name: 'day', value: 1 } }],
    complete_unknown_prompt: ['completion/complete', { ref: { type: 'ref/prompt', name: 'nope' }, argument: { name: 'day', value: '' } }],
    complete_unknown_template: ['completion/complete', { ref: { type: 'ref/resource', uri: 'nope://{x}' }, argument: { name: 'x', value: '' } }],
    level_number: ['logging/setLevel', { level: 3 }],
    level_unknown: ['logging/setLevel', { level: 'LOUD' }],
    level_none: ['logging/setLevel', undefined],
    list_params_null: ['resources/list', null],
  };
  out.errors = {};
  for (const [k, [m, p]] of Object.entries(cases)) out.errors[k] = code(await s.ask(m, p));
  const huge = await s.ask('resources/read', { uri: 'nope://' + BIG });
  out.huge_uri_error_small = JSON.stringify(huge).length < 2000;
  const big = await s.ask('prompts/get', { name: 'plan', arguments: { day: BIG } });
  out.huge_arg_served = JSON.stringify(big).includes(BIG);
  const many = {};
  for (let i = 0; i < 10000; i++) many['k' + i] = 'v';
  many.day = 'monday';
  out.many_args = code(await s.ask('prompts/get', { name: 'plan', arguments: many }));
  out.complete_huge = JSON.stringify((await s.ask('completion/complete', {
    ref: { type: 'ref/prompt', name: 'plan' }, argument: { name: 'day', value: BIG } })).result);
  let last;
  for (let i = 0; i <= 1000; i++) last = code(await s.ask('resources/subscribe', { uri: 'notes://d' + i }));
  out.subscribe_1001st = last;
  s.send({ id: 900, method: 5 });
  out.method_number = (await s.next((m) => m.id === 900)).error.code;

  // hostile answers to the server's sampling/createMessage
  let ncall = 1000;
  const sampled = async (answer) => {
    const me = ++ncall;
    s.send({ id: 'call' + me, method: 'tools/call', params: { name: 'ask_model', arguments: { q: 'hi' } } });
    const q = await s.next((m) => m.method === 'sampling/createMessage');
    if (answer.wrong_first) {
      s.send({ id: q.id + 'x', result: { role: 'assistant', content: { type: 'text', text: 'forged' }, model: 'm' } });
      s.send({ id: 12345, result: {} });
    }
    s.send({ id: q.id, ...answer.msg });
    return (await s.next((m) => m.id === 'call' + me)).result.content[0].text;
  };
  out.sampling = [
    await sampled({ wrong_first: true, msg: { result: { role: 'assistant', content: { type: 'text', text: 'real' }, model: 'm' } } }),
    await sampled({ msg: { result: { role: 'assistant' } } }),
    await sampled({ msg: { result: { role: 'robot', content: { type: 'text', text: 'x' } } } }),
    await sampled({ msg: { result: { role: 'assistant', content: { type: 'text', text: 7 } } } }),
    await sampled({ msg: { result: 'yes' } }),
    await sampled({ msg: { error: { code: -1, message: 'no model here' } } }),
  ];
  // 2026-07-28: the sampling request is an input_required round
  const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28',
    'io.modelcontextprotocol/clientCapabilities': { sampling: {} } };
  s.send({ id: 'm1', method: 'tools/call', params: { name: 'ask_model', arguments: { q: 'hi' }, _meta: meta } });
  const r1 = (await s.next((m) => m.id === 'm1')).result;
  const key = Object.keys(r1.inputRequests || {})[0];
  s.send({ id: 'm2', method: 'tools/call', params: { name: 'ask_model', arguments: { q: 'hi' }, _meta: meta,
    requestState: r1.requestState, inputResponses: { [key]: { role: 'assistant',
      content: [{ type: 'text', text: 'mrtr ' }, { type: 'text', text: 'answer' }], model: 'mm' } } } });
  out.mrtr_sampling = [r1.resultType, r1.inputRequests[key].method, r1.inputRequests[key].params.systemPrompt,
    (await s.next((m) => m.id === 'm2')).result.content[0].text];
  out.still_serving = code(await s.ask('ping', {}));
  const exited = (p) => new Promise((r) => p.on('exit', (c, sig) => r(sig || c)));
  const gone = exited(s.srv);
  s.srv.stdin.end();
  out.exit = await gone; // 0: no sanitizer report, no crash at the end

  // a folder without tools still lists them as a list
  const e = start(process.argv[4] || 'agents_prompts_only');
  await e.ask('initialize', { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } });
  out.empty_tools = JSON.stringify((await e.ask('tools/list', {})).result);
  const gone2 = exited(e.srv);
  e.srv.stdin.end();
  out.exit2 = await gone2;
} else {
  const url = b;
  const auth = { Authorization: 'Bearer ' + c };
  const post = (body, sid, extra = {}) => fetch(url, { method: 'POST', headers: { ...auth,
    'Content-Type': 'application/json', Accept: 'application/json, text/event-stream',
    ...(sid !== undefined && { 'Mcp-Session-Id': sid }), ...extra }, body: JSON.stringify(body) });
  const init = (n) => post({ jsonrpc: '2.0', id: n, method: 'initialize', params: { protocolVersion: '2025-11-25',
    capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
  const ping = (sid) => post({ jsonrpc: '2.0', id: 7, method: 'ping' }, sid);
  const r = await init(1);
  const sid = r.headers.get('mcp-session-id');
  await r.text();
  out.sid_hex32 = /^[0-9a-f]{32}$/.test(sid || '');
  out.ping_in_session = (await ping(sid)).status;
  out.ping_unknown_session = (await ping('0'.repeat(32))).status;
  out.ping_long_session = (await ping('a'.repeat(300))).status;
  out.ping_stateless = (await ping(undefined)).status;
  out.get_no_session = (await fetch(url, { headers: { ...auth, Accept: 'text/event-stream' } })).status;
  out.get_unknown = (await fetch(url, { headers: { ...auth, Accept: 'text/event-stream', 'Mcp-Session-Id': 'nope' } })).status;
  out.delete_no_session = (await fetch(url, { method: 'DELETE', headers: auth })).status;
  out.delete_unknown = (await fetch(url, { method: 'DELETE', headers: { ...auth, 'Mcp-Session-Id': 'nope' } })).status;
  // a second GET replaces the first, whose stream then ends
  const g1 = await fetch(url, { headers: { ...auth, Accept: 'text/event-stream', 'Mcp-Session-Id': sid } });
  out.get_status = g1.status;
  out.get_type = g1.headers.get('content-type');
  const g2 = await fetch(url, { headers: { ...auth, Accept: 'text/event-stream', 'Mcp-Session-Id': sid } });
  out.first_get_ended = (await g1.text()).startsWith('id: ');
  // DELETE ends the session (and its GET stream); it is then unknown
  out.delete = (await fetch(url, { method: 'DELETE', headers: { ...auth, 'Mcp-Session-Id': sid } })).status;
  out.second_get_ended = (await g2.text()).startsWith('id: ');
  out.ping_deleted = (await ping(sid)).status;
  // two sessions' calls with the same request id: each cancel ends its
  // own call (the answer's SSE stream ends without a result)
  const sa = (await init(4)).headers.get('mcp-session-id');
  const sb = (await init(5)).headers.get('mcp-session-id');
  const hold = (s) => post({ jsonrpc: '2.0', id: 5, method: 'tools/call',
    params: { name: 'hold', arguments: {}, _meta: { progressToken: 'p' } } }, s);
  const cancel = (s) => post({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 5 } }, s);
  // the headers come with the tool's first progress report: both run
  const ha = await hold(sa);
  const hb = await hold(sb);
  await cancel(sb);
  out.cancel_b = (await hb.text()).includes('held') ? 'answered' : 'ended';
  await cancel(sa);
  out.cancel_a = (await ha.text()).includes('held') ? 'answered' : 'ended';
  // a call's closed stream is resumed by its own session only; forged and
  // over-long Last-Event-IDs get the session's plain GET stream
  const firstEvent = async (res) => { // the first SSE event's text, then stop reading
    const rd = res.body.getReader();
    let t = '';
    while (!t.includes('\n\n')) { const { value, done } = await rd.read(); if (done) break; t += Buffer.from(value).toString(); }
    await rd.cancel();
    return t;
  };
  const get = (s, last) => fetch(url, { headers: { ...auth, Accept: 'text/event-stream', 'Mcp-Session-Id': s,
    ...(last !== undefined && { 'Last-Event-ID': last }) } });
  const pa = await post({ jsonrpc: '2.0', id: 9, method: 'tools/call',
    params: { name: 'patient', arguments: {}, _meta: { progressToken: 'q' } } }, sa);
  const primed = await pa.text();
  out.primed = /^retry: 10\nid: [0-9a-f]{16}:1\ndata: \n\n$/.test(primed);
  const streamId = primed.match(/id: (\S+)/)[1];
  out.other_session_resume = /^id: [0-9a-f]{32}-\d+\n/.test(await firstEvent(await get(sb, streamId)));
  out.forged_resume = /^id: [0-9a-f]{32}-\d+\n/.test(await firstEvent(await get(sa, 'deadbeefdeadbeef:1')));
  out.long_resume = /^id: [0-9a-f]{32}-\d+\n/.test(await firstEvent(await get(sa, 'f'.repeat(300))));
  const resumed = await (await get(sa, streamId)).text();
  out.resumed = resumed.includes('"progress":1') && resumed.includes('closed=true');
  // once its answer went out, the call's stream is forgotten
  out.resume_after_answer = /^id: [0-9a-f]{32}-\d+\n/.test(await firstEvent(await get(sa, streamId)));
  // the session's GET stream: a reconnect with Last-Event-ID gets what
  // was sent after it, even while no GET was open
  const gs = await get(sa);
  const gfirst = await firstEvent(gs); // the stream's first event: its id
  const gid = gfirst.match(/id: (\S+)/)[1];
  await post({ jsonrpc: '2.0', id: 20, method: 'resources/subscribe', params: { uri: 'notes://tuesday' } }, sa);
  await (await post({ jsonrpc: '2.0', id: 21, method: 'tools/call',
    params: { name: 'touch', arguments: { day: 'tuesday' } } }, sa)).text();
  const again = await firstEvent(await get(sa, gid));
  out.get_replayed = again.includes('notifications/resources/updated') && again.includes('notes://tuesday');
  out.get_forged_id = /^id: [0-9a-f]{32}-\d+\ndata: \n/.test(await firstEvent(await get(sa, sa + '-x')));
  const logless = await post({ jsonrpc: '2.0', id: 8, method: 'logging/setLevel', params: { level: 'info' } });
  out.set_level_stateless = (await logless.json()).error.code;
  // more sessions than the server keeps: the least recently used goes
  const first = (await init(2)).headers.get('mcp-session-id');
  for (let i = 0; i < 300; i++) await (await init(3)).text();
  out.evicted = (await ping(first)).status;
  out.still_serving = (await ping(undefined)).status;
}
console.log(JSON.stringify(out));
