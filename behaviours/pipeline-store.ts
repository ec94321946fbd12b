import type { KV } from "@nats-io/kv";
import { decode, encode, FleetError, PipelineRunRecord, type CodecName, type FleetNames } from "../protocol/index.js";

/**
 * Pipeline runs in KV `pipelineruns`, keyed `<agentId>.<taskId>`: the runner saves the record after every step, before
 * the next one starts. One task is worked by one agent at a time, so a plain put is enough; the record is read back when
 * the task is redelivered.
 */
export class PipelineRunStore {
  constructor(
    private readonly kv: KV,
    private readonly names: FleetNames,
    private readonly codec: CodecName,
  ) {}

  /** The run of this task, or undefined when it has not started (or its record no longer decodes: it starts over). */
  async load(agentId: string, taskId: string): Promise<PipelineRunRecord | undefined> {
    const entry = await this.kv.get(this.names.pipelineRunKey(agentId, taskId));
    if (!entry || entry.operation !== "PUT") return undefined;
    const decoded = decode(PipelineRunRecord, entry.value, { codec: this.codec });
    return decoded.ok ? decoded.value : undefined;
  }

  async save(record: PipelineRunRecord): Promise<void> {
    try {
      await this.kv.put(this.names.pipelineRunKey(record.agentId, record.taskId), encode(record, this.codec));
    } catch (err) {
      // a step that cannot be recorded must not be followed by the next one: the task comes back and redoes it
      throw new FleetError("NATS_UNAVAILABLE", `the pipeline run of task ${record.taskId} could not be saved`, { cause: err });
    }
  }
}
