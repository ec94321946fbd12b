import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parse } from "yaml";
import { z } from "zod";
import { DIST } from "../helpers/fleet-processes.js";

/*
 * docker-compose.yml as the tests read it: YAML with merge keys (`<<: *fleet`), as Compose reads it, then the parts of a
 * service the tests use, checked with zod. The JSON schema check of the whole file is compose.test.ts's.
 */

/** the repository root: dist/.. */
export const ROOT = resolve(DIST, "..");
export const COMPOSE_FILE = join(ROOT, "docker-compose.yml");
/** the image the Dockerfile builds; every fleet process runs it */
export const FLEET_IMAGE = "natsfleet:local";
/** where the Dockerfile puts the project, and the CLI in it */
export const APP_DIR = "/app";
export const IMAGE_CLI = "/app/dist/cli/main.js";

const Condition = z.enum(["service_started", "service_healthy", "service_completed_successfully"]);
export const ComposeService = z.object({
  image: z.string(),
  command: z.array(z.string()).optional(),
  environment: z.record(z.string(), z.union([z.string(), z.null()])).optional(),
  /** short (`./host:/container:ro`, `name:/container`) or long syntax (`{ type: bind, source, target }`) */
  volumes: z.array(z.union([z.string(), z.looseObject({ type: z.enum(["bind", "volume"]), source: z.string(), target: z.string() })])).default([]),
  healthcheck: z.object({ test: z.array(z.string()).optional(), disable: z.boolean().optional() }).optional(),
  depends_on: z.record(z.string(), z.object({ condition: Condition })).default({}),
  profiles: z.array(z.string()).optional(),
  network_mode: z.string().optional(),
  restart: z.string().optional(),
  ports: z.array(z.string()).optional(),
});
export type ComposeService = z.infer<typeof ComposeService>;
export const ComposeFile = z.object({
  services: z.record(z.string(), ComposeService),
  volumes: z.record(z.string(), z.null()).default({}),
});
export type ComposeFile = z.infer<typeof ComposeFile>;

/** The file as Compose sees it once merge keys are applied (what the JSON schema is checked against). */
export function readCompose(text = readFileSync(COMPOSE_FILE, "utf8")): unknown {
  return parse(text, { merge: true });
}

export function loadCompose(): ComposeFile {
  return ComposeFile.parse(readCompose());
}

/** One `volumes:` entry: a bind mount (`./host:/container[:ro]`) or a named volume (`name:/container`), either syntax. */
export interface Mount {
  source: string;
  target: string;
  named: boolean;
}

export function mountsOf(service: ComposeService): Mount[] {
  return service.volumes.map((entry) => {
    if (typeof entry !== "string") return { source: entry.source, target: entry.target, named: entry.type === "volume" };
    const [source = "", target = ""] = entry.split(":");
    return { source, target, named: !source.startsWith(".") && !source.startsWith("/") };
  });
}

/** The services that run the fleet's image by default (not the profile-only ones: creds, the operator's CLI). */
export function fleetServices(file: ComposeFile): [string, ComposeService][] {
  return Object.entries(file.services).filter(([, s]) => s.image === FLEET_IMAGE && !s.profiles);
}

/** The services running nats-server. */
export function natsServices(file: ComposeFile): [string, ComposeService][] {
  return Object.entries(file.services).filter(([, s]) => s.image.startsWith("nats:"));
}

/** The value of a flag in a command (`--config x` → x). */
export function flag(command: readonly string[], name: string): string | undefined {
  const i = command.indexOf(name);
  return i >= 0 ? command[i + 1] : undefined;
}
