import type { FleetConfig } from "../config/index.js";
import { CALLERS, EMAIL_CHANNEL, FleetNames, type RiskLevel } from "../protocol/index.js";
import { mcpAgentSubjects, mcpListingFilters } from "./mcp/index.js";
import { toolAllowed } from "./tool-globs.js";
import { Grants, type Durable, type GrantContext, type Identity, type Permissions, type ServingIdentity } from "./permission-grants.js";

export type { Identity, Permissions, ServingIdentity, SubjectRules } from "./permission-grants.js";

/**
 * The broker's third enforcement of the allow lists: from the fleet config and the tools' risk levels, what each process
 * identity may publish and subscribe to. Pure: the same config and risk map always give the same permissions, and the
 * credentials writer (credentials.ts) only serialises them.
 *
 * Publish permissions are allow lists, so anything not named is refused; the deny lists repeat the few refusals that
 * matter most (approval decisions, stream and consumer deletion, other identities' durables) so that they hold even
 * where an allow carries a wildcard. A role that serves requests does so under a twin identity (`serve:<identity>`) that
 * may publish on `_INBOX.>` and nothing else, while the role's own identity, which writes its data, serves nothing; and
 * `allow_responses` stays off, because the server lets a response permission override the deny list and the reply
 * subject is the requester's choice (an agent could otherwise have another process "reply" onto an approval subject).
 * Each identity subscribes only to its own inbox prefix, so no process reads the replies meant for another.
 */

export interface PermissionOptions {
  /** the inbox prefix each identity's connection uses; `_INBOX` (shared by everyone) when omitted */
  inboxOf?: (identity: Identity) => string;
}

/** The durable consumers of the fleet, each owned by one identity: no other identity may pull, ack, change or delete it. */
export function fleetDurables(config: FleetConfig, names: FleetNames): Durable[] {
  const out: Durable[] = config.agents.map((a) => ({
    stream: "TASKS" as const,
    name: names.agentConsumer(a.id),
    filter: names.task(a.id),
    owner: `agent:${a.id}` as const,
  }));
  for (const channel of outboxChannels(config)) out.push({ stream: "OUTBOX", name: `outbox-${channel}`, filter: names.outbox(channel), owner: `bridge:${channel}` });
  for (const channel of approvalChannels(config)) {
    out.push({ stream: "APPROVALS", name: `approvals-${channel}`, filter: names.approvalRequest(channel), owner: `bridge:${channel}` });
  }
  out.push({ stream: "PROPOSALS", name: "governance-intake", filter: names.proposalSubmissions(), owner: "governance" });
  out.push({ stream: "APPROVALS", name: "governance-decisions", filter: names.approvalDecisions(), owner: "governance" });
  return out;
}

/** Channels a person approves CONFIRM proposals on: the configured approval channels and the chat bridges. */
export function approvalChannels(config: FleetConfig): string[] {
  const { approvals } = config.governance;
  // the email bridge only sends: nobody presses a button in an email
  const chats = [config.bridges.telegram && "telegram", config.bridges.discord && "discord"].filter((c): c is string => typeof c === "string");
  return unique([...approvals.channels, ...approvals.escalateTo, ...chats]);
}

/**
 * Channels something is delivered to through the OUTBOX: principals, cron and duty deliveries, every approval channel,
 * Atlas's notices, and email when its bridge is configured.
 */
export function outboxChannels(config: FleetConfig): string[] {
  const cron = config.cron.flatMap((job) => (job.delivery === "none" ? [] : [job.delivery.channel]));
  const duties = config.agents.flatMap((agent) => agent.duties.flatMap((duty) => (duty.delivery === "none" ? [] : [duty.delivery.channel])));
  const notices = noticeChannel(config);
  const email = config.bridges.email ? [EMAIL_CHANNEL] : [];
  return unique([...config.principals.map((p) => p.channel), ...cron, ...duties, ...approvalChannels(config), ...(notices ? [notices] : []), ...email]);
}

/** Where Atlas's notices go: `planning.notices`, else the first principal's channel; none without either. */
export function noticeChannel(config: FleetConfig): string | undefined {
  return config.planning.notices?.channel ?? config.principals[0]?.channel;
}

/**
 * Every identity the config calls for, in a stable order: one per agent, the services, one per channel, the operator;
 * each role that serves requests is followed by its serving twin.
 */
export function fleetIdentities(config: FleetConfig): Identity[] {
  const out: Identity[] = config.agents.flatMap((a) => [`agent:${a.id}` as const, servingIdentity(`agent:${a.id}`)]);
  for (const role of ["router", "scheduler", "governance", "tools"] as const) out.push(role, servingIdentity(role));
  for (const channel of outboxChannels(config)) out.push(`bridge:${channel}`);
  out.push("webhook");
  if (config.gateway) out.push("gateway", servingIdentity("gateway"));
  out.push("operator");
  return out;
}

/** The twin `identity` serves its requests under. */
export function servingIdentity(identity: Identity): ServingIdentity {
  return `serve:${identity}`;
}

/** Each identity's permissions. `tools` maps a tool's name to its risk level (the tool catalogue's view). */
export function fleetPermissions(config: FleetConfig, tools: Readonly<Record<string, RiskLevel>>, options: PermissionOptions = {}): Map<Identity, Permissions> {
  const names = new FleetNames(config.fleet.prefix);
  const ctx: GrantContext = { config, tools, names, durables: fleetDurables(config, names), inboxOf: options.inboxOf ?? (() => "_INBOX") };
  return new Map(fleetIdentities(config).map((identity) => [identity, permissionsOf(identity, ctx)]));
}


function permissionsOf(identity: Identity, ctx: GrantContext): Permissions {
  if (identity === "operator") {
    return { publish: { allow: [">"], deny: [] }, subscribe: { allow: [">"], deny: [] }, allow_responses: false };
  }
  if (identity.startsWith("serve:")) {
    const role = identity.slice("serve:".length) as Identity;
    const g = roleGrants(role, ctx);
    if (!g.serves) throw new TypeError(`${role} serves nothing: it has no serving twin`);
    return g.servingPermissions(identity as ServingIdentity);
  }
  return roleGrants(identity, ctx).build();
}

function roleGrants(identity: Identity, ctx: GrantContext): Grants {
  const g = new Grants(identity, ctx);
  if (identity.startsWith("agent:")) agentGrants(g, identity.slice("agent:".length), ctx);
  else if (identity.startsWith("bridge:")) bridgeGrants(g, identity.slice("bridge:".length), ctx);
  else if (identity === "router") routerGrants(g, ctx);
  else if (identity === "scheduler") schedulerGrants(g, ctx);
  else if (identity === "governance") governanceGrants(g, ctx);
  else if (identity === "tools") toolHostGrants(g, ctx);
  else if (identity === "webhook") webhookGrants(g, ctx);
  else if (identity === "gateway") gatewayGrants(g, ctx);
  return g;
}

/** Tools an agent may call itself: those on its allow list (every one for "*") whose risk is AUTO or AUTO+. */
export function directTools(allowList: readonly string[], tools: Readonly<Record<string, RiskLevel>>): string[] {
  const wildcard = allowList.includes("*");
  return Object.entries(tools)
    .filter(([name, risk]) => (risk === "AUTO" || risk === "AUTO+") && (wildcard || toolAllowed(allowList, name)))
    .map(([name]) => name)
    .sort();
}

function agentGrants(g: Grants, id: string, ctx: GrantContext): void {
  const { names, config } = ctx;
  const agent = config.agents.find((a) => a.id === id);
  if (!agent) throw new TypeError(`no agent "${id}" in the config`);
  const p = names.prefix;
  // its own A2A surface, controls, inbox and wake-ups; it answers requests on them
  g.serve(names.agentOperations(id), names.agentControls(id), names.agentInbox(id), names.wake(id));
  g.publish(names.agentEvents(id));
  // agents talk to each other: a message to another agent's A2A SendMessage or inbox
  g.publish(`${p}.agent.*.a2a.SendMessage`, `${p}.agent.*.inbox`);
  // services that need to know who asks read it from the subject: the agent may put only its own id there
  g.publish(names.router("*", id), names.memorySearch(id), `${p}.dlq.>`);
  g.publish(names.memoryLog(id, "*"));
  g.streamRead("MEMLOG", [names.memoryLog(id, "*")]);
  g.ownDurable("TASKS", names.agentConsumer(id));
  g.publish(names.task(id));
  g.kvWrite("tasks", [`${id}.>`]);
  // its pipeline runs' step records, keyed like its tasks
  g.kvWrite("pipelineruns", [`${id}.>`]);
  g.kvWrite("agents", [id]);
  g.kvWrite("dedup", [id]);
  // its held tasks (quiet hours, a spent cap), kept until their hold ends and then sent to itself again
  g.kvWrite("held", [`${id}.>`]);
  g.kvRead("memory", [id]);
  for (const tool of directTools(agent.tools, ctx.tools)) g.publish(names.tool(tool, id));
  // MCP servers' tools, granted by the allow list before any server is listed (see mcp/mcp-grants.ts), and their listings
  g.publish(...mcpAgentSubjects(config, names, id, agent.tools));
  const listings = mcpListingFilters(config, agent.tools);
  if (listings.length > 0) g.kvRead("tools", listings);
  g.publish(names.proposal(id, "submitted"));
  // what its duties find, under its own id only
  g.publish(names.finding(id));
  // its own refusals, for the audit trail: the tool host records them under the id in this subject
  g.publish(names.refusal(id));
  // everything it reads names its keys in the subject; stream info would list other agents' subjects
  g.withoutEnumeration();
  if (agent.layer === "orchestration") {
    // the orchestrator assigns work to every agent (their Task in KV, the assignment on TASKS, the dedup record),
    // follows it to the end and reads every agent's record for the status report; it holds its singleton lease
    g.publish(`${p}.task.*`);
    g.kvWrite("tasks", [">"]);
    g.kvWrite("dedup", [">"]);
    g.kvRead("agents", [">"]);
    g.leaseHolder(`agent.${id}`);
    // its plan's inputs: what duties found and what arrived from outside
    g.streamRead("FINDINGS", [`${p}.finding.*`]);
    g.streamRead("EVENTS", [`${p}.event.*`]);
    // ... tasks that failed and proposals now awaiting a human (read as changes since its cursor), task messages that
    // were dead-lettered, and the budget states (to plan only for agents with headroom)
    g.kvChanges("tasks", [">"]);
    g.kvChanges("proposals", [">"]);
    g.streamRead("DLQ", [names.dlq("tasks")]);
    g.kvRead("budgets", [">"]);
    // its cursors, waiting notes, held work and plan records
    g.kvWrite("plans", [">"]);
    // its notices to the operator, on the one channel they go to
    const notices = noticeChannel(config);
    if (notices) g.publish(names.outbox(notices));
    // its delegations to peers, for the audit trail: the tool host records them under the id in this subject
    g.publish(names.delegation(id));
  }
  for (const other of config.agents) if (other.id !== id) g.deny(`${p}.proposal.${other.id}.>`);
  g.deny(`${p}.approval.>`, `${p}.audit.>`, `${p}.governance.>`, names.auditAnchor());
  g.deny(...(["proposals", "budgets", "toolruns", "schedules", "cache", "memory", "answers", "toolstate", "tools", "deliveries", "labels"] as const).map((b) => `$KV.${names.bucket(b)}.>`));
}

function routerGrants(g: Grants, ctx: GrantContext): void {
  const { names } = ctx;
  const p = names.prefix;
  g.serve(names.routerOperations());
  g.publish(`${p}.usage.*.*`, `${p}.dlq.>`);
  // budget reservations, the waiting list of premium calls, the semantic cache, the answers of tasks' model steps
  g.kvWrite("budgets", [">"]);
  g.kvWrite("cache", [">"]);
  g.kvWrite("answers", [">"]);
  // the local classifier's learned labels: written on an escalation or an operator's teach, watched by every router
  g.kvWrite("labels", [">"]);
  // a budget record that no longer decodes is rebuilt from what USAGE says was paid
  g.streamRead("USAGE", [`${p}.usage.>`]);
  g.deny(`${p}.approval.>`);
}

function schedulerGrants(g: Grants, ctx: GrantContext): void {
  const { names } = ctx;
  const p = names.prefix;
  // the semantic memory's owner answers the agents' searches
  g.serve(names.memorySearch("*"));
  // cron jobs: a message to the job's agent, the answer to its channel
  g.publish(`${p}.agent.*.a2a.SendMessage`, `${p}.outbox.*`, `${p}.dlq.>`);
  // on an agent's behalf, billed to it: the distillation of its day and the embeddings of its memory and its searches;
  // never a route or a usage question in its name
  g.publish(names.router("complete", "*"), names.router("embed", "*"));
  g.kvWrite("schedules", [">"]);
  g.kvWrite("memory", [">"]);
  g.leaseHolder("scheduler");
  // the nightly backup reads every stream and bucket, so this identity reads everything (and writes none of it)
  g.readEverything();
  g.deny(`${p}.approval.>`);
}

function governanceGrants(g: Grants, ctx: GrantContext): void {
  const { names, tools } = ctx;
  const p = names.prefix;
  g.serve(`${p}.governance.*`);
  g.ownDurable("PROPOSALS", "governance-intake");
  g.ownDurable("APPROVALS", "governance-decisions");
  g.kvWrite("proposals", [">"]);
  g.leaseHolder("governance");
  // Sentinel's rules: the agent's budget headroom and records, the proposal's task
  for (const bucket of ["agents", "budgets", "tasks"] as const) g.kvRead(bucket, [">"]);
  // a proposal's state changes, never a submission in an agent's name
  g.publish(`${p}.proposal.*.*`, `${p}.approval.request.*`, `${p}.dlq.>`);
  g.deny(`${p}.proposal.*.submitted`, `${p}.approval.decision.>`);
  // it anchors the audit chain's tip (reading the chain's messages by sequence), and is the only one that may
  const audit = names.stream("AUDIT");
  const anchors = names.stream("AUDIT_ANCHORS");
  g.publish(names.auditAnchor());
  g.publish(`$JS.API.STREAM.MSG.GET.${audit}`, `$JS.API.DIRECT.GET.${audit}`, `$JS.API.DIRECT.GET.${audit}.>`);
  g.publish(`$JS.API.STREAM.MSG.GET.${anchors}`, `$JS.API.DIRECT.GET.${anchors}`, `$JS.API.DIRECT.GET.${anchors}.>`);
  // it executes the tools that need a proposal, as itself: the tool host runs such a call only as the proposal executing
  for (const [tool, risk] of Object.entries(tools).sort()) if (risk === "PROPOSE" || risk === "CONFIRM") g.publish(names.tool(tool, CALLERS.governance));
  // and MCP servers' tools, whatever their listed risk (the tool host runs them only as the proposal executing); Sentinel
  // judges those proposals on the tool hosts' listings
  const servers = Object.keys(ctx.config.mcpServers).sort();
  for (const server of servers) g.publish(names.tool(`${server}.*`, CALLERS.governance));
  // every listing (none is secret): a bucket bound without direct gets reads through the stream API, which names no key
  if (servers.length > 0) g.kvRead("tools", [">"]);
}

function toolHostGrants(g: Grants, ctx: GrantContext): void {
  const { names } = ctx;
  const p = names.prefix;
  g.serve(names.tool("*", "*"));
  // MCP servers' tools: `<prefix>.tool.<server>.<tool>.<caller>`, and the listings of what this host serves
  if (Object.keys(ctx.config.mcpServers).length > 0 || Object.keys(ctx.config.peers).length > 0) g.serve(names.tool("*.*", "*"));
  g.kvWrite("tools", [">"]);
  // the agents' own refusals, recorded in the audit trail
  g.serve(names.refusal("*"));
  // the orchestrator's delegations to peers, recorded in the audit trail like calls of the peer's tool
  g.serve(names.delegation("*"));
  g.publish(`${p}.audit.*`, `${p}.outbox.*`, `${p}.dlq.>`);
  g.kvWrite("toolruns", [">"]);
  // what stateful tools remember between calls: seen feed items, uptime histories, file manifests
  g.kvWrite("toolstate", [">"]);
  g.kvRead("proposals", [">"]);
  // the audit chain links each record to the stream's last one
  const audit = names.stream("AUDIT");
  g.publish(`$JS.API.STREAM.MSG.GET.${audit}`, `$JS.API.DIRECT.GET.${audit}`, `$JS.API.DIRECT.GET.${audit}.>`);
  // the audit writer never moves the anchors its chain is checked against
  g.deny(`${p}.approval.>`, `${p}.proposal.>`, names.auditAnchor());
}

function bridgeGrants(g: Grants, channel: string, ctx: GrantContext): void {
  const { names, config } = ctx;
  const p = names.prefix;
  g.ownDurable("OUTBOX", `outbox-${channel}`);
  g.publish(`${p}.dlq.>`);
  // the email bridge remembers what it sent, under its own channel's keys only
  if (channel === EMAIL_CHANNEL && config.bridges.email) g.kvWrite("deliveries", [`${channel}.>`]);
  if (approvalChannels(config).includes(channel)) {
    g.ownDurable("APPROVALS", `approvals-${channel}`);
    // the one identity kind that may publish a human's decision, and only as its own channel
    g.publish(names.approvalDecisions(channel));
  }
  // the operator's token is no channel a bridge may take, even one configured under that name
  g.deny(`${p}.approval.request.>`, `${p}.proposal.>`, names.approvalDecisions(CALLERS.operator));
}

function webhookGrants(g: Grants, ctx: GrantContext): void {
  for (const agent of ctx.config.agents) g.publish(ctx.names.wake(agent.id));
  // a POST with a body becomes an event for Atlas's plan (or the agent its source is mapped to); a body that is no
  // event is dead-lettered under its own source
  g.publish(ctx.names.event("*"), ctx.names.dlq("webhook"));
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

/**
 * The A2A HTTP gateway: the four A2A operations of the agents some peer was granted (what a peer may ask, the gateway
 * may carry), and their events for SSE streams. No JetStream, no KV: everything it learns comes from the agents' answers.
 * Its serving twin answers discovery only.
 */
function gatewayGrants(g: Grants, ctx: GrantContext): void {
  const { names, config } = ctx;
  const peers = config.gateway?.peers ?? [];
  const granted = new Set(peers.flatMap((p) => (p.agents.includes("*") ? config.agents.map((a) => a.id) : p.agents)));
  for (const agent of config.agents.filter((a) => granted.has(a.id))) {
    g.publish(names.agentOperations(agent.id));
    g.listen(names.agentEvents(agent.id));
  }
  // its twin answers NATS micro discovery with where it listens and whom it serves: `fleet status` finds it so
  g.discoverable();
  g.deny(`${names.prefix}.approval.>`);
}
