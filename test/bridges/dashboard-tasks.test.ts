import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { pino } from "pino";
import { FleetReader, TaskIndex, tasksPage } from "../../bridges/index.js";
import { connectNats, encode, ensureFleetResources, FleetNames, type Task } from "../../protocol/index.js";
import { routerFleetConfig } from "../helpers/router-fleet.js";
import { NatsServer } from "../helpers/nats-server.js";
import { waitFor } from "../helpers/wait.js";

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
      const index = new TaskIndex({ kv: kv.tasks, codec: config.fleet.codec, log: pino({ level: "silent" }) });
      await index.start();
      try {
        const page = await reader.taskPage(index, { page: 0, limit: 50 });
        assert.deepEqual(page.rows.map((r) => [r.id, r.estimate?.points, r.estimate?.basis, r.actualPoints]), [
          ["t-known", 3, "history", 2.1],
          ["t-first", 1, "default", undefined],
        ]);
        const html = String(tasksPage(page));
        assert.match(html, /EST \/ ACTUAL \(pts\)/);
        assert.match(html, /<td>3 \/ 2\.1<\/td>/);
        assert.match(html, /<td>1\* \/ -<\/td>/);
      } finally {
        await index.stop();
      }
    } finally {
      await nc.close();
    }
  });

  it("pages read only the Tasks they show: the index orders, filters and counts, and follows every change", async () => {
    server ??= await NatsServer.start();
    const nc = await connectNats({ servers: server.url, name: "dashboard-pages" });
    let index: TaskIndex | undefined;
    try {
      const names = new FleetNames("dpages");
      const { kv } = await ensureFleetResources(nc, names);
      const config = routerFleetConfig({ baseUrl: "http://127.0.0.1:9/v1", prefix: "dpages" });
      const put = (agent: string, i: number, state: Task["status"]["state"]) => kv.tasks.put(names.taskKey(agent, `t-${i}`), encode({
        id: `t-${i}`, contextId: `t-${i}`, status: { state, timestamp: new Date(Date.UTC(2026, 11, 5, 0, i)).toISOString() },
        history: [{ messageId: `m-${i}`, role: "ROLE_USER", parts: [{ text: `task ${i}` }] }],
      } satisfies Task, config.fleet.codec));
      for (let i = 0; i < 25; i++) await put(i % 2 ? "scout" : "ship", i, i % 5 === 0 ? "TASK_STATE_WORKING" : "TASK_STATE_COMPLETED");
      // every get the page makes is counted: only the tasks it shows may be read
      let gets = 0;
      const counted = new Proxy(kv.tasks, { get: (target, prop, receiver) => (prop === "get" ? (...args: Parameters<typeof kv.tasks.get>) => (gets++, target.get(...args)) : Reflect.get(target, prop, receiver)) });
      const reader = new FleetReader({ nc, js: jetstream(nc), jsm: await jetstreamManager(nc), names, kv: { ...kv, tasks: counted }, config });
      index = new TaskIndex({ kv: kv.tasks, codec: config.fleet.codec, log: pino({ level: "silent" }) });
      await index.start();
      await index.ready;

      const second = await reader.taskPage(index, { page: 1, limit: 10 });
      assert.deepEqual(second.rows.map((r) => r.id), [14, 13, 12, 11, 10, 9, 8, 7, 6, 5].map((i) => `t-${i}`), "newest first, the second ten");
      assert.equal(second.matching, 25);
      assert.deepEqual(Object.fromEntries(second.byState), { COMPLETED: 20, WORKING: 5 });
      assert.equal(gets, 10, "ten rows shown, ten Tasks read");
      const html = String(tasksPage(second));
      assert.match(html, /11–20 of 25, newest first <a href="\/tasks">← newer<\/a> <a href="\/tasks\?page=3">older →<\/a>/);
      assert.match(html, /<a href="\/tasks\?state=WORKING">working 5<\/a>/);

      const working = await reader.taskPage(index, { page: 0, limit: 10, state: "WORKING", agentId: "ship" });
      assert.deepEqual(working.rows.map((r) => r.id), ["t-20", "t-10", "t-0"]);

      // a change lands in the index by the watch, no re-read: a new task first, a deleted one gone
      await put("scout", 99, "TASK_STATE_SUBMITTED");
      await kv.tasks.delete(names.taskKey("ship", "t-0"));
      const after = await waitFor("the index to follow", async () => {
        const p = await reader.taskPage(index!, { page: 0, limit: 3 });
        return p.matching === 25 && p.rows[0]?.id === "t-99" ? p : undefined;
      });
      assert.deepEqual(Object.fromEntries(after.byState), { COMPLETED: 20, WORKING: 4, SUBMITTED: 1 });
    } finally {
      await index?.stop();
      await nc.close();
    }
  });
});
