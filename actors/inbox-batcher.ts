import { decode, TaskAssignment, type CodecName, type FleetError, type Message } from "../protocol/index.js";

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
 * An agent's one-way inbox (`<prefix>.agent.<id>.inbox`): each message is decoded and validated once, at the boundary,
 * and the valid ones of one socket read reach the chart as one event — a flood of messages costs one macrostep per read,
 * not one per message.
 */
export class InboxBatcher {
  private batch: Message[] = [];

  constructor(private readonly o: InboxBatcherOptions) {}

  receive(subject: string, data: Uint8Array, contentType: string | undefined | null): void {
    const decoded = decode(TaskAssignment.shape.message, data, { codec: codecOf(contentType, this.o.codec), maxBytes: this.o.maxPayloadBytes });
    if (!decoded.ok) return this.o.reject(subject, data, decoded.error);
    this.batch.push(decoded.value);
    if (this.batch.length === 1) queueMicrotask(() => this.flush());
  }

  private flush(): void {
    const messages = this.batch;
    this.batch = [];
    if (messages.length > 0) this.o.deliver(messages);
  }
}

/** The codec a message names in its Content-Type, else the fleet's. */
export function codecOf(contentType: string | undefined | null, fallback: CodecName): CodecName {
  if (contentType === "application/json") return "json";
  return contentType === "application/msgpack" ? "msgpack" : fallback;
}
