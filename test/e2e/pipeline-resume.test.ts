import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { decode, Finding, PipelineRunRecord, Task } from "../../protocol/index.js";
import type { ProcessSupervisor } from "../../supervisor/index.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { agentSpec, routerSpec, serviceSpec, startProcesses } from "../helpers/fleet-processes.js";
import { NatsServer } from "../helpers/nats-server.js";
import { OpenAIServer } from "../helpers/openai-server.js";
import { routerFleetYaml, usageRecords } from "../helpers/router-fleet.js";
import { runFleet } from "../helpers/run-cli.js";
import { waitFor } from "../helpers/wait.js";

/**
 * A pipeline run killed for real, twice: ship (a process of its own, beside the router and a tool host) is SIGKILLed
 * first while its triage model step is with the provider, then while a tool step's HTTP check is under way. Each time the
 * supervisor restarts it, the task comes back, and the run resumes at the step it was in: the finished steps are neither
 * run nor billed again, the interrupted model step is answered from the router's kept answer, the interrupted tool call
 * is replayed by the tool host under its idempotency key. The sites count the checks they really got.
 */

const PREFIX = "piperesume";
const CALL_MS = 1_500;
const SLOW_MS = 2_000;
const SUMMARY = { type: "object", properties: { summary: { type: "string" } }, required: ["summary"], additionalProperties: false };

const PIPELINE = `
pipelines:
  watch:
    input: { sites: [] }
    steps:
      - id: probe
        tool: http_check
        forEach: input.sites
        input: { url: "{{item.url}}", timeoutMs: 5000 }
        findings:
          - when: { path: output.ok, is: falsy }
            severity: critical
            subject: "{{item.name}}"
            key: http-down
            summary: "{{item.name}} answers {{output.status}}"
      - id: triage
        when: { path: findings, is: nonEmpty }
        model:
          tier: triage
          uses: [probe]
          prompt: "Findings: {{findings}}. Summarise."
          output: ${JSON.stringify(SUMMARY)}
      - id: recheck
        tool: http_check
        input: { url: "{{input.slow}}", timeoutMs: 10000 }
      - id: summary
        when: { path: steps.triage.output.summary, is: nonEmpty }
        model:
          tier: workhorse
          uses: [triage, recheck]
          prompt: "Triage said {{steps.triage.output.summary}}; the recheck answered {{steps.recheck.output.status}}. One line for the operator."
          output: ${JSON.stringify(SUMMARY)}
    report: "{{steps.summary.output.summary}}"
`;

interface CountingSite {
  server: Server;
  url: string;
  hits: number;
}

async function countingSite(status: number, delayMs = 0): Promise<CountingSite> {
  const site: CountingSite = { server: createServer(), url: "", hits: 0 };
  site.server.on("request", (_req, res) => {
    site.hits++;
    setTimeout(() => res.writeHead(status).end(), delayMs);
  });
  await new Promise<void>((r) => site.server.listen(0, "127.0.0.1", r));
  site.url = `http://127.0.0.1:${(site.server.address() as AddressInfo).port}/health`;
  return site;
}

describe("a pipeline killed mid-run resumes without re-running or re-billing finished steps (processes)", () => {
  let nats: NatsServer;
  let openai: OpenAIServer;
  let processes: ProcessSupervisor;
  let client: FleetClient;
  let down: CountingSite;
  let up: CountingSite;
  let slow: CountingSite;
  let config: string;
  const dir = mkdtempSync(join(tmpdir(), "fleet-pipeline-resume-"));

  before(async () => {
    [nats, openai] = await Promise.all([NatsServer.start(), OpenAIServer.start()]);
    [down, up, slow] = await Promise.all([countingSite(503), countingSite(200), countingSite(200, SLOW_MS)]);
    config = join(dir, "fleet.yaml");
    writeFileSync(
      config,
      routerFleetYaml({ baseUrl: openai.baseUrl, prefix: PREFIX, routing: "  classifier: false\n  cache: { enabled: false }" }) +
        `memory: { dir: ${JSON.stringify(join(dir, "memory"))} }\nbackups: { dir: ${JSON.stringify(join(dir, "backups"))} }\n` +
        "tasks: { maxDeliver: 8, ackWaitSeconds: 2, backoffSeconds: [2, 2, 2, 2], workingAckSeconds: 0.5 }\n" +
        PIPELINE,
    );
    processes = startProcesses([
      routerSpec(config, nats.url),
      serviceSpec("tools", config, nats.url),
      agentSpec("ship", config, nats.url),
    ]);
    await processes.start();
    client = await FleetClient.connect(nats.url, PREFIX);
    await client.waitAlive(["ship"]);
  });

  after(async () => {
    await processes?.stop();
    await client?.close();
    for (const site of [down, up, slow]) site?.server.close();
    await Promise.all([nats?.stop(), openai?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  const chats = () => openai.requests.filter((r) => r.path.endsWith("/chat/completions"));

  async function killShip(why: string, previousPid?: number): Promise<number> {
    const restarts = processes.status().find((c) => c.id === "ship")?.restarts ?? 0;
    const victim = await waitFor(`ship's record (${why})`, async () => {
      const record = await client.record("ship");
      return record && record.pid !== previousPid ? record : undefined;
    });
    process.kill(victim.pid, "SIGKILL");
    await waitFor(`the supervisor to restart ship (${why})`, () => (processes.status().find((c) => c.id === "ship")?.restarts ?? 0) > restarts);
    return victim.pid;
  }

  it("killed during a model step and during a tool call: every step once, every call billed once, every site checked once", async () => {
    openai.script("m-nano", { content: JSON.stringify({ summary: "down answers 503" }), delayMs: CALL_MS });
    openai.script("m-workhorse", { content: JSON.stringify({ summary: "down is down; the slow site answers 200" }) });
    const input = { sites: [{ name: "down", url: down.url }, { name: "up", url: up.url }], slow: slow.url };
    // as an operator runs one by hand
    const sent = await runFleet(["send", "ship", "--pipeline", "watch", "--input", JSON.stringify(input), "--no-wait", "--json", "--nats", nats.url, "--prefix", PREFIX]);
    assert.equal(sent.code, 0, sent.stderr);
    const task = Task.parse(JSON.parse(sent.stdout));

    // 1: the triage call is with the provider
    await waitFor("the triage model call", () => chats().some((r) => r.model === "m-nano"), 30_000);
    const first = await killShip("during the triage call");
    // 2: the recheck's HTTP check is under way (the site answers after SLOW_MS)
    await waitFor("the recheck's HTTP check", () => slow.hits > 0, 30_000);
    await killShip("during the recheck", first);

    const done = await client.waitState("ship", task.id, "TASK_STATE_COMPLETED", 60_000);
    const artifact = done.artifacts?.[0];
    assert.equal(artifact?.metadata?.found, true);
    assert.deepEqual(artifact?.parts[0], { text: "down is down; the slow site answers 200" });

    assert.deepEqual(chats().map((r) => r.model), ["m-nano", "m-workhorse"], "one provider call per model step");
    const paid = (await usageRecords(client.nc, client.names)).filter((u) => u.taskId === task.id && u.ok);
    assert.deepEqual(paid.map((u) => u.servedTier), ["nano", "workhorse"], "one USAGE record per model step");
    assert.deepEqual([down.hits, up.hits, slow.hits], [1, 1, 1], "each site checked once: the interrupted call was replayed, not run again");

    const jsm = await jetstreamManager(client.nc);
    const info = await jsm.streams.info(client.names.stream("FINDINGS"));
    const findings: Finding[] = [];
    for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
      const msg = await jsm.streams.getMessage(client.names.stream("FINDINGS"), { seq });
      const d = msg ? decode(Finding, msg.data) : undefined;
      if (d?.ok && d.value.taskId === task.id) findings.push(d.value);
    }
    assert.deepEqual(findings.map((f) => [f.subject, f.key]), [["down", "http-down"]], "one finding, published once");

    const entry = await client.resources.kv.pipelineruns.get(client.names.pipelineRunKey("ship", task.id));
    const run = entry ? decode(PipelineRunRecord, entry.value) : undefined;
    assert.ok(run?.ok);
    assert.deepEqual(run.value.steps.map((s) => [s.id, s.status]), [["probe", "done"], ["triage", "done"], ["recheck", "done"], ["summary", "done"]]);
    assert.equal(run.value.steps[2]?.tool?.replayed, 1, "the recheck's result came from the tool host's record");
  });

  it("fleet send --pipeline prints the run: a clean one says nothing found and costs $0", async () => {
    const calls = chats().length;
    const r = await runFleet(["send", "ship", "--pipeline", "watch", "--input", JSON.stringify({ sites: [{ name: "up", url: up.url }], slow: up.url }), "--nats", nats.url, "--prefix", PREFIX], { timeoutMs: 40_000 });
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /TASK_STATE_COMPLETED/);
    assert.match(r.stdout, /\[pipeline-run\] nothing found/);
    assert.match(r.stdout, /found: false, findings: 0, cost: \$0\.000000/);
    assert.equal(chats().length, calls, "no model call");
  });
});
