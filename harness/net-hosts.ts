import { execFileSync, spawnSync } from "node:child_process";

/**
 * Several "hosts" on one machine for the cluster tests: each a Linux network namespace with its own address, joined to
 * the others (and to the test itself, in the root namespace) by a veth pair on a bridge. A process started on a host
 * (`command()`) sees only that host's network; cutting a host (`cut()`) takes its cable out: its server and its
 * processes stay alive and keep trying, but nothing reaches the rest of the cluster, which is what a partition is (a
 * stopped process, the fallback without namespaces, cannot notice that it is cut off and act on it).
 *
 * Needs root and iproute2 (`ip`); `available()` says whether this machine allows it, and the tests fall back to
 * loopback ports otherwise. Every name carries this process's pid, so runs side by side do not meet, and a run that
 * died leaves names `sweepStale()` recognises and removes.
 */
export class NetHosts {
  private constructor(
    readonly tag: string,
    readonly subnet: string,
    readonly count: number,
  ) {}

  /** Whether namespaces can be made here: root, `ip` on the PATH, and the kernel lets us add one. */
  static available(): boolean {
    if (process.env.FLEET_TEST_NETNS === "0") return false;
    if (process.getuid?.() !== 0) return false;
    const probe = `nfprobe${process.pid}`;
    const added = spawnSync("ip", ["netns", "add", probe], { stdio: "ignore" });
    if (added.error || added.status !== 0) return false;
    spawnSync("ip", ["netns", "del", probe], { stdio: "ignore" });
    return true;
  }

  /** `count` hosts at 10.213.<n>.11, .12, …; the root namespace (the test) is .1 on the bridge. */
  static create(count: number): NetHosts {
    NetHosts.sweepStale();
    const tag = `nf${process.pid}`;
    const subnet = freeSubnet();
    const hosts = new NetHosts(tag, subnet, count);
    try {
      ip("link", "add", hosts.bridge, "type", "bridge");
      ip("addr", "add", `${subnet}.1/24`, "dev", hosts.bridge);
      ip("link", "set", hosts.bridge, "up");
      for (let i = 0; i < count; i++) {
        const ns = hosts.namespace(i);
        ip("netns", "add", ns);
        // the host's end of the cable is eth0 inside its namespace; ours is named after the host, on the bridge
        ip("link", "add", hosts.cable(i), "type", "veth", "peer", "name", "eth0", "netns", ns);
        ip("link", "set", hosts.cable(i), "master", hosts.bridge, "up");
        ip("-n", ns, "addr", "add", `${hosts.address(i)}/24`, "dev", "eth0");
        ip("-n", ns, "link", "set", "eth0", "up");
        ip("-n", ns, "link", "set", "lo", "up");
      }
    } catch (err) {
      hosts.remove();
      throw err;
    }
    return hosts;
  }

  /** Removes what a run that died left behind (its pid no longer alive). */
  static sweepStale(): void {
    const names = spawnSync("ip", ["-o", "link", "show", "type", "bridge"], { encoding: "utf8" }).stdout ?? "";
    for (const match of names.matchAll(/^\d+: (nf(\d+)b):/gm)) {
      const pid = Number(match[2]);
      if (pid === process.pid || alive(pid)) continue;
      new NetHosts(`nf${pid}`, "", 0).removeByName();
    }
  }

  get bridge(): string {
    return `${this.tag}b`;
  }

  namespace(i: number): string {
    return `${this.tag}h${i + 1}`;
  }

  /** our end of host i's cable, on the bridge: named as its namespace (links and namespaces do not share names) */
  private cable(i: number): string {
    return this.namespace(i);
  }

  address(i: number): string {
    return `${this.subnet}.${11 + i}`;
  }

  /** The test's own address on the hosts' network (a server a host's processes must reach listens here). */
  get rootAddress(): string {
    return `${this.subnet}.1`;
  }

  /** `command args…` run on host `i` (ip netns exec replaces itself with the command: the pid is the command's). */
  command(i: number, command: string, args: string[]): { command: string; args: string[] } {
    return { command: "ip", args: ["netns", "exec", this.namespace(i), command, ...args] };
  }

  /** Takes host `i`'s cable out: its packets go nowhere, connections to and from it fall silent. */
  cut(i: number): void {
    ip("link", "set", this.cable(i), "down");
  }

  heal(i: number): void {
    ip("link", "set", this.cable(i), "up");
  }

  /** Deletes the namespaces (their processes must be stopped first) and the bridge. */
  remove(): void {
    for (let i = 0; i < this.count; i++) spawnSync("ip", ["netns", "del", this.namespace(i)], { stdio: "ignore" });
    this.removeByName();
  }

  private removeByName(): void {
    const namespaces = spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout ?? "";
    for (const line of namespaces.split("\n")) {
      const ns = line.split(" ")[0];
      if (ns && new RegExp(`^${this.tag}h\\d+$`).test(ns)) spawnSync("ip", ["netns", "del", ns], { stdio: "ignore" });
    }
    spawnSync("ip", ["link", "del", this.bridge], { stdio: "ignore" });
  }
}

/** A /24 under 10.213/16 no interface here uses yet, starting from one picked by the pid (runs side by side differ). */
function freeSubnet(): string {
  const used = spawnSync("ip", ["-o", "-4", "addr", "show"], { encoding: "utf8" }).stdout ?? "";
  for (let k = 0; k < 250; k++) {
    const subnet = `10.213.${(process.pid + k) % 250}`;
    if (!used.includes(` ${subnet}.`)) return subnet;
  }
  throw new Error("no free 10.213.x.0/24 for test hosts: remove stale nf*b bridges (ip link del …)");
}

function ip(...args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
