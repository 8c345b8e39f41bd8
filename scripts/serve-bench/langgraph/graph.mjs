// graph.mjs: the bench task as a LangGraph.js graph, as ../shared/bench's
// LangGraph.js peer builds it (prebuilt createReactAgent + ChatOpenAI,
// native tool calls, one tool lookup(key) -> "value-of-<key>") against the
// mock LLM at $MOCK_URL, served by start.mjs.
import { createReactAgent } from "@langchain/langgraph/prebuilt";
import { ChatOpenAI } from "@langchain/openai";
import { tool } from "@langchain/core/tools";
import { z } from "zod";

const SYSTEM_PROMPT = "You are a benchmark agent. Use the lookup tool as instructed, then answer.";
const llm = new ChatOpenAI({
  model: "mock-gpt",
  apiKey: "x",
  configuration: { baseURL: process.env.MOCK_URL },
  maxRetries: 0, // a retry would hide a failure and add requests
  timeout: 60_000,
});
const lookup = tool(async ({ key }) => `value-of-${key}`, {
  name: "lookup",
  description: "Look up the value stored under a key.",
  schema: z.object({ key: z.string().describe("the key, e.g. key-1") }),
});
export const graph = createReactAgent({ llm, tools: [lookup], prompt: SYSTEM_PROMPT });
