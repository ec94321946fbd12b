import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { createUser } from "@nats-io/nkeys";
import { pino } from "pino";
import { governedStepTools } from "../../behaviours/index.js";
import {
  AgentTools,
  anchorSigningBytes,
  AuditAnchorer,
  AuditChain,
  readAuditRecords,
  referenceToolRisks,
  referenceTools,
  signBytes,
  signerFromCredsFile,
  ToolCatalogue,
  ToolHost,
  trustedSignersIn,
  verifyAuditChain,
  writeFleetCredentials,
  type AuditEntry,
  type AuditSigner,
  type FleetCredentials,
  type Identity,
  type TrustedSigners,
} from "../../governance/index.js";
import { connectNats, encode, ensureFleetResources, FleetError, FleetNames, isPermissionViolation, openFleetResources, requestTyped, RefusalRecorded, wireHeaders } from "../../protocol/index.js";
import { GOVERNED_TOOLS, governedFleet } from "../helpers/governed-fleet.js";
import { NatsServer } from "../helpers/nats-server.js";
import { runFleet } from "../helpers/run-cli.js";

/*
 * The audit trail against an attacker who can write to the AUDIT stream (the operator's seed, a stolen tool-host seed):
 * every record is signed by the tool host's nkey and checked against the keys the config generated, and governance's
 * anchors of the chain's tip catch a tail rewritten consistently. Also: an agent's own refusals reach the trail through
 * the tool host, in the name its subject proves. A real nats-server with the authorization `fleet up` writes.
 */

const CODEC = "msgpack" as const;
const log = pino({ level: "silent" });

describe("audit signatures and anchors", () => {
  let fleet: ReturnType<typeof governedFleet>;
  let dir: string;
  let creds: FleetCredentials;
  let trusted: TrustedSigners;
  let server: NatsServer;
  let operator: NatsConnection;
  let js: JetStreamClient;
  let toolsKey: AuditSigner;
  let governanceKey: AuditSigner;
  const names = new FleetNames("fleet");
  const open: NatsConnection[] = [];
  const T0 = Date.now();

  const as = async (identity: Identity): Promise<NatsConnection> => {
    const nc = await connectNats({ servers: server.url, nkeySeedFile: creds.seedFile(identity), name: `test-${identity}`, longLived: false });
    open.push(nc);
    return nc;
  };
  const entry = (i: number, agentId = "scout"): AuditEntry => ({ agentId, tool: "web_fetch", risk: "AUTO", input: { i }, output: { ok: i }, ok: true, durationMs: 1, costUsd: 0, mode: "run", at: T0 + i });
  const chain = (signer: AuditSigner | undefined, on: JetStreamClient = js) => new AuditChain({ js: on, names, codec: CODEC, log, signer });
  const append = async (c: AuditChain, entries: AuditEntry[]) => {
    await c.start();
    for (const e of entries) await c.append(e);
    await c.stop();
  };
  const anchorer = async () => new AuditAnchorer({ js: jetstream(await as("governance")), names, codec: CODEC, signer: governanceKey, log });

  before(async () => {
    fleet = governedFleet();
    dir = mkdtempSync(join(tmpdir(), "fleet-audit-sig-"));
    creds = writeFleetCredentials(join(dir, "creds"), fleet.config, GOVERNED_TOOLS);
    server = await NatsServer.start({ config: readFileSync(creds.authFile, "utf8") });
    operator = await as("operator");
    js = jetstream(operator);
    await ensureFleetResources(operator, names);
    toolsKey = signerFromCredsFile(creds.seedFile("tools"));
    governanceKey = signerFromCredsFile(creds.seedFile("governance"));
    const found = trustedSignersIn(creds.dir);
    assert.ok(found, "identities.json is written beside the seeds");
    trusted = found;
  });
  after(async () => {
    for (const nc of open) if (!nc.isClosed()) await nc.close();
    await server?.stop();
    fleet?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  // each test starts from an empty trail and no anchors
  beforeEach(async () => {
    const jsm = await jetstreamManager(operator);
    for (const stream of ["AUDIT", "AUDIT_ANCHORS"] as const) await jsm.streams.delete(names.stream(stream)).catch(() => undefined);
    await ensureFleetResources(operator, names);
  });

  it("identities.json holds the public keys of the tool host and governance, never a seed", () => {
    assert.deepEqual([...trusted.records], [toolsKey.publicKey]);
    assert.deepEqual([...trusted.anchors], [governanceKey.publicKey]);
    assert.doesNotMatch(readFileSync(join(creds.dir, "identities.json"), "utf8"), /"S[A-Z]/);
  });

  it("a chain signed by the tool host verifies; unsigned records are reported plainly, and are a problem where keys are known", async () => {
    await append(chain(toolsKey, jetstream(await as("tools"))), [entry(1), entry(2), entry(3)]);
    let result = await verifyAuditChain(js, names, CODEC, { trusted });
    assert.deepEqual(result.problems, []);
    assert.deepEqual(result.signatures, { trustedFrom: trusted.source, signed: 3, unsigned: 0 });

    // a tool host without an nkey: no silent pass
    await append(chain(undefined), [entry(4)]);
    assert.deepEqual((await verifyAuditChain(js, names, CODEC)).signatures, { trustedFrom: undefined, signed: 3, unsigned: 1 });
    assert.deepEqual((await verifyAuditChain(js, names, CODEC)).problems, [], "without keys the chain itself is still intact");
    result = await verifyAuditChain(js, names, CODEC, { trusted });
    assert.deepEqual(result.problems.map((p) => p.seq), [4]);
    assert.match(result.problems[0]?.problem ?? "", /unsigned, but this fleet's tool hosts sign every record/);
  });

  it("a record signed with an unknown key, or carrying another record's signature, is caught", async () => {
    await append(chain(toolsKey), [entry(1), entry(2)]);
    const stranger = createUser();
    await append(chain({ publicKey: stranger.getPublicKey(), sign: (d) => stranger.sign(d) }), [entry(3)]);
    // a valid tool-host signature, but over another hash, under the tool host's name
    await append(chain({ publicKey: toolsKey.publicKey, sign: (d) => toolsKey.sign(new Uint8Array([...d, 0])) }), [entry(4)]);
    const result = await verifyAuditChain(js, names, CODEC, { trusted });
    assert.deepEqual(result.problems.map((p) => p.seq), [3, 4]);
    assert.match(result.problems[0]?.problem ?? "", new RegExp(`signed by ${stranger.getPublicKey()}, which is not a tool-host identity`));
    assert.match(result.problems[1]?.problem ?? "", /signature does not match the record's hash/);
  });

  it("a tail rewritten consistently with the stolen tool-host key passes every link and signature, and the anchor catches it", async () => {
    await append(chain(toolsKey), [entry(1), entry(2), entry(3)]);
    const governance = await anchorer();
    const first = await governance.tick();
    assert.equal(first.anchored?.seq, 3);
    assert.equal((await governance.tick()).anchored, undefined, "the tip has not moved: no second anchor");
    await append(chain(toolsKey), [entry(4)]);
    assert.equal((await governance.tick()).anchored?.seq, 4);
    assert.deepEqual((await verifyAuditChain(js, names, CODEC, { trusted })).problems, []);

    // the operator's seed and the tool host's: the stream is made again and the trail written anew, record 2 changed
    await (await jetstreamManager(operator)).streams.delete(names.stream("AUDIT"));
    await ensureFleetResources(operator, names);
    await append(chain(toolsKey), [entry(1), { ...entry(2), output: { ok: "nothing happened" } }, entry(3), entry(4)]);
    const result = await verifyAuditChain(js, names, CODEC, { trusted });
    assert.deepEqual(result.signatures.signed, 4);
    assert.deepEqual(result.problems.map((p) => p.seq), [3, 4]);
    for (const p of result.problems) assert.match(p.problem, /anchored at .* no longer has it: the chain was rewritten/);
    // governance notices at its next tick too
    assert.equal((await governance.tick()).rewritten?.seq, 4);

    // cut back below an anchor: the anchored records are gone
    await (await jetstreamManager(operator)).streams.delete(names.stream("AUDIT"));
    await ensureFleetResources(operator, names);
    await append(chain(toolsKey), [entry(1), entry(2)]);
    const cut = await verifyAuditChain(js, names, CODEC, { trusted });
    assert.deepEqual(cut.problems.map((p) => p.seq), [3, 4]);
    assert.match(cut.problems[0]?.problem ?? "", /the stream now ends at 2: the chain was cut back or re-created/);
  });

  it("only governance may publish an anchor: the tool host and agents are refused by the broker; a forged one is caught", async () => {
    await append(chain(toolsKey), [entry(1)]);
    const body = { stream: names.stream("AUDIT"), seq: 1, hash: "0".repeat(64), at: Date.now(), signer: toolsKey.publicKey };
    const forged = { ...body, sig: signBytes(toolsKey, anchorSigningBytes(body)) };
    for (const identity of ["tools", "agent:atlas", "scheduler"] as const) {
      const nc = await as(identity);
      await assert.rejects(jetstream(nc).publish(names.auditAnchor(), encode(forged, CODEC), { headers: wireHeaders(CODEC) }), (err) => isPermissionViolation(err), identity);
    }
    assert.equal((await (await jetstreamManager(operator)).streams.info(names.stream("AUDIT_ANCHORS"))).state.messages, 0);

    // the operator can; verify takes only governance's key
    await js.publish(names.auditAnchor(), encode(forged, CODEC), { headers: wireHeaders(CODEC) });
    const result = await verifyAuditChain(js, names, CODEC, { trusted });
    assert.deepEqual(result.problems.map((p) => [p.anchor, p.seq]), [[1, 1]]);
    assert.match(result.problems[0]?.problem ?? "", /not this fleet's governance identity: a forged anchor/);
    // a deleted anchor leaves a gap
    await (await anchorer()).tick();
    await (await jetstreamManager(operator)).streams.deleteMessage(names.stream("AUDIT_ANCHORS"), 1);
    assert.match((await verifyAuditChain(js, names, CODEC, { trusted })).problems[0]?.problem ?? "", /anchor 1 is missing: deleted from/);
  });

  it("a BLOCK tool named by an agent's model step, and a tool outside its allow list, are refusals in the trail in that agent's name", async () => {
    const toolsNc = await as("tools");
    // calls are served on the serving twin's connection; the trail and the runs are written through the data one
    const servingNc = await as("serve:tools");
    const { kv } = await openFleetResources(toolsNc, names, { create: false });
    const host = new ToolHost({
      nc: servingNc,
      js: jetstream(toolsNc),
      names,
      codec: CODEC,
      config: fleet.config,
      tools: referenceTools({ js: jetstream(toolsNc), names, codec: CODEC, config: fleet.config }),
      kv: { proposals: kv.proposals, toolruns: kv.toolruns },
      host: "test",
      log,
      signer: toolsKey,
    });
    await host.start();
    try {
      const agent = async (id: string) => {
        const nc = await as(`agent:${id}`);
        const allowed = fleet.config.agents.find((a) => a.id === id)?.tools ?? [];
        return { nc, tools: new AgentTools({ nc, js: jetstream(nc), names, codec: CODEC, agentId: id, allowed, risks: new Map(Object.entries(referenceToolRisks())) }) };
      };
      const scout = await agent("scout");
      const catalogue = new ToolCatalogue(referenceTools({ js: jetstream(scout.nc), names, codec: CODEC, config: fleet.config }));
      const step = governedStepTools({ tools: scout.tools, catalogue });
      const refused = await step.run({ id: "c1", name: "money_transfer", arguments: '{"to":"x","amount":10,"currency":"EUR"}' }, "task-1");
      assert.equal(refused.outcome, "refused");
      assert.match(refused.content, /^TOOL_BLOCKED: /);

      const ship = await agent("ship");
      await assert.rejects(ship.tools.call("dns_lookup", { host: "localhost" }, "task-2"), (err) => err instanceof FleetError && err.code === "TOOL_NOT_ALLOWED");
      // scout cannot report a refusal in ship's name: the broker refuses the subject
      await assert.rejects(
        requestTyped(scout.nc, names.refusal("ship"), { tool: "web_fetch", input: {}, code: "TOOL_NOT_ALLOWED", message: "forged" }, RefusalRecorded, { codec: CODEC, timeoutMs: 2_000 }),
      );

      const { records } = await readAuditRecords(js, names, CODEC);
      assert.deepEqual(
        records.map((r) => [r.agentId, r.tool, r.risk, r.ok, r.error?.code, r.refusedBy, r.signer]),
        [
          ["scout", "money_transfer", "BLOCK", false, "TOOL_BLOCKED", "agent-host", toolsKey.publicKey],
          ["ship", "dns_lookup", "AUTO", false, "TOOL_NOT_ALLOWED", "agent-host", toolsKey.publicKey],
        ],
      );
      assert.deepEqual(records[0]?.input, { to: "x", amount: 10, currency: "EUR" });
      assert.deepEqual((await verifyAuditChain(js, names, CODEC, { trusted })).problems, []);
    } finally {
      await host.stop();
    }
  });

  it("fleet audit verify: exit 0 with what was checked, exit 1 with AUDIT_CHAIN_BROKEN and every problem", async () => {
    await append(chain(toolsKey), [entry(1), entry(2)]);
    await (await anchorer()).tick();
    const args = ["audit", "verify", "--nats", server.url, "--creds", creds.seedFile("operator"), "--config", fleet.file];
    const intact = await runFleet(args);
    assert.equal(intact.code, 0, intact.stderr);
    assert.match(intact.stdout, /^chain intact: 2 records$/m);
    assert.match(intact.stdout, /signatures: 2 records signed by the fleet's tool host/);
    assert.match(intact.stdout, /anchors: 1, the latest at seq 2/);

    await append(chain(undefined), [entry(3)]);
    const broken = await runFleet(args);
    assert.equal(broken.code, 1);
    assert.match(broken.stdout, /^AUDIT_CHAIN_BROKEN: 1 problem in 3 records$/m);
    assert.match(broken.stdout, /seq 3: unsigned, but this fleet's tool hosts sign every record/);
    const json = await runFleet([...args, "--json"]);
    assert.equal(json.code, 1);
    const parsed: unknown = JSON.parse(json.stdout);
    assert.equal(Reflect.get(Object(parsed), "intact"), false);
  });
});
