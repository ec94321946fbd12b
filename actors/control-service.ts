import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { bodilessEndpoint, FleetService, type CodecName, type ControlOperation, type FleetError, type FleetNames } from "../protocol/index.js";

export interface ControlHandlers {
  /** the process restarts (its supervisor starts it again); the reply goes out first */
  Restart: () => Promise<unknown>;
  /** an operator closes the circuit breaker by hand */
  BreakerReset: () => Promise<unknown>;
}

export interface ControlServiceOptions {
  nc: NatsConnection;
  names: FleetNames;
  codec: CodecName;
  agentId: string;
  handlers: ControlHandlers;
  deadLetter: (subject: string, data: Uint8Array, error: FleetError) => Promise<void>;
  log: Logger;
}

const CONTROLS: readonly ControlOperation[] = ["Restart", "BreakerReset"];

/**
 * Operator controls on `fleet.agent.<id>.control.<op>`, kept apart from the A2A operations so that the broker can allow
 * them to operators only. Requests carry no payload; the reply is `{result}` or `{error}` like any fleet reply.
 */
export function controlService(o: ControlServiceOptions): FleetService {
  return new FleetService({
    nc: o.nc,
    name: "fleet-agent-control",
    version: "1.0.0",
    description: `operator controls of agent ${o.agentId}`,
    metadata: { agent: o.agentId },
    queue: `control-${o.agentId}`,
    subscribe: [o.names.agentControls(o.agentId)],
    endpoints: CONTROLS.map((op) =>
      bodilessEndpoint({
        name: op,
        subject: o.names.agentControl(o.agentId, op),
        handle: async (call) => {
          call.log.info({ op }, "operator control");
          return o.handlers[op]();
        },
      }),
    ),
    codec: o.codec,
    maxPayloadBytes: 0,
    deadLetter: o.deadLetter,
    log: o.log,
  });
}
