// asker.mjs: a run that waits for a person (an interrupt), for the memory
// per waiting run.
import { StateGraph, Annotation, interrupt, START, END } from "@langchain/langgraph";

const State = Annotation.Root({ answer: Annotation() });
export const graph = new StateGraph(State)
  .addNode("ask", () => ({ answer: interrupt("your name?") }))
  .addEdge(START, "ask")
  .addEdge("ask", END)
  .compile();
