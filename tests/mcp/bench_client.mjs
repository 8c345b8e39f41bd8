// bench_client.mjs: the official TypeScript SDK client calling the same
// server as scripts/bench-mcp's luact side; prints this process's own CPU
// per call (process.cpuUsage: the server's CPU is not in it).
// node bench_client.mjs stdio N SERVER_JS [CONC [WARM]] | node bench_client.mjs http N URL [CONC [WARM]]
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const [mode, nStr, target, concStr, warmStr] = process.argv.slice(2);
const n = Number(nStr);
const conc = Number(concStr || 1);
const warm = Number(warmStr || 0); // calls made first, not measured (V8's JIT warms up)
const transport = mode === 'http'
  ? new StreamableHTTPClientTransport(new URL(target))
  : new StdioClientTransport({ command: 'node', args: [target, 'stdio'] });
const client = new Client({ name: 'bench', version: '1' });
await client.connect(transport);
await client.callTool({ name: 'echo', arguments: { message: 'warm' } });
async function calls(count) {
  let next = 0;
  async function worker() {
    while (next < count) {
      next++;
      await client.callTool({ name: 'echo', arguments: { message: 'x' } });
    }
  }
  await Promise.all(Array.from({ length: conc }, worker));
}
if (warm > 0) await calls(warm);
const cpu0 = process.cpuUsage();
const t0 = performance.now();
await calls(n);
const wall = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
const rss = process.memoryUsage().rss;
await client.close();
console.log(JSON.stringify({ client: 'ts-sdk', mode, n, conc, warm,
  cpu_us_per_call: (cpu.user + cpu.system) / n, user_us: cpu.user / n, sys_us: cpu.system / n, wall_ms: wall, rss_mb: rss / 1048576 }));
