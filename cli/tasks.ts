import { actualOfTask, estimateOfTask, TaskStore } from "../actors/index.js";
import { partsText, type Task } from "../protocol/index.js";
import { inspect, type CliOptions } from "./options.js";
import { printTable } from "./status.js";

/** `fleet tasks [agent]`: tasks from KV (so it works while agents are down), oldest first. */
export async function tasks(positionals: string[], options: CliOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const { nc, names, kv } = await inspect(options, env);
  try {
    let agentIds = positionals.length ? positionals : [];
    if (agentIds.length === 0) for await (const key of await kv.agents.keys()) agentIds.push(key);
    agentIds = agentIds.sort();
    const rows: string[][] = [];
    const all = [];
    for (const codec of ["msgpack", "json"] as const) {
      const store = new TaskStore(kv.tasks, names, codec);
      for (const agentId of agentIds) {
        const list = await store.list(agentId).catch(() => []);
        for (const t of list) {
          all.push({ agentId, ...t });
          rows.push(taskRow(agentId, t));
        }
      }
      if (rows.length) break;
    }
    if (options.json) console.log(JSON.stringify(all, null, 2));
    else if (rows.length === 0) console.log("no tasks");
    else printTable(TASK_COLUMNS, rows);
    return 0;
  } finally {
    await nc.close();
  }
}

export const TASK_COLUMNS = ["TASK", "AGENT", "STATE", "UPDATED", "EST", "ACTUAL", "REQUEST"];

/**
 * One line of `fleet tasks`: the estimate made when the task was claimed and the actual written when it was settled,
 * both in story points (1 point = 1,000 tokens); `-` where there is none yet (not claimed, not finished, or older work).
 */
export function taskRow(agentId: string, t: Task): string[] {
  const text = partsText(t.history?.[0]?.parts ?? [], " ");
  const estimate = estimateOfTask(t);
  const actual = actualOfTask(t);
  return [
    t.id,
    agentId,
    t.status.state.replace("TASK_STATE_", ""),
    t.status.timestamp.slice(0, 19),
    estimate ? `${estimate.points}${estimate.basis === "default" ? "*" : ""}` : "-",
    actual ? String(actual.points) : "-",
    // a failed task leads with its error's code (PEER_UNAVAILABLE, TOOL_NOT_ALLOWED, ...) when its reason names one
    `${failureCode(t) ?? waitingOn(t) ?? ""}${text}`.slice(0, 60),
  ];
}

function failureCode(t: Task): string | undefined {
  if (t.status.state !== "TASK_STATE_FAILED") return undefined;
  const reason = partsText(t.status.message?.parts ?? [], " ");
  const code = /^([A-Z][A-Z0-9_]{2,}): /.exec(reason)?.[1];
  return code ? `${code}: ` : undefined;
}

/** A delegation to a peer that waits to try again (metadata.peer.waiting): its error's code and attempt, first. */
function waitingOn(t: Task): string | undefined {
  const peer = t.metadata?.["peer"];
  const waiting = typeof peer === "object" && peer !== null && "waiting" in peer ? (peer as { waiting?: { code?: unknown; attempt?: unknown } }).waiting : undefined;
  return t.status.state === "TASK_STATE_WORKING" && typeof waiting?.code === "string" ? `waiting (${waiting.code}, attempt ${String(waiting.attempt)}): ` : undefined;
}
