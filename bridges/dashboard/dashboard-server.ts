import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import Fastify, { type FastifyReply, type FastifyRequest } from "fastify";
import type { ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { z } from "zod";
import type { DashboardConfig, FleetConfig } from "../../config/index.js";
import { FleetError, type Clock, type FleetNames } from "../../protocol/index.js";
import { decideAsOperator } from "../operator-decision.js";
import { DashboardAuth, type Caller } from "./dashboard-auth.js";
import { UsageDays } from "./cost-series.js";
import { costsPage } from "./costs-page.js";
import { FleetMetrics } from "./fleet-metrics.js";
import { FleetReader, type FleetBuckets } from "./fleet-reader.js";
import { layout, loginPage, PAGES, type Html } from "./html.js";
import { LiveEvents } from "./live-events.js";
import { TaskIndex } from "./task-index.js";
import { ProposalEntries } from "./proposal-entries.js";
import { agentsPage, dlqPage, findingsPage, heldPage, proposalsPage, tasksPage } from "./work-pages.js";

/*
 * The operator's console over HTTP (fastify): the pages, /events (server-sent change signals), /metrics, and the
 * Approve/Reject forms, which decide through the same code path as `fleet approve`. It connects to NATS as the
 * operator and reads the fleet's records on every request, except what it follows instead of re-reading: USAGE (the
 * counters of /metrics and the day totals of /costs) and which tasks there are (the task index; a page then reads only
 * the Tasks it shows).
 */

export interface DashboardOptions {
  nc: NatsConnection;
  names: FleetNames;
  kv: FleetBuckets;
  config: FleetConfig;
  settings: Pick<DashboardConfig, "host" | "port" | "costDays">;
  token: string;
  /** who decisions are recorded as, e.g. `dashboard:alice` */
  operator: string;
  clock: Clock;
  log: Logger;
}

const FormBody = z.record(z.string(), z.string());
const DecisionParams = z.object({ id: z.string().min(1).max(64), decision: z.enum(["approve", "reject"]) });
/** settled proposals the proposals page lists under the ones awaiting a human */
const RECENT_PROPOSALS = 30;
/** tasks per page of /tasks */
const TASK_ROWS = 100;
const TaskQueryParams = z.object({
  page: z.coerce.number().int().min(1).max(100_000).catch(1).default(1),
  state: z.string().regex(/^[A-Z_]{1,32}$/).optional().catch(undefined),
  agent: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).optional().catch(undefined),
});

export class Dashboard {
  private app: ReturnType<typeof makeApp> | undefined;
  private readonly auth: DashboardAuth;
  private readonly reader: FleetReader;
  private readonly metrics: FleetMetrics;
  private readonly live: LiveEvents;
  private readonly taskIndex: TaskIndex;
  private readonly proposalEntries: ProposalEntries;
  private readonly usageDays: UsageDays;
  private readonly streams = new Set<ServerResponse>();
  private address: AddressInfo | undefined;

  private constructor(
    private readonly options: DashboardOptions,
    jsm: JetStreamManager,
  ) {
    const { nc, names, kv, config, clock, log } = options;
    this.auth = new DashboardAuth(options.token, { clock });
    const js = jetstream(nc);
    this.reader = new FleetReader({ nc, js, jsm, names, kv, config });
    this.taskIndex = new TaskIndex({ kv: kv.tasks, codec: config.fleet.codec, log: log.child({ component: "task-index" }) });
    this.proposalEntries = new ProposalEntries({ kv: kv.proposals, codec: config.fleet.codec, log: log.child({ component: "proposal-index" }) });
    this.usageDays = new UsageDays(config.fleet.timeZone);
    this.metrics = new FleetMetrics({ js, names, reader: this.reader, tasks: this.taskIndex, proposals: this.proposalEntries, days: this.usageDays, log, clock });
    this.live = new LiveEvents({ nc, names });
  }

  get url(): string {
    if (!this.address) throw new Error("the dashboard is not listening");
    const host = this.address.family === "IPv6" ? `[${this.address.address}]` : this.address.address;
    return `http://${host}:${this.address.port}`;
  }

  /** Follows USAGE for /metrics, subscribes to changes, and listens; `url` says where. */
  static async start(options: DashboardOptions): Promise<Dashboard> {
    const dashboard = new Dashboard(options, await jetstreamManager(options.nc));
    try {
      await dashboard.listen();
    } catch (err) {
      await dashboard.stop();
      throw err;
    }
    return dashboard;
  }

  private async listen(): Promise<void> {
    await this.taskIndex.start();
    await this.proposalEntries.start();
    await this.metrics.start();
    this.live.start();
    const app = makeApp(this.options.log);
    this.app = app;
    app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_req, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(String(body))));
    });
    app.get("/login", async (req, reply) => {
      const token = z.object({ token: z.string().optional() }).parse(req.query).token;
      if (token !== undefined) return this.logIn(token, req, reply);
      return reply.type("text/html").send(loginPage(undefined));
    });
    app.post("/login", async (req, reply) => this.logIn(FormBody.safeParse(req.body).data?.token ?? "", req, reply));
    app.post("/logout", async (req, reply) => {
      const caller = this.guard(req, reply);
      if (!caller) return reply;
      if (caller.kind === "session") this.auth.logout(caller.id);
      return reply.header("set-cookie", `${this.auth.sessionCookie("", false)}; Max-Age=0`).redirect("/login", 303);
    });
    for (const [path] of PAGES) app.get(path, async (req, reply) => this.page(path, req, reply));
    app.post("/proposals/:id/:decision", async (req, reply) => this.decide(req, reply));
    app.get("/events", async (req, reply) => this.events(req, reply));
    app.get("/metrics", async (req, reply) => {
      if (!this.guard(req, reply)) return reply;
      return reply.type(this.metrics.contentType).send(await this.metrics.render());
    });
    await app.listen({ host: this.options.settings.host, port: this.options.settings.port });
    const address = app.server.address();
    if (!address || typeof address === "string") throw new Error("the dashboard has no TCP address");
    this.address = address;
    this.options.log.info({ url: this.url }, "dashboard listening");
  }

  async stop(): Promise<void> {
    this.live.stop();
    for (const res of this.streams) res.end();
    this.streams.clear();
    await this.app?.close();
    await this.metrics.stop();
    await this.taskIndex.stop();
    await this.proposalEntries.stop();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** The caller, or undefined once the reply says why not: a page redirects to /login, anything else is a 401. */
  private guard(req: FastifyRequest, reply: FastifyReply): Caller | undefined {
    const caller = this.auth.caller({ authorization: req.headers.authorization, cookie: req.headers.cookie });
    if (caller) return caller;
    if (req.method === "GET" && (req.headers.accept ?? "").includes("text/html")) void reply.redirect("/login", 303);
    else void reply.code(401).header("www-authenticate", 'Bearer realm="natsfleet"').type("text/plain").send("log in first: /login, or Authorization: Bearer <token>\n");
    return undefined;
  }

  private async logIn(token: string, req: FastifyRequest, reply: FastifyReply) {
    if (!this.auth.tokenMatches(token)) {
      this.options.log.warn({ ip: req.ip }, "dashboard login refused");
      return reply.code(401).type("text/html").send(loginPage("That is not the login token."));
    }
    const session = this.auth.login();
    return reply.header("set-cookie", this.auth.sessionCookie(session.id, req.protocol === "https")).redirect("/", 303);
  }

  private async page(path: string, req: FastifyRequest, reply: FastifyReply) {
    const caller = this.guard(req, reply);
    if (!caller) return reply;
    const query = z.object({ notice: z.string().max(300).optional() }).parse(req.query);
    const body = await this.render(path, caller, query.notice, req.query);
    const title = PAGES.find(([p]) => p === path)?.[1] ?? "natsfleet";
    reply.header("cache-control", "no-store");
    if (req.headers["x-partial"] === "1") return reply.type("text/html").send(body.text);
    return reply.type("text/html").send(layout(title, path, body));
  }

  private async render(path: string, caller: Caller, notice: string | undefined, params: unknown): Promise<Html> {
    const now = this.options.clock.now();
    const r = this.reader;
    switch (path) {
      case "/tasks": {
        const q = TaskQueryParams.parse(params ?? {});
        return tasksPage(await r.taskPage(this.taskIndex, { page: q.page - 1, limit: TASK_ROWS, state: q.state, agentId: q.agent }));
      }
      case "/proposals":
        return proposalsPage(await r.proposals(this.proposalEntries, RECENT_PROPOSALS), caller.kind === "session" ? caller.csrf : undefined, now, notice);
      case "/costs":
        return costsPage(this.usageDays.series(now, this.options.settings.costDays), this.options.config.fleet.timeZone);
      case "/held":
        return heldPage(await r.held(), await r.usage(), now);
      case "/dlq":
        return dlqPage(await r.deadLetters(), await r.dlqDepth());
      case "/findings":
        return findingsPage(await r.findings(), now);
      default: {
        const usage = await r.usage();
        return agentsPage(await r.agents(now, usage), usage, now);
      }
    }
  }

  private async decide(req: FastifyRequest, reply: FastifyReply) {
    const caller = this.guard(req, reply);
    if (!caller) return reply;
    const form = FormBody.safeParse(req.body ?? {});
    if (!this.auth.csrfOk(caller, form.data?.csrf)) {
      this.options.log.warn({ ip: req.ip, url: req.url }, "dashboard POST refused: no valid CSRF token");
      return reply.code(403).type("text/plain").send("refused: the form's CSRF token is missing or wrong (reload the page)\n");
    }
    const params = DecisionParams.safeParse(req.params);
    if (!params.success) return reply.code(404).type("text/plain").send("no such action\n");
    const { id, decision } = params.data;
    const { nc, names, config, clock, log, operator } = this.options;
    let notice: string;
    try {
      const out = await decideAsOperator(
        { js: jetstream(nc), names, codec: config.fleet.codec, store: this.reader.proposalStore(), clock, log },
        { proposalId: id, decision, by: operator, reason: form.data?.reason },
      );
      notice = `${id}: ${decision === "approve" ? "approved" : "rejected"}${out.duplicate ? " (already recorded)" : ""}; governance takes it from here`;
    } catch (err) {
      if (!(err instanceof FleetError)) throw err;
      // a second click after the first was taken finds the proposal decided: say so, change nothing
      const code = err.code === "PROPOSAL_NOT_FOUND" ? 404 : err.code === "MESSAGE_INVALID" ? 400 : err.code === "PROPOSAL_STATE" ? 409 : 500;
      if (caller.kind === "bearer") return reply.code(code).type("text/plain").send(`${err.code}: ${err.message}\n`);
      notice = `${err.code}: ${err.message}`;
    }
    if (caller.kind === "bearer") return reply.type("text/plain").send(notice + "\n");
    return reply.redirect(`/proposals?notice=${encodeURIComponent(notice)}`, 303);
  }

  private async events(req: FastifyRequest, reply: FastifyReply) {
    if (!this.guard(req, reply)) return reply;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive" });
    res.write("retry: 2000\n\n");
    this.streams.add(res);
    // many changes in a burst (heartbeats, a task's transitions) become one signal a second at most
    let pending = new Set<string>();
    let timer: NodeJS.Timeout | undefined;
    const flush = () => {
      timer = undefined;
      res.write(`event: refresh\ndata: ${JSON.stringify({ topics: [...pending] })}\n\n`);
      pending = new Set();
    };
    const off = this.live.on((topic) => {
      pending.add(topic);
      timer ??= setTimeout(flush, 500);
    });
    res.on("close", () => {
      off();
      if (timer) clearTimeout(timer);
      this.streams.delete(res);
    });
  }
}

/** fastify with the process's pino logger (a child per request is fastify's own); request lines (info) stay off, warnings and errors are logged. */
function makeApp(log: Logger) {
  return Fastify({ loggerInstance: log.child({ component: "dashboard" }, { level: "warn" }) });
}
