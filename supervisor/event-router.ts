import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { z } from "zod";
import type { EventRoute } from "../config/index.js";
import {
  deadLetter,
  decode,
  encode,
  eventFromStored,
  readAfter,
  requestOperation,
  type Clock,
  type CodecName,
  type FleetEvent,
  type FleetNames,
  type Message,
  type TaskWork,
} from "../protocol/index.js";

export interface EventRouterOptions {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  kv: { schedules: KV };
  names: FleetNames;
  codec: CodecName;
  /** `events.sources` of the config: source → the agent (and pipeline) that handles its events */
  routes: Readonly<Record<string, EventRoute>>;
  clock: Clock;
  log: Logger;
  /** how far back a first start (no cursor yet) looks */
  lookbackMs: number;
  /** how often EVENTS is read; default 2 s */
  pollMs?: number;
  /** the most events one pass handles; default 100 */
  max?: number;
}

const Cursor = z.object({ seq: z.number().int().nonnegative() });
const CURSOR_KEY = "events.cursor";

/**
 * Turns events of the sources the config maps (`events.sources`) into tasks of their agent directly, without a plan:
 * each event becomes an A2A SendMessage to the agent whose `metadata.work` names the pipeline (or tier) and
 * `trigger: "event"`, marked as a discovery, so the agent's own dedup refuses work similar to what it completed in the
 * last 7 days (or created in the last 48 h). The message id follows from the source and the event id, so an event read
 * twice (a restart before the cursor moved) is the same task. Events of other sources are Atlas's to plan from. A
 * stored event of a mapped source that does not parse is dead-lettered with its reason. Runs in the scheduler (a
 * singleton), with its cursor in KV `schedules`.
 */
export class EventRouter {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private readonly log: Logger;

  constructor(private readonly options: EventRouterOptions) {
    this.log = options.log.child({ component: "event-router" });
  }

  start(): void {
    if (Object.keys(this.options.routes).length === 0) return;
    this.timer = setInterval(() => void this.pass(), this.options.pollMs ?? 2_000);
    void this.pass();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  private pass(): Promise<unknown> {
    this.running ??= this.tick()
      .catch((err: unknown) => this.log.warn({ err }, "event routing pass failed; the next pass goes on from the cursor"))
      .finally(() => (this.running = undefined));
    return this.running;
  }

  /** One pass: every new event of a mapped source handled, the cursor moved past each one handled. */
  async tick(): Promise<{ routed: string[]; deduplicated: string[]; refused: number }> {
    const { names, kv, codec, clock } = this.options;
    const out = { routed: [] as string[], deduplicated: [] as string[], refused: 0 };
    const entry = await kv.schedules.get(CURSOR_KEY);
    const cursor = entry && entry.operation === "PUT" ? decode(Cursor, entry.value, { codec }) : undefined;
    const afterSeq = cursor?.ok ? cursor.value.seq : undefined;
    const read = await readAfter(this.options.js, this.options.jsm, names.stream("EVENTS"), names.event("*"), {
      afterSeq,
      fromTime: clock.now() - this.options.lookbackMs,
      max: this.options.max ?? 100,
    });
    for (const m of read.messages) {
      const source = m.subject.slice(`${names.prefix}.event.`.length);
      const route = this.options.routes[source];
      if (route) {
        const parsed = eventFromStored(source, m.data, m.contentType, codec, { id: `${source}-${m.seq}`, at: m.timestampMs });
        if (!parsed.ok) {
          out.refused++;
          this.log.warn({ source, seq: m.seq, code: parsed.error.code }, "event refused; dead-lettered");
          await deadLetter(this.options.js, names, "events", { subject: m.subject, data: m.data, msgId: `events-${m.seq}` }, parsed.error);
        } else {
          // an agent that does not answer stops the pass here: the cursor stays before this event, the next pass retries
          const task = await requestOperation(this.options.nc, names, route.agent, "SendMessage", { message: messageOf(parsed.event, route) }, { codec, timeoutMs: 10_000 });
          const duplicate = task.status.state === "TASK_STATE_REJECTED";
          (duplicate ? out.deduplicated : out.routed).push(task.id);
          this.log.info({ source, eventId: parsed.event.id, agentId: route.agent, taskId: task.id, deduplicated: duplicate }, duplicate ? "event matches recent work: no task" : "event routed to its agent");
        }
      }
      await kv.schedules.put(CURSOR_KEY, encode({ seq: m.seq }, codec));
    }
    return out;
  }
}

/** The task an event stands for: its title says what and where (dedup compares titles), its work what to run. */
export function messageOf(event: FleetEvent, route: EventRoute): Message {
  const what = event.summary ?? event.type ?? "event";
  const title = `${event.source}: ${what}${event.subject ? ` (${event.subject})` : ""}`;
  const work: TaskWork = {
    trigger: "event",
    ...(route.pipeline ? { pipeline: route.pipeline } : {}),
    ...(route.tier ? { tier: route.tier } : {}),
    input: {
      source: event.source,
      eventId: event.id,
      ...(event.type ? { type: event.type } : {}),
      ...(event.subject ? { subject: event.subject, target: event.subject } : {}),
      ...(event.summary ? { summary: event.summary } : {}),
      ...(event.body !== undefined ? { body: event.body } : {}),
    },
  };
  const detail = event.body !== undefined ? `\n\n${JSON.stringify(event.body).slice(0, 2000)}` : "";
  return {
    messageId: `event:${event.source}:${event.id}`,
    role: "ROLE_USER",
    parts: [{ text: `${title}${detail}` }],
    metadata: {
      // work the fleet found for itself passes the discovery dedup layer at the agent
      discovery: true,
      work,
      ...(event.subject ? { target: event.subject } : {}),
      event: { source: event.source, id: event.id, at: event.at },
    },
  };
}
