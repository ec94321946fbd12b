import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Kvm, type KV } from "@nats-io/kv";
import { jetstreamManager } from "@nats-io/jetstream";
import type { ProcessSupervisor } from "../../supervisor/index.js";
import { NatsCluster, OpenAIServer } from "../../harness/index.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { startProcesses } from "../helpers/fleet-processes.js";
import { waitFor } from "../helpers/wait.js";
import { proposer, roleOn, tallies, writeClusterFleet } from "./cluster-fleet.js";

/**
 * The host holding the singletons' leases (governance, the scheduler, Atlas) is cut off while proposals are in flight:
 * each lease moves to its standby on another host within the lease's TTL (15 s; a standby tries every second); when the
 * host comes back every proposal completes, its singletons find their leases gone and stand by, and no proposal's tool
 * runs twice.
 *
 * Each node and the processes said to be on its host run in a network namespace of their own (harness/net-hosts.ts) and
 * the cut takes that host's cable out: its server and its governance stay alive and keep trying, as on a real partition.
 * Where namespaces cannot be made (not root), the nodes share loopback and the cut stops the node's process instead.
 */

const PREFIX = "cpart";
const TTL_MS = 15_000;
/** a standby's poll (1 s), a request's round trip and the leases stream's election, on a loaded machine */
const TAKEOVER_MARGIN_MS = 4_000;

/** The fleet's singletons, each with its holder on the host that is cut off and a standby on another host. */
const SINGLETONS = [
  { id: "governance", lease: "governance", role: ["governance"] },
  { id: "scheduler", lease: "scheduler", role: ["scheduler"] },
  { id: "atlas", lease: "agent.atlas", role: ["agent", "atlas"] },
] as const;

describe("a partition of the host holding the singletons' leases (three-node cluster)", () => {
  let cluster: NatsCluster;
  let openai: OpenAIServer;
  let processes: ProcessSupervisor;
  let standby: ProcessSupervisor;
  let leasesKv: KV | undefined;
  let client: FleetClient;
  let fleet: ReturnType<typeof writeClusterFleet>;
  const output: string[] = [];

  before(async () => {
    cluster = await NatsCluster.start({ netns: true });
    openai = await OpenAIServer.start(cluster.testAddress);
    fleet = writeClusterFleet(PREFIX, openai.baseUrl);
    const [n1, n2, n3] = cluster.urls as [string, string, string];
    // the test's own client stays on the two nodes that keep the majority
    client = await FleetClient.connect([n2, n3], PREFIX, { replicas: 3 });
    processes = startProcesses([...SINGLETONS.map((s) => cluster.onHost(0, roleOn(`${s.id}-a`, [...s.role], fleet.file, n1, "info"))), cluster.onHost(2, roleOn("tools", ["tools"], fleet.file, n3))], output);
    await processes.start();
    for (const s of SINGLETONS) await waitFor(`${s.id}-a to hold its lease`, async () => (await holder(s.lease)) === pidOf(`${s.id}-a`), 30_000);
    standby = startProcesses(SINGLETONS.map((s) => cluster.onHost(1, roleOn(`${s.id}-b`, [...s.role], fleet.file, n2, "info"))), output);
    await standby.start();
    // a loaded machine takes seconds to start a process: the partition comes once every standby waits for its lease
    for (const s of SINGLETONS) await waitFor(`${s.id}-b to stand by`, () => output.some((l) => l.startsWith(`${s.id}-b:`) && l.includes("standing by")), 60_000);
  });

  after(async () => {
    cluster?.heal(0);
    await standby?.stop();
    await processes?.stop();
    await client?.close();
    await Promise.all([cluster?.stop(), openai?.close()]);
    fleet?.cleanup();
  });

  const pidOf = (id: string) => [...processes.status(), ...(standby?.status() ?? [])].find((c) => c.id === id)?.pid;
  // read from the bucket's leader, not by direct get: see the proposals' reader below
  const holder = async (lease: string) => {
    leasesKv ??= await new Kvm(client.nc).open(client.names.bucket("leases"), { allow_direct: false });
    const entry = await leasesKv.get(lease);
    return entry?.operation === "PUT" ? Number(new TextDecoder().decode(entry.value).split(":").at(-1)) : undefined;
  };

  it("each lease moves within its TTL, every proposal completes, none runs twice when the host is back", { timeout: 240_000 }, async (t) => {
    // the test reads proposals from the bucket's leader: a direct get may be routed to the stopped node (its routes
    // linger, see the README) and wait out timeouts, which would time the test's own reads rather than the fleet
    const props = proposer(client, await new Kvm(client.nc).open(client.names.bucket("proposals"), { allow_direct: false }));
    const jsm = await jetstreamManager(client.nc, { timeout: 5_000 });
    const ids: string[] = [];
    const notCompleted = async (some: string[]) => {
      const open: string[] = [];
      for (const id of some) {
        const state = await props.state(id);
        if (state !== "completed") open.push(`${id}: ${state}`);
      }
      return open;
    };
    for (let n = 0; n < 30; n++) ids.push(await props.propose(n, fleet.tallyFile));
    await waitFor("the first proposals to complete", async () => (await props.state(ids[0]!)) === "completed");

    const leasesLeader = (await jsm.streams.info(`KV_${client.names.bucket("leases")}`)).cluster?.leader;
    const before = new Map(SINGLETONS.map((s) => [s.id, pidOf(`${s.id}-a`)]));
    const cutAt = Date.now();
    cluster.partition(0);
    const moves = Promise.all(
      SINGLETONS.map(async (s) => {
        const b = pidOf(`${s.id}-b`);
        await waitFor(`${s.id}-b to take the lease`, async () => (await holder(s.lease)) === b, 90_000);
        return [s.id, Date.now() - cutAt] as const;
      }),
    );
    for (let n = 30; n < 60; n++) ids.push(await props.propose(n, fleet.tallyFile));
    const moved = await moves;
    t.diagnostic(`the leases moved ${moved.map(([id, ms]) => `${id} ${ms} ms`).join(", ")} after the cut (hosts: ${cluster.hosts ? "network namespaces" : "loopback, SIGSTOP"})`);
    for (const [id, ms] of moved) {
      assert.ok(ms <= TTL_MS + TAKEOVER_MARGIN_MS, `${id}'s lease moved after ${ms} ms (leases leader was ${leasesLeader})\n${output.filter((l) => l.includes("lease") || l.startsWith(`${id}-b`)).slice(-20).join("\n")}`);
    }

    // the majority side works on: what was proposed during the cut is executed by the new holder before the healing
    await waitFor("the proposals made during the cut completed before the healing", async () => (await notCompleted(ids.slice(30))).length === 0, 60_000).catch(async (err: unknown) => {
      const intake = await jsm.consumers.info(client.names.stream("PROPOSALS"), "governance-intake").then((i) => JSON.stringify({ cluster: i.cluster, pending: i.num_pending, ackPending: i.num_ack_pending, delivered: i.delivered })).catch((e: unknown) => String(e));
      throw new Error(`${String(err)}\nopen: ${(await notCompleted(ids.slice(30))).join(", ")}\nintake: ${intake}\n${output.filter((l) => l.startsWith("governance")).slice(-40).join("\n")}`);
    });
    cluster.heal(0);
    await waitFor("every proposal completed", async () => (await notCompleted(ids)).length === 0, 90_000).catch(async (err: unknown) => {
      const info = await jsm.streams.info(`KV_${client.names.bucket("proposals")}`).then((i) => JSON.stringify({ cluster: i.cluster, state: i.state })).catch((e: unknown) => String(e));
      throw new Error(`${String(err)}; client on ${client.nc.getServer()}; proposals bucket: ${info}\n${output.slice(-30).join("\n")}`);
    });

    // the host back: each of its singletons finds its lease taken and stands by (restarted by its supervisor, as under
    // fleet up)
    for (const s of SINGLETONS) {
      await waitFor(`${s.id}-a to stand down`, () => pidOf(`${s.id}-a`) !== undefined && (processes.status().find((c) => c.id === `${s.id}-a`)?.restarts ?? 0) > 0, 60_000);
    }
    for (let n = 60; n < 70; n++) ids.push(await props.propose(n, fleet.tallyFile));
    await waitFor("the proposals after the healing completed", async () => (await notCompleted(ids.slice(60))).length === 0, 30_000);
    // the lease is B's, or (on a machine so loaded that B missed its own renewals) vacant or B's successor's: never A's old one
    for (const s of SINGLETONS) assert.notEqual(await holder(s.lease), before.get(s.id), `the host that came back does not hold ${s.id}'s lease on its old claim`);
    const runs = tallies(fleet.tallyFile);
    assert.deepEqual([...runs].filter(([, c]) => c !== 1), [], "no proposal's tool ran twice");
    assert.equal(runs.size, 70);
  });
});
