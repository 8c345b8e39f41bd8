// sdk_features.mjs: the official TypeScript SDK client driving what
// `luact mcp serve` offers beyond tools (tests/mcp/agents_features):
// resources (text, blob, a template, a failing read, an unknown URI),
// subscriptions (a tool's luact.mcp.resource_updated reaches the client:
// over HTTP on the session's GET stream), prompts with arguments,
// completions, non-text tool content, logging filtered by
// logging/setLevel, and sampling (answered here; refused clearly for a
// client without the capability). Prints one JSON object.
// node sdk_features.mjs LUACT_BINARY AGENTS_DIR       (stdio)
// node sdk_features.mjs --http URL TOKEN              (Streamable HTTP)
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema, LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

const [a, b, c] = process.argv.slice(2);
const http = a === '--http';
const open = () => http
  ? new StreamableHTTPClientTransport(new URL(b), { requestInit: { headers: { Authorization: 'Bearer ' + c } } })
  : new StdioClientTransport({ command: a, args: ['mcp', 'serve', b] });
const err = async (p) => { try { await p; return 'no error'; } catch (e) { return { code: e.code, message: e.message }; } };
const out = { logs: [], updated: [], sampled: [] };

const client = new Client({ name: 'luact-test', version: '1.0.0' }, { capabilities: { sampling: {} } });
client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
  out.sampled.push(req.params);
  return { role: 'assistant', content: { type: 'text', text: 'hi there' }, model: 'test-model', stopReason: 'endTurn' };
});
client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => out.logs.push(n.params));
let wake = null;
client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
  out.updated.push(n.params.uri);
  if (wake) wake();
});
const transport = open();
await client.connect(transport);
out.capabilities = client.getServerCapabilities();
out.session = http ? typeof transport.sessionId === 'string' && transport.sessionId.length >= 32 : null;

out.resources = (await client.listResources()).resources;
out.templates = (await client.listResourceTemplates()).resourceTemplates;
out.about = (await client.readResource({ uri: 'info://about' })).contents;
out.dot = (await client.readResource({ uri: 'info://dot' })).contents[0].blob.slice(0, 12);
out.note = (await client.readResource({ uri: 'notes://monday' })).contents;
out.no_note = await err(client.readResource({ uri: 'notes://sunday' }));
out.unknown = await err(client.readResource({ uri: 'nope://x' }));
out.broken = await err(client.readResource({ uri: 'info://broken' }));
out.bad = await err(client.readResource({ uri: 'info://bad' }));

out.prompts = (await client.listPrompts()).prompts;
out.plan = (await client.getPrompt({ name: 'plan', arguments: { day: 'tuesday', mood: 'bold' } })).messages;
out.plan_missing = await err(client.getPrompt({ name: 'plan', arguments: {} }));
out.oops = await err(client.getPrompt({ name: 'oops' }));
out.complete_prompt = (await client.complete({ ref: { type: 'ref/prompt', name: 'plan' },
  argument: { name: 'day', value: 't' } })).completion;
out.complete_template = (await client.complete({ ref: { type: 'ref/resource', uri: 'notes://{day}' },
  argument: { name: 'day', value: 'mo' } })).completion;
out.complete_none = (await client.complete({ ref: { type: 'ref/prompt', name: 'oops' },
  argument: { name: 'x', value: '' } })).completion;
out.complete_bad = await err(client.complete({ ref: { type: 'ref/prompt', name: 'plan' },
  argument: { name: 'mood', value: '' } }));

out.picture = (await client.callTool({ name: 'picture', arguments: {} })).content;

out.chatty_all = (await client.callTool({ name: 'chatty', arguments: {} })).content[0].text;
await client.setLoggingLevel('warning');
out.chatty_warning = (await client.callTool({ name: 'chatty', arguments: {} })).content[0].text;
out.bad_level = await err(client.setLoggingLevel('loud'));

out.ask_model = (await client.callTool({ name: 'ask_model', arguments: { q: 'hello?' } })).content[0].text;

await client.subscribeResource({ uri: 'notes://monday' });
// over HTTP the update goes on the GET stream, which the SDK opens on its
// own after initialize: touch until the server reports a client told
let told = '';
for (let i = 0; i < 200 && told !== 'told 1'; i++) {
  told = (await client.callTool({ name: 'touch', arguments: { day: 'monday' } })).content[0].text;
}
out.told = told;
if (out.updated.length === 0) await new Promise((r) => { wake = r; });
out.updated_once = out.updated.slice(0, 1);
await client.unsubscribeResource({ uri: 'notes://monday' });
out.told_after_unsubscribe = (await client.callTool({ name: 'touch', arguments: { day: 'monday' } })).content[0].text;
out.subscribe_unknown = await err(client.subscribeResource({ uri: 'nope://x' }));

// a call whose POST stream the server closes: the SDK resumes it (HTTP)
const progress = [];
out.patient = (await client.callTool({ name: 'patient', arguments: {} }, undefined,
  { onprogress: (p) => progress.push(p.message) })).content[0].text;
out.patient_progress = progress;

if (http) {
  await transport.terminateSession(); // DELETE
  out.terminated = transport.sessionId === undefined;
}
await client.close();

// a client without the sampling capability: the run gets no_sampling
const plain = new Client({ name: 'luact-test-plain', version: '1.0.0' });
await plain.connect(open());
out.ask_model_plain = (await plain.callTool({ name: 'ask_model', arguments: { q: 'hello?' } })).content[0].text;
await plain.close();
console.log(JSON.stringify(out));
