import type { KV } from "@nats-io/kv";
import { CronRunRecord, decode, encode, type CodecName } from "../protocol/index.js";

/**
 * When a daily job last ran (its due time), in KV `schedules`: a restarted scheduler does not run a night twice, and a
 * night missed while it was down is made up once. Shared by the nightly backup and the nightly distillation.
 */
export class LastRun {
  constructor(
    private readonly kv: KV,
    private readonly key: string,
    private readonly codec: CodecName,
  ) {}

  async get(): Promise<number | undefined> {
    const entry = await this.kv.get(this.key);
    if (!entry || entry.operation !== "PUT") return undefined;
    const decoded = decode(CronRunRecord, entry.value, { codec: this.codec });
    return decoded.ok ? decoded.value.lastDueAt : undefined;
  }

  async set(lastDueAt: number): Promise<void> {
    const record: CronRunRecord = { jobId: this.key, lastDueAt };
    await this.kv.put(this.key, encode(record, this.codec));
  }
}
