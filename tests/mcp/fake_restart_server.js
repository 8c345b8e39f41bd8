// fake_restart_server.js: a Streamable HTTP MCP server that "restarts"
// mid-run: its first session answers initialize with 2025-06-18 and one
// set of capabilities; the first tools/call finds that session gone (HTTP
// 404, as a restarted server answers); the next initialize gets 2025-11-25
// and other capabilities. The log says which session and revision each
// request carried.
//   node fake_restart_server.js LOGFILE     prints "listening PORT"
'use strict';
const http = require('http');
const fs = require('fs');
const [logfile] = process.argv.slice(2);
const log = (s) => fs.appendFileSync(logfile, s + '\n');
let generation = 0; // sessions handed out
let live = null;    // the session the server still knows

const json = (res, o, sid) => {
  const h = { 'Content-Type': 'application/json' };
  if (sid) h['mcp-session-id'] = sid;
  res.writeHead(200, h);
  res.end(JSON.stringify(o));
};

http.createServer((req, res) => {
  if (req.method !== 'POST') { res.writeHead(405); return res.end(); }
  let body = '';
  req.on('data', (d) => (body += d));
  req.on('end', () => {
    const m = JSON.parse(body);
    const sid = req.headers['mcp-session-id'] || '';
    log(`${m.method || 'response'} session=${sid} version=${req.headers['mcp-protocol-version'] || ''}`);
    if (m.method === 'server/discover')
      return json(res, { jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'Method not found' } });
    if (m.method === 'initialize') {
      generation++;
      live = `s${generation}`;
      const first = generation === 1;
      return json(res, { jsonrpc: '2.0', id: m.id, result: {
        protocolVersion: first ? '2025-06-18' : '2025-11-25',
        capabilities: first ? { tools: {} } : { tools: { listChanged: true }, logging: {} },
        serverInfo: { name: 'restarting', version: String(generation) } } }, live);
    }
    if (sid !== live) { res.writeHead(404); return res.end('unknown session'); }
    if (m.id === undefined) { res.writeHead(202); return res.end(); }
    if (m.method === 'tools/list')
      return json(res, { jsonrpc: '2.0', id: m.id, result: { tools: [
        { name: 'look', inputSchema: { type: 'object' }, annotations: { readOnlyHint: true } }] } }, live);
    if (m.method === 'tools/call') {
      if (generation === 1) { live = null; res.writeHead(404); return res.end('unknown session'); }
      return json(res, { jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: `from ${live}` }] } }, live);
    }
    json(res, { jsonrpc: '2.0', id: m.id, result: {} }, live);
  });
}).listen(0, '127.0.0.1', function () { console.log(`listening ${this.address().port}`); });
