import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { pino } from "pino";
import { FleetReader, ProposalEntries, proposalsPage } from "../../bridges/index.js";

import { connectNats, encode, ensureFleetResources, FleetNames, type ProposalRecord } from "../../protocol/index.js";
import { NatsServer } from "../helpers/nats-server.js";
import { routerFleetConfig } from "../helpers/router-fleet.js";
import { waitFor } from "../helpers/wait.js";

/*
 * KV `proposals` keeps every proposal ever made: the proposals page reads in full only those it shows (all awaiting a
 * human, the newest 30 others), found through an index a KV watch keeps, which also counts them by state for /metrics.
 */
describe("dashboard: proposals read by key", () => {
  let server: NatsServer | undefined;
  after(async () => {
    await server?.stop();
  });

  it("shows every proposal awaiting a human and the newest others, reading only those; counts follow each change", async () => {
    server = await NatsServer.start();
    const nc = await connectNats({ servers: server.url, name: "dashboard-proposals" });
    let entries: ProposalEntries | undefined;
    try {
      const names = new FleetNames("dprops");
      const { kv } = await ensureFleetResources(nc, names);
      const config = routerFleetConfig({ baseUrl: "http://127.0.0.1:9/v1", prefix: "dprops" });
      const put = (n: number, state: ProposalRecord["state"]) => kv.proposals.put(`p-${n}`, encode({
        id: `p-${n}`, agentId: "closer", tool: "send_invoice", risk: "CONFIRM", input: { n }, reason: `invoice ${n}`, state,
        createdAt: 1_000_000 + n * 1_000, updatedAt: 1_000_000 + n * 1_000, notified: [], attempts: 0, history: [],
      } satisfies ProposalRecord, config.fleet.codec));
      for (let n = 0; n < 60; n++) await put(n, n % 20 === 7 ? "awaiting_human" : n % 3 ? "completed" : "rejected");
      let gets = 0;
      const counted = new Proxy(kv.proposals, { get: (target, prop, receiver) => (prop === "get" ? (...args: Parameters<typeof kv.proposals.get>) => (gets++, target.get(...args)) : Reflect.get(target, prop, receiver)) });
      const reader = new FleetReader({ nc, js: jetstream(nc), jsm: await jetstreamManager(nc), names, kv: { ...kv, proposals: counted }, config });
      entries = new ProposalEntries({ kv: kv.proposals, codec: config.fleet.codec, log: pino({ level: "silent" }) });
      await entries.start();

      const shown = await reader.proposals(entries, 30);
      assert.equal(gets, 33, "3 awaiting a human + 30 recent: 33 reads of 60 proposals");
      assert.deepEqual(shown.filter((p) => p.state === "awaiting_human").map((p) => p.id), ["p-47", "p-27", "p-7"]);
      const html = String(proposalsPage(shown, "csrf", 2_000_000, undefined));
      assert.match(html, /Awaiting a human \(3\)/);
      assert.equal(html.match(/<tr data-proposal=/g)?.length, 30);
      assert.match(html, /data-proposal="p-59"/);
      assert.doesNotMatch(html, /data-proposal="p-0"/, "older than the newest 30");
      assert.deepEqual(Object.fromEntries(await entries.countsByState()), { completed: 38, rejected: 19, awaiting_human: 3 });

      await put(47, "completed");
      await waitFor("the decision to be followed", async () => (await entries!.countsByState()).get("awaiting_human") === 2);
    } finally {
      await entries?.stop();
      await nc.close();
    }
  });
});
