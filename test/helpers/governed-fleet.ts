import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NatsConnection, Status } from "@nats-io/nats-core";
import { loadFleetConfig, type FleetConfig } from "../../config/index.js";
import { writeFleetCredentials, type FleetCredentials, type Identity } from "../../governance/index.js";
import { connectNats, ensureFleetResources, type FleetNames, type RiskLevel } from "../../protocol/index.js";
import type { ChildSpec } from "../../supervisor/index.js";
import { CLI, DEFAULT_GOVERNANCE_YAML, DIST, writeTestFleet } from "./fleet-processes.js";
import { NatsServer } from "./nats-server.js";

/** The risk levels the permission tests give the tools (a stand-in for the catalogue's). */
export const GOVERNED_TOOLS: Record<string, RiskLevel> = {
  web_fetch: "AUTO",
  http_check: "AUTO",
  note_write: "AUTO+",
  deploy_site: "PROPOSE",
  email_send: "CONFIRM",
  money_transfer: "BLOCK",
};

/**
 * The test fleet (atlas with "*", scout and ship with allow lists) with governance around it: scout may also write notes,
 * propose a deploy and ask for a money transfer; a console principal, a nightly report to Slack, Telegram for approvals.
 */
export function governedFleet(overrides: { prefix?: string; extraYaml?: string } = {}): { config: FleetConfig; file: string; cleanup: () => void } {
  const fleet = writeTestFleet(overrides.prefix !== undefined ? { prefix: overrides.prefix } : {});
  // its own governance section below replaces the default one
  const text = readFileSync(fleet.file, "utf8")
    .replace(DEFAULT_GOVERNANCE_YAML, "")
    .replace("tools: [web_fetch]", "tools: [web_fetch, note_write, deploy_site, money_transfer]");
  writeFileSync(
    fleet.file,
    text +
      `principals:
  - { id: ops, channel: console, to: ops }
cron:
  - { id: nightly, agent: scout, at: "02:00", message: "overnight report", delivery: { channel: slack, to: "#ops" } }
governance:
  approvals: { channels: [telegram] }
# note_write and deploy_site: the fleet's processes refuse an allow list naming a tool no source provides
toolModules: [${JSON.stringify(join(DIST, "test", "fixtures", "governed-tools.js"))}]
` +
      (overrides.extraYaml ?? ""),
  );
  return { config: loadFleetConfig(fleet.file), file: fleet.file, cleanup: fleet.cleanup };
}

/** A process of the fleet under its own identity, started as `fleet up` starts it (its serving twin's seed beside it). */
export function identitySpec(fleetFile: string, nats: string, creds: FleetCredentials, id: string, args: string[], identity: Identity): ChildSpec {
  return {
    id,
    command: process.execPath,
    args: [CLI, "run", ...args, "--config", fleetFile, "--nats", nats, "--creds", creds.seedFile(identity), "--run-id", randomUUID(), "--supervised", "--log-level", "warn"],
    restart: "permanent",
  };
}

/** The roles `fleet up` runs for the governed fleet (no bridges), each under its own identity. */
export function securedFleetSpecs(fleetFile: string, nats: string, creds: FleetCredentials, agents: readonly string[]): ChildSpec[] {
  return [
    identitySpec(fleetFile, nats, creds, "router", ["router"], "router"),
    identitySpec(fleetFile, nats, creds, "scheduler", ["scheduler"], "scheduler"),
    ...agents.map((id) => identitySpec(fleetFile, nats, creds, id, ["agent", id], `agent:${id}`)),
    identitySpec(fleetFile, nats, creds, "governance", ["governance"], "governance"),
    identitySpec(fleetFile, nats, creds, "tools", ["tools"], "tools"),
  ];
}

/**
 * A nats-server started with the authorization `fleet up` generates for the governed fleet, its streams and buckets
 * created by the operator; `as(identity)` connects with that identity's seed (closed by `stop()`).
 */
export interface SecuredServer {
  fleet: ReturnType<typeof governedFleet>;
  dir: string;
  creds: FleetCredentials;
  server: NatsServer;
  operator: NatsConnection;
  as(identity: Identity): Promise<NatsConnection>;
  stop(): Promise<void>;
}

export async function startSecuredServer(names: FleetNames, options: { extraYaml?: string } = {}): Promise<SecuredServer> {
  const fleet = governedFleet(options.extraYaml !== undefined ? { extraYaml: options.extraYaml } : {});
  const dir = mkdtempSync(join(tmpdir(), "fleet-secured-"));
  const creds = writeFleetCredentials(join(dir, "creds"), fleet.config, GOVERNED_TOOLS);
  // nats-server resolves an include against the config's own directory, so the block goes in as text
  const server = await NatsServer.start({ config: readFileSync(creds.authFile, "utf8") });
  const open: NatsConnection[] = [];
  const as = async (identity: Identity): Promise<NatsConnection> => {
    const nc = await connectNats({ servers: server.url, nkeySeedFile: creds.seedFile(identity), name: `test-${identity}`, longLived: false });
    open.push(nc);
    return nc;
  };
  const operator = await as("operator");
  await ensureFleetResources(operator, names);
  return {
    fleet,
    dir,
    creds,
    server,
    operator,
    as,
    stop: async () => {
      for (const nc of open) if (!nc.isClosed()) await nc.close();
      await server.stop();
      fleet.cleanup();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Every error status a connection reports (a refused publish arrives as one, asynchronously). */
export function refusals(nc: NatsConnection): string[] {
  const seen: string[] = [];
  void (async () => {
    for await (const s of nc.status() as AsyncIterable<Status>) if (s.type === "error") seen.push(String(s.error));
  })();
  return seen;
}
