import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { jetstreamManager } from "@nats-io/jetstream";
import { connectNats } from "../protocol/index.js";
import { localClusterNodes, type ClusterNode } from "../supervisor/index.js";

/**
 * A three-node JetStream cluster on loopback ports for tests and benchmarks: routes between the nodes, a store per node,
 * and the faults a cluster meets: kill -9 of a node, a restart on the same ports and store, a partition (the node's
 * process stopped with SIGSTOP: its peers and its clients see it fall silent, as when its host is cut off) and its
 * healing. The config comes from supervisor/nats-cluster.ts, which `fleet up --cluster 3` uses too.
 */
export class NatsCluster {
  private constructor(
    readonly nodes: ClusterNode[],
    readonly dir: string,
  ) {}

  static async start(options: { size?: number; authFile?: string; maxPayload?: number } = {}): Promise<NatsCluster> {
    const dir = mkdtempSync(join(tmpdir(), "fleet-cluster-"));
    const nodes = await localClusterNodes({ dir, size: options.size ?? 3, ...(options.authFile ? { authFile: options.authFile } : {}), ...(options.maxPayload ? { maxPayload: options.maxPayload } : {}) });
    const cluster = new NatsCluster(nodes, dir);
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

  /** Cuts node `i` off (SIGSTOP), as its host dropping off the network would. */
  partition(i: number): void {
    this.node(i).pause();
  }

  heal(i: number): void {
    this.node(i).resume();
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill("SIGTERM")));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
