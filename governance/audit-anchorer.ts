import type { JetStreamClient } from "@nats-io/jetstream";
import type { Logger } from "pino";
import { AuditAnchor, decode, encode, HEADERS, wireHeaders, type CodecName, type FleetNames, nowOf, type Clock } from "../protocol/index.js";
import { chainHashOf } from "./audit-hash.js";
import { readAuditTip } from "./audit-chain.js";
import { anchorSigningBytes, signBytes, type AuditSigner } from "./audit-signing.js";

/** How often governance anchors the chain's tip when it has moved: a rewrite of the tail is detectable past this window. */
export const ANCHOR_INTERVAL_MS = 60_000;

export interface AuditAnchorerOptions {
  js: JetStreamClient;
  names: FleetNames;
  codec: CodecName;
  /** governance's own nkey: the audit writer (the tool host) does not hold it and may not publish anchors */
  signer: AuditSigner;
  log: Logger;
  clock?: Clock;
  /** default ANCHOR_INTERVAL_MS; tests call tick() instead */
  intervalMs?: number;
}

export interface AnchorTick {
  /** the anchor written this tick, if the tip moved */
  anchored?: AuditAnchor;
  /** the previous anchor's record no longer hashes as anchored: the chain was rewritten under it */
  rewritten?: { seq: number; anchored: string; now: string | undefined };
}

/**
 * Anchors the AUDIT stream's tip: every interval (and at stop), when records were appended since the last anchor, it
 * publishes `{stream, seq, hash, at}` signed with governance's nkey to AUDIT_ANCHORS, where only governance may publish.
 * A tail that is later rewritten consistently (re-hashed, re-signed with a stolen tool-host key) no longer matches the
 * anchor, and `fleet audit verify` says so. Each tick also re-reads the last anchored record, so a rewrite under it is
 * logged as soon as it is seen.
 */
export class AuditAnchorer {
  private last: AuditAnchor | undefined;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<AnchorTick> | undefined;
  private readonly now: () => number;

  constructor(private readonly options: AuditAnchorerOptions) {
    this.now = nowOf(options.clock);
  }

  /** Never fails the process it runs in: a stream not there yet or NATS away is retried at the next interval. */
  async start(): Promise<void> {
    try {
      this.last = await this.latestAnchor();
      await this.tick();
    } catch (err) {
      this.options.log.warn({ err: String(err) }, "could not anchor the audit chain at start; trying again next interval");
    }
    this.schedule();
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.tick().catch((err: unknown) => this.options.log.warn({ err: String(err) }, "could not anchor the audit chain at stop"));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** One anchoring round; rounds never overlap. */
  tick(): Promise<AnchorTick> {
    this.ticking ??= this.round().finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      void this.tick()
        .catch((err: unknown) => this.options.log.warn({ err: String(err) }, "could not anchor the audit chain; trying again next interval"))
        .finally(() => {
          if (this.timer) this.schedule();
        });
    }, this.options.intervalMs ?? ANCHOR_INTERVAL_MS);
    this.timer.unref();
  }

  private async round(): Promise<AnchorTick> {
    const out: AnchorTick = {};
    const { js, names, codec } = this.options;
    if (this.last) {
      const m = await (await js.streams.get(names.stream("AUDIT"))).getMessage({ seq: this.last.seq });
      const now = m ? chainHashOf({ data: m.data, contentType: m.header?.get(HEADERS.contentType) }, codec) : undefined;
      if (now !== this.last.hash) {
        out.rewritten = { seq: this.last.seq, anchored: this.last.hash, now };
        this.options.log.error(out.rewritten, "the audit chain was rewritten under its last anchor (run: fleet audit verify)");
      }
    }
    const tip = (await readAuditTip(js, names, codec)).newest;
    if (!tip || (this.last && tip.seq <= this.last.seq)) return out;
    const body = { stream: names.stream("AUDIT"), seq: tip.seq, hash: tip.hash, at: this.now(), signer: this.options.signer.publicKey };
    const anchor: AuditAnchor = { ...body, sig: signBytes(this.options.signer, anchorSigningBytes(body)) };
    await js.publish(names.auditAnchor(), encode(anchor, codec), { headers: wireHeaders(codec, `anchor-${anchor.seq}-${anchor.hash}`) });
    this.last = anchor;
    out.anchored = anchor;
    this.options.log.debug({ seq: anchor.seq }, "audit chain anchored");
    return out;
  }

  /** The newest anchor already written (by this identity before a restart): nothing is anchored twice. */
  private async latestAnchor(): Promise<AuditAnchor | undefined> {
    const stream = await this.options.js.streams.get(this.options.names.stream("AUDIT_ANCHORS"));
    const m = await stream.getMessage({ last_by_subj: this.options.names.auditAnchor() });
    if (!m) return undefined;
    const decoded = decode(AuditAnchor, m.data, { codec: this.options.codec });
    return decoded.ok ? decoded.value : undefined;
  }
}
