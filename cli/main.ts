#!/usr/bin/env node
import { parseArgs } from "node:util";
import { inspect as inspectValue } from "node:util";
import { FleetError, secrets } from "../protocol/index.js";
import { run } from "./run.js";
import { decide, proposals, rollback } from "./proposals.js";
import { send } from "./send.js";
import { status } from "./status.js";
import { streams } from "./streams.js";
import { tail } from "./tail.js";
import { tasks } from "./tasks.js";
import { up } from "./up.js";
import { control } from "./control.js";
import { backup, restore } from "./backup.js";
import { costs } from "./costs.js";
import { report } from "./report.js";
import { route } from "./route.js";
import { simulate } from "./simulate.js";
import { memory } from "./memory.js";
import { contextCommand } from "./context-command.js";
import { audit } from "./audit.js";
import { liveSourcesFor } from "./live-sources-for.js";
import { creds } from "./creds.js";
import { demo } from "./demo.js";
import { tools } from "./tools.js";
import { dashboard } from "./dashboard.js";
import { init } from "./init.js";
import { health, reportHealthTo } from "./health.js";

const USAGE = `fleet <command> [options]

  up                         start the fleet: embedded nats-server unless --nats/NATS_URL answers, every agent a process
  run agent <id>             run one agent here (also: run <id>, run agents <id,id,...> for many in one process)
  run router                 one model router (run as many as you like: they share requests in a queue group)
  run scheduler              cron jobs, duties, the event router and the nightly backup (a singleton: a second copy stands by)
  run bridge <channel>       console, telegram, discord or email: deliveries and approvals on that channel
  run webhook                the webhook intake (events from outside)
  status [--json]            each agent: state, current task, tier, last heartbeat, restarts
  send <agent> <text>        send an A2A message and follow the Task through its states
  tasks [agent] [--json]     tasks and their states
  report weekly [--json]     the weekly cost report for the 7 days ending now (spend, triggers, top tasks, pools)
  tail [subject]             decoded live view of the fleet's subjects (default: <prefix>.>)
  streams [--json]           the fleet's streams and consumers with their counts
  restart <agent>            restart an agent's process (its supervisor starts it again)
  breaker reset <agent>      close an agent's circuit breaker by hand
  wake <agent>               wake an agent now (it runs a cycle instead of waiting for its timer)
  backup <dir> [--overwrite] write the fleet's streams and buckets to a directory
  restore <dir> [--force]    read them back into a server (refuses non-empty streams without --force)
  costs [--week] [--json]    spend by agent, tier and task kind, the top calls, the trend (today, or the last 7 days)
  route "<title>" [--agent id]
                             the tier the routers would pick for this step title, and why (no model is called)
  route teach "<title>" <tier>
                             correct the local classifier: this title goes to this tier from now on, in every router
  simulate [--days 30]       project the config's spend per agent and tier against all-premium (no NATS needed)
  memory show <agent>        an agent's MEMORY.md as markdown, with its line count and cap (--json)
  memory export <dir>        write every agent's MEMORY.md to <dir>/<agent>.md
  context <agent> <task>     the prompt the agent's model call for this task would get, tier by tier, with token counts
  audit [--agent <id>] [--tool <name>] [--limit N] [--json]
                             the latest tool calls from the audit trail (refused ones too)
  audit verify [--identities <dir>]
                             check the audit trail: hash chain, each record's signature against the fleet's tool-host
                             key, the chain against governance's anchors (keys from <dir>/identities.json, default: the
                             directory of --creds, else .fleet/creds); exit 0 when intact, 1 listing every problem
  run tools                  serve the fleet's tools (built-in, toolModules, MCP servers) from this host
  run standin                the business stand-in (CRM, CMS, analytics, SEO fixture data) at business.url
  tools [--json]             every tool: source (built-in, module, mcp:<server>), risk, hosts serving it now, agents allowed
  run governance             Sentinel and the proposal executor (a singleton: a second copy stands by)
  proposals [id] [--all]     open proposals (--all: settled too); with an id: every rule's verdict and the history
  approve <id>               approve a CONFIRM proposal awaiting a human (as the operator, via "_operator")
  reject <id> --reason <why> reject one
  rollback <id>              undo a PROPOSE proposal's effect inside its rollback window (15 min by default)
  send <agent> --tool <name> --input '<json>' [--reason <why>]
                             a task naming a tool: AUTO/AUTO+ run at once, PROPOSE/CONFIRM become a proposal
  send <agent> --urgent "<text>"
                             model work marked urgent (metadata.work.urgent): quiet hours do not hold it
  send <agent> --pipeline <id> [--input '<json>'] [--tier <tier|alias>]
                             run a configured pipeline by hand (--input merged over its default input); prints the
                             report, or "nothing found" when its tool steps found nothing (no model call, $0)
  send <agent> <text> --tier <tier|alias>
                             an ordinary task whose model step asks the router for this tier or alias
  demo break | fix | status  take the default fleet's demo site down (it answers 503) or bring it back
  run demo-site              serve the demo site (fleet up runs it when a duty names {{local.demo-site}})
  run nats-server <dir>      the embedded nats-server on <dir>/nats-server.conf, as fleet up supervises it (it stops with its parent)
  dashboard [--port N]       the web dashboard and /metrics (127.0.0.1:7070 by default; prints the URL and login token)
  creds [dir]                one NATS nkey seed per process and the servers' auth.conf, for an external cluster
                             (fleet up makes its own in .fleet/creds/; default dir: .fleet/creds)
  init [--replicas 1|3]      create the fleet's streams and buckets as the operator and exit (fleet up does it itself;
                             run it once before processes started one by one: docker-compose.yml, several hosts)
  health [--max-age 30]      exit 0 when $FLEET_HEALTH_FILE is fresh: a "fleet run <role>" started with that variable
                             writes it once its role is up and every 5 s after (the containers' health check)

options: --nats <url> (else NATS_URL, else the fleet started here, else nats://127.0.0.1:4222)
         --config <file.yaml> (default: config/fleets/local.yaml)   --prefix <prefix>   --log-level <level>
         --creds <file> (.nk nkey seed or .creds JWT; else, for the fleet started here, .fleet/creds/operator.nk)`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      nats: { type: "string" },
      prefix: { type: "string" },
      config: { type: "string" },
      json: { type: "boolean" },
      "log-level": { type: "string" },
      creds: { type: "string" },
      cluster: { type: "string" },
      "run-id": { type: "string" },
      supervised: { type: "boolean" },
      timeout: { type: "string" },
      "no-wait": { type: "boolean" },
      overwrite: { type: "boolean" },
      force: { type: "boolean" },
      week: { type: "boolean" },
      days: { type: "string" },
      agent: { type: "string" },
      tool: { type: "string" },
      limit: { type: "string" },
      identities: { type: "string" },
      all: { type: "boolean" },
      reason: { type: "string" },
      input: { type: "string" },
      urgent: { type: "boolean" },
      pipeline: { type: "string" },
      tier: { type: "string" },
      port: { type: "string" },
      replicas: { type: "string" },
      "max-age": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  const [command, ...rest] = positionals;
  const env = process.env;
  reportHealthTo(env.FLEET_HEALTH_FILE);
  switch (command) {
    case "creds":
      return creds(rest, values);
    case "demo":
      return demo(rest);
    case "init":
      return init(values, env);
    case "health":
      return health(values, env);
    case "up":
      return up(values, env);
    case "dashboard":
      return dashboard(values, env);
    case "run":
      return run(rest, values, env);
    case "status":
      return status(values, env);
    case "send":
      return send(rest, values, env);
    case "tasks":
      return tasks(rest, values, env);
    case "tail":
      return tail(rest, values, env);
    case "streams":
      return streams(values, env);
    case "backup":
      return backup(rest, values, env);
    case "restore":
      return restore(rest, values, env);
    case "restart":
      return control("Restart", rest[0], values, env);
    case "wake":
      return control("Wake", rest[0], values, env);
    case "costs":
      return costs(values, env);
    case "report":
      return report(rest, values, env);
    case "route":
      return route(rest, values, env);
    case "simulate":
      return simulate(values);
    case "memory":
      return memory(rest, values, env);
    case "proposals":
      return proposals(rest, values, env);
    case "approve":
      return decide("approve", rest, values, env);
    case "reject":
      return decide("reject", rest, values, env);
    case "rollback":
      return rollback(rest, values, env);
    case "audit":
      return audit(rest, values, env);
    case "tools":
      return tools(values, env);
    case "context":
      return contextCommand(rest, values, env, liveSourcesFor(values));
    case "breaker":
      if (rest[0] !== "reset") break;
      return control("BreakerReset", rest[1], values, env);
  }
  console.log(USAGE);
  return command && !values.help ? 2 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof FleetError) {
      console.error(secrets.scrub(`fleet: ${err.code}: ${err.message}`));
      process.exit(err.code === "CONFIG_INVALID" || err.code === "CONFIG_NOT_FOUND" ? 2 : 1);
    }
    console.error(secrets.scrub(inspectValue(err)));
    process.exit(1);
  },
);
