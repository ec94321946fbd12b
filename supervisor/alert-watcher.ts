import type { JetStreamClient } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { Logger } from "pino";
import { fleetDay, localParts, zonedTimeToEpoch, type AlertsConfig, type FleetConfig } from "../config/index.js";
import { AgentRecord, decode, readStream, type Clock, type CodecName, type FleetNames } from "../protocol/index.js";
import { dedupUsage, deploymentPools, readUsage, WaitingCall } from "../router/index.js";
import { evaluateAlerts, type Alert, type AlertInput } from "./alert-rules.js";
import { claimOnce, publishNotice } from "./notice.js";

export interface AlertWatcherOptions {
  js: JetStreamClient;
  kv: { schedules: KV; agents: KV; budgets: KV };
  names: FleetNames;
  codec: CodecName;
  config: Pick<FleetConfig, "fleet" | "agents" | "tiers">;
  alerts: AlertsConfig;
  clock: Clock;
  log: Logger;
}

/**
 * The alert watcher, in the scheduler process: looks at the fleet's records every `everySeconds` and sends each alert
 * that holds, once (its key claimed in KV `schedules`), as an OUTBOX notice to `alerts.delivery`. The channel's OUTBOX
 * dispatcher does the rest: a principal in their quiet hours gets it at the window's end, never not at all.
 */
export class AlertWatcher {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private readonly log: Logger;

  constructor(private readonly options: AlertWatcherOptions) {
    this.log = options.log.child({ component: "alerts" });
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.options.alerts.everySeconds * 1_000);
    void this.tick();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.stop();
  }

  /** One look: returns the alerts sent by this tick (not those sent before). */
  async tick(): Promise<Alert[]> {
    if (this.busy) return [];
    this.busy = true;
    try {
      const input = await this.gather();
      const sent: Alert[] = [];
      for (const alert of evaluateAlerts(input, this.options.alerts)) {
        if (!(await claimOnce(this.options.kv.schedules, alert.key, input.now))) continue;
        if (this.options.alerts.delivery !== "none") {
          await publishNotice(this.options.js, this.options.names, this.options.codec, this.options.alerts.delivery, { text: alert.text, jobId: "alerts", msgId: alert.key, at: input.now });
        }
        this.log.warn({ key: alert.key }, alert.text);
        sent.push(alert);
      }
      return sent;
    } catch (err) {
      this.log.error({ err }, "alert watcher could not look");
      return [];
    } finally {
      this.busy = false;
    }
  }

  private async gather(): Promise<AlertInput> {
    const { js, names, config, alerts } = this.options;
    const now = this.options.clock.now();
    const timeZone = config.fleet.timeZone;
    const day = fleetDay(now, timeZone);
    const midnight = zonedTimeToEpoch(localParts(now, timeZone), "00:00", timeZone);
    const usage = dedupUsage((await readUsage(js, names, midnight, now + 1)).records);
    const agents: Record<string, number> = {};
    let fleet = 0;
    for (const r of usage) {
      if (r.simulated) continue;
      fleet += r.costUsd;
      agents[r.agentId] = (agents[r.agentId] ?? 0) + r.costUsd;
    }
    const breakers: AlertInput["breakers"] = [];
    for await (const key of await this.options.kv.agents.keys()) {
      const entry = await this.options.kv.agents.get(key);
      if (!entry || entry.operation !== "PUT") continue;
      const record = decode(AgentRecord, entry.value);
      if (record.ok && record.value.breaker) breakers.push({ agentId: key, state: record.value.breaker.state, openUntil: record.value.breaker.openUntil });
    }
    let newDeadLetters = 0;
    for await (const _ of readStream(js, names.stream("DLQ"), { fromTime: now - alerts.dlqWindowMinutes * 60_000 })) newDeadLetters++;
    const waiting: AlertInput["waiting"] = [];
    for await (const key of await this.options.kv.budgets.keys("waiting.>")) {
      const entry = await this.options.kv.budgets.get(key);
      const call = entry && entry.operation === "PUT" ? decode(WaitingCall, entry.value, { codec: "msgpack" }) : undefined;
      if (call?.ok) waiting.push({ callId: call.value.callId, agentId: call.value.agentId, since: call.value.since });
    }
    return {
      now, day,
      spend: { fleet, agents },
      caps: { fleet: config.fleet.dailyCapUsd, agents: Object.fromEntries(config.agents.map((a) => [a.id, a.dailyCapUsd])) },
      breakers, newDeadLetters, waiting,
      recentUsage: usage.filter((r) => r.at >= now - 5 * 60_000),
      pools: deploymentPools(config.tiers),
    };
  }
}
