import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { FleetReader, tasksPage } from "../../bridges/index.js";
import { connectNats, encode, ensureFleetResources, FleetNames, type Task } from "../../protocol/index.js";
import { routerFleetConfig } from "../helpers/router-fleet.js";
import { NatsServer } from "../helpers/nats-server.js";

/*
 * The dashboard's tasks page shows each task's estimate against its actual in story points, read from the Task's own
 * metadata (written by its agent when it claimed and settled it), as `fleet tasks` does.
 */
describe("dashboard: tasks with estimate against actual", () => {
  let server: NatsServer | undefined;
  after(async () => {
    await server?.stop();
  });

  it("reads the estimate and the actual from each Task and shows them side by side; a default estimate is starred", async () => {
    server = await NatsServer.start();
    const nc = await connectNats({ servers: server.url, name: "dashboard-tasks" });
    try {
      const names = new FleetNames("dtasks");
      const { kv } = await ensureFleetResources(nc, names);
      const config = routerFleetConfig({ baseUrl: "http://127.0.0.1:9/v1", prefix: "dtasks" });
      const task = (id: string, at: string, metadata: Record<string, unknown>): Task => ({
        id,
        contextId: id,
        status: { state: "TASK_STATE_COMPLETED", timestamp: at },
        history: [{ messageId: `m-${id}`, role: "ROLE_USER", parts: [{ text: `research ${id}` }] }],
        metadata,
      });
      await kv.tasks.put(names.taskKey("scout", "t-known"), encode(task("t-known", "2026-12-05T10:00:00.000Z", {
        estimate: { kind: "skill:research", points: 3, basis: "history", samples: 3 },
        actual: { tokens: 2100, points: 2.1 },
      }), config.fleet.codec));
      await kv.tasks.put(names.taskKey("scout", "t-first"), encode(task("t-first", "2026-12-05T09:00:00.000Z", {
        estimate: { kind: "skill:research", points: 1, basis: "default", samples: 0 },
      }), config.fleet.codec));

      const reader = new FleetReader({ nc, js: jetstream(nc), jsm: await jetstreamManager(nc), names, kv, config });
      const rows = await reader.tasks();
      assert.deepEqual(rows.map((r) => [r.id, r.estimate?.points, r.estimate?.basis, r.actualPoints]), [
        ["t-known", 3, "history", 2.1],
        ["t-first", 1, "default", undefined],
      ]);
      const page = String(tasksPage(rows, 50));
      assert.match(page, /EST \/ ACTUAL \(pts\)/);
      assert.match(page, /<td>3 \/ 2\.1<\/td>/);
      assert.match(page, /<td>1\* \/ -<\/td>/);
    } finally {
      await nc.close();
    }
  });
});
