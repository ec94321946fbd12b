import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { findNatsServer, readPortsFile } from "../supervisor/index.js";

/**
 * Starts a real nats-server with JetStream on a free port (`-p -1` plus a ports file, as nats.js's own test launcher does)
 * and a temporary store. `restart()` brings it back on the same port and store, so tests can kill the server mid-run.
 */
export class NatsServer {
  private proc: ChildProcess | undefined;
  readonly dir: string;
  port = 0;

  private constructor(private readonly extraConfig: string) {
    this.dir = mkdtempSync(join(tmpdir(), "fleet-nats-"));
  }

  static async start(options: { config?: string } = {}): Promise<NatsServer> {
    const server = new NatsServer(options.config ?? "");
    await server.launch(-1);
    return server;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  private async launch(port: number): Promise<void> {
    const conf = join(this.dir, "server.conf");
    writeFileSync(
      conf,
      [
        `listen: 127.0.0.1:${port}`,
        `jetstream { store_dir: "${join(this.dir, "js")}" }`,
        `ports_file_dir: "${this.dir}"`,
        `max_payload: 2MB`,
        this.extraConfig,
      ].join("\n"),
    );
    for (const f of readdirSync(this.dir)) if (f.endsWith(".ports")) rmSync(join(this.dir, f));
    const proc = spawn(findNatsServer(), ["-c", conf], { stdio: ["ignore", "ignore", "pipe"] });
    this.proc = proc;
    let stderr = "";
    proc.stderr?.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`nats-server exited: ${stderr}`);
      const first = readPortsFile(this.dir);
      if (first) {
        this.port = Number(new URL(first).port);
        return;
      }
      await sleep(25);
    }
    // a server left running would keep the test process alive after its hooks failed
    proc.kill("SIGKILL");
    throw new Error(`nats-server did not start: ${stderr}`);
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once("exit", resolve));
    proc.kill(signal);
    await exited;
  }

  /** Same port and store: clients configured with the old URL reconnect. */
  async restart(): Promise<void> {
    await this.kill();
    await this.launch(this.port);
  }

  async stop(): Promise<void> {
    await this.kill("SIGTERM");
    rmSync(this.dir, { recursive: true, force: true });
  }
}
