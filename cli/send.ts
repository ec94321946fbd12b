import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { decode, FleetError, heldOf, isTerminal, partsText, requestOperation, TaskEvent, TaskWork, Finding, type Task } from "../protocol/index.js";
import { inspect, type CliOptions } from "./options.js";

export interface SendOptions extends CliOptions {
  timeout?: string | undefined;
  "no-wait"?: boolean | undefined;
  /** a task naming a tool (tier 0): its input as JSON, and why (for a proposal) */
  tool?: string | undefined;
  input?: string | undefined;
  reason?: string | undefined;
  /** marks the work urgent (`metadata.work.urgent`): quiet hours do not hold it */
  urgent?: boolean | undefined;
  /** a task naming a pipeline; `input` is then the run's input (a JSON object) */
  pipeline?: string | undefined;
  /** a tier name or an alias for the task's model steps */
  tier?: string | undefined;
}

function parseInput(options: SendOptions): unknown {
  try {
    return JSON.parse(options.input ?? "{}");
  } catch (cause) {
    throw new FleetError("MESSAGE_INVALID", `--input is not JSON: ${options.input ?? ""}`, { cause });
  }
}

/** `metadata.work` (protocol TaskWork): the pipeline and its input, the tier or alias; started by the operator. */
function workOf(options: SendOptions): TaskWork | undefined {
  if (!options.pipeline && !options.tier && !options.urgent) return undefined;
  let input: Record<string, unknown> | undefined;
  if (options.pipeline && options.input !== undefined) {
    const parsed = z.record(z.string(), z.unknown()).safeParse(parseInput(options));
    if (!parsed.success) throw new FleetError("MESSAGE_INVALID", `--input of a pipeline must be a JSON object: ${options.input}`);
    input = parsed.data;
  }
  return TaskWork.parse({
    ...(options.pipeline ? { pipeline: options.pipeline } : {}),
    ...(input ? { input } : {}),
    ...(options.tier ? { tier: options.tier } : {}),
    ...(options.urgent ? { urgent: true } : {}),
    trigger: "operator",
  });
}

/** The message's parts: the text, and for `--tool` a data part `{ tool, input, reason }` the agent acts on without a model. */
function partsOf(text: string, options: SendOptions) {
  if (options.pipeline) return [{ text: text || `pipeline ${options.pipeline}` }];
  if (!options.tool) return [{ text }];
  const input = parseInput(options);
  const step = { tool: options.tool, input, ...(options.reason ? { reason: options.reason } : {}) };
  return [{ text: text || `${options.tool} ${JSON.stringify(input)}` }, { data: step }];
}

/**
 * `fleet send <agent> <text>`: an A2A SendMessage; then the Task is printed as it moves through its states (from the
 * agent's event subject, with GetTask as a backstop so a missed event cannot hang the command).
 */
export async function send(positionals: string[], options: SendOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const [agentId, ...words] = positionals;
  const text = words.join(" ").trim();
  if (!agentId || (!text && !options.tool && !options.pipeline) || (options.tool && options.pipeline)) {
    console.error(
      `usage: fleet send <agent> "<text>" [--tier <tier|alias>] | fleet send <agent> --tool <name> --input '<json>' [--reason <why>] | fleet send <agent> --pipeline <id> [--input '<json>'] [--tier <tier|alias>]`,
    );
    return 2;
  }
  const { nc, names } = await inspect(options, env);
  const seen: string[] = [];
  const wake: Array<() => void> = [];
  const events = nc.subscribe(names.agentEvents(agentId), {
    callback: (err, msg) => {
      if (err) return;
      const d = decode(TaskEvent, msg.data, { codec: msg.headers?.get("Content-Type") === "application/json" ? "json" : "msgpack" });
      if (d.ok && d.value.kind === "status-update") seen.push(`${d.value.taskId} ${d.value.status.state}`);
      wake.splice(0).forEach((w) => w());
    },
  });
  try {
    const work = workOf(options);
    const message = { messageId: randomUUID(), role: "ROLE_USER" as const, parts: partsOf(text, options), ...(work ? { metadata: { work } } : {}) };
    let task = await requestOperation(nc, names, agentId, "SendMessage", { message });
    const print = (t: Task) => (options.json ? undefined : console.log(`${new Date().toISOString().slice(11, 19)}  task ${t.id}  ${t.status.state}`));
    print(task);
    if (options["no-wait"]) {
      if (options.json) console.log(JSON.stringify(task, null, 2));
      return 0;
    }
    const deadline = Date.now() + Number(options.timeout ?? 120) * 1000;
    let last = task.status.state;
    // a held task (quiet hours, a spent cap) runs at its hold's end: nothing to wait for here
    while (!isTerminal(task.status.state) && !heldOf(task.metadata) && Date.now() < deadline) {
      await Promise.race([new Promise<void>((r) => wake.push(r)), sleep(2_000)]);
      task = await requestOperation(nc, names, agentId, "GetTask", { id: task.id });
      if (task.status.state !== last) {
        last = task.status.state;
        print(task);
      }
    }
    if (options.json) console.log(JSON.stringify(task, null, 2));
    else printArtifacts(task);
    const held = heldOf(task.metadata);
    if (held && !isTerminal(task.status.state)) {
      if (!options.json) console.log(`held, not failed: it runs then (fleet status lists held work; --urgent skips quiet hours)`);
      return 0;
    }
    if (!isTerminal(task.status.state)) {
      console.error(`still ${task.status.state} after ${options.timeout ?? 120}s; follow it with: fleet tasks ${agentId}`);
      return 1;
    }
    return task.status.state === "TASK_STATE_COMPLETED" ? 0 : 1;
  } finally {
    events.unsubscribe();
    await nc.close();
  }
}

/** What a pipeline run's artifact says about itself in its metadata (behaviours/pipeline-stage.ts). */
const PipelineSummary = z.object({ pipeline: z.string(), found: z.boolean(), findings: z.number(), costUsd: z.number(), simulated: z.boolean().optional() });

function printArtifacts(task: Task): void {
  if (task.status.message) console.log(`  ${partsText(task.status.message.parts, " ")}`);
  for (const artifact of task.artifacts ?? []) {
    for (const part of artifact.parts) if ("text" in part) console.log(`  [${artifact.name ?? artifact.artifactId}] ${part.text}`);
    const run = PipelineSummary.safeParse(artifact.metadata);
    if (!run.success) continue;
    const label = `  [${artifact.name ?? artifact.artifactId}]`;
    for (const part of artifact.parts) {
      const findings = z.object({ findings: z.array(Finding) }).safeParse("data" in part ? part.data : undefined);
      for (const f of findings.success ? findings.data.findings : []) console.log(`${label} finding ${f.severity} ${f.subject}: ${f.summary}`);
    }
    console.log(`${label} found: ${run.data.found}, findings: ${run.data.findings}, cost: $${run.data.costUsd.toFixed(6)}${run.data.simulated ? " (simulated: no model provider configured)" : ""}`);
  }
}
