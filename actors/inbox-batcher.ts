import type { MsgHdrs } from "@nats-io/nats-core";
import { decode, Message, negotiate, type CodecName, type FleetError } from "../protocol/index.js";

export interface InboxBatcherOptions {
  /** the fleet's codec, for messages whose Content-Type does not say */
  codec: CodecName;
  maxPayloadBytes: number;
  /** hands a burst of valid messages to the chart */
  deliver: (messages: Message[]) => void;
  /** a message that is not a valid A2A Message: it goes to the DLQ with its reason */
  reject: (subject: string, data: Uint8Array, error: FleetError) => void;
}

/**
 * An agent's one-way inbox (`<prefix>.agent.<id>.inbox`): each message is negotiated (A2A-Version, Content-Type), decoded
 * and validated once, at the boundary, exactly as a request to a service is; the valid ones of one socket read reach the
 * chart as one event — a flood of messages costs one macrostep per read, not one per message.
 */
export class InboxBatcher {
  private batch: Message[] = [];

  constructor(private readonly options: InboxBatcherOptions) {}

  receive(msg: { subject: string; data: Uint8Array; headers?: MsgHdrs | undefined }): void {
    const negotiated = negotiate(msg, this.options.codec);
    if (!negotiated.ok) return this.options.reject(msg.subject, msg.data, negotiated.error);
    const decoded = decode(Message, msg.data, { codec: negotiated.codec, maxBytes: this.options.maxPayloadBytes });
    if (!decoded.ok) return this.options.reject(msg.subject, msg.data, decoded.error);
    this.batch.push(decoded.value);
    if (this.batch.length === 1) queueMicrotask(() => this.flush());
  }

  private flush(): void {
    const messages = this.batch;
    this.batch = [];
    if (messages.length > 0) this.options.deliver(messages);
  }
}
