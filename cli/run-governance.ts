import { hostname } from "node:os";
import { jetstream } from "@nats-io/jetstream";
import { AuditAnchorer, fleetTools, loadFleetTools, signerFromCredsFile, startGovernance } from "../governance/index.js";
import { LEASE_TTL_MS, electionSafeJetStream, connectNats, connectServing, drainConnections, FleetNames, openFleetResources } from "../protocol/index.js";
import { Lease } from "../supervisor/index.js";
import { configPath, createsResources, loadConfig, natsConnection, rootLogger } from "./options.js";
import type { RunOptions } from "./run.js";
import { untilStopped } from "./until-stopped.js";
import { startTelemetry } from "./telemetry.js";

/** Renewal interval of the governance lease; the leases bucket's TTL is three times this. */
const LEASE_RENEW_MS = 5_000;

/**
 * `fleet run governance`: Sentinel and the proposal executor. A singleton: a second copy (another host, a second `fleet
 * up`) waits for the lease and takes over within its TTL when the holder dies, resuming every open proposal from KV.
 */
export async function runGovernance(options: RunOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const config = loadConfig(options, env);
  const log = rootLogger(options, env, "governance");
  const sources = await loadFleetTools(config, configPath(options));
  const prefix = options.prefix ?? config.fleet.prefix;
  // an execute_tool span per proposal execution, parent of the tool host's, when telemetry.otlp is set
  const telemetry = startTelemetry(config.telemetry, { role: "governance", prefix, log });
  const connect = { ...natsConnection(options, env), name: `fleet-governance-${process.pid}`, logger: log };
  const nc = await connectNats(connect);
  // `fleet rollback` is served under the serving twin (replies only); proposals, tool calls and writes go through nc
  const serveNc = await connectServing(connect, nc);
  const names = new FleetNames(prefix);
  const { kv } = await openFleetResources(nc, names, { maxPayloadBytes: config.fleet.maxPayloadBytes, replicas: config.fleet.replicas, create: createsResources(options), log });
  const lease = new Lease({ kv: kv.leases, role: "governance", holder: `${hostname()}:${process.pid}`, renewMs: LEASE_RENEW_MS, log, ...(config.fleet.replicas > 1 ? { ttlMs: LEASE_TTL_MS } : {}) });
  const acquiring = new AbortController();
  let service: Awaited<ReturnType<typeof startGovernance>> | undefined;
  let anchorer: AuditAnchorer | undefined;
  const running = untilStopped(async () => {
    acquiring.abort();
    await service?.stop();
    // a last anchor of the tip as it is at shutdown
    await anchorer?.stop();
    await lease.release();
    await drainConnections(nc, serveNc);
    await telemetry.stop();
  }, { log, supervised: options.supervised });
  void (async () => {
    await lease.acquire(acquiring.signal);
    if (acquiring.signal.aborted) return;
    const js = electionSafeJetStream(jetstream(nc));
    const tools = fleetTools({ js, names, codec: config.fleet.codec, config }, sources);
    service = await startGovernance({ nc, serveNc, names, config, tools, log, tracer: telemetry.tracer });
    // the audit chain's tip, anchored with governance's own key where the tool host cannot write; no key, no anchors
    if (options.creds) {
      anchorer = new AuditAnchorer({ js, names, codec: config.fleet.codec, signer: signerFromCredsFile(options.creds), log: log.child({ component: "audit-anchorer" }) });
      await anchorer.start();
    } else log.warn({}, "no --creds: the audit chain is not anchored (fleet audit verify will say so)");
    lease.onLost(() => running.shutdown("lease lost"));
  })().catch((err: unknown) => {
    // a refused config says why on stderr, as every other command does
    log.error({ err }, "governance failed to start");
    if (err instanceof Error) process.stderr.write(`fleet: ${"code" in err ? `${String(err.code)}: ` : ""}${err.message}\n`);
    running.shutdown("start failed");
  });
  return running.exitCode;
}
