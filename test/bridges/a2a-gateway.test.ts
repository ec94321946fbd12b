import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { SendMessageRequest, TaskState, type StreamResponse } from "@a2a-js/sdk";
import type { NatsConnection } from "@nats-io/nats-core";
import { connectNats } from "../../protocol/index.js";
import { agentSpec, routerSpec, slowAgentSpec, startProcesses, writeTestFleet } from "../helpers/fleet-processes.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { a2aClient, startGateway, type TestGateway } from "../helpers/gateway.js";
import { NatsServer } from "../helpers/nats-server.js";
import { waitFor } from "../helpers/wait.js";
import type { ProcessSupervisor } from "../../supervisor/index.js";

/*
 * The A2A gateway in front of a real fleet: a real nats-server, the router and scout as real processes (answering on the
 * simulated provider), the gateway on a free port, and the official @a2a-js/sdk client over both HTTP bindings.
 */

const ACME = "acme-token-0123456789abcdef";
const BETA = "beta-token-0123456789abcdef";
const SHIPONLY = "ship-only-token-0123456789ab";
const DEPLOYER = "deployer-token-0123456789abc";

function message(text: string, configuration: Record<string, unknown> = {}): SendMessageRequest {
  return SendMessageRequest.fromJSON({ message: { messageId: randomUUID(), role: "ROLE_USER", parts: [{ text }] }, configuration });
}

async function collect(stream: AsyncGenerator<StreamResponse>): Promise<StreamResponse[]> {
  const out: StreamResponse[] = [];
  for await (const event of stream) out.push(event);
  return out;
}

describe("the A2A gateway serves fleet agents over JSON-RPC and HTTP+JSON", () => {
  let server: NatsServer;
  let fleet: ReturnType<typeof writeTestFleet>;
  let procs: ProcessSupervisor;
  let gw: TestGateway;
  let client: FleetClient;
  let watcher: NatsConnection;
  /** every request that reached scout's A2A subjects */
  const reachedScout: string[] = [];
  /** every request that reached ship's */
  const reachedShip: string[] = [];

  before(async () => {
    server = await NatsServer.start();
    fleet = writeTestFleet();
    // ship works each task for 20 s, so a task of its stays WORKING long enough to be followed and canceled
    procs = startProcesses([routerSpec(fleet.file, server.url), agentSpec("scout", fleet.file, server.url), slowAgentSpec("ship", fleet.file, server.url, 20_000)]);
    client = await FleetClient.connect(server.url);
    await procs.start();
    await client.waitAlive(["scout", "ship"]);
    watcher = await connectNats({ servers: server.url, name: "test-watcher" });
    watcher.subscribe("fleet.agent.scout.a2a.>", { callback: (_err, msg) => void reachedScout.push(msg.subject) });
    watcher.subscribe("fleet.agent.ship.a2a.>", { callback: (_err, msg) => void reachedShip.push(msg.subject) });
    await watcher.flush();
    gw = await startGateway({
      natsUrl: server.url,
      configFile: fleet.file,
      peers: [
        { id: "acme", token: ACME, agents: ["scout"] },
        { id: "beta", token: BETA, agents: ["scout"], skills: ["research"] },
        { id: "shiponly", token: SHIPONLY, agents: ["ship"], rateLimit: { requests: 2, perSeconds: 3600 } },
        { id: "deployer", token: DEPLOYER, agents: ["ship"] },
      ],
      settings: { maxBodyBytes: 4096 },
    });
  });

  after(async () => {
    await gw?.stop();
    await watcher?.close();
    await client?.close();
    await procs?.stop();
    await server?.stop();
    fleet?.cleanup();
  });

  it("serves the fleet's card and each agent's, listing both HTTP bindings, the NATS binding and the bearer scheme", async () => {
    const fleetCard = (await (await fetch(`${gw.url}/.well-known/agent-card.json`)).json()) as Record<string, unknown>;
    assert.equal(fleetCard.name, "test");
    const card = (await (await fetch(`${gw.url}/agents/scout/.well-known/agent-card.json`)).json()) as {
      supportedInterfaces: { url: string; protocolBinding: string; protocolVersion: string }[];
      securitySchemes: Record<string, unknown>;
      securityRequirements: unknown[];
      skills: { id: string }[];
    };
    assert.deepEqual(
      card.supportedInterfaces.map((i) => [i.protocolBinding, i.url, i.protocolVersion]),
      [
        ["JSONRPC", `${gw.url}/agents/scout/a2a/jsonrpc`, "1.0"],
        ["HTTP+JSON", `${gw.url}/agents/scout/a2a/rest`, "1.0"],
        ["https://natsfleet.dev/a2a/bindings/nats/v1", "nats:fleet.agent.scout.a2a", "1.0"],
      ],
    );
    assert.deepEqual(card.securitySchemes, { bearer: { httpAuthSecurityScheme: card.securitySchemes.bearer && (card.securitySchemes.bearer as { httpAuthSecurityScheme: unknown }).httpAuthSecurityScheme } });
    assert.equal((card.securitySchemes.bearer as { httpAuthSecurityScheme: { scheme: string } }).httpAuthSecurityScheme.scheme, "Bearer");
    assert.deepEqual(card.skills.map((s) => s.id), ["research"]);
    assert.equal((await fetch(`${gw.url}/agents/nobody/.well-known/agent-card.json`)).status, 404);
  });

  for (const binding of ["JSONRPC", "HTTP+JSON"] as const) {
    it(`${binding}: the SDK client sends a message, streams its status updates and reads the finished task`, async () => {
      const a2a = await a2aClient(`${gw.url}/agents/scout`, ACME, binding);
      assert.equal(a2a.transport.protocolName, binding);
      const events = await collect(a2a.sendMessageStream(message("check the competitors' pricing pages")));
      const first = events[0]?.payload;
      assert.equal(first?.$case, "task", "the stream opens with the task");
      const taskId = first.value.id;
      const states = events.flatMap((e) => (e.payload?.$case === "statusUpdate" ? [e.payload.value.status?.state] : []));
      assert.deepEqual(states, [TaskState.TASK_STATE_WORKING, TaskState.TASK_STATE_COMPLETED]);
      const done = await a2a.getTask({ tenant: "", id: taskId });
      assert.equal(done.status?.state, TaskState.TASK_STATE_COMPLETED);
      assert.ok(done.artifacts.some((a) => a.name === "simulated-answer"), "scout's answer is the task's artifact");
      // the same task as the fleet sees it over NATS
      assert.equal((await client.getTask("scout", taskId)).status.state, "TASK_STATE_COMPLETED");

      // SendMessage that returns at once, then SubscribeToTask follows it to the end
      const sent = await a2a.sendMessage(message("competitor pricing again", { returnImmediately: true }));
      assert.ok(!("messageId" in sent));
      assert.equal(sent.status?.state, TaskState.TASK_STATE_SUBMITTED);
      const followed = await collect(a2a.resubscribeTask({ tenant: "", id: sent.id })).catch(async (err: unknown) => {
        // the task may have finished before the subscription: then it is terminal and there is nothing to follow
        if ((await a2a.getTask({ tenant: "", id: sent.id })).status?.state === TaskState.TASK_STATE_COMPLETED) return [];
        throw err;
      });
      if (followed.length > 0) assert.equal(followed.at(-1)?.payload?.$case, "statusUpdate");
      await waitFor("the returned-at-once task to complete", async () => (await a2a.getTask({ tenant: "", id: sent.id })).status?.state === TaskState.TASK_STATE_COMPLETED);

      // blocking SendMessage (the A2A default) answers with the finished task
      const blocking = await a2a.sendMessage(message("pricing of the competitors once more"));
      assert.ok(!("messageId" in blocking));
      assert.equal(blocking.status?.state, TaskState.TASK_STATE_COMPLETED);

      const listed = await a2a.listTasks({ tenant: "", contextId: "", status: 0, pageToken: "", statusTimestampAfter: undefined });
      assert.ok(listed.tasks.some((t) => t.id === taskId), "ListTasks shows the peer's own tasks");
      // a finished task cannot be canceled: the spec's TaskNotCancelableError, from the agent itself
      await assert.rejects(a2a.cancelTask({ tenant: "", id: taskId, metadata: undefined }), (err: Error) => err.name === "TaskNotCancelableError" || /cancel/i.test(err.message));
    });
  }

  it("a peer sees only its own tasks; a peer granted one skill may ask for that skill only", async () => {
    const acme = await a2aClient(`${gw.url}/agents/scout`, ACME, "JSONRPC");
    const beta = await a2aClient(`${gw.url}/agents/scout`, BETA, "HTTP+JSON");
    const sent = await acme.sendMessage(message("competitor pricing for acme", { returnImmediately: true }));
    assert.ok(!("messageId" in sent));
    await assert.rejects(beta.getTask({ tenant: "", id: sent.id }), /not found/i);
    const listed = await beta.listTasks({ tenant: "", contextId: "", status: 0, pageToken: "", statusTimestampAfter: undefined });
    assert.ok(!listed.tasks.some((t) => t.id === sent.id), "not in another peer's list either");
    // beta may ask for research (text matching its tags), not for work matching none of scout's skills
    const ok = await beta.sendMessage(message("competitor pricing for beta", { returnImmediately: true }));
    assert.ok(!("messageId" in ok));
    await assert.rejects(beta.sendMessage(message("water the office plants", { returnImmediately: true })), /may not ask scout/);
  });

  it("a bad token, a bad A2A-Version, a malformed body, an ungranted agent, too many requests or too large a body get the spec's errors and never reach NATS", async () => {
    const rpcUrl = `${gw.url}/agents/scout/a2a/jsonrpc`;
    const restUrl = `${gw.url}/agents/scout/a2a/rest`;
    const valid = { jsonrpc: "2.0", id: 7, method: "SendMessage", params: { message: { messageId: randomUUID(), role: "ROLE_USER", parts: [{ text: "competitor pricing" }] }, configuration: { returnImmediately: true } } };
    const post = async (url: string, body: string, headers: Record<string, string>) => {
      const res = await fetch(url, { method: "POST", body, headers: { "content-type": "application/json", "a2a-version": "1.0", ...headers } });
      return { status: res.status, headers: res.headers, body: (await res.json()) as { error: { code: number; status?: string; message: string; details?: { reason: string }[] } } };
    };
    const rpc = (body: unknown, headers: Record<string, string> = {}) => post(rpcUrl, typeof body === "string" ? body : JSON.stringify(body), { authorization: `Bearer ${ACME}`, ...headers });
    const rest = (path: string, body: unknown, headers: Record<string, string> = {}) => post(`${restUrl}${path}`, typeof body === "string" ? body : JSON.stringify(body), { authorization: `Bearer ${ACME}`, ...headers });
    await watcher.flush();
    const before = reachedScout.length;

    // no token, a wrong one: 401 before anything else is looked at
    for (const auth of [{}, { authorization: "Bearer not-the-token-0123456789" }, { authorization: ACME }] as Record<string, string>[]) {
      const r = await post(rpcUrl, JSON.stringify(valid), auth);
      assert.equal(r.status, 401);
      assert.equal(r.headers.get("www-authenticate"), 'Bearer realm="natsfleet"');
      assert.equal(r.body.error.code, -32210);
      const s = await post(`${restUrl}/message:send`, JSON.stringify(valid.params), auth);
      assert.equal(s.status, 401);
      assert.equal(s.body.error.status, "UNAUTHENTICATED");
    }
    const stranger = await a2aClient(`${gw.url}/agents/scout`, "not-the-token-0123456789", "JSONRPC");
    await assert.rejects(stranger.sendMessage(message("competitor pricing", { returnImmediately: true })), /Authorization: Bearer/);

    // an unsupported A2A-Version (absent means 0.3): the spec's VersionNotSupportedError, -32009
    for (const version of [{ "a2a-version": "9.9" }, { "a2a-version": "" }]) {
      const r = await rpc(valid, version);
      assert.equal(r.body.error.code, -32009);
      const s = await rest("/message:send", valid.params, version);
      assert.equal(s.status, 400);
      assert.equal(s.body.error.details?.[0]?.reason, "VERSION_NOT_SUPPORTED");
    }

    // malformed bodies: not JSON (-32700), not the schema (-32602), not JSON-RPC, an unknown method; a wrong media type
    assert.equal((await rpc("{not json")).body.error.code, -32700);
    assert.equal((await rpc({ ...valid, params: { message: { messageId: "m", role: "ROLE_USER", parts: [] } } })).body.error.code, -32602);
    assert.equal((await rpc({ ...valid, params: { message: { messageId: "m", role: "ROLE_USER", parts: [{ text: "x" }], taskId: "has a space" } } })).body.error.code, -32602);
    assert.equal((await rpc({ id: 1, method: "SendMessage" })).body.error.code, -32602);
    assert.equal((await rpc({ ...valid, method: "NoSuchMethod" })).body.error.code, -32601);
    assert.equal((await rpc(valid, { "content-type": "text/plain" })).body.error.code, -32005);
    const restBad = await rest("/message:send", "{not json");
    assert.equal(restBad.status, 400);
    assert.equal((await rest("/message:send", { message: { messageId: "m", role: "ROLE_USER", parts: [] } })).status, 400);

    // too large a body: 413 before it is read
    const big = await rpc({ ...valid, params: { message: { messageId: "m", role: "ROLE_USER", parts: [{ text: "x".repeat(10_000) }] } } });
    assert.equal(big.status, 413);
    assert.equal(big.body.error.code, -32600);

    // an agent the peer was not granted: 403
    const forbidden = await post(rpcUrl, JSON.stringify(valid), { authorization: `Bearer ${SHIPONLY}` });
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.body.error.code, -32162);
    const forbiddenRest = await post(`${restUrl}/message:send`, JSON.stringify(valid.params), { authorization: `Bearer ${SHIPONLY}` });
    assert.equal(forbiddenRest.status, 403);
    assert.equal(forbiddenRest.body.error.status, "PERMISSION_DENIED");
    assert.equal(forbiddenRest.body.error.details?.[0]?.reason, "PERMISSION_DENIED");

    // the rate limit: shiponly may make 2 requests an hour (the refused one above took none, the grant is checked first)
    const shipRpc = (id: number) => post(`${gw.url}/agents/ship/a2a/jsonrpc`, JSON.stringify({ jsonrpc: "2.0", id, method: "GetTask", params: { id: "t-none" } }), { authorization: `Bearer ${SHIPONLY}` });
    await shipRpc(1);
    await shipRpc(2);
    const limited = await shipRpc(3);
    assert.equal(limited.status, 429);
    assert.equal(limited.body.error.code, -32211);
    assert.ok(Number(limited.headers.get("retry-after")) > 0, "Retry-After says when");

    // a valid request goes through and is seen: everything refused before it would have been seen first
    const ok = await rpc({ jsonrpc: "2.0", id: 9, method: "GetTask", params: { id: "t-no-such-task" } });
    assert.equal(ok.body.error.code, -32001, "TaskNotFoundError from the agent itself");
    await waitFor("the valid request to be seen on scout's subjects", () => reachedScout.length > before);
    await watcher.flush();
    assert.deepEqual(reachedScout.slice(before), ["fleet.agent.scout.a2a.GetTask"], "of all those requests, only the valid one reached NATS");
  });

  it("SubscribeToTask follows a working task over HTTP+JSON; CancelTask over JSON-RPC cancels it and the stream ends CANCELED", async () => {
    const rest = await a2aClient(`${gw.url}/agents/ship`, DEPLOYER, "HTTP+JSON");
    const rpc = await a2aClient(`${gw.url}/agents/ship`, DEPLOYER, "JSONRPC");
    const sent = await rest.sendMessage(message("deploy the site", { returnImmediately: true }));
    assert.ok(!("messageId" in sent));
    await waitFor("ship to be working on it", async () => (await rpc.getTask({ tenant: "", id: sent.id })).status?.state === TaskState.TASK_STATE_WORKING);
    const stream = rest.resubscribeTask({ tenant: "", id: sent.id });
    // the subscription opens with the task as it is; the agent's events after that are followed
    const first = await stream.next();
    assert.equal(first.done ? undefined : first.value.payload?.$case, "task");
    const canceled = await rpc.cancelTask({ tenant: "", id: sent.id, metadata: undefined });
    assert.equal(canceled.status?.state, TaskState.TASK_STATE_CANCELED);
    const events = await collect(stream);
    const last = events.at(-1)?.payload;
    assert.equal(last?.$case, "statusUpdate");
    assert.equal(last.value.status?.state, TaskState.TASK_STATE_CANCELED);
    // a settled task has nothing left to follow: the spec's UnsupportedOperationError
    await assert.rejects(collect(rest.resubscribeTask({ tenant: "", id: sent.id })), /nothing left to follow/);
  });

  it("a stream whose caller goes away stops following the task (no more reads of it)", async () => {
    const rpc = await a2aClient(`${gw.url}/agents/ship`, DEPLOYER, "JSONRPC");
    const sent = await rpc.sendMessage(message("deploy the other site", { returnImmediately: true }));
    assert.ok(!("messageId" in sent));
    const gone = new AbortController();
    const res = await fetch(`${gw.url}/agents/ship/a2a/rest/tasks/${sent.id}:subscribe`, {
      headers: { authorization: `Bearer ${DEPLOYER}`, "a2a-version": "1.0" },
      signal: gone.signal,
    });
    assert.equal(res.headers.get("content-type"), "text/event-stream");
    const reader = res.body!.getReader();
    assert.match(new TextDecoder().decode((await reader.read()).value), /^data: \{"task"/);
    // with no event for 2 s the gateway reads the task itself: it did so while the caller was there ...
    await waitFor("the stream to read the task while nothing happens", () => reachedShip.filter((s) => s.endsWith(".GetTask")).length >= 2, 10_000);
    gone.abort();
    await new Promise((r) => setTimeout(r, 500));
    const reads = reachedShip.filter((s) => s.endsWith(".GetTask")).length;
    // ... and stops once the caller has gone (two poll intervals later, none more)
    await new Promise((r) => setTimeout(r, 4_500));
    assert.equal(reachedShip.filter((s) => s.endsWith(".GetTask")).length, reads);
  });

  it("stopping the gateway ends its open streams at once instead of waiting for their tasks", async () => {
    const second = await startGateway({ natsUrl: server.url, configFile: fleet.file, peers: [{ id: "deployer", token: DEPLOYER, agents: ["ship"] }] });
    let stopped = false;
    try {
      const rest = await a2aClient(`${second.url}/agents/ship`, DEPLOYER, "HTTP+JSON");
      const stream = rest.sendMessageStream(message("deploy a third site"));
      const first = await stream.next();
      assert.equal(first.done ? undefined : first.value.payload?.$case, "task");
      const ending = collect(stream).catch(() => []);
      const t0 = Date.now();
      await second.stop();
      stopped = true;
      await ending;
      assert.ok(Date.now() - t0 < 5_000, `stopped in ${Date.now() - t0} ms while ship's task runs for 20 s`);
    } finally {
      if (!stopped) await second.stop();
    }
  });
});
