import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { setTimeout as sleep } from "node:timers/promises";
import type { Tracer } from "@opentelemetry/api";
import type { Logger } from "pino";
import { electionSafeJetStream, connectNats, connectServing, FleetNames, openFleetResources, systemClock, type Clock, type CodecName, type FleetResources } from "../protocol/index.js";
import { ActorHost } from "./actor-host.js";
import type { AgentBehaviour, HostedAgent } from "./behaviour.js";
import { CycleScheduler, nodeTimers } from "./cycle-scheduler.js";
import { QuietHoursRunner } from "./quiet-hours-runner.js";
import type { DailyWindow, UrgentPolicy } from "../config/index.js";
import { FleetModelWorkGate, type ModelWorkGate } from "./model-work-gate.js";
import { TaskTokens } from "./task-tokens.js";

export interface RuntimeSettings {
  servers: string;
  prefix: string;
  codec: CodecName;
  maxPayloadBytes: number;
  /** copies of each stream and bucket it creates (`fleet.replicas`); 1 when omitted */
  replicas?: number;
  tasks: { ackWaitSeconds: number; maxDeliver: number; backoffSeconds: readonly number[]; workingAckSeconds: number };
  heartbeatMs?: number;
  /** the fleet's quiet window: no cycles inside it, and model work waits (see `modelWork`) */
  quietHours: DailyWindow;
  /**
   * what model work runs inside quiet hours anyway (`fleet.quietHours.urgent`), and the routing aliases it may name;
   * none urgent when omitted
   */
  modelWork?: { urgent: UrgentPolicy; aliases: Readonly<Record<string, string>> };
  runId: string;
  /** names the connection in the server's connz */
  processName: string;
  /** the process's NATS identity (an nkey seed or JWT credentials file); none on an open server */
  credentials?: { nkeySeedFile?: string; credsFile?: string };
  /** false: the streams and buckets are the operator's to create (a secured fleet); this process only opens them */
  createResources?: boolean;
}

/** What a behaviour factory may use: the same connection and buckets as the hosts. */
export interface RuntimeDeps extends FleetResources {
  nc: NatsConnection;
  js: JetStreamClient;
  names: FleetNames;
  codec: CodecName;
  clock: Clock;
  log: Logger;
  /** every model step asks it first: quiet hours and spent caps hold the work instead of failing it */
  gate: ModelWorkGate;
  /** each task's tokens so far: the router client adds every reply's usage, the host writes the sum as the actual */
  tokens?: TaskTokens | undefined;
  /** GenAI spans (telemetry on): each task an `invoke_agent` span, each tool call of a model step an `execute_tool` span */
  tracer?: Tracer | undefined;
}

/**
 * One OS process hosting one or many agent actors: `fleet run agent scout` hosts one, a dense deployment (or a test) hosts
 * many. The actors write and ask through `nc` and serve their A2A operations, controls, inbox and wake-ups on `serveNc`
 * (the serving twin's connection, which may publish replies only; `nc` itself when the process has no twin). `stop()`
 * shuts down in order: stop intake, let work in hand finish, stop the actors, drain the connections.
 */
export class AgentRuntime {
  readonly hosts: ActorHost[] = [];
  private constructor(
    readonly nc: NatsConnection,
    readonly serveNc: NatsConnection,
    private readonly log: Logger,
    /** one timer for all the hosts' deadlines, instead of a check loop per host */
    readonly scheduler: CycleScheduler,
    /** the fleet's quiet hours, running: every host's cycles pause by this one chart */
    readonly quietHours: QuietHoursRunner,
  ) {}

  static async start(
    settings: RuntimeSettings,
    agents: HostedAgent[],
    behaviourFor: (agent: HostedAgent, deps: RuntimeDeps) => AgentBehaviour,
    options: {
      log: Logger;
      clock?: Clock;
      /** awaited after the streams and buckets exist and before any agent starts: a singleton waits for its lease here */
      beforeHosting?: (deps: RuntimeDeps) => Promise<void>;
      /** how `fleet restart <agent>` restarts this process (exit, and the supervisor starts it again) */
      onRestartRequested?: () => void;
      /** GenAI spans of the agents' work (telemetry on); none without */
      tracer?: Tracer | undefined;
    },
  ): Promise<AgentRuntime> {
    const log = options.log;
    const clock = options.clock ?? systemClock;
    const connect = { servers: settings.servers, ...settings.credentials, name: settings.processName, logger: log };
    const nc = await connectNats(connect);
    const serveNc = await connectServing(connect, nc).catch(async (err: unknown) => {
      await nc.close();
      throw err;
    });
    const scheduler = new CycleScheduler({ timers: { ...nodeTimers, now: () => clock.now() }, log: log.child({ component: "cycle-scheduler" }) });
    const quietHours = new QuietHoursRunner({ window: settings.quietHours, clock, scheduler, log: log.child({ component: "quiet-hours" }) }).start();
    // entering quiet needs no push: each host's cycle gate asks the chart before a cycle and, while quiet, arms its
    // next check at the chart's boundary, which is where held cycles resume
    const runtime = new AgentRuntime(nc, serveNc, log, scheduler, quietHours);
    try {
      const names = new FleetNames(settings.prefix);
      const create = settings.createResources ?? true;
      // on a secured fleet an agent may not read stream info: it proves the fleet is there by reading its own record
      const probe = create || !agents[0] ? undefined : { bucket: "agents" as const, key: agents[0].id };
      const resources = await openFleetResources(nc, names, { maxPayloadBytes: settings.maxPayloadBytes, replicas: settings.replicas ?? 1, create, log, ...(probe ? { probe } : {}) });
      const js = electionSafeJetStream(jetstream(nc));
      const gate = new FleetModelWorkGate({
        quietHours,
        timeZone: settings.quietHours.timeZone,
        urgent: settings.modelWork?.urgent ?? { tiers: [], triggers: [], titles: [] },
        aliases: settings.modelWork?.aliases ?? {},
        clock,
        log: log.child({ component: "model-work-gate" }),
      });
      const deps: RuntimeDeps = { ...resources, nc, js, names, codec: settings.codec, clock, log, gate, tokens: new TaskTokens(), tracer: options.tracer };
      await options.beforeHosting?.(deps);
      for (const agent of agents) {
        const host = new ActorHost({
          nc,
          serveNc,
          js,
          jsm: resources.jsm,
          kv: resources.kv,
          names,
          codec: settings.codec,
          maxPayloadBytes: settings.maxPayloadBytes,
          agent,
          behaviour: behaviourFor(agent, deps),
          tasks: {
            ackWaitMs: settings.tasks.ackWaitSeconds * 1000,
            maxDeliver: settings.tasks.maxDeliver,
            backoffMs: settings.tasks.backoffSeconds.map((s) => s * 1000),
            workingAckMs: settings.tasks.workingAckSeconds * 1000,
          },
          heartbeatMs: settings.heartbeatMs ?? 5_000,
          runId: settings.runId,
          clock,
          log,
          quietHours,
          scheduler,
          onRestartRequested: options.onRestartRequested,
          tokens: deps.tokens,
          tracer: options.tracer,
        });
        await host.start();
        runtime.hosts.push(host);
      }
      return runtime;
    } catch (err) {
      await runtime.stop();
      throw err;
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.hosts.map((h) => h.stop()));
    this.quietHours.stop();
    this.scheduler.stop();
    // a drain needs the server; if it is gone, do not wait for it forever. Serving first: no request arrives after it.
    for (const nc of this.serveNc === this.nc ? [this.nc] : [this.serveNc, this.nc]) {
      if (nc.isClosed()) continue;
      await Promise.race([nc.drain().catch(() => undefined), sleep(5_000)]);
      if (!nc.isClosed()) await nc.close();
    }
    this.log.info({ agents: this.hosts.map((h) => h.agentId) }, "runtime stopped");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
