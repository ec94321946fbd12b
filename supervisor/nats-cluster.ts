import { randomBytes } from "node:crypto";
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join, relative, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { FleetError } from "../protocol/index.js";
import { findNatsServer, readPortsFile } from "./embedded-nats.js";

/**
 * A three-node (or N-node) JetStream cluster: the one place that writes a cluster node's nats-server config, used by
 * `fleet up --cluster 3` and by the test/bench harness (harness/nats-cluster.ts) alike. Each node has its own client
 * port, route port, store and config file under `dir/<node>/`. Routes authenticate with a user and password of their
 * own (`route.secret` in the credentials directory): the fleet's nkey identities cannot join the cluster as a server,
 * and a route from a stranger is refused.
 */

export interface ClusterNodeSpec {
  /** server_name, unique in the cluster: "n1", "n2", "n3" */
  name: string;
  /** where clients connect and peers route to (127.0.0.1 on one machine, the host's address across hosts) */
  host: string;
  /** the address the server listens on, when not `host` (0.0.0.0 on a host with several interfaces) */
  bind?: string;
  clientPort: number;
  clusterPort: number;
  /** the HTTP monitoring port (0: none) */
  monitorPort?: number;
}

export interface ClusterConfigOptions {
  clusterName: string;
  nodes: readonly ClusterNodeSpec[];
  /** the node's JetStream store */
  storeDir: string;
  /** route authentication, shared by every node of the cluster */
  routeUser: string;
  routePassword: string;
  /** the fleet's authorization block (`fleet creds`/`fleet up` write it) to include; none: an open server */
  authFile?: string;
  /** the directory the config is written to (an include is resolved against it) */
  configDir: string;
  maxPayload?: number;
  portsFileDir?: string;
}

/** The nats-server config of node `self`; every node's config names every other node's route. */
export function clusterNodeConfig(self: ClusterNodeSpec, o: ClusterConfigOptions): string {
  const credentials = `${encodeURIComponent(o.routeUser)}:${encodeURIComponent(o.routePassword)}`;
  const routes = o.nodes.filter((n) => n.name !== self.name).map((n) => `nats-route://${credentials}@${n.host}:${n.clusterPort}`);
  return [
    `# natsfleet: node ${self.name} of the JetStream cluster "${o.clusterName}" (written by fleet up --cluster / fleet creds --cluster)`,
    `server_name: ${JSON.stringify(self.name)}`,
    `listen: ${JSON.stringify(`${self.bind ?? self.host}:${self.clientPort}`)}`,
    ...(self.monitorPort ? [`http: ${JSON.stringify(`${self.host}:${self.monitorPort}`)}`] : []),
    `max_payload: ${o.maxPayload ?? 1048576}`,
    // a peer cut off keeps its TCP routes open: with the default 2-minute pings the others route requests into it for
    // minutes. Pinging every 2 s drops a silent route (and a silent client) after three missed pongs
    'ping_interval: "2s"',
    "ping_max: 3",
    `jetstream { store_dir: ${JSON.stringify(o.storeDir)} }`,
    ...(o.portsFileDir ? [`ports_file_dir: ${JSON.stringify(o.portsFileDir)}`] : []),
    "cluster {",
    `  name: ${JSON.stringify(o.clusterName)}`,
    `  listen: ${JSON.stringify(`${self.bind ?? self.host}:${self.clusterPort}`)}`,
    `  authorization { user: ${JSON.stringify(o.routeUser)}, password: ${JSON.stringify(o.routePassword)}, timeout: 2 }`,
    `  routes: ${JSON.stringify(routes)}`,
    // a route that drops comes back on its own; no limit, a node down for an hour rejoins
    "  connect_retries: -1",
    "}",
    ...(o.authFile ? [`include ${JSON.stringify(relative(o.configDir, resolve(o.authFile)))}`] : []),
    "",
  ].join("\n");
}

/** The routes' password, kept beside the fleet's seeds (mode 0600) so every start and every host uses the same one. */
export function routeSecret(credsDir: string): string {
  const file = join(resolve(credsDir), "route.secret");
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  mkdirSync(resolve(credsDir), { recursive: true, mode: 0o700 });
  const secret = randomBytes(24).toString("base64url");
  writeFileSync(file, secret + "\n", { mode: 0o600 });
  chmodSync(file, 0o600);
  return secret;
}

/** A TCP port nothing listens on right now on `host` (a route port must be known before the servers start). */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/**
 * One node's process: started on its config, killed, restarted on the same ports and store, paused (SIGSTOP: to the
 * cluster and its clients as if the host were cut off) and resumed.
 */
export class ClusterNode {
  private proc: ChildProcess | undefined;
  private stderr = "";

  constructor(
    readonly spec: ClusterNodeSpec,
    readonly dir: string,
    private readonly config: string,
    /** how the server is started: as is, or wrapped (on a test host: `ip netns exec <host> nats-server …`) */
    private readonly launch: Launcher = (command, args) => ({ command, args }),
  ) {}

  get url(): string {
    return `nats://${this.spec.host}:${this.spec.clientPort}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Writes the node's config file (it holds the route password: mode 0600) and returns its path. */
  writeConfig(): string {
    mkdirSync(this.dir, { recursive: true });
    const conf = join(this.dir, "nats-server.conf");
    writeFileSync(conf, this.config, { mode: 0o600 });
    return conf;
  }

  /** Writes the config and starts the server; resolves once it listens (its ports file is there). */
  async start(options: { detached?: boolean } = {}): Promise<void> {
    const conf = this.writeConfig();
    for (const f of readdirSync(this.dir)) if (f.endsWith(".ports")) rmSync(join(this.dir, f));
    const { command, args } = this.launch(findNatsServer(), ["-c", conf]);
    const proc = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"], detached: options.detached ?? false });
    this.proc = proc;
    this.stderr = "";
    proc.stderr?.on("data", (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new FleetError("NATS_UNAVAILABLE", `cluster node ${this.spec.name} exited: ${this.stderr.trim()}`);
      if (readPortsFile(this.dir)) return;
      await sleep(25);
    }
    proc.kill("SIGKILL");
    throw new FleetError("NATS_UNAVAILABLE", `cluster node ${this.spec.name} did not start: ${this.stderr.trim()}`);
  }

  /** Ends the process with `signal` (SIGKILL: kill -9) and waits for it to be gone. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const proc = this.proc;
    if (!proc || !this.running) return;
    const exited = new Promise((r) => proc.once("exit", r));
    if (signal !== "SIGCONT") proc.kill("SIGCONT"); // a paused server does not act on SIGTERM
    proc.kill(signal);
    const hard = signal === "SIGKILL" ? undefined : setTimeout(() => proc.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(hard);
  }

  /** The same ports and store: its clients and its peers reconnect to it. */
  async restart(): Promise<void> {
    await this.kill();
    await this.start();
  }

  pause(): void {
    if (this.running) this.proc?.kill("SIGSTOP");
  }

  resume(): void {
    if (this.running) this.proc?.kill("SIGCONT");
  }

  /** The exit the process is waiting for, for a supervisor that restarts a node that died. */
  exited(): Promise<number | null> {
    const proc = this.proc;
    if (!proc || !this.running) return Promise.resolve(proc?.exitCode ?? null);
    return new Promise((r) => proc.once("exit", (code) => r(code)));
  }
}

/** Turns a command into the one that runs it where the node lives (the identity on this machine). */
export type Launcher = (command: string, args: string[]) => { command: string; args: string[] };

export interface LocalClusterOptions {
  /** where each node's directory (config, store, ports file) goes */
  dir: string;
  size?: number;
  clusterName?: string;
  host?: string;
  authFile?: string;
  routePassword?: string;
  maxPayload?: number;
  /** a monitoring port per node */
  monitor?: boolean;
  /**
   * Each node on a host of its own (a test's network namespace): its address, and how a command runs there. The node
   * listens on the standard ports (4222, 6222) of its address, as on a real host.
   */
  hosts?: { address(i: number): string; launcher(i: number): Launcher };
}

/** The nodes of a cluster on one machine, on free ports, not started yet. */
export async function localClusterNodes(o: LocalClusterOptions): Promise<ClusterNode[]> {
  const size = o.size ?? 3;
  const host = o.host ?? "127.0.0.1";
  const specs: ClusterNodeSpec[] = [];
  for (let i = 1; i <= size; i++) {
    const own = o.hosts?.address(i - 1);
    if (own) specs.push({ name: `n${i}`, host: own, clientPort: 4222, clusterPort: 6222, ...(o.monitor ? { monitorPort: 8222 } : {}) });
    else specs.push({ name: `n${i}`, host, clientPort: await freePort(host), clusterPort: await freePort(host), ...(o.monitor ? { monitorPort: await freePort(host) } : {}) });
  }
  const root = resolve(o.dir);
  const routePassword = o.routePassword ?? randomBytes(18).toString("base64url");
  return specs.map((spec, i) => {
    const dir = join(root, spec.name);
    const config = clusterNodeConfig(spec, {
      clusterName: o.clusterName ?? "fleet",
      nodes: specs,
      storeDir: join(dir, "js"),
      routeUser: "route",
      routePassword,
      configDir: dir,
      portsFileDir: dir,
      ...(o.authFile ? { authFile: o.authFile } : {}),
      ...(o.maxPayload ? { maxPayload: o.maxPayload } : {}),
    });
    return new ClusterNode(spec, dir, config, o.hosts?.launcher(i));
  });
}
