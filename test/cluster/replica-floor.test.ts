import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino, type Logger } from "pino";
import { connectNats, ensureFleetResources, FleetNames } from "../../protocol/index.js";
import { NatsCluster } from "../../harness/index.js";

/**
 * A fleet's replica count only goes up, on a real three-node cluster: a process started with a laptop's config
 * (`fleet.replicas: 1`) against a fleet whose streams and buckets are R3 leaves them R3 (it still updates the rest of
 * their config) and warns, naming them; a fleet made R1 and started again with `replicas: 3` is raised to R3.
 */

/** Every stream of one fleet (its streams, and its buckets' KV_ streams) with its replica count. */
async function replicasOf(jsm: JetStreamManager, names: FleetNames): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const info of jsm.streams.list()) {
    const name = info.config.name;
    if (name.startsWith(`${names.prefix.toUpperCase()}_`) || name.startsWith(`KV_${names.prefix}-`)) out.set(name, info.config.num_replicas);
  }
  return out;
}

/** A logger whose lines the test reads. */
function capturedLog(): { log: Logger; warnings: Array<Record<string, unknown>> } {
  const warnings: Array<Record<string, unknown>> = [];
  const log = pino({ level: "warn" }, { write: (line: string) => void warnings.push(JSON.parse(line) as Record<string, unknown>) });
  return { log, warnings };
}

describe("fleet.replicas raises a fleet's streams and buckets, never lowers them (three-node cluster)", () => {
  let cluster: NatsCluster;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  before(async () => {
    cluster = await NatsCluster.start();
    nc = await connectNats({ servers: cluster.urls, name: "replica-floor-test", longLived: false });
    jsm = await jetstreamManager(nc);
  });

  after(async () => {
    await nc?.close();
    await cluster?.stop();
  });

  it("a process configured with replicas: 1 leaves an R3 fleet at R3, updates the rest, and warns naming what it kept", async () => {
    const names = new FleetNames("floor");
    await ensureFleetResources(nc, names, { replicas: 3 });
    const made = await replicasOf(jsm, names);
    assert.ok(made.size > 20, `the fleet's streams and buckets (${made.size})`);
    for (const [name, replicas] of made) assert.equal(replicas, 3, `${name} made R3`);

    const { log, warnings } = capturedLog();
    await ensureFleetResources(nc, names, { replicas: 1, maxPayloadBytes: 123_456, log });

    for (const [name, replicas] of await replicasOf(jsm, names)) assert.equal(replicas, 3, `${name} kept R3`);
    // the rest of the definition is still applied: only the replica count is held
    assert.equal((await jsm.streams.info(names.stream("TASKS"))).config.max_msg_size, 123_456);
    assert.equal(warnings.length, 1, "one warning for the whole fleet");
    const warning = warnings[0]!;
    assert.equal(warning.configured, 1);
    const kept = warning.kept as string[];
    assert.equal(kept.length, made.size, "every stream and bucket is named");
    assert.ok(kept.includes(`${names.stream("TASKS")}=R3`), kept.join(", "));
    assert.ok(kept.includes(`KV_${names.bucket("tasks")}=R3`), kept.join(", "));
    assert.match(String(warning.msg), /never scales the fleet down/);
  });

  it("a fleet made R1 is raised to R3 when its processes start with replicas: 3, without a warning", async () => {
    const names = new FleetNames("raise");
    await ensureFleetResources(nc, names, { replicas: 1 });
    for (const [name, replicas] of await replicasOf(jsm, names)) assert.equal(replicas, 1, `${name} made R1`);

    const { log, warnings } = capturedLog();
    await ensureFleetResources(nc, names, { replicas: 3, log });
    const raised = await replicasOf(jsm, names);
    assert.ok(raised.size > 20);
    for (const [name, replicas] of raised) assert.equal(replicas, 3, `${name} raised to R3`);
    assert.deepEqual(warnings, []);
  });
});
