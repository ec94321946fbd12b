import { hostname } from "node:os";
import { jetstream } from "@nats-io/jetstream";
import { fleetTools, loadFleetTools, McpToolSources, peerClients, signerFromCredsFile, ToolHost } from "../governance/index.js";
import { electionSafeJetStream, connectNats, connectServing, drainConnections, FleetNames, openFleetResources } from "../protocol/index.js";
import { configPath, createsResources, loadConfig, natsConnection, rootLogger } from "./options.js";
import type { RunOptions } from "./run.js";
import { untilStopped } from "./until-stopped.js";
import { startTelemetry } from "./telemetry.js";

/**
 * `fleet run tools`: a tool host serving the fleet's catalogue (the reference tools, the config's tool modules and the
 * configured MCP servers' tools) under this machine's host name. Run one wherever the tools must act (a repository's
 * checkout, a host to measure): calls are shared among the hosts serving a tool.
 */
export async function runTools(options: RunOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const config = loadConfig(options, env);
  const log = rootLogger(options, env, "tools");
  // a module that does not load, or an allow list naming a tool nobody provides, stops the host before it connects
  const sources = await loadFleetTools(config, configPath(options));
  const prefix = options.prefix ?? config.fleet.prefix;
  // an execute_tool span per call, under the calling agent's (or governance's) span, when telemetry.otlp is set
  const telemetry = startTelemetry(config.telemetry, { role: "tools", prefix, log });
  const connect = { ...natsConnection(options, env), name: `fleet-tools-${process.pid}`, logger: log };
  const nc = await connectNats(connect);
  let serveNc = nc;
  try {
    // calls are served under the serving twin (replies only); the audit chain, tool runs and outbox go through nc
    serveNc = await connectServing(connect, nc);
    const names = new FleetNames(prefix);
    const { kv } = await openFleetResources(nc, names, { maxPayloadBytes: config.fleet.maxPayloadBytes, replicas: config.fleet.replicas, create: createsResources(options), log });
    const js = electionSafeJetStream(jetstream(nc));
    const codec = config.fleet.codec;
    const host = new ToolHost({
      nc: serveNc,
      js,
      names,
      codec,
      config,
      // peers' skills are called with the tokens their tokenEnv names, read from this process's environment
      tools: fleetTools({ js, names, codec, config, toolState: kv.toolstate, peers: peerClients(config, env, log) }, sources),
      kv: { proposals: kv.proposals, toolruns: kv.toolruns, tools: kv.tools },
      host: hostname(),
      log,
      // the identity's own seed signs the audit records; a host without credentials writes them unsigned
      signer: options.creds ? signerFromCredsFile(options.creds) : undefined,
      tracer: telemetry.tracer,
    });
    if (!options.creds) log.warn({}, "no --creds: audit records are written unsigned (fleet audit verify will say so)");
    await host.start();
    // MCP servers' tools join the host as the servers are listed (a server that is down is retried in the background)
    const mcp = new McpToolSources({ host, hostName: hostname(), config, env, log });
    await mcp.start();
    return await untilStopped(async () => {
      await host.stop();
      await mcp.stop();
      await drainConnections(nc, serveNc);
      await telemetry.stop();
    }, { log, supervised: options.supervised }).exitCode;
  } catch (err) {
    if (!serveNc.isClosed()) await serveNc.close();
    if (!nc.isClosed()) await nc.close();
    await telemetry.stop();
    throw err;
  }
}
