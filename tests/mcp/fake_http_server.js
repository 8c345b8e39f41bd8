// fake_http_server.js: a scripted Streamable HTTP MCP server (2025-03-26
// revision, with a session) for the client's SSE tests.
//   node fake_http_server.js MODE LOGFILE     prints "listening PORT"
// MODE resume:   tools/call answers an SSE stream with an event id and
//                `retry: 300`, then closes it without the answer; a GET with
//                Last-Event-ID gets the answer. The log says what arrived and
//                how long after the close.
//        noid:   the same stream without an event id (not resumable).
//        elicit: tools/call keeps its stream open and sends elicitation/create
//                on the standalone GET stream; the client's answer is the
//                call's result.
'use strict';
const http = require('http');
const fs = require('fs');
const [mode, logfile] = process.argv.slice(2);
const log = (s) => fs.appendFileSync(logfile, s + '\n');
const SID = 'fake-session-1';
let closedAt = 0, pendingId = null, getStream = null, callStream = null;

const sse = (res) => res.writeHead(200, { 'Content-Type': 'text/event-stream', 'mcp-session-id': SID });
const json = (res, o) => {
  res.writeHead(200, { 'Content-Type': 'application/json', 'mcp-session-id': SID });
  res.end(JSON.stringify(o));
};

http.createServer((req, res) => {
  if (req.method === 'GET') {
    const last = req.headers['last-event-id'];
    log(`GET last-event-id=${last || ''} waited=${closedAt ? Date.now() - closedAt : -1}`);
    sse(res);
    if (last && pendingId !== null) {
      res.write(`id: ev-2\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: pendingId,
        result: { content: [{ type: 'text', text: 'resumed answer' }] } })}\n\n`);
      pendingId = null;
    } else if (!last) {
      getStream = res;
    }
    return;
  }
  let body = '';
  req.on('data', (d) => (body += d));
  req.on('end', () => {
    const m = JSON.parse(body);
    if (m.method) log(`POST ${m.method}`);
    if (m.method === 'initialize') {
      return json(res, { jsonrpc: '2.0', id: m.id, result: { protocolVersion: '2025-03-26',
        capabilities: { tools: {} }, serverInfo: { name: 'fake-http', version: '1' } } });
    }
    if (m.method === 'tools/list') {
      return json(res, { jsonrpc: '2.0', id: m.id, result: { tools: [
        { name: 'go', description: 'scripted', inputSchema: { type: 'object' } }] } });
    }
    if (m.method === 'tools/call') {
      sse(res);
      if (mode === 'elicit') {
        callStream = { res, id: m.id };
        getStream.write(`data: ${JSON.stringify({ jsonrpc: '2.0', id: 'e1', method: 'elicitation/create',
          params: { message: 'defaults please', requestedSchema: { type: 'object', properties: {
            name: { type: 'string', default: 'John Doe' }, age: { type: 'integer', default: 30 },
            ok: { type: 'boolean', default: true } } } } })}\n\n`);
        return;
      }
      pendingId = m.id;
      res.write(mode === 'noid' ? `retry: 300\ndata: \n\n` : `id: ev-1\nretry: 300\ndata: \n\n`);
      setTimeout(() => { closedAt = Date.now(); res.end(); }, 20);
      return;
    }
    if (m.id === 'e1' && callStream) {
      // the client's answer to elicitation/create: sent back as the result
      log(`elicit answer ${JSON.stringify(m.result)}`);
      res.writeHead(202); res.end();
      callStream.res.end(`data: ${JSON.stringify({ jsonrpc: '2.0', id: callStream.id,
        result: { content: [{ type: 'text', text: JSON.stringify(m.result) }] } })}\n\n`);
      return;
    }
    res.writeHead(202); res.end();  // notifications
  });
}).listen(0, '127.0.0.1', function () { console.log(`listening ${this.address().port}`); });
