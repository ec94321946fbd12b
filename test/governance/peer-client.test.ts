import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { checkPlan } from "../../behaviours/index.js";
import { parseFleetConfig, PEER_MAX_TIMEOUT_SECONDS, peerSkillTimeoutSeconds, type FleetConfig } from "../../config/index.js";
import { askWithRetries, fleetPermissions, fleetToolRisks, PeerClient, peerBackoffMs, peerToolRisks, referenceToolRisks, ungrantedPeerSkill } from "../../governance/index.js";
import { FleetError, FleetNames } from "../../protocol/index.js";
import { A2APeer } from "../helpers/a2a-peer.js";
import { waitFor } from "../helpers/wait.js";

/*
 * The A2A client side against a real A2A server built from @a2a-js/sdk's server parts (test/helpers/a2a-peer.ts): the
 * card, SendMessage and GetTask polling, or SendStreamingMessage and SubscribeToTask when the peer streams (a stream cut
 * mid-task followed by polling, never sent again), typed errors for a bad token, a missing skill, a peer that is down; retries
 * with backoff on an injected sleep; the config refusing bad peers with the field's path; the plan check refusing a skill
 * config does not grant.
 */

const log = pino({ level: "silent" });
const TOKEN = "s3cret-peer-token";

const baseYaml = (peers: string, agentTools = "[web_fetch]") => `
fleet: { name: peertest, timeZone: UTC, dailyCapUsd: 10 }
tiers:
  nano: { model: n, inputPerM: 0.07, outputPerM: 0.28 }
  workhorse: { model: w, inputPerM: 0.27, outputPerM: 1.1 }
  capable: { model: c, inputPerM: 0.1, outputPerM: 0.4 }
  power: { model: p, inputPerM: 5, outputPerM: 15 }
  premium: { model: x, inputPerM: 15, outputPerM: 75 }
agents:
  - { id: atlas, name: Atlas, role: orchestrator, layer: orchestration, defaultTier: power, cycleMinutes: 15, dailyCapUsd: 5, tools: ["*"], skills: [{ id: plan, name: Plan, description: Plans, tags: [plan] }] }
  - { id: scout, name: Scout, role: research, layer: execution, defaultTier: capable, cycleMinutes: 60, dailyCapUsd: 5, tools: ${agentTools}, skills: [{ id: research, name: Research, description: Looks up, tags: [research] }] }
${peers}`;

function peerConfig(url: string, extra = ""): FleetConfig {
  return parseFleetConfig(
    baseYaml(`peers:
  acme:
    card: ${url}
    tokenEnv: ACME_TOKEN
    pollSeconds: 0.02
    timeoutSeconds: 5
    retry: { attempts: 4, backoffSeconds: [1, 2, 5] }
    skills:
      translate: { risk: AUTO, description: Translates text }
      summarise: {}
${extra}`),
    "peers.yaml",
  );
}

describe("peers: the A2A client", () => {
  let peer: A2APeer;
  let release: () => void = () => undefined;
  let gate = Promise.resolve();

  before(async () => {
    peer = new A2APeer({
      name: "acme",
      token: TOKEN,
      skills: [
        { id: "translate", answer: async ({ text }) => ({ text: `übersetzt: ${text}`, data: { lang: "de" }, costUsd: 0.012 }) },
        {
          id: "summarise",
          answer: async ({ text }) => {
            await gate;
            return { text: `summary of ${text.length} chars` };
          },
        },
        { id: "audit", answer: async () => ({ fail: "audit refused: no contract" }) },
      ],
    });
    await peer.start();
  });
  after(async () => {
    release();
    await peer?.stop();
  });

  it("fetches the card, sends the message under its id, polls the task and returns the artifact and the reported cost", async () => {
    const config = peerConfig(peer.cardUrl);
    const acme = config.peers["acme"]!;
    const client = new PeerClient({ name: "acme", config: acme, token: TOKEN, log });
    assert.equal((await client.card()).name, "acme");
    const answer = await client.ask("translate", { text: "good morning" }, { messageId: "m-1" });
    assert.equal(answer.state, "TASK_STATE_COMPLETED");
    assert.ok(answer.taskId);
    assert.equal(answer.text, "übersetzt: good morning");
    assert.deepEqual(answer.artifacts[0]?.parts[1], { data: { lang: "de" }, mediaType: "application/json" });
    assert.equal(answer.artifacts[0]?.metadata?.["peer"], "acme");
    assert.equal(answer.costUsd, 0.012);
    assert.deepEqual(peer.received.at(-1), { messageId: "m-1", skill: "translate", text: "good morning" });
  });

  it("a peer whose card says it streams: the task is followed over SendStreamingMessage, read once at its end, never polled", async () => {
    const client = new PeerClient({ name: "acme", config: peerConfig(peer.cardUrl).peers["acme"]!, token: TOKEN, log });
    const before = peer.methods.length;
    const answer = await client.ask("translate", { text: "good evening" }, { messageId: "m-stream-1" });
    assert.equal(answer.text, "übersetzt: good evening");
    assert.equal(answer.costUsd, 0.012, "the cost the peer put on its task's last status");
    assert.deepEqual(peer.methods.slice(before), ["SendStreamingMessage", "GetTask"]);
  });

  it("a stream cut mid-task: the task is followed by GetTask from there, its result kept, the message not sent again", async () => {
    const client = new PeerClient({ name: "acme", config: peerConfig(peer.cardUrl).peers["acme"]!, token: TOKEN, log });
    gate = new Promise<void>((resolve) => (release = resolve));
    const [sent, before] = [peer.received.length, peer.methods.length];
    let taskId: string | undefined;
    const asking = client.ask("summarise", { text: "the annual report" }, { messageId: "m-stream-2", onTaskId: (id) => void (taskId = id) });
    while (taskId === undefined) await new Promise((r) => setTimeout(r, 10));
    assert.equal(peer.cutStreams(), 1, "the call's stream was open");
    // polled while the peer still works on it, then the peer finishes
    await waitFor("a GetTask after the cut", () => peer.methods.slice(before).includes("GetTask"), 5_000);
    release();
    const answer = await asking;
    assert.equal(answer.text, "summary of 17 chars");
    assert.equal(answer.taskId, taskId);
    assert.equal(peer.received.length, sent + 1, "the peer ran the task once");
    const methods = peer.methods.slice(before);
    assert.equal(methods.filter((m) => m === "SendStreamingMessage" || m === "SendMessage").length, 1, methods.join(", "));
  });

  it("a resumed task of a streaming peer (a retry, a restarted process) is followed with SubscribeToTask, not polled", async () => {
    const config = peerConfig(peer.cardUrl).peers["acme"]!;
    gate = new Promise<void>((resolve) => (release = resolve));
    const sent = peer.received.length;
    let taskId: string | undefined;
    const stopping = new AbortController();
    const first = new PeerClient({ name: "acme", config, token: TOKEN, log }).ask("summarise", { text: "minutes" }, { messageId: "m-stream-3", signal: stopping.signal, onTaskId: (id) => void (taskId = id) });
    while (taskId === undefined) await new Promise((r) => setTimeout(r, 10));
    stopping.abort();
    await assert.rejects(first, (err: FleetError) => err.code === "PEER_UNAVAILABLE");
    const before = peer.methods.length;
    const resumed = new PeerClient({ name: "acme", config, token: TOKEN, log }).ask("summarise", { text: "minutes" }, { messageId: "m-stream-3", resumeTaskId: taskId });
    await waitFor("the resumed task's SubscribeToTask", () => peer.methods.slice(before).includes("SubscribeToTask"), 5_000);
    release();
    const answer = await resumed;
    assert.equal(answer.text, "summary of 7 chars");
    assert.equal(answer.taskId, taskId);
    assert.deepEqual(peer.methods.slice(before), ["GetTask", "SubscribeToTask", "GetTask"]);
    assert.equal(peer.received.length, sent + 1, "the peer ran the task once");
  });

  it("a peer whose card does not say it streams is asked with SendMessage and its task polled", async () => {
    const plain = new A2APeer({ name: "acme", token: TOKEN, streaming: false, skills: [{ id: "translate", answer: async ({ text }) => ({ text: `übersetzt: ${text}` }) }] });
    await plain.start();
    try {
      const client = new PeerClient({ name: "acme", config: peerConfig(plain.cardUrl).peers["acme"]!, token: TOKEN, log });
      const answer = await client.ask("translate", { text: "hello" }, { messageId: "m-plain-1" });
      assert.equal(answer.text, "übersetzt: hello");
      assert.equal(plain.methods[0], "SendMessage");
      assert.ok(plain.methods.slice(1).every((m) => m === "GetTask"), plain.methods.join(", "));
    } finally {
      await plain.stop();
    }
  });

  it("a bad token is PEER_REFUSED, a skill config does not grant is PEER_SKILL_NOT_GRANTED, a failed peer task is PEER_TASK_FAILED: none retryable", async () => {
    const config = peerConfig(peer.cardUrl, "      audit: { risk: AUTO }");
    const acme = config.peers["acme"]!;
    const bad = new PeerClient({ name: "acme", config: acme, token: "wrong", log });
    await assert.rejects(bad.ask("translate", { text: "x" }, { messageId: "m-2" }), (err: FleetError) => err.code === "PEER_REFUSED" && !err.retryable && /401/.test(err.message));
    const client = new PeerClient({ name: "acme", config: peerConfig(peer.cardUrl).peers["acme"]!, token: TOKEN, log });
    await assert.rejects(client.ask("audit", { text: "x" }, { messageId: "m-3" }), (err: FleetError) => err.code === "PEER_SKILL_NOT_GRANTED");
    const granted = new PeerClient({ name: "acme", config: acme, token: TOKEN, log });
    await assert.rejects(granted.ask("audit", { text: "x" }, { messageId: "m-4" }), (err: FleetError) => err.code === "PEER_TASK_FAILED" && /no contract/.test(err.message));
    // the tool gate's refusal names the grant, and the broker's risks know only granted skills
    assert.equal(ungrantedPeerSkill(config, "acme.nope")?.code, "PEER_SKILL_NOT_GRANTED");
    assert.equal(ungrantedPeerSkill(config, "acme.translate"), undefined);
  });

  it("a peer that goes away mid-task: retried with backoff on the injected sleep, the started task resumed (not sent again), completed when it is back", async () => {
    const config = peerConfig(peer.cardUrl);
    const acme = config.peers["acme"]!;
    const client = new PeerClient({ name: "acme", config: acme, token: TOKEN, log });
    gate = new Promise<void>((resolve) => (release = resolve));
    const waits: number[] = [];
    const retried: string[] = [];
    let taskId: string | undefined;
    const sent = peer.received.length;
    const sleep = async (ms: number) => {
      waits.push(ms);
      // the peer comes back during the second wait, with its task finished meanwhile
      if (waits.length === 2) {
        release();
        await peer.start();
      }
    };
    const asking = askWithRetries(client, "summarise", { text: "a long report" }, {
      messageId: "m-5",
      retry: acme.retry,
      log,
      sleep,
      onTaskId: (id) => void (taskId = id),
      onRetry: (attempt, error) => void retried.push(`${attempt}:${error.code}`),
    });
    // the task is under way at the peer: it goes away
    while (taskId === undefined) await new Promise((r) => setTimeout(r, 10));
    await peer.stop();
    const answer = await asking;
    assert.equal(answer.text, "summary of 13 chars");
    assert.equal(answer.taskId, taskId, "the same task of the peer");
    assert.equal(peer.received.length, sent + 1, "the message was sent once");
    assert.deepEqual(retried, ["1:PEER_UNAVAILABLE", "2:PEER_UNAVAILABLE"]);
    assert.deepEqual(waits, [1000, 2000], "the configured backoff");
    assert.equal(answer.attempts, 3);
  });

  it("a peer that stays down: after the retry limit the typed retryable error, saying how often it was tried", async () => {
    const config = peerConfig("http://127.0.0.1:9/.well-known/agent-card.json");
    const acme = config.peers["acme"]!;
    const client = new PeerClient({ name: "acme", config: acme, token: TOKEN, log });
    const waits: number[] = [];
    await assert.rejects(
      askWithRetries(client, "translate", { text: "x" }, { messageId: "m-6", retry: acme.retry, log, sleep: async (ms) => void waits.push(ms) }),
      (err: FleetError) => err.code === "PEER_UNAVAILABLE" && err.retryable && /after 4 attempts/.test(err.message),
    );
    assert.deepEqual(waits, [1000, 2000, 5000], "the last delay repeats only past the schedule");
    assert.equal(peerBackoffMs(acme.retry, 9), 5000);
    assert.equal(peerBackoffMs(acme.retry, 1, new FleetError("PEER_UNAVAILABLE", "429", { retryAfterMs: 4000 })), 4000, "Retry-After is believed within the schedule");
  });

  it("config: granted skills are tools <peer>.<skill> at their risk (PROPOSE by default); bad peers are refused at start with the field's path", () => {
    const config = peerConfig(peer.cardUrl);
    const risks = fleetToolRisks({ modules: [], peers: { "acme.translate": "AUTO", "acme.summarise": "PROPOSE" } });
    assert.equal(risks["acme.translate"], "AUTO");
    assert.equal(config.peers["acme"]?.risk, "PROPOSE");
    const refused = (yaml: string, path: RegExp) =>
      assert.throws(() => parseFleetConfig(yaml, "bad.yaml"), (err: FleetError) => err.code === "CONFIG_INVALID" && path.test(err.message), path.source);
    refused(baseYaml("peers:\n  acme: { card: not-a-url, skills: { translate: {} } }"), /peers\.acme\.card: must be the http\(s\) URL/);
    refused(baseYaml("peers:\n  acme: { card: http://x/card.json, tokenEnv: acme_token, skills: { translate: {} } }"), /peers\.acme\.tokenEnv: must be the NAME/);
    refused(baseYaml("peers:\n  acme: { card: http://x/card.json, skills: {} }"), /peers\.acme\.skills: grant at least one skill/);
    refused(baseYaml("peers:\n  acme: { card: http://x/card.json, skills: { translate: { risk: MAYBE } } }"), /peers\.acme\.skills\.translate\.risk/);
    refused(baseYaml("peers:\n  acme: { card: http://x/card.json, skils: {} }"), /peers\.acme\.skils: unknown key, did you mean "skills"/);
    refused(baseYaml("peers:\n  acme: { card: http://x/card.json, skills: { translate: {} }, retry: { attempts: 0 } }"), /peers\.acme\.retry\.attempts/);
    // a skill's own timeout: positive, at most an hour (PEER_MAX_TIMEOUT_SECONDS), the peer's when it names none
    refused(baseYaml("peers:\n  acme: { card: http://x/card.json, skills: { translate: { timeoutSeconds: 7200 } } }"), /peers\.acme\.skills\.translate\.timeoutSeconds/);
    refused(baseYaml("peers:\n  acme: { card: http://x/card.json, skills: { translate: { timeoutSeconds: 0 } } }"), /peers\.acme\.skills\.translate\.timeoutSeconds/);
    const timed = parseFleetConfig(baseYaml("peers:\n  acme: { card: http://x/card.json, skills: { translate: { timeoutSeconds: 900 }, summarise: {} } }"), "ok.yaml").peers["acme"]!;
    assert.deepEqual([peerSkillTimeoutSeconds(timed, "translate"), peerSkillTimeoutSeconds(timed, "summarise"), PEER_MAX_TIMEOUT_SECONDS], [900, 120, 3600], "the skill's, else the peer's default");
    refused(baseYaml("peers:\n  acme: { card: http://x/card.json, skills: { translate: {} } }", "[acme.audit]"), /agents\[1\]\.tools\[0\]: peer "acme" grants no skill "audit"/);
    assert.doesNotThrow(() => parseFleetConfig(baseYaml("peers:\n  acme: { card: http://x/card.json, skills: { translate: {} } }", "[acme.translate]"), "ok.yaml"));
  });

  it("the broker: an agent may publish on an AUTO skill it is allowed, governance on PROPOSE ones, tool hosts serve <peer>.<skill>", () => {
    const config = parseFleetConfig(baseYaml("peers:\n  acme: { card: http://x/card.json, skills: { translate: { risk: AUTO }, summarise: {} } }", "[acme.translate, acme.summarise]"), "ok.yaml");
    const risks = { ...referenceToolRisks(), ...peerToolRisks(config) };
    assert.deepEqual(peerToolRisks(config), { "acme.translate": "AUTO", "acme.summarise": "PROPOSE" });
    const perms = fleetPermissions(config, risks);
    const names = new FleetNames("fleet");
    const publish = (identity: string) => perms.get(identity as never)?.publish.allow ?? [];
    const subscribe = (identity: string) => perms.get(identity as never)?.subscribe.allow ?? [];
    assert.ok(publish("agent:scout").includes(names.tool("acme.translate", "scout")), "AUTO: scout calls it itself");
    assert.ok(!publish("agent:scout").includes(names.tool("acme.summarise", "scout")), "PROPOSE: only through governance");
    assert.ok(publish("governance").includes(names.tool("acme.summarise", "_governance")));
    assert.ok(subscribe("serve:tools").includes(names.tool("*.*", "*")), "a tool host serves two-token tool names");
  });

  it("the plan check: a delegation to peer:<name> passes with a granted skill and is refused with any other", async () => {
    const config = peerConfig(peer.cardUrl, "      wire: { risk: CONFIRM }");
    const base = { why: "a customer wrote in German", priority: "normal" as const, pipeline: null, tier: null, target: null, tools: [] };
    const checked = await checkPlan(
      {
        assignments: [
          { ...base, agent: "peer:acme", what: "Translate the customer's letter", skill: "translate" },
          { ...base, agent: "peer:acme", what: "Audit the customer's books", skill: "audit" },
          { ...base, agent: "peer:acme", what: "Wire the money", skill: "wire" },
          { ...base, agent: "peer:globex", what: "Translate again", skill: "translate" },
        ],
        notices: [],
      },
      { config, self: "atlas", facts: new Map(), wipLimit: 3, duplicateOf: async () => undefined },
    );
    assert.deepEqual(checked.passed.map((a) => a.skill), ["translate"]);
    const reasons = checked.failed.map((f) => f.reasons.join("; "));
    assert.match(reasons[0] ?? "", /PEER_SKILL_NOT_GRANTED: peer:acme is not granted skill "audit"/);
    assert.match(reasons[1] ?? "", /"wire" is CONFIRM/);
    assert.match(reasons[2] ?? "", /no peer "globex"/);
  });
});
