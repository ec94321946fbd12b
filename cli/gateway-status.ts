import { GATEWAY_SERVICE } from "../bridges/index.js";
import type { FleetConfig } from "../config/index.js";
import type { MicroStats } from "../protocol/index.js";

/**
 * `fleet status`'s lines on the A2A gateway, from NATS micro discovery like the services above them: each running
 * gateway (it answers discovery while it listens) with its URL, its fleet card and the peers and tokens it serves; when
 * none answers, whether the config asks for one (so "not running" is said only where one is expected).
 */
export function gatewayLines(found: readonly MicroStats[], config: Pick<FleetConfig, "gateway"> | undefined): string[] {
  const gateways = found.filter((s) => s.name === GATEWAY_SERVICE);
  if (gateways.length === 0) {
    const configured = config?.gateway;
    if (!configured) return [];
    return [`gateway: not running (${configured.enabled ? "fleet up starts it once every gateway.peers[].tokenEnv is set; or: fleet run gateway" : "gateway.enabled is false: fleet run gateway starts it"})`];
  }
  return gateways.map((g) => {
    const m = g.metadata ?? {};
    const peers = (m["peers"] ?? "").split(",").filter((p) => p !== "");
    const where = m["host"] ? ` on ${m["host"]}:${m["pid"] ?? "?"}` : "";
    return `gateway: running at ${m["url"] ?? "?"} (card ${m["card"] ?? "?"}), ${peers.length} peer(s)${peers.length > 0 ? ` (${peers.join(", ")})` : ""}, ${m["tokens"] ?? "?"} token(s)${where}`;
  });
}
