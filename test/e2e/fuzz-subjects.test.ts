import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { type Msg, type MsgHdrs, type NatsConnection } from "@nats-io/nats-core";
import { z } from "zod";
import {
  AgentRecord,
  CONTENT_TYPES,
  CALLERS,
  codecForContentType,
  connectNats,
  decode,
  decodeUnknown,
  discoverServices,
  encode,
  ERROR_CATALOGUE,
  ErrorPayload,
  FleetNames,
  HEADERS,
  isPlainObject,
  openBuckets,
  OPERATION_NAMES,
  wireHeaders,
} from "../../protocol/index.js";
import { governedFleet } from "../helpers/governed-fleet.js";
import { CLI } from "../helpers/fleet-processes.js";
import { waitFor } from "../helpers/wait.js";
import { headersWith } from "../helpers/wire-headers.js";

/**
 * A fuzz run as the operator over every subject a fleet started with `fleet up` serves or consumes: each gets a corpus of
 * bad payloads (random bytes, truncated msgpack, wrong types, too large, JSON that is not, wrong headers) sent with a
 * reply subject, without one, and with a forged one. Afterwards no process has restarted, every request with an inbox
 * got a typed error from the catalogue, and every bad message is on the DLQ with its subject, bytes and reason.
 */

const SEED = 0x5eed_f1ee;
const MAX_PAYLOAD = 65536; // writeTestFleet's default
const AGENT = "scout";

/** mulberry32: a small deterministic generator, so a failure names a corpus that can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Bad {
  label: string;
  data: Uint8Array;
  headers: MsgHdrs;
}

/** Bad for every schema the fleet has: each decodes to no plain map, or comes with headers nobody speaks, or is too large. */
function corpus(seed: number, tag: string, brokerMax: number): Bad[] {
  const next = prng(seed);
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(next() * 256));
  const std = wireHeaders("msgpack");
  const valid = encode({ message: { messageId: `fuzz-${tag}`, role: "ROLE_USER", parts: [{ text: `fuzz ${tag}` }] }, agentId: AGENT, query: "q", limit: 1 });
  const out: Bad[] = [];
  for (let i = 0; i < 4; i++) out.push({ label: `random bytes #${i}`, data: bytes(1 + Math.floor(next() * 96)), headers: std });
  for (let i = 0; i < 2; i++) out.push({ label: `truncated msgpack #${i}`, data: valid.slice(0, 1 + Math.floor(next() * (valid.length - 2))), headers: std });
  const wrongTypes: unknown[] = [42, `${tag}`, [tag, 1], bytes(24), null, true];
  wrongTypes.forEach((v, i) => out.push({ label: `wrong type #${i}`, data: encode(v), headers: std }));
  // larger than the fleet takes, where the broker lets it through at all (`fleet up` sets the server's max_payload to it)
  if (brokerMax > MAX_PAYLOAD + 1024) out.push({ label: "too large", data: Buffer.concat([encode({ tag }), bytes(MAX_PAYLOAD + 1)]), headers: std });
  out.push({ label: "not JSON under application/json", data: Buffer.from(`{"tag": "${tag}", `), headers: headersWith({ [HEADERS.contentType]: CONTENT_TYPES.json }) });
  out.push({ label: "unsupported Content-Type", data: valid, headers: headersWith({ [HEADERS.contentType]: "text/plain" }) });
  out.push({ label: "unsupported A2A-Version", data: valid, headers: headersWith({ [HEADERS.a2aVersion]: "9.9" }) });
  // the corpus is bad by construction; check it, so a seed change cannot slip a valid request in
  for (const b of out) {
    const speaksMsgpack = b.headers === std;
    if (speaksMsgpack && b.data.length <= MAX_PAYLOAD) {
      const raw = decodeUnknown(b.data);
      assert.ok(!raw.ok || !isPlainObject(raw.value), `${b.label} decodes to no map`);
    }
  }
  return out;
}

const ErrorReply = z.object({ error: ErrorPayload });
type Variant = "reply" | "no-reply" | "forged-reply";

describe("fuzz: bad input on every subject of a fleet started with fleet up, as the operator", () => {
  let cwd: string;
  let fleet: ReturnType<typeof governedFleet>;
  let up: ChildProcess;
  let output = "";
  let nc: NatsConnection;
  let names: FleetNames;
  let jsm: JetStreamManager;
  let agents: KV;
  let before0: { agents: Map<string, { pid: number; restarts: number; runId: string }>; services: Set<string> };
  /** what must be on the DLQ: `<subject> <hex of bytes>` → how many times */
  const expectedDlq = new Map<string, number>();
  const forgedLanded: string[] = [];
  let toolSubjects: string[] = [];
  const badReplies: string[] = [];

  async function agentSnapshot(): Promise<Map<string, { pid: number; restarts: number; runId: string }>> {
    const out = new Map<string, { pid: number; restarts: number; runId: string }>();
    for (const id of fleet.config.agents.map((a) => a.id)) {
      const entry = await agents.get(id);
      const d = entry?.operation === "PUT" ? decode(AgentRecord, entry.value) : undefined;
      if (d?.ok) out.set(id, { pid: d.value.pid, restarts: d.value.restarts, runId: d.value.runId });
    }
    return out;
  }

  async function serviceIds(): Promise<Set<string>> {
    return new Set((await discoverServices(nc, 750)).map((s) => `${s.name}/${s.id}`));
  }

  before(async () => {
    cwd = mkdtempSync(join(tmpdir(), "fleet-fuzz-"));
    fleet = governedFleet({ prefix: "fuzz" });
    const env = { ...process.env };
    delete env.NATS_URL;
    up = spawn(process.execPath, [CLI, "up", "--config", fleet.file, "--log-level", "warn"], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    const keep = (d: Buffer) => (output = (output + d.toString()).slice(-20_000));
    up.stdout?.on("data", keep);
    up.stderr?.on("data", keep);
    const urlFile = join(cwd, ".fleet", "nats.url");
    const seed = join(cwd, ".fleet", "creds", "operator.nk");
    await waitFor("fleet up to write its URL and the operator's seed", () => existsSync(urlFile) && existsSync(seed), 30_000);
    nc = await connectNats({ servers: readFileSync(urlFile, "utf8").trim(), nkeySeedFile: seed, name: "fuzz-operator" });
    names = new FleetNames("fuzz");
    jsm = await jetstreamManager(nc);
    await waitFor("the fleet's streams", async () => (await jsm.streams.info(names.stream("DLQ")).catch(() => undefined)) !== undefined, 30_000);
    agents = (await openBuckets(nc, names)).agents;
    const kinds = ["agent-a2a", "agent-control", "router", "memory", "tools", "governance"];
    let seen = "";
    await waitFor(
      "every agent alive and every service kind answering discovery",
      async () => {
        const recs = await agentSnapshot();
        const found = [...new Set((await discoverServices(nc, 500)).map((s) => s.name))];
        seen = `agents ${[...recs.keys()].join(",")}; services ${found.join(",")}`;
        return recs.size === fleet.config.agents.length && kinds.every((k) => found.some((f) => f.endsWith(k)));
      },
      45_000,
    ).catch((err: unknown) => assert.fail(`${String(err)} (${seen})\nfleet up output:\n${output}`));
    before0 = { agents: await agentSnapshot(), services: await serviceIds() };
    const toolPrefix = `${names.prefix}.tool.`;
    // a tool endpoint's subject ends in the caller's token (`fleet.tool.<name>.*`): the fuzz calls as the agent under test
    toolSubjects = [
      ...new Set(
        (await discoverServices(nc, 750))
          .flatMap((svc) => (svc.endpoints ?? []).map((e) => e.subject))
          .filter((sub) => sub.startsWith(toolPrefix) && sub.endsWith(".*"))
          .map((sub) => `${sub.slice(0, -1)}${AGENT}`),
      ),
    ];
    assert.ok(toolSubjects.length > 0, "the tool host serves tools");
  });

  after(async () => {
    await nc?.close().catch(() => undefined);
    if (up && up.exitCode === null && up.signalCode === null) {
      const exited = new Promise((r) => up.once("exit", r));
      up.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (up.exitCode === null && up.signalCode === null) up.kill("SIGKILL");
    }
    if (cwd) rmSync(cwd, { recursive: true, force: true });
    fleet?.cleanup();
  });

  function expectDeadLetter(subject: string, data: Uint8Array): void {
    const key = `${subject} ${Buffer.from(data).toString("hex")}`;
    expectedDlq.set(key, (expectedDlq.get(key) ?? 0) + 1);
  }

  async function fuzzRequest(subject: string, seed: number): Promise<void> {
    const forged = `fuzz-forged.${seed}`;
    const trap = nc.subscribe(`${forged}.>`, {
      callback: (_e, m) => {
        forgedLanded.push(`${subject} → ${m.subject}`);
      },
    });
    let n = 0;
    for (const bad of corpus(seed, subject, nc.info?.max_payload ?? 0)) {
      for (const variant of ["reply", "no-reply", "forged-reply"] satisfies Variant[]) {
        expectDeadLetter(subject, bad.data);
        if (variant === "no-reply") nc.publish(subject, bad.data, { headers: bad.headers });
        else if (variant === "forged-reply") nc.publish(subject, bad.data, { headers: bad.headers, reply: `${forged}.${n++}` });
        else {
          let reply: Msg;
          try {
            reply = await nc.request(subject, bad.data, { headers: bad.headers, timeout: 5_000 });
          } catch (err) {
            badReplies.push(`${subject} ${bad.label}: no reply (${String(err)})`);
            continue;
          }
          const codec = codecForContentType(reply.headers?.get(HEADERS.contentType) || undefined, "msgpack") ?? "msgpack";
          const decoded = decode(ErrorReply, reply.data, { codec });
          if (!decoded.ok) badReplies.push(`${subject} ${bad.label}: not a typed error: ${decoded.error.message}`);
          else if (ERROR_CATALOGUE[decoded.value.error.code].a2aCode !== decoded.value.error.a2aCode) badReplies.push(`${subject} ${bad.label}: a2aCode off the catalogue`);
          else if (decoded.value.error.code === "INTERNAL") badReplies.push(`${subject} ${bad.label}: INTERNAL (${decoded.value.error.message})`);
        }
      }
    }
    await nc.flush();
    trap.unsubscribe();
  }

  async function fuzzOneWay(subject: string, seed: number, stream: boolean): Promise<void> {
    const js = jetstream(nc);
    for (const bad of corpus(seed, subject, nc.info?.max_payload ?? 0)) {
      if (stream && bad.data.length > MAX_PAYLOAD) continue; // the stream's own max_msg_size refuses it at the publish
      expectDeadLetter(subject, bad.data);
      if (stream) await js.publish(subject, bad.data, { headers: bad.headers });
      else nc.publish(subject, bad.data, { headers: bad.headers });
    }
    await nc.flush();
  }

  it("a message larger than the fleet's maximum is refused by the broker or, past it, by the service", () => {
    const max = nc.info?.max_payload ?? 0;
    if (max > MAX_PAYLOAD + 1024) return; // the corpus carries one; the services refuse it with MESSAGE_TOO_LARGE
    assert.throws(() => nc.publish(names.agentInbox(AGENT), new Uint8Array(max + 1)), /max_payload/);
  });

  it("every request subject answers each bad request with a typed error and dead-letters it, with or without a reply subject", async () => {
    let seed = SEED;
    const requestSubjects = [
      ...OPERATION_NAMES.map((op) => names.agentOperation(AGENT, op)),
      names.agentControl(AGENT, "Restart"),
      names.agentControl(AGENT, "BreakerReset"),
      ...(["route", "complete", "embed", "usage"] as const).map((op) => names.router(op, AGENT)),
      names.memorySearch(AGENT),
      // every tool the tool host serves, as it reports itself
      ...toolSubjects,
      names.governance("rollback"),
    ];
    for (const subject of requestSubjects) await fuzzRequest(subject, seed++);
    assert.deepEqual(badReplies, [], "every request got a typed, non-internal error");
    assert.deepEqual(forgedLanded, [], "no reply reached a forged reply subject");
  });

  it("every one-way and stream subject dead-letters each bad message", async () => {
    let seed = SEED + 1000;
    await fuzzOneWay(names.agentInbox(AGENT), seed++, false);
    await fuzzOneWay(names.task(AGENT), seed++, true);
    await fuzzOneWay(names.proposal(AGENT, "submitted"), seed++, true);
    await fuzzOneWay(names.approvalDecision(CALLERS.operator, "p-fuzz"), seed++, true);
    await fuzzOneWay(names.outbox("console"), seed++, true);

    const missing = await waitFor(
      "every bad message on the DLQ",
      async () => {
        const have = await readDlq();
        const gaps = [...expectedDlq].filter(([key, count]) => (have.get(key)?.length ?? 0) < count);
        return gaps.length === 0 ? [] : undefined;
      },
      30_000,
    ).catch(async () => {
      const have = await readDlq();
      return [...expectedDlq].filter(([key, count]) => (have.get(key)?.length ?? 0) < count).map(([key]) => key.slice(0, 80));
    });
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} bad messages are not on the DLQ`);
    for (const [key, reasons] of await readDlq()) {
      if (!expectedDlq.has(key)) continue;
      for (const reason of reasons) assert.ok(reason.length > 0, `a reason for ${key.slice(0, 60)}`);
    }
  });

  it("no process restarted: agents keep their pid, run and restart count; services keep their instances", async () => {
    const now = await agentSnapshot();
    assert.deepEqual(now, before0.agents);
    const services = await serviceIds();
    const lost = [...before0.services].filter((s) => !services.has(s));
    assert.deepEqual(lost, [], "every service instance from before still answers");
    assert.equal(up.exitCode, null, `fleet up still runs:\n${output}`);
  });

  /** DLQ entries by `<original subject> <hex>` → their reasons; each stored message is read once. */
  const dlqSeen = new Map<number, { key: string; reason: string }>();
  async function readDlq(): Promise<Map<string, string[]>> {
    const stream = names.stream("DLQ");
    const { state } = await jsm.streams.info(stream);
    for (let seq = Math.max(state.first_seq, 1); seq <= state.last_seq; seq++) {
      if (dlqSeen.has(seq)) continue;
      const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
      if (!m) continue;
      dlqSeen.set(seq, { key: `${m.header.get(HEADERS.dlqSubject)} ${Buffer.from(m.data).toString("hex")}`, reason: m.header.get(HEADERS.dlqReason) });
    }
    const out = new Map<string, string[]>();
    for (const { key, reason } of dlqSeen.values()) out.set(key, [...(out.get(key) ?? []), reason]);
    return out;
  }
});
