import { execFile } from "node:child_process";
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { findNatsServer, ProcessSupervisor, type RestartPolicy } from "../../supervisor/index.js";
import { DIST, startProcesses } from "../helpers/fleet-processes.js";
import { freePort } from "../helpers/free-port.js";
import { APP_DIR, FLEET_IMAGE, IMAGE_CLI, mountsOf, natsServices, ROOT, type ComposeFile, type ComposeService } from "./compose-file.js";

/*
 * docker-compose.yml without Docker: each service's own command, environment, mounts, health check and dependencies, run
 * as plain processes. A container's file system is a directory per service (its mounts linked or copied into it); the
 * image's /app is one shared directory (its dist/ the build under test, its config/ and .fleet/ the file's mounts).
 * Names the containers reach each other by become 127.0.0.1 with a free port per container port: `localAddresses`.
 * Qdrant has no binary here: it counts as healthy and QDRANT_URL is not passed, so the fleet keeps its embedded store.
 */

export const SKIPPED = new Set(["qdrant"]);
const CONTAINER_PORTS = [4222, 6222, 8222];

export class ComposeRunner {
  readonly output: string[] = [];
  private readonly supervisors = new Map<string, ProcessSupervisor>();
  private readonly completed = new Set<string>();
  /** per service (a nats node): container port → the free port it has here */
  private readonly ports = new Map<string, Map<number, number>>();
  readonly app: string;

  private constructor(
    readonly file: ComposeFile,
    readonly dir: string,
    /** the environment the file's `${VAR}` and pass-through (`VAR:`) variables are read from: the operator's shell */
    private readonly shell: Record<string, string>,
  ) {
    this.app = join(dir, "app");
  }

  /** `rewriteConfig` turns the repository's config/ (copied, as the ./config mount) into the one the test runs. */
  static async prepare(file: ComposeFile, dir: string, shell: Record<string, string>, rewriteConfig: (configDir: string) => void): Promise<ComposeRunner> {
    const runner = new ComposeRunner(file, dir, shell);
    for (const [name] of natsServices(file)) runner.ports.set(name, new Map(await Promise.all(CONTAINER_PORTS.map(async (p) => [p, await freePort()] as const))));
    mkdirSync(runner.app, { recursive: true });
    symlinkSync(DIST, join(runner.app, "dist"));
    cpSync(join(ROOT, "config"), runner.host("./config"), { recursive: true });
    rewriteConfig(runner.host("./config"));
    return runner;
  }

  /**
   * The one rewrite of addresses: `nats-2:6222` (a service's name and a container port) becomes that service's free port
   * on 127.0.0.1, and `0.0.0.0:4222` / `127.0.0.1:8222` (a container's own ports) become `self`'s. Everything else stays.
   */
  localAddresses(text: string, self?: string): string {
    return text.replace(/\b([a-z][\w-]*|0\.0\.0\.0|127\.0\.0\.1):(\d{4})\b/g, (whole, host: string, port: string) => {
      const owner = host === "0.0.0.0" || host === "127.0.0.1" ? self : host;
      const mapped = owner === undefined ? undefined : this.ports.get(owner)?.get(Number(port));
      return mapped === undefined ? whole : `127.0.0.1:${mapped}`;
    });
  }

  /** Where a mount's source is here: the repository's files, the copied ./config, ./deploy/creds (written by the test), a volume. */
  host(source: string): string {
    if (source === "./config" || source.startsWith("./deploy/creds")) return join(this.dir, "host", source);
    if (source.startsWith("./")) return join(ROOT, source);
    return join(this.dir, "volumes", source);
  }

  /** Where a path inside the service's container is here. */
  inContainer(service: string, path: string): string {
    if (path === APP_DIR || path.startsWith(`${APP_DIR}/`)) return join(this.app, path.slice(APP_DIR.length));
    return join(this.dir, "containers", service, path);
  }

  /** Builds the service's file system: bind mounts linked (nats configs copied with local addresses), volumes made. */
  private mount(name: string, service: ComposeService): void {
    for (const m of mountsOf(service)) {
      const target = this.inContainer(name, m.target);
      if (existsSync(target)) continue;
      const source = this.host(m.source);
      // as Docker does, a missing bind-mount directory (./deploy/creds before the first `creds` run) is created
      if (m.named || (!existsSync(source) && !/\.\w+$/.test(source))) mkdirSync(source, { recursive: true });
      mkdirSync(dirname(target), { recursive: true });
      if (m.source.startsWith("./deploy/nats/")) {
        const conf = this.localAddresses(readFileSync(source, "utf8"), name).replace(/store_dir:\s*(\S+)/, (_, p: string) => `store_dir: "${this.inContainer(name, p)}"`);
        writeFileSync(target, conf);
      } else if (m.source.startsWith("./deploy/creds/") && !m.source.endsWith("creds")) copyFileSync(source, target);
      else symlinkSync(source, target);
    }
  }

  /** The service's command line here: nats-server or node with the CLI, container paths mapped. */
  private commandOf(name: string, service: ComposeService): { command: string; args: string[] } {
    const args = (service.command ?? []).map((a) => (a.startsWith("/") ? this.inContainer(name, a) : a));
    if (service.image.startsWith("nats:")) return { command: findNatsServer(), args };
    if (service.image === FLEET_IMAGE) return { command: process.execPath, args: [this.inContainer(name, IMAGE_CLI), ...args] };
    throw new Error(`${name}: no local command for image ${service.image}`);
  }

  /** The service's environment: `${VAR:-default}` and pass-through variables from the shell, addresses and paths local. */
  environment(name: string, service: ComposeService): Record<string, string> {
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(service.environment ?? {})) {
      if (key === "QDRANT_URL" && SKIPPED.has("qdrant")) continue;
      const resolved = value === null ? this.shell[key] : value.replace(/\$\{(\w+)(?::-([^}]*))?\}/g, (_, v: string, d?: string) => this.shell[v] || d || "");
      if (resolved === undefined) continue;
      env[key] = resolved.startsWith("/") ? this.inContainer(name, resolved) : this.localAddresses(resolved);
    }
    return env;
  }

  /** Starts a service as `docker compose up` would once its dependencies hold; `command` replaces its own (`run`). */
  async start(name: string, command?: string[]): Promise<void> {
    const service = this.service(name);
    for (const [dep, { condition }] of Object.entries(service.depends_on)) {
      if (SKIPPED.has(dep)) continue;
      if (condition === "service_healthy") await this.waitHealthy(dep);
      if (condition === "service_completed_successfully") await this.waitCompleted(dep);
    }
    this.mount(name, service);
    const { command: bin, args } = this.commandOf(name, command ? { ...service, command } : service);
    const restart: RestartPolicy = service.restart === "on-failure" ? "transient" : service.restart === "no" ? "temporary" : "permanent";
    const env = { FLEET_LOG_LEVEL: "warn", ...this.environment(name, service) };
    const supervisor = startProcesses([{ id: name, command: bin, args, env, cwd: this.app, restart }], this.output);
    supervisor.on("child-exited", (_id, code) => code === 0 && restart !== "permanent" && this.completed.add(name));
    this.supervisors.set(name, supervisor);
    await supervisor.start();
    this.output.push(`${name}: started at ${new Date().toISOString()}`);
  }

  /** `docker compose up -d`: every service that has no profile, each once the services it depends on are as it asks. */
  async up(): Promise<void> {
    const starting = new Map<string, Promise<void>>();
    const startOne = (name: string): Promise<void> => {
      let started = starting.get(name);
      if (!started) {
        started = (async () => {
          await Promise.all(Object.keys(this.service(name).depends_on).filter((d) => !SKIPPED.has(d)).map(startOne));
          await this.start(name);
        })();
        starting.set(name, started);
      }
      return started;
    };
    await Promise.all(Object.entries(this.file.services).filter(([n, s]) => !s.profiles && !SKIPPED.has(n)).map(([n]) => startOne(n)));
  }

  /** Runs a one-off command in a service's container to its end (`docker compose run --rm <service> <command>`). */
  run(name: string, command: string[], timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
    const service = this.service(name);
    this.mount(name, service);
    const { command: bin, args } = this.commandOf(name, { ...service, command });
    const env = { ...process.env, NATS_URL: "", ...this.environment(name, service) };
    return new Promise((resolve) => {
      execFile(bin, args, { env, cwd: this.app, timeout: timeoutMs, encoding: "utf8" }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }),
      );
    });
  }

  /** The service's own health check, run here: an HTTP GET for wget, else the command in its environment. */
  async healthy(name: string): Promise<boolean> {
    const service = this.service(name);
    const test = service.healthcheck?.test ?? [];
    if (test[0] !== "CMD") throw new Error(`${name}: only CMD health checks run here`);
    if (test[1] === "wget") {
      const url = this.localAddresses(test.at(-1) ?? "", name);
      return fetch(url, { signal: AbortSignal.timeout(2_000) }).then((r) => r.ok, () => false);
    }
    const [bin = "", ...args] = test.slice(1).map((a) => (a.startsWith("/") ? this.inContainer(name, a) : a));
    const env = { ...process.env, ...this.environment(name, service) };
    return new Promise((resolve) => execFile(bin === "node" ? process.execPath : bin, args, { env, cwd: this.app, timeout: 10_000 }, (err) => resolve(!err)));
  }

  async waitHealthy(name: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await this.healthy(name))) {
      if (Date.now() > deadline) throw new Error(`${name} not healthy after ${timeoutMs} ms:\n${this.output.slice(-30).join("\n")}`);
      await sleep(250);
    }
  }

  async waitCompleted(name: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.completed.has(name)) {
      if (Date.now() > deadline) throw new Error(`${name} did not complete after ${timeoutMs} ms:\n${this.output.slice(-30).join("\n")}`);
      await sleep(100);
    }
  }

  /** `docker compose down`: the fleet's processes first, the nats nodes last. */
  async stop(): Promise<void> {
    const nats = new Set(natsServices(this.file).map(([n]) => n));
    const running = [...this.supervisors];
    await Promise.all(running.filter(([n]) => !nats.has(n)).map(([, s]) => s.stop()));
    await Promise.all(running.filter(([n]) => nats.has(n)).map(([, s]) => s.stop()));
  }

  private service(name: string): ComposeService {
    const service = this.file.services[name];
    if (!service) throw new Error(`no service ${name} in docker-compose.yml`);
    return service;
  }
}
