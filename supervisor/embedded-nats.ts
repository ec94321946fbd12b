import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { z } from "zod";
import { FleetError } from "../protocol/index.js";

/** What goes into the embedded server's config beside its listen address and store. */
export interface EmbeddedNatsOptions {
  maxPayload?: number;
  /**
   * An authorization block (as `fleet up` writes it) the server includes, so every client must present one of its
   * identities; without it the server is open to anyone who reaches 127.0.0.1.
   */
  authFile?: string;
  /** read-only statistics on another free port of 127.0.0.1 */
  monitor?: boolean;
  /** more lines for the config, e.g. a cluster block for a server that is one of several */
  extraConfig?: string[];
}

/** The client (and monitoring) ports a server found free on its first start; its restarts listen on the same ones. */
interface Ports {
  client: number;
  monitor?: number;
}

/**
 * The embedded default: a local `nats-server -js` with its store in a directory (`.fleet/`), on a free port. The server
 * runs as a supervised child of `fleet up` (`fleet run nats-server <dir>`, the watchdog in server-watchdog.ts), the
 * first started and the last stopped; this class prepares its directory and config, waits for its first start and then
 * pins the ports it found, so that a server the supervisor restarts on the same store comes back at the same URL and
 * every process reconnects to it.
 *
 * The URL is written to `.fleet/nats.url` so `fleet status` in a second terminal finds the fleet without flags. With
 * `monitor`, its HTTP monitoring endpoint's URL goes to `.fleet/nats-monitor.url`: the default fleet's duties watch it
 * as a local target (`{{local.nats-monitor}}`).
 */
export class EmbeddedNats {
  private ports: Ports | undefined;

  private constructor(
    readonly dir: string,
    private readonly options: EmbeddedNatsOptions,
    private readonly log: Logger,
  ) {}

  static urlFile(fleetDir: string): string {
    return join(fleetDir, "nats.url");
  }

  static monitorUrlFile(fleetDir: string): string {
    return join(fleetDir, "nats-monitor.url");
  }

  static confFile(fleetDir: string): string {
    return join(fleetDir, "nats-server.conf");
  }

  /** the running server's pid, written by its watchdog at each (re)start */
  static pidFile(fleetDir: string): string {
    return join(fleetDir, "nats.pid");
  }

  /** Writes the server's config (on free ports) and stops a server that an earlier, killed run left behind. */
  static async prepare(fleetDir: string, log: Logger, options: EmbeddedNatsOptions = {}): Promise<EmbeddedNats> {
    const server = new EmbeddedNats(resolve(fleetDir), options, log);
    findNatsServer(); // not installed: say so now, not from a child restarted until the supervisor gives up
    mkdirSync(join(server.dir, "nats"), { recursive: true });
    await stopOrphan(EmbeddedNats.pidFile(server.dir), log);
    removePortsFiles(server.dir);
    server.writeConfig();
    return server;
  }

  get url(): string {
    if (!this.ports) throw new FleetError("INTERNAL", "the embedded nats-server has not started yet");
    return `nats://127.0.0.1:${this.ports.client}`;
  }

  /**
   * Resolves with the URL once the server's first run has written its ports file; then the config names those ports.
   * Rejects when `failed` settles first (the supervisor gave up on the server) or after `timeoutMs`.
   */
  async ready(options: { timeoutMs?: number; failed?: Promise<unknown> } = {}): Promise<string> {
    let gaveUp = false;
    void options.failed?.finally(() => (gaveUp = true));
    const deadline = Date.now() + (options.timeoutMs ?? 15_000);
    while (Date.now() < deadline && !gaveUp) {
      const first = readPortsFile(this.dir);
      const monitor = this.options.monitor ? readPortsFile(this.dir, "monitoring") : undefined;
      if (first && (!this.options.monitor || monitor)) {
        this.ports = { client: Number(new URL(first).port), ...(monitor ? { monitor: Number(new URL(monitor).port) } : {}) };
        this.writeConfig();
        writeFileSync(EmbeddedNats.urlFile(this.dir), this.url + "\n");
        if (monitor) writeFileSync(EmbeddedNats.monitorUrlFile(this.dir), `http://127.0.0.1:${this.ports.monitor}\n`);
        this.log.info({ url: this.url, store: join(this.dir, "nats"), secured: this.options.authFile !== undefined }, "embedded nats-server started");
        return this.url;
      }
      await sleep(50);
    }
    throw new FleetError("NATS_UNAVAILABLE", `embedded nats-server did not start (its own lines above say why)`);
  }

  /** After the supervisor has stopped the server: the files that say where a running fleet's server is go. */
  cleanup(): void {
    for (const f of [EmbeddedNats.urlFile(this.dir), EmbeddedNats.pidFile(this.dir), EmbeddedNats.monitorUrlFile(this.dir)]) if (existsSync(f)) rmSync(f);
    if (this.ports) this.log.info({ url: this.url }, "embedded nats-server stopped");
  }

  private writeConfig(): void {
    const { options, dir, ports } = this;
    writeFileSync(
      EmbeddedNats.confFile(dir),
      [
        "# written by `fleet up`: the embedded fleet server (local only)",
        // -1: a free port on the first start; the same port on every restart after it
        `listen: 127.0.0.1:${ports?.client ?? -1}`,
        `jetstream { store_dir: "${join(dir, "nats")}" }`,
        `ports_file_dir: "${dir}"`,
        `max_payload: ${options.maxPayload ?? 1048576}`,
        // read-only statistics, on 127.0.0.1 only; the port is in the ports file
        ...(options.monitor ? [`http: "127.0.0.1:${ports?.monitor ?? -1}"`] : []),
        // one nkey user per process identity, with only the subjects that identity needs
        ...(options.authFile ? [`include ${JSON.stringify(relative(dir, resolve(options.authFile)))}`] : []),
        ...(options.extraConfig ?? []),
      ].join("\n"),
    );
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

/** The ports files of servers that ran in `dir` (a killed one leaves its own behind). */
export function removePortsFiles(dir: string): void {
  for (const f of readdirSync(dir)) if (f.endsWith(".ports")) rmSync(join(dir, f));
}

/** A server left behind by a `fleet up` that was killed outright and its watchdog with it: stop it before starting anew. */
async function stopOrphan(pidFile: string, log: Logger): Promise<void> {
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  if (!Number.isInteger(pid) || pid <= 1) return;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    if (!cmdline.includes("nats-server")) return;
    process.kill(pid, "SIGTERM");
    log.warn({ pid }, "stopped an embedded nats-server left behind by an earlier run");
  } catch {
    return; // gone already, or not ours to inspect
  }
  // its store is the one the new server opens: wait until it has let go of it
  for (let waited = 0; waited < 5_000 && existsSync(`/proc/${pid}`); waited += 100) await sleep(100);
}
