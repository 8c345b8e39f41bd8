// tests/mcp/bearer_proxy.mjs: a loopback proxy for the conformance suite's
// server scenarios. `luact mcp serve --http` refuses requests without its
// bearer token, and the suite's `server --url` has no way to send one; this
// adds `Authorization: Bearer $LUACT_MCP_TOKEN` to each request and passes
// everything else (method, path, Host, Origin, bodies, SSE streams) through
// unchanged, both ways.
//   LUACT_MCP_TOKEN=... node bearer_proxy.mjs http://127.0.0.1:PORT
// prints "proxy listening on http://127.0.0.1:N/mcp" once it listens.
import http from 'node:http';

const target = new URL(process.argv[2]);
const token = process.env.LUACT_MCP_TOKEN;
if (!token) { console.error('bearer_proxy: LUACT_MCP_TOKEN is not set'); process.exit(2); }

const server = http.createServer((req, res) => {
  const headers = { ...req.headers, authorization: `Bearer ${token}` };
  const up = http.request({ host: target.hostname, port: target.port, method: req.method,
                            path: req.url, headers }, (ur) => {
    res.writeHead(ur.statusCode, ur.rawHeaders);
    ur.pipe(res);
  });
  up.on('error', (e) => { if (!res.headersSent) res.writeHead(502); res.end(String(e)); });
  res.on('close', () => up.destroy());
  req.pipe(up);
});
server.listen(0, '127.0.0.1', () => {
  console.log(`proxy listening on http://127.0.0.1:${server.address().port}/mcp`);
});
process.stdin.on('end', () => process.exit(0)); // ends with whoever started it
process.stdin.resume();
