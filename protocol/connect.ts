import { connect, type NatsConnection } from "@nats-io/transport-node";
import { credsAuthenticator } from "@nats-io/nats-core";
import { readFileSync } from "node:fs";
import type { Logger } from "pino";
import { FleetError } from "./errors.js";

export interface ConnectOptions {
  servers: string | string[];
  /** shows in the server's connz, so an operator can tell the processes apart */
  name: string;
  credsFile?: string;
  logger?: Logger;
  /**
   * Long-lived processes wait for a server that is not up yet and reconnect forever; the CLI fails fast instead, so an
   * operator learns at once that nothing answers.
   */
  longLived?: boolean;
}

export async function connectNats(options: ConnectOptions): Promise<NatsConnection> {
  const longLived = options.longLived ?? true;
  try {
    const nc = await connect({
      servers: options.servers,
      name: options.name,
      maxReconnectAttempts: longLived ? -1 : 0,
      reconnectTimeWait: 500,
      reconnectJitter: 250,
      waitOnFirstConnect: longLived,
      timeout: longLived ? 20_000 : 3_000,
      ...(options.credsFile ? { authenticator: credsAuthenticator(readFileSync(options.credsFile)) } : {}),
    });
    if (options.logger) watchStatus(nc, options.logger);
    return nc;
  } catch (cause) {
    throw new FleetError("NATS_UNAVAILABLE", `no NATS server answers at ${String(options.servers)}`, { cause });
  }
}

/** Logs reconnects once each, in one place. */
function watchStatus(nc: NatsConnection, log: Logger): void {
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect" || s.type === "reconnect" || s.type === "error") {
        log.warn({ nats: s.type, server: "server" in s ? s.server : undefined }, "nats connection status");
      }
    }
  })();
}
