import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { z } from "zod";

/*
 * A model call answered while the NATS server is away must still have its USAGE record: it was paid for. Each record
 * is appended to a local file before it is published, and crossed off once JetStream has acknowledged it; what is left
 * is published again when the server is back (on reconnect, then every few seconds while anything is left), and at the
 * next start for a router that died with records in its file. The message id is the record's own (call and attempt), so
 * a record that was stored but whose acknowledgement was lost is dropped by the USAGE stream's duplicate window, and
 * readers count each call and attempt once beyond it.
 */

const Line = z.union([
  z.object({ op: z.literal("add"), id: z.string(), subject: z.string(), data: z.string() }),
  z.object({ op: z.literal("done"), id: z.string() }),
]);
type Line = z.infer<typeof Line>;

interface Pending {
  subject: string;
  data: Uint8Array;
}

export interface UsageSpoolOptions {
  /** the directory of spool files, one per router process (`.fleet/usage-spool/` beside the fleet's other state) */
  dir: string;
  js: JetStreamClient;
  /** watched for reconnects, when what is left is published */
  nc: NatsConnection;
  log: Logger;
  /** how often what is left is tried again while the server is away; default 5 s */
  retryMs?: number;
  /** this process's file name; default `<pid>.jsonl` */
  name?: string;
}

export class UsageSpool {
  private readonly pending = new Map<string, Pending>();
  private readonly file: string;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly options: UsageSpoolOptions) {
    mkdirSync(options.dir, { recursive: true });
    this.file = join(options.dir, options.name ?? `${process.pid}.jsonl`);
  }

  /** Takes over what this file and the files of routers no longer running still hold, and starts the retries. */
  start(): void {
    for (const f of readdirSync(this.options.dir).filter((f) => f.endsWith(".jsonl"))) {
      const path = join(this.options.dir, f);
      if (path !== this.file && ownerAlive(f)) continue;
      for (const [id, p] of readSpool(path, this.options.log)) this.pending.set(id, p);
      if (path !== this.file) rmSync(path, { force: true });
    }
    this.rewrite();
    if (this.pending.size > 0) this.options.log.warn({ records: this.pending.size }, "USAGE records left in the spool: publishing them");
    void (async () => {
      for await (const s of this.options.nc.status()) if (s.type === "reconnect") void this.flush();
    })();
    this.timer = setInterval(() => {
      if (this.pending.size > 0) void this.flush();
    }, this.options.retryMs ?? 5_000).unref();
    void this.flush();
  }

  /** Writes the record down, then publishes it; resolves once it is published or safely spooled, never rejects. */
  async publish(id: string, subject: string, data: Uint8Array): Promise<void> {
    this.append({ op: "add", id, subject, data: Buffer.from(data).toString("base64") });
    this.pending.set(id, { subject, data });
    if (!(await this.send(id, { subject, data }))) this.options.log.warn({ id }, "USAGE record spooled: published when the server is back");
  }

  /** How many records wait for the server. */
  get size(): number {
    return this.pending.size;
  }

  /** Publishes what is left, once; concurrent calls share the pass. */
  flush(): Promise<void> {
    this.flushing ??= (async () => {
      let sent = 0;
      for (const [id, p] of [...this.pending]) {
        if (this.stopped || !(await this.send(id, p))) break;
        sent++;
      }
      if (sent > 0) this.options.log.info({ records: sent, left: this.pending.size }, "spooled USAGE records published");
    })().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  /** Stops retrying; what is left stays in the file for the next start (an empty file goes). */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    if (this.pending.size === 0) rmSync(this.file, { force: true });
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.stop();
    return Promise.resolve();
  }

  private async send(id: string, p: Pending): Promise<boolean> {
    try {
      await this.options.js.publish(p.subject, p.data, { msgID: id });
    } catch {
      return false;
    }
    if (this.pending.delete(id)) {
      if (this.pending.size === 0) this.rewrite();
      else this.append({ op: "done", id });
    }
    return true;
  }

  private append(line: Line): void {
    appendFileSync(this.file, JSON.stringify(line) + "\n");
  }

  /** The file holding exactly what is pending (empty when nothing is): written aside, then renamed over. */
  private rewrite(): void {
    const lines = [...this.pending].map(([id, p]) => JSON.stringify({ op: "add", id, subject: p.subject, data: Buffer.from(p.data).toString("base64") } satisfies Line));
    writeFileSync(`${this.file}.tmp`, lines.map((l) => l + "\n").join(""));
    renameSync(`${this.file}.tmp`, this.file);
  }
}

/** The records a spool file holds that were not crossed off; a torn last line (a crash mid-write) is skipped. */
function readSpool(path: string, log: Logger): Map<string, Pending> {
  const out = new Map<string, Pending>();
  if (!existsSync(path)) return out;
  for (const text of readFileSync(path, "utf8").split("\n")) {
    if (!text.trim()) continue;
    let parsed: ReturnType<typeof Line.safeParse>;
    try {
      parsed = Line.safeParse(JSON.parse(text));
    } catch {
      log.warn({ path }, "a torn line in the USAGE spool skipped");
      continue;
    }
    if (!parsed.success) continue;
    if (parsed.data.op === "done") out.delete(parsed.data.id);
    else out.set(parsed.data.id, { subject: parsed.data.subject, data: Buffer.from(parsed.data.data, "base64") });
  }
  return out;
}

/** Whether the router that owns `<pid>.jsonl` still runs (then its file is its own to replay). */
function ownerAlive(file: string): boolean {
  const pid = Number(file.replace(/\.jsonl$/, ""));
  if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
