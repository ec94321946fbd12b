import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { jetstreamManager } from "@nats-io/jetstream";
import { connectNats } from "../protocol/index.js";
import { localClusterNodes, type ChildSpec, type ClusterNode } from "../supervisor/index.js";
import { NetHosts } from "./net-hosts.js";

/**
 * A three-node JetStream cluster for tests and benchmarks: routes between the nodes, a store per node, and the faults a
 * cluster meets: kill -9 of a node, a restart on the same ports and store, a partition and its healing. With `netns`
 * (and a machine that allows it) each node runs on a host of its own, a network namespace (harness/net-hosts.ts), and a
 * partition takes the host's cable out; otherwise the nodes share loopback and a partition stops the node's process
 * (SIGSTOP: its peers and clients see it fall silent, but it cannot notice it is cut off). The config comes from
 * supervisor/nats-cluster.ts, which `fleet up --cluster 3` uses too.
 */
export class NatsCluster {
  private constructor(
    readonly nodes: ClusterNode[],
    readonly dir: string,
    /** the hosts the nodes run on; undefined: all on loopback */
    readonly hosts: NetHosts | undefined,
  ) {}

  static async start(options: { size?: number; authFile?: string; maxPayload?: number; netns?: boolean } = {}): Promise<NatsCluster> {
    const dir = mkdtempSync(join(tmpdir(), "fleet-cluster-"));
    const size = options.size ?? 3;
    const hosts = options.netns && NetHosts.available() ? NetHosts.create(size) : undefined;
    const nodes = await localClusterNodes({
      dir,
      size,
      ...(options.authFile ? { authFile: options.authFile } : {}),
      ...(options.maxPayload ? { maxPayload: options.maxPayload } : {}),
      ...(hosts ? { hosts: { address: (i: number) => hosts.address(i), launcher: (i: number) => (command: string, args: string[]) => hosts.command(i, command, args) } } : {}),
    }).catch((err: unknown) => {
      hosts?.remove();
      throw err;
    });
    const cluster = new NatsCluster(nodes, dir, hosts);
    try {
      await Promise.all(nodes.map((n) => n.start()));
      await cluster.waitReady();
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** Every node's URL: a client given all of them fails over to the next. */
  get urls(): string[] {
    return this.nodes.map((n) => n.url);
  }

  node(i: number): ClusterNode {
    const node = this.nodes[i];
    if (!node) throw new Error(`no node ${i}`);
    return node;
  }

  indexOf(serverName: string): number {
    return this.nodes.findIndex((n) => n.spec.name === serverName);
  }

  /**
   * Resolves once JetStream answers with a meta leader (an account info request succeeds through every running node),
   * so streams can be created. `nkeySeedFile`: on a secured cluster, an identity allowed to ask.
   */
  async waitReady(options: { timeoutMs?: number; nkeySeedFile?: string } = {}): Promise<void> {
    const deadline = Date.now() + (options.timeoutMs ?? 30_000);
    for (const node of this.nodes.filter((n) => n.running)) {
      for (;;) {
        try {
          const nc = await connectNats({ servers: node.url, name: "cluster-ready", longLived: false, ...(options.nkeySeedFile ? { nkeySeedFile: options.nkeySeedFile } : {}) });
          try {
            const jsm = await jetstreamManager(nc, { timeout: 2_000 });
            await jsm.getAccountInfo();
            break;
          } finally {
            await nc.close();
          }
        } catch (err) {
          if (Date.now() > deadline) throw new Error(`cluster node ${node.spec.name} has no JetStream leader: ${String(err)}`);
          await sleep(200);
        }
      }
    }
  }

  async kill(i: number): Promise<void> {
    await this.node(i).kill("SIGKILL");
  }

  async restart(i: number): Promise<void> {
    await this.node(i).restart();
  }

  /** Where a process "on node i's host" reaches the test's own servers (a scripted provider): loopback without hosts. */
  get testAddress(): string {
    return this.hosts?.rootAddress ?? "127.0.0.1";
  }

  /** A process spec run on node `i`'s host (as is on loopback). */
  onHost(i: number, spec: ChildSpec): ChildSpec {
    if (!this.hosts) return spec;
    const { command, args } = this.hosts.command(i, spec.command, spec.args);
    return { ...spec, command, args };
  }

  /** Cuts node `i`'s host off the network (its processes with it); on loopback, stops the node's process. */
  partition(i: number): void {
    if (this.hosts) this.hosts.cut(i);
    else this.node(i).pause();
  }

  heal(i: number): void {
    if (this.hosts) this.hosts.heal(i);
    else this.node(i).resume();
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill("SIGTERM")));
    this.hosts?.remove();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
