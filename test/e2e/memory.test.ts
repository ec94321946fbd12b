import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { MemorySearchResult, requestTyped } from "../../protocol/index.js";
import { SessionLog } from "../../memory/index.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { agentSpec, CLI, routerSpec, startProcesses, writeTestFleet } from "../helpers/fleet-processes.js";
import { NatsServer } from "../helpers/nats-server.js";
import { runFleet } from "../helpers/run-cli.js";
import { waitFor } from "../helpers/wait.js";


/** Memory across processes: an agent's work lands in its session log, its next prompt reads it, the scheduler answers search. */
describe("memory in a running fleet", () => {
  let server: NatsServer;
  let fleet: ReturnType<typeof writeTestFleet>;
  before(async () => {
    server = await NatsServer.start();
    fleet = writeTestFleet();
  });
  after(async () => {
    await server.stop();
    fleet.cleanup();
  });

  it("a finished task is in the agent's session log and in the prompt of its next step; semantic search is served", async () => {
    const scheduler = { id: "scheduler", command: process.execPath, args: [CLI, "run", "scheduler", "--config", fleet.file, "--nats", server.url, "--supervised", "--log-level", "warn"], restart: "permanent" as const };
    const procs = startProcesses([routerSpec(fleet.file, server.url), scheduler, agentSpec("scout", fleet.file, server.url)]);
    const client = await FleetClient.connect(server.url);
    try {
      await procs.start();
      await client.waitAlive(["scout"]);
      const task = await client.send("scout", "research the competitors' pricing pages");
      await client.waitState("scout", task.id, "TASK_STATE_COMPLETED");

      const log = new SessionLog({ js: jetstream(client.nc), jsm: await jetstreamManager(client.nc), names: client.names, timeZone: "UTC", codec: "msgpack" });
      const entries = await waitFor("the session log entry", async () => {
        const recent = await log.recent("scout");
        return recent.length > 0 ? recent : undefined;
      });
      assert.equal(entries[0]?.taskId, task.id);
      assert.match(entries[0]?.text ?? "", /research the competitors' pricing pages →/);

      const shown = await runFleet(["context", "scout", "pricing", "follow-up", "--json", "--config", fleet.file, "--nats", server.url]);
      assert.equal(shown.code, 0, shown.stderr);
      const context = JSON.parse(shown.stdout) as { sections: { name: string; items: number; error?: string }[]; messages: { content: string }[] };
      assert.equal(context.sections.find((s) => s.name === "session")?.items, 1, "the next prompt carries the day's log");
      assert.match(context.messages[0]?.content ?? "", /research the competitors' pricing pages/);

      const search = await waitFor("the scheduler's memory search", () =>
        requestTyped(client.nc, client.names.memorySearch("scout"), { query: "pricing", limit: 3 }, MemorySearchResult, { codec: "msgpack", timeoutMs: 3_000 }).catch(() => undefined),
      );
      assert.deepEqual(search.hits, [], "nothing distilled yet, but the store answers");
    } finally {
      await procs.stop();
      await client.close();
    }
  });
});
