import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { z } from "zod";
import { FleetError } from "../protocol/index.js";

/**
 * The embedded default: a local `nats-server -js` with its store under `.fleet/`, on a free port. The URL is written to
 * `.fleet/nats.url` so `fleet status` in a second terminal finds the fleet without flags. With `monitor`, its HTTP
 * monitoring endpoint listens on another free port of 127.0.0.1, written to `.fleet/nats-monitor.url`: the default
 * fleet's duties watch it as a local target (`{{local.nats-monitor}}`).
 */
export class EmbeddedNats {
  private constructor(
    readonly url: string,
    private readonly proc: ChildProcess,
    private readonly dir: string,
    private readonly log: Logger,
  ) {}

  static urlFile(fleetDir: string): string {
    return join(fleetDir, "nats.url");
  }

  static monitorUrlFile(fleetDir: string): string {
    return join(fleetDir, "nats-monitor.url");
  }

  /**
   * `authFile`: an authorization block (as `fleet up` writes it) the server includes, so every client must present one
   * of its identities; without it the server is open to anyone who reaches 127.0.0.1.
   */
  static async start(fleetDir: string, log: Logger, options: { maxPayload?: number; authFile?: string; monitor?: boolean } = {}): Promise<EmbeddedNats> {
    const dir = resolve(fleetDir);
    const binary = findNatsServer();
    mkdirSync(join(dir, "nats"), { recursive: true });
    for (const f of readdirSync(dir)) if (f.endsWith(".ports")) rmSync(join(dir, f));
    const conf = join(dir, "nats-server.conf");
    writeFileSync(
      conf,
      [
        "# written by `fleet up`: the embedded fleet server (local only)",
        "listen: 127.0.0.1:-1",
        `jetstream { store_dir: "${join(dir, "nats")}" }`,
        `ports_file_dir: "${dir}"`,
        `max_payload: ${options.maxPayload ?? 1048576}`,
        // read-only statistics, on 127.0.0.1 only; the port is in the ports file
        ...(options.monitor ? ['http: "127.0.0.1:-1"'] : []),
        // one nkey user per process identity, with only the subjects that identity needs
        ...(options.authFile ? [`include ${JSON.stringify(relative(dir, resolve(options.authFile)))}`] : []),
      ].join("\n"),
    );
    stopOrphan(join(dir, "nats.pid"), log);
    // its own process group: Ctrl-C reaches the agents first, and they drain into a server that is still there
    const proc = spawn(binary, ["-c", conf], { stdio: ["ignore", "ignore", "pipe"], detached: true });
    let stderr = "";
    proc.stderr?.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new FleetError("NATS_UNAVAILABLE", `embedded nats-server exited: ${stderr.trim()}`);
      const first = readPortsFile(dir);
      const monitor = options.monitor ? readPortsFile(dir, "monitoring") : undefined;
      if (first && (!options.monitor || monitor)) {
        const url = `nats://127.0.0.1:${new URL(first).port}`;
        writeFileSync(EmbeddedNats.urlFile(dir), url + "\n");
        if (monitor) writeFileSync(EmbeddedNats.monitorUrlFile(dir), `http://127.0.0.1:${new URL(monitor).port}\n`);
        writeFileSync(join(dir, "nats.pid"), String(proc.pid) + "\n");
        log.info({ url, store: join(dir, "nats"), secured: options.authFile !== undefined }, "embedded nats-server started");
        return new EmbeddedNats(url, proc, dir, log);
      }
      await sleep(50);
    }
    proc.kill("SIGKILL");
    throw new FleetError("NATS_UNAVAILABLE", `embedded nats-server did not start: ${stderr.trim()}`);
  }

  /** Last in the shutdown order: every process has drained before the server goes. */
  async stop(): Promise<void> {
    const proc = this.proc;
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      // the kill timer is cleared once the server exits, so a clean stop leaves nothing pending for 5 s
      const kill = setTimeout(() => proc.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(kill);
    }
    for (const f of ["nats.url", "nats.pid", "nats-monitor.url"]) if (existsSync(join(this.dir, f))) rmSync(join(this.dir, f));
    this.log.info({ url: this.url }, "embedded nats-server stopped");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

const PortsFile = z.object({ nats: z.array(z.string()).optional(), monitoring: z.array(z.string()).optional() });

/**
 * The client URL (or the monitoring URL) in the ports file nats-server writes into `dir` (`-p -1` picks a free port), or
 * undefined while there is none yet. The server writes the file while we poll it, so a half-written file is "not yet",
 * not an error.
 */
export function readPortsFile(dir: string, kind: "nats" | "monitoring" = "nats"): string | undefined {
  const ports = readdirSync(dir).find((f) => f.endsWith(".ports"));
  if (!ports) return undefined;
  try {
    const info = PortsFile.safeParse(JSON.parse(readFileSync(join(dir, ports), "utf8")));
    return info.success ? info.data[kind]?.[0] : undefined;
  } catch (err) {
    if (err instanceof SyntaxError) return undefined;
    throw err;
  }
}

/** nats-server from the PATH, or where Debian's package puts it (/usr/sbin is not on every user's PATH). */
export function findNatsServer(): string {
  for (const candidate of ["nats-server", "/usr/sbin/nats-server", "/usr/local/bin/nats-server"]) {
    if (!spawnSync(candidate, ["--version"], { stdio: "ignore" }).error) return candidate;
  }
  throw new FleetError(
    "NATS_SERVER_NOT_INSTALLED",
    "nats-server is not installed: run bash scripts/setup.sh (Debian/Ubuntu: apt-get install -y nats-server) or point NATS_URL at a running server",
  );
}

/** A server left behind by a `fleet up` that was killed outright (it runs detached): stop it before starting anew. */
function stopOrphan(pidFile: string, log: Logger): void {
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  if (!Number.isInteger(pid) || pid <= 1) return;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    if (!cmdline.includes("nats-server")) return;
    process.kill(pid, "SIGTERM");
    log.warn({ pid }, "stopped an embedded nats-server left behind by an earlier run");
  } catch {
    // gone already, or not ours to inspect
  }
}
