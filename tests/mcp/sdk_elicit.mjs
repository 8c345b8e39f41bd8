// sdk_elicit.mjs: the official TypeScript SDK client answering a served
// run's elicitation (luact.ask inside `luact mcp serve`). Prints one JSON
// object with what it saw.
// node sdk_elicit.mjs MODE LUACT_BINARY AGENTS_DIR     (stdio)
// node sdk_elicit.mjs MODE --http URL TOKEN            (Streamable HTTP)
// MODE: accept | decline | cancel | none (no elicitation capability)
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';

const [mode, a, b, c] = process.argv.slice(2);
const transport = a === '--http'
  ? new StreamableHTTPClientTransport(new URL(b), { requestInit: { headers: { Authorization: 'Bearer ' + c } } })
  : new StdioClientTransport({ command: a, args: ['mcp', 'serve', b] });
const client = new Client({ name: 'luact-test', version: '1.0.0' },
  { capabilities: mode === 'none' ? {} : { elicitation: {} } });
const out = { asked: [] };
if (mode !== 'none') {
  client.setRequestHandler(ElicitRequestSchema, async (req) => {
    out.asked.push(req.params);
    // while the run waits for this answer, the server serves other calls
    out.during = await client.callTool({ name: 'echo', arguments: { text: 'meanwhile' } });
    if (mode === 'accept') {
      const props = req.params.requestedSchema.properties;
      return { action: 'accept', content: props.answer ? { answer: 'Ada' } : { age: 41 } };
    }
    return { action: mode };
  });
}
await client.connect(transport);
out.greet = await client.callTool({ name: 'greet', arguments: {} });
if (mode === 'accept') {
  out.child = await client.callTool({ name: 'greet_child', arguments: {} });
  out.form = await client.callTool({ name: 'form', arguments: {} });
  out.secret = await client.callTool({ name: 'secret', arguments: {} });
  out.asked_count = out.asked.length;
}
out.after = await client.callTool({ name: 'echo', arguments: { text: 'still here' } });
await client.close();
console.log(JSON.stringify(out));
