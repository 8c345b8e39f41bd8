// sdk_client.mjs: the official TypeScript SDK client driving
// `luact mcp serve DIR` over stdio. Prints one JSON object with what it saw.
// node sdk_client.mjs LUACT_BINARY AGENTS_DIR       (stdio)
// node sdk_client.mjs --http URL TOKEN              (Streamable HTTP)
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const [a, b, c] = process.argv.slice(2);
const transport = a === '--http'
  ? new StreamableHTTPClientTransport(new URL(b), { requestInit: { headers: { Authorization: 'Bearer ' + c } } })
  : new StdioClientTransport({ command: a, args: ['mcp', 'serve', b] });
const client = new Client({ name: 'luact-test', version: '1.0.0' });
await client.connect(transport);
const out = { version: client.getServerVersion(), tools: (await client.listTools()).tools };
out.add = await client.callTool({ name: 'add', arguments: { a: 2, b: 40 } });
out.shout = await client.callTool({ name: 'shout', arguments: { question: 'hello mcp' } });
out.bad = await client.callTool({ name: 'add', arguments: { a: 'x', b: 1 } });
try {
  await client.callTool({ name: 'nope', arguments: {} });
  out.unknown = 'no error';
} catch (e) {
  out.unknown = String(e.message);
}
await client.close();
console.log(JSON.stringify(out));
