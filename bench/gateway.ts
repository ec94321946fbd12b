import { connect } from "@nats-io/transport-node";
import { pino } from "pino";
import { Gateway } from "../bridges/index.js";
import { GatewayConfig, parseFleetConfig } from "../config/index.js";
import { FleetNames, requestOperation, systemClock, type Message } from "../protocol/index.js";
import { NatsServer } from "../harness/index.js";
import { startAgentProcess } from "./idle-agent-process.js";
import { figure, percentile, say, timeSequential, type Result } from "./report.js";

/**
 * Gateway benchmark: SendMessage through the A2A HTTP gateway (JSON-RPC, bearer token, A2A-Version checked, the SDK's
 * framing, one HTTP keep-alive connection) against the same SendMessage over NATS directly, in one run, to the same agent
 * process. The agent's worker is busy with a long task (as during a model call), so both measure what SendMessage itself
 * costs (the Task persisted and assigned, then the reply), and the difference is the gateway's. returnImmediately is set,
 * as the NATS request answers once the Task is stored. The last line is the p50 figure as JSON.
 */

const N = 2_000;
const WARMUP = 300;
const ROUNDS = 3;
const TOKEN = "bench-token-0123456789abcdef";
const AGENT = "a0000";
const PREFIX = "benchgw";

const TEXT = "Please look up the current pricing pages of our three main competitors and summarise any change since last week.";

function message(seq: number): Message {
  return { messageId: `bench-${process.pid}-${seq}`, role: "ROLE_USER", parts: [{ text: TEXT }] };
}

const CONFIG = `
fleet: { name: bench, prefix: ${PREFIX}, timeZone: UTC, dailyCapUsd: 10, quietHours: { start: "00:00", end: "00:00" } }
tiers:
  nano: { model: n, inputPerM: 1, outputPerM: 2 }
  workhorse: { model: w, inputPerM: 2, outputPerM: 3 }
  capable: { model: c, inputPerM: 3, outputPerM: 4 }
  power: { model: p, inputPerM: 4, outputPerM: 5 }
  premium: { model: x, inputPerM: 5, outputPerM: 6 }
agents:
  - { id: ${AGENT}, name: Bench, role: receiver, layer: orchestration, defaultTier: nano, cycleMinutes: 60, dailyCapUsd: 1, tools: ["*"], skills: [{ id: research, name: Research, description: looks things up, tags: [research] }] }
`;

async function main(): Promise<void> {
  const server = await NatsServer.start();
  const agent = await startAgentProcess(server.url, PREFIX, 3_600_000);
  const names = new FleetNames(PREFIX);
  const client = await connect({ servers: server.url, name: "bench-client" });
  const gatewayNc = await connect({ servers: server.url, name: "bench-gateway" });
  const config = parseFleetConfig(CONFIG, "bench");
  const gateway = await Gateway.start({
    nc: gatewayNc,
    names,
    config,
    settings: GatewayConfig.parse({ port: 0, rateLimit: { requests: 1_000_000, perSeconds: 1 }, peers: [{ id: "bench", tokenEnv: "BENCH_TOKEN", agents: [AGENT] }] }),
    tokens: { BENCH_TOKEN: TOKEN },
    clock: systemClock,
    log: pino({ level: "silent" }),
  });
  try {
    const url = `${gateway.url}/agents/${AGENT}/a2a/jsonrpc`;
    let seq = 0;
    const viaNats = () => requestOperation(client, names, AGENT, "SendMessage", { message: message(seq++) });
    const viaGateway = async () => {
      const body = JSON.stringify({ jsonrpc: "2.0", id: seq, method: "SendMessage", params: { message: message(seq++), configuration: { returnImmediately: true } } });
      const res = await fetch(url, { method: "POST", body, headers: { "content-type": "application/json", "a2a-version": "1.0", authorization: `Bearer ${TOKEN}` } });
      const json = (await res.json()) as { result?: { task?: { status?: { state?: string } } } };
      if (json.result?.task?.status?.state !== "TASK_STATE_SUBMITTED") throw new Error(`unexpected answer: ${JSON.stringify(json)}`);
    };
    say(`gateway SendMessage: ${ROUNDS} rounds of ${N} sequential requests each way (after ${WARMUP} warm-up), alternating, one agent process`);
    await timeSequential(WARMUP, viaNats);
    await timeSequential(WARMUP, viaGateway);
    const nats: number[] = [];
    const http: number[] = [];
    // alternating rounds, so a slow spell of the machine falls on both sides
    for (let r = 0; r < ROUNDS; r++) {
      nats.push(...(await timeSequential(N, viaNats)));
      http.push(...(await timeSequential(N, viaGateway)));
    }
    nats.sort((a, b) => a - b);
    http.sort((a, b) => a - b);
    const p50 = figure("gateway", "sendmessage_p50", percentile(http, 50), percentile(nats, 50), "ms", 3);
    const p99 = figure("gateway", "sendmessage_p99", percentile(http, 99), percentile(nats, 99), "ms", 3);
    const overhead = (r: Result) => (r.value - r.baseline).toFixed(3);
    say(`  p50: gateway ${p50.value} ms vs NATS ${p50.baseline} ms: overhead ${overhead(p50)} ms (target <= 1 ms)`);
    say(`  p99: gateway ${p99.value} ms vs NATS ${p99.baseline} ms: overhead ${overhead(p99)} ms`);
    say(JSON.stringify(p99));
    say(JSON.stringify(p50));
  } finally {
    await gateway.stop();
    await gatewayNc.close();
    await client.close();
    await agent.stop();
    await server.stop();
  }
}

await main();
