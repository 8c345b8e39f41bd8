#!/usr/bin/env node
// langgraph_durable.js: the lookup task (../shared/bench/task.js) on
// LangGraph.js's prebuilt createReactAgent with its SQLite checkpointer
// (@langchain/langgraph-checkpoint-sqlite): every super-step of every task
// is a checkpoint in --db, each task its own thread_id. For
// scripts/durable-bench.
//
//   node langgraph_durable.js --bench DIR --base-url URL --db FILE
//        [--steps 5] [--tasks 1] [--concurrency 1]
//   node langgraph_durable.js --bench DIR --db FILE --waiting N
//
// Prints one JSON line last: {tasks, ok, failed, wall_ms, checkpoints}, or
// with --waiting: N threads left waiting at an interrupt() (a human-input
// step), with the heap and RSS they hold in this process.
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { createReactAgent } from '@langchain/langgraph/prebuilt';
import { StateGraph, Annotation, interrupt, START, END } from '@langchain/langgraph';
import { SqliteSaver } from '@langchain/langgraph-checkpoint-sqlite';
import { ChatOpenAI } from '@langchain/openai';
import { tool } from '@langchain/core/tools';
import { z } from 'zod';

const { values: opt } = parseArgs({
  options: {
    bench: { type: 'string' },
    'base-url': { type: 'string' },
    db: { type: 'string' },
    steps: { type: 'string', default: '5' },
    tasks: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '1' },
    waiting: { type: 'string' },
  },
});
const task = await import(`${opt.bench}/task.js`);
const saver = SqliteSaver.fromConnString(opt.db);

if (opt.waiting) {
  // A run that waits for a person: one step, then interrupt().
  const S = Annotation.Root({ q: Annotation(), a: Annotation() });
  const g = new StateGraph(S)
    .addNode('ask', (s) => ({ a: interrupt({ question: s.q }) }))
    .addEdge(START, 'ask').addEdge('ask', END)
    .compile({ checkpointer: saver });
  const n = Number(opt.waiting);
  global.gc?.();
  const m0 = process.memoryUsage();
  for (let i = 0; i < n; i++)
    await g.invoke({ q: `Your order number? (${i})` }, { configurable: { thread_id: `w${i}` } });
  global.gc?.();
  const m1 = process.memoryUsage();
  let waiting = 0;
  for (let i = 0; i < n; i++) {
    const st = await g.getState({ configurable: { thread_id: `w${i}` } });
    if (st.next.length === 1) waiting++;
  }
  console.log(JSON.stringify({ waiting, heap_bytes: m1.heapUsed - m0.heapUsed, rss_bytes: m1.rss - m0.rss }));
  process.exit(waiting === n ? 0 : 1);
}

const steps = Number(opt.steps), tasks = Number(opt.tasks), conc = Number(opt.concurrency);
// maxRetries 2 (the SDK's default): on a loaded machine a pooled connection
// can sit idle past the mock's keep-alive (30 s) and is closed under the
// client, which then fails with "Connection error." (luact's curl retries
// such a dead connection by itself). With 0, 40-94% of LangGraph's tasks
// failed at 1,000 concurrent at load 10-20; a retry is one more request,
// never another step.
const llm = new ChatOpenAI({
  model: 'mock-gpt', apiKey: 'x', configuration: { baseURL: opt['base-url'] }, maxRetries: 2, timeout: 60_000,
});
const lookupTool = tool(async ({ key }) => task.lookup(key), {
  name: 'lookup', description: task.TOOL_DESCRIPTION,
  schema: z.object({ key: z.string().describe('the key, e.g. key-1') }),
});
const agent = createReactAgent({ llm, tools: [lookupTool], prompt: task.SYSTEM_PROMPT, checkpointer: saver });
const input = task.taskPrompt(steps), want = task.expectedAnswer(steps);
let ok = 0, failed = 0, firstError = null, next = 0;
async function worker() {
  while (next < tasks) {
    const k = next++;
    try {
      const out = await agent.invoke({ messages: [{ role: 'user', content: input }] },
        { configurable: { thread_id: `t${k}` }, recursionLimit: 2 * steps + 10 });
      const last = out.messages[out.messages.length - 1];
      if (last.content === want) ok++; else { failed++; firstError ??= `wrong answer: ${last.content}`; }
    } catch (e) { failed++; firstError ??= String(e); }
  }
}
const t0 = performance.now();
await Promise.all(Array.from({ length: Math.min(conc, tasks) }, worker));
const wall = performance.now() - t0;
const checkpoints = saver.db.prepare('SELECT count(*) AS n FROM checkpoints').get().n;
console.log(JSON.stringify({ tasks, ok, failed, wall_ms: wall, checkpoints, first_error: firstError }));
process.exit(failed ? 1 : 0);
