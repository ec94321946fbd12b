import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { randomUUID } from "node:crypto";
import {
  AgentRecord,
  connectNats,
  decode,
  ensureFleetResources,
  FleetNames,
  isAlive,
  requestOperation,
  TaskEvent,
  type FleetResources,
  type Task,
} from "../../protocol/index.js";
import { waitFor } from "./wait.js";

/** A test's view of a fleet: the same wire the CLI uses, plus a record of every event agents publish. */
export class FleetClient {
  readonly events: TaskEvent[] = [];
  private constructor(
    readonly nc: NatsConnection,
    readonly names: FleetNames,
    readonly resources: FleetResources,
  ) {}

  /** `options.nkeySeedFile`: on a secured server, the operator's seed */
  /** `options.replicas`: on a cluster, the fleet's `fleet.replicas` (the client creates the streams as its processes do) */
  static async connect(url: string | string[], prefix = "fleet", options: { nkeySeedFile?: string; replicas?: number } = {}): Promise<FleetClient> {
    const { replicas, ...credentials } = options;
    const nc = await connectNats({ servers: url, name: "test-client", ...credentials });
    const names = new FleetNames(prefix);
    const resources = await ensureFleetResources(nc, names, { replicas: replicas ?? 1 });
    const client = new FleetClient(nc, names, resources);
    nc.subscribe(`${prefix}.agent.*.events`, {
      callback: (err, msg) => {
        if (err) return;
        const d = decode(TaskEvent, msg.data);
        if (d.ok) client.events.push(d.value);
      },
    });
    await nc.flush();
    return client;
  }

  get js() {
    return jetstream(this.nc);
  }

  send(agentId: string, text: string): Promise<Task> {
    return requestOperation(this.nc, this.names, agentId, "SendMessage", { message: { messageId: randomUUID(), role: "ROLE_USER", parts: [{ text }] } });
  }

  getTask(agentId: string, id: string): Promise<Task> {
    return requestOperation(this.nc, this.names, agentId, "GetTask", { id });
  }

  async record(agentId: string): Promise<AgentRecord | undefined> {
    const entry = await this.resources.kv.agents.get(agentId);
    if (!entry || entry.operation !== "PUT") return undefined;
    const d = decode(AgentRecord, entry.value);
    return d.ok ? d.value : undefined;
  }

  async waitAlive(agentIds: string[], timeoutMs = 20_000): Promise<void> {
    for (const id of agentIds) {
      await waitFor(`${id} to report alive`, async () => {
        const r = await this.record(id);
        return r && r.state !== "stopped" && isAlive(r, Date.now()) && r.pid > 0;
      }, timeoutMs);
    }
  }

  async waitState(agentId: string, taskId: string, state: Task["status"]["state"], timeoutMs = 20_000): Promise<Task> {
    return waitFor(`${agentId} task ${taskId} to be ${state}`, async () => {
      const t = await this.getTask(agentId, taskId);
      return t.status.state === state ? t : undefined;
    }, timeoutMs);
  }

  finalEvents(taskId: string): TaskEvent[] {
    return this.events.filter((e) => e.taskId === taskId && e.kind === "status-update" && e.final);
  }

  async close(): Promise<void> {
    await this.nc.close();
  }
}
