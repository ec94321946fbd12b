import { after, before } from "node:test";
import type { NatsConnection } from "@nats-io/nats-core";
import type { FleetConfig } from "../../config/index.js";
import { connectNats, FleetNames } from "../../protocol/index.js";
import { RouterClient, type RunningRouter } from "../../router/index.js";
import { NatsServer } from "./nats-server.js";
import { OpenAIServer } from "./openai-server.js";
import { routerFleetConfig, startTestRouter, type RouterFleetOptions } from "./router-fleet.js";

export interface RouterTestFleet {
  config: FleetConfig;
  names: FleetNames;
  routers: RunningRouter[];
  client: RouterClient;
}

/**
 * The router tests' bed: a real nats-server, a real HTTP server speaking the OpenAI API, one client connection, and
 * routers started per test under a prefix of their own (streams, buckets, subjects), all stopped after the suite. Call it
 * inside a `describe`: it registers that suite's before and after hooks.
 */
export function routerTestBed(connectionName: string, prefixBase: string) {
  let nats: NatsServer | undefined;
  let openai: OpenAIServer | undefined;
  let nc: NatsConnection | undefined;
  let fleets = 0;
  const running: RunningRouter[] = [];

  before(async () => {
    [nats, openai] = await Promise.all([NatsServer.start(), OpenAIServer.start()]);
    nc = await connectNats({ servers: nats.url, name: connectionName });
  });
  after(async () => {
    for (const r of running) await r.stop();
    await nc?.close();
    await Promise.all([nats?.stop(), openai?.close()]);
  });

  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error("the router test bed is used before its suite started");
    return value;
  };

  return {
    get openai(): OpenAIServer {
      return started(openai);
    },
    get nc(): NatsConnection {
      return started(nc);
    },
    /** A fresh prefix with `routers` routers on it (default one), the scripted server's log cleared, and a client. */
    async fleet(options: Omit<RouterFleetOptions, "baseUrl" | "prefix"> = {}, extra: { env?: Record<string, string>; routers?: number } = {}): Promise<RouterTestFleet> {
      const prefix = `${prefixBase}${++fleets}`;
      const config = routerFleetConfig({ baseUrl: started(openai).baseUrl, prefix, ...options });
      const routers: RunningRouter[] = [];
      for (let i = 0; i < (extra.routers ?? 1); i++) routers.push(await startTestRouter(started(nc), config, extra.env ?? {}));
      running.push(...routers);
      const names = new FleetNames(prefix);
      started(openai).clear();
      return { config, names, routers, client: new RouterClient(started(nc), names, { timeoutMs: 20_000 }) };
    },
  };
}
