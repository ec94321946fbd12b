import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { connect } from "@nats-io/transport-node";
import type { HostedAgent } from "../actors/index.js";

/**
 * A child process for the memory figures of `bench/messaging.ts`: `--count 0` is the baseline (a bare nats.js
 * connection doing nothing), `--count N` hosts N synthetic offline agents in one AgentRuntime. It prints `ready` once
 * everything has started and then idles until SIGTERM; the parent reads its RSS from /proc.
 */

const { values } = parseArgs({
  options: {
    nats: { type: "string" },
    count: { type: "string", default: "1" },
    prefix: { type: "string", default: "benchmem" },
    /** how long each task's work takes; 0 is the offline behaviour's instant answer */
    "work-ms": { type: "string", default: "0" },
  },
});
const workMs = Number(values["work-ms"]);
const servers = values.nats ?? "nats://127.0.0.1:4222";
const count = Number(values.count);
if (!Number.isInteger(count) || count < 0) throw new TypeError(`--count must be a whole number, not ${values.count}`);

function syntheticAgents(n: number): HostedAgent[] {
  return Array.from({ length: n }, (_, i) => {
    const id = `a${String(i).padStart(4, "0")}`;
    return {
      id,
      name: `Agent ${id}`,
      role: "synthetic agent for the memory benchmark",
      defaultTier: "nano",
      // no cycle falls inside the measurement
      cycleMinutes: 60,
      skills: [{ id: "research", name: "Research", description: "Looks a question up.", tags: ["research"] }],
    };
  });
}

async function main(): Promise<void> {
  let stop: () => Promise<void>;
  if (count === 0) {
    const nc = await connect({ servers, name: "bench-bare" });
    stop = () => nc.close();
  } else {
    // loaded only here, so the baseline process holds nats.js and nothing of ours
    const { AgentRuntime } = await import("../actors/index.js");
    const { offlineBehaviour } = await import("../behaviours/index.js");
    const { pino } = await import("pino");
    const runtime = await AgentRuntime.start(
      {
        servers,
        prefix: values.prefix ?? "benchmem",
        codec: "msgpack",
        maxPayloadBytes: 1024 * 1024,
        tasks: { ackWaitSeconds: 30, maxDeliver: 5, backoffSeconds: [30, 60, 300], workingAckSeconds: 10 },
        // a benchmark must not pause for quiet hours (start = end: never quiet)
        quietHours: { start: "00:00", end: "00:00", timeZone: "UTC" },
        runId: `bench-${process.pid}`,
        processName: `bench-idle-${count}`,
      },
      syntheticAgents(count),
      (agent) => {
        const offline = offlineBehaviour(agent);
        if (workMs <= 0) return offline;
        // work that takes time without using the CPU, as a model call does
        return { plan: offline.plan, act: async (input, ctx) => (await sleep(workMs, undefined, { signal: ctx.signal }), offline.act(input, ctx)) };
      },
      { log: pino({ level: "silent" }) },
    );
    stop = () => runtime.stop();
  }
  process.stdout.write("ready\n");
  process.once("SIGTERM", () => {
    stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`idle-agent: ${String(err)}\n`);
  process.exit(1);
});
