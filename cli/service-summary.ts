import type { MicroStats } from "../protocol/index.js";

/**
 * The fleet's request/reply services as NATS micro discovery reports them (the same answers `nats micro list` and
 * `nats micro stats <name>` show): one line per service kind with its instances, requests, errors and average time.
 */
export function serviceSummary(found: readonly MicroStats[]): string[] {
  const byName = new Map<string, MicroStats[]>();
  for (const s of found) byName.set(s.name, [...(byName.get(s.name) ?? []), s]);
  const lines: string[] = [];
  for (const [name, instances] of [...byName].sort(([a], [b]) => a.localeCompare(b))) {
    const endpoints = instances.flatMap((i) => i.endpoints ?? []);
    const requests = endpoints.reduce((n, e) => n + e.num_requests, 0);
    const errors = endpoints.reduce((n, e) => n + e.num_errors, 0);
    const totalNs = endpoints.reduce((n, e) => n + e.average_processing_time * e.num_requests, 0);
    const avgMs = requests === 0 ? 0 : totalNs / requests / 1e6;
    const where = [...new Set(instances.map((i) => (i.metadata?.host ? `${i.metadata.host}:${i.metadata.pid ?? "?"}` : undefined)).filter((h) => h !== undefined))];
    lines.push(`  ${name.padEnd(20)} ${String(instances.length).padStart(3)} instance(s)  ${requests} requests  ${errors} errors  avg ${avgMs.toFixed(1)} ms${where.length ? `  on ${where.join(" ")}` : ""}`);
  }
  return lines.length === 0 ? [] : ["services (NATS micro; nats micro list):", ...lines];
}
