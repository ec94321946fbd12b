import type { Msg, NatsConnection, Subscription } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { FleetError, replyError, replyResult, type CodecName, type ControlOperation, type FleetNames } from "../protocol/index.js";

export interface ControlHandlers {
  /** the process restarts (its supervisor starts it again); the reply goes out first */
  Restart: () => Promise<unknown>;
  /** an operator closes the circuit breaker by hand */
  BreakerReset: () => Promise<unknown>;
}

/**
 * Operator controls on `fleet.agent.<id>.control.<op>`, kept apart from the A2A operations so that the broker can allow
 * them to operators only. Requests carry no payload; the reply is `{result}` or `{error}` like any fleet reply.
 */
export class ControlService {
  private sub: Subscription | undefined;

  constructor(
    private readonly o: { nc: NatsConnection; names: FleetNames; codec: CodecName; agentId: string; handlers: ControlHandlers; log: Logger },
  ) {}

  start(): void {
    this.sub = this.o.nc.subscribe(this.o.names.agentControls(this.o.agentId), {
      queue: `control-${this.o.agentId}`,
      callback: (err, msg) => {
        if (!err) void this.handle(msg);
      },
    });
  }

  stop(): void {
    this.sub?.unsubscribe();
  }

  private async handle(msg: Msg): Promise<void> {
    const op = msg.subject.slice(msg.subject.lastIndexOf(".") + 1);
    try {
      if (!isControl(op)) throw new FleetError("UNSUPPORTED_OPERATION", `control ${op} is not supported`);
      this.o.log.info({ op }, "operator control");
      const result = await this.o.handlers[op]();
      if (msg.reply) replyResult(msg, result ?? {}, this.o.codec);
    } catch (err) {
      if (msg.reply) replyError(msg, FleetError.from(err), this.o.codec);
    }
  }
}

function isControl(op: string): op is ControlOperation {
  return op === "Restart" || op === "BreakerReset";
}
