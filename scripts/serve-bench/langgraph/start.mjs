// start.mjs: the LangGraph.js API server (@langchain/langgraph-api, the
// in-memory server `langgraph dev` runs) serving graph.mjs, without the
// CLI's watcher and browser. PORT, N_WORKERS (concurrent runs, the CLI's
// --n-jobs-per-worker), MOCK_URL. Prints "ready PORT" when it listens.
import { startServer } from "@langchain/langgraph-api/server";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const port = Number(process.env.PORT || 2024);
await startServer({
  port,
  nWorkers: Number(process.env.N_WORKERS || 10),
  host: "127.0.0.1",
  cwd: process.env.LG_CWD || here,
  graphs: {
    lookup: path.join(here, "graph.mjs") + ":graph",
    asker: path.join(here, "asker.mjs") + ":graph",
  },
});
console.log(`ready ${port}`);
