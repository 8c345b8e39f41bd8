// fake_auth_server.js: an MCP server behind OAuth and its authorization
// server in one loopback process, for the client's authorization tests
// (tests/mcp/check_mcp_auth.c). Tokens and the client secret are canaries
// the tests look for in journals and messages.
//   node fake_auth_server.js MODE LOGFILE     prints "listening PORT"
// MODE ok:           the whole flow (PRM, RFC 8414 metadata, DCR with a
//                    secret, code + PKCE, client_secret_basic)
//      refresh:      the first access token stops working after the
//                    listing: a 401, then the refresh_token grant
//      echo_auth:    the tool `leak` answers HTTP 400 with the request's
//                    Authorization header in its body
//      token_error:  the token endpoint refuses, quoting the client secret
//      prm_not_json, prm_oversize, prm_wrong_resource, prm_http_as,
//      as_not_object, wrong_issuer, http_endpoint, no_s256, bad_state,
//      auth_denied, token_type_mac, token_crlf, no_access_token,
//      dcr_no_id: one broken answer each
//      stepup:       tools/call needs scope "read write": a 403
//                    insufficient_scope, then a second authorization
//      forbid_call:  tools/call answers 403 insufficient_scope for the
//                    scope already granted ("read")
//      as_switch:    after the listing the MCP server points at another
//                    resource metadata and authorization server (/as2,
//                    which knows only its own client, cid-2)
//      reject_all:   the MCP server takes no token at all while the
//                    authorization server keeps issuing and refreshing
'use strict';
const http = require('http');
const fs = require('fs');
const crypto = require('crypto');
const [mode, logfile] = process.argv.slice(2);
const log = (s) => fs.appendFileSync(logfile, s + '\n');

const TOKEN1 = 'CANARY-TOKEN-1-a1b2c3d4e5f6';
const TOKEN2 = 'CANARY-TOKEN-2-f6e5d4c3b2a1';
const REFRESH = 'CANARY-REFRESH-0123456789';
const SECRET = 'CANARY-SECRET-9876543210';
const CLIENT = 'cid-1';
const TOKEN3 = 'CANARY-TOKEN-3-0a0b0c0d0e';
let prmPath = '/.well-known/oauth-protected-resource/mcp';
let base = '';
let challenge = null;
let lastScope = '';
let valid = new Set(mode === 'reject_all' ? [] : [TOKEN1, TOKEN2]);

const json = (res, status, o, headers) => {
  res.writeHead(status, Object.assign({ 'Content-Type': 'application/json' }, headers || {}));
  res.end(typeof o === 'string' ? o : JSON.stringify(o));
};
const form = (s) => Object.fromEntries(new URLSearchParams(s));

function prm(res) {
  if (mode === 'prm_not_json') return json(res, 200, 'nope{');
  if (mode === 'prm_oversize')
    return json(res, 200, { resource: `${base}/mcp`, authorization_servers: [`${base}/as`],
      pad: 'x'.repeat(100000) });
  const doc = { resource: `${base}/mcp`, authorization_servers: [`${base}/as`], scopes_supported: ['read'] };
  if (mode === 'prm_wrong_resource') doc.resource = 'http://127.0.0.1:1/other';
  if (mode === 'prm_http_as') doc.authorization_servers = ['http://auth.example.com'];
  json(res, 200, doc);
}

function asMeta(res, as) {
  if (mode === 'as_not_object') return json(res, 200, '[1, 2]');
  const doc = {
    issuer: `${base}/${as}`, authorization_endpoint: `${base}/${as}/authorize`,
    token_endpoint: `${base}/${as}/token`, registration_endpoint: `${base}/${as}/register`,
    response_types_supported: ['code'], code_challenge_methods_supported: ['S256'],
    token_endpoint_auth_methods_supported: ['client_secret_basic'],
  };
  if (mode === 'wrong_issuer') doc.issuer = 'https://evil.example.com';
  if (mode === 'http_endpoint') doc.token_endpoint = 'http://auth.example.com/token';
  if (mode === 'no_s256') delete doc.code_challenge_methods_supported;
  json(res, 200, doc);
}

function authorize(req, res) {
  const q = new URL(req.url, base).searchParams;
  challenge = q.get('code_challenge');
  lastScope = q.get('scope') || '';
  log(`authorize scope=${q.get('scope') || ''} resource=${q.get('resource')} method=${q.get('code_challenge_method')}`);
  const to = new URL(q.get('redirect_uri'));
  if (mode === 'auth_denied') {
    to.searchParams.set('error', 'access_denied');
    to.searchParams.set('error_description', 'the user said no');
  } else {
    to.searchParams.set('code', 'code-1');
    to.searchParams.set('state', mode === 'bad_state' ? 'forged' : q.get('state'));
  }
  res.writeHead(302, { Location: to.toString() });
  res.end();
}

function token(req, body, res, as) {
  const f = form(body);
  const basic = (req.headers.authorization || '').startsWith('Basic ')
    ? Buffer.from(req.headers.authorization.slice(6), 'base64').toString() : '';
  const ok = basic === `${as === 'as2' ? 'cid-2' : CLIENT}:${SECRET}`;
  let pkce = '';
  if (f.grant_type === 'authorization_code') {
    const c = crypto.createHash('sha256').update(f.code_verifier || '').digest('base64url');
    pkce = ` pkce=${c === challenge}`;
  }
  log(`grant ${f.grant_type} ${as} basic=${ok} resource=${f.resource}${pkce}`);
  if (!ok) return json(res, 401, { error: 'invalid_client' });
  if (mode === 'token_error')
    return json(res, 400, { error: 'invalid_grant', error_description: `code expired (client ${CLIENT}:${SECRET})` });
  const t = { token_type: 'Bearer', expires_in: 3600 };
  if (f.grant_type === 'refresh_token') {
    if (f.refresh_token !== REFRESH) return json(res, 400, { error: 'invalid_grant' });
    t.access_token = TOKEN2;
  } else {
    // stepup: the token for "read write" is the second one
    t.access_token = mode === 'stepup' && lastScope.split(' ').includes('write') ? TOKEN2 : TOKEN1;
    if (as === 'as2') t.access_token = TOKEN3;
    t.refresh_token = REFRESH;
  }
  if (mode === 'token_type_mac') t.token_type = 'mac';
  if (mode === 'token_crlf') t.access_token = 'abc\r\nX-Evil: 1';
  if (mode === 'no_access_token') delete t.access_token;
  json(res, 200, t);
}

function mcp(req, body, res) {
  const m = JSON.parse(body);
  const auth = req.headers.authorization || '';
  const tok = auth.startsWith('Bearer ') ? auth.slice(7) : '';
  if (!valid.has(tok)) {
    log(`401 ${m.method}`);
    return json(res, 401, { error: 'invalid_token' }, {
      'WWW-Authenticate': `Bearer error="invalid_token", resource_metadata="${base}${prmPath}"`,
    });
  }
  log(`mcp ${m.method} ${tok === TOKEN1 ? 'token1' : tok === TOKEN2 ? 'token2' : 'token3'}`);
  if (m.id === undefined) { res.writeHead(202); return res.end(); }
  const reply = (result) => json(res, 200, { jsonrpc: '2.0', id: m.id, result });
  if (m.method === 'initialize')
    return reply({ protocolVersion: '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'fake-auth', version: '1' } });
  if (m.method === 'tools/list') {
    if (mode === 'refresh') valid.delete(TOKEN1); // expires after the listing
    if (mode === 'as_switch') {
      valid = new Set([TOKEN3]);
      prmPath = '/.well-known/oauth-protected-resource/mcp2';
    }
    return reply({ tools: [{ name: 'echo', inputSchema: { type: 'object' } },
      { name: 'leak', inputSchema: { type: 'object' } }] });
  }
  if (m.method === 'tools/call') {
    if ((mode === 'stepup' && tok !== TOKEN2) || mode === 'forbid_call') {
      log(`403 tools/call`);
      return json(res, 403, { error: 'insufficient_scope' }, {
        'WWW-Authenticate': `Bearer error="insufficient_scope", scope="${mode === 'stepup' ? 'read write' : 'read'}", resource_metadata="${base}/.well-known/oauth-protected-resource/mcp"`,
      });
    }
    if (m.params.name === 'leak' && mode === 'echo_auth') {
      res.writeHead(400, { 'Content-Type': 'text/plain' });
      return res.end(`bad request with Authorization: ${auth}`);
    }
    return reply({ content: [{ type: 'text', text: 'hello' }] });
  }
  json(res, 200, { jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'Method not found' } });
}

http.createServer((req, res) => {
  let body = '';
  req.on('data', (d) => (body += d));
  req.on('end', () => {
    const path = new URL(req.url, 'http://x').pathname;
    if (req.method === 'GET' && path === '/.well-known/oauth-protected-resource/mcp') return prm(res);
    if (req.method === 'GET' && path === '/.well-known/oauth-protected-resource/mcp2')
      return json(res, 200, { resource: `${base}/mcp`, authorization_servers: [`${base}/as2`] });
    const asm = path.match(/^\/\.well-known\/oauth-authorization-server\/(as2?)$/);
    if (req.method === 'GET' && asm) return asMeta(res, asm[1]);
    const ep = path.match(/^\/(as2?)\/(authorize|register|token)$/);
    if (ep && req.method === 'GET' && ep[2] === 'authorize') return authorize(req, res);
    if (ep && req.method === 'POST' && ep[2] === 'register') {
      log(`register ${ep[1]} ${body}`);
      const id = ep[1] === 'as2' ? 'cid-2' : CLIENT;
      return json(res, 201, mode === 'dcr_no_id' ? { client_secret: SECRET } : { client_id: id, client_secret: SECRET });
    }
    if (ep && req.method === 'POST' && ep[2] === 'token') return token(req, body, res, ep[1]);
    if (req.method === 'POST' && path === '/mcp') return mcp(req, body, res);
    if (req.method === 'GET' && path === '/mcp') { res.writeHead(405); return res.end(); }
    res.writeHead(404);
    res.end('not found');
  });
}).listen(0, '127.0.0.1', function () {
  base = `http://127.0.0.1:${this.address().port}`;
  console.log(`listening ${this.address().port}`);
});
