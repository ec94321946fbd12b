import { dirname, resolve } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { liveMemorySources } from "../memory/index.js";
import { FleetNames } from "../protocol/index.js";
import type { MemorySourcesFactory } from "./context-command.js";
import { configPath, type CliOptions } from "./options.js";

/** The running fleet's memory, as `fleet context` shows it: the same sources an agent's step reads. */
export function liveSourcesFor(options: CliOptions): MemorySourcesFactory {
  return async (config, nc) => {
    const names = new FleetNames(config.fleet.prefix);
    const base = dirname(resolve(configPath(options)));
    return liveMemorySources({
      nc,
      js: jetstream(nc),
      jsm: await jetstreamManager(nc),
      memoryKv: await new Kvm(nc).open(names.bucket("memory")),
      names,
      config,
      codec: config.fleet.codec,
      knowledgeDir: config.memory.knowledgeDir ? resolve(base, config.memory.knowledgeDir) : undefined,
    });
  };
}
