import type { SessionLogEntry } from "../protocol/index.js";
import type { SearchHit } from "./vector-store.js";

/** One item of reference knowledge (a person, project, decision or lesson) as it ranks for a query. */
export interface ReferenceItem {
  /** what sort of knowledge it is ("person", "project", "decision", "lesson", …); shown to the model as a label */
  kind: string;
  text: string;
  /** higher is more relevant; items are shown best first */
  score: number;
}

/*
 * What context assembly reads memory through. Each tier has its own owner and storage (MEMORY.md lines in KV, the daily
 * session logs in a stream, the vector store behind `fleet.memory.search`, the knowledge files); assembly depends on
 * this interface only, so it can be tested with a fake and wired to whichever implementations the process has.
 * Any method may throw: assembly leaves that tier out of the prompt and reports it, it never fails the call.
 */
export interface MemorySources {
  /** the agent's MEMORY.md, one entry per line, in file order (oldest first, as lines are appended) */
  agentMemory(agentId: string): Promise<string[]>;
  /** the agent's session log for today and yesterday (in the fleet's time zone), oldest first */
  sessionLog(agentId: string): Promise<SessionLogEntry[]>;
  /** the agent's `limit` semantic memories most similar to `query`, best first */
  semantic(agentId: string, query: string, limit: number): Promise<SearchHit[]>;
  /** the `limit` reference knowledge items most relevant to `query`, best first */
  reference(query: string, limit: number): Promise<ReferenceItem[]>;
}
