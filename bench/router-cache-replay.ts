import type { NatsConnection } from "@nats-io/nats-core";
import { ensureFleetResources, FleetNames, type ChatMessage } from "../protocol/index.js";
import { localEmbedding, SemanticCache } from "../router/index.js";
import { figure, say, type Result } from "./report.js";

/**
 * A week of a fleet's repeated pure steps replayed through the semantic cache (a real KV bucket, a simulated clock):
 * every 15 minutes each of the five sites' duties runs three JSON-in, JSON-out steps whose inputs repeat with the
 * world (a TLS check whose days-left changes once a day, an uptime verdict that is mostly "200" and sometimes "503",
 * an SEO check whose page title changes twice in the week). The stored answer is the input it answered, so a hit on
 * another input, a false hit, is seen at once. Settings are the router's defaults (similarity 0.97, 24 h TTL).
 */

const SITES = ["dcode.io", "plume.dev", "shop.example", "docs.dcode.io", "mira.dev"];
const RUNS_PER_DAY = 96;
const DAYS = 7;
const SCHEMA = { name: "verdict", schema: { type: "object" } };

function inputs(day: number, run: number, site: string, s: number): Array<{ kind: string; input: string }> {
  const down = (day * RUNS_PER_DAY + run + s * 7) % 41 === 0;
  const title = day < 3 ? `${site}: fast, reliable hosting` : day < 5 ? `${site}: hosting that stays up` : `${site} | uptime you can trust`;
  return [
    { kind: "tls-check", input: JSON.stringify({ site, check: "tls", daysLeft: 60 - day - s }) },
    { kind: "uptime", input: JSON.stringify({ site, status: down ? 503 : 200 }) },
    { kind: "seo-title", input: JSON.stringify({ site, page: "/", title }) },
  ];
}

export async function cacheReplaySection(nc: NatsConnection): Promise<Result[]> {
  const names = new FleetNames("benchcache");
  const { kv } = await ensureFleetResources(nc, names, { maxPayloadBytes: 1024 * 1024 });
  let now = Date.UTC(2026, 10, 23, 0, 0);
  const cache = new SemanticCache({ kv: kv.cache, similarity: 0.97, ttlMs: 24 * 3_600_000, embed: async (t) => localEmbedding(t), clock: { now: () => now } });
  let lookups = 0;
  let hits = 0;
  let falseHits = 0;
  const distinct = new Set<string>();
  for (let day = 0; day < DAYS; day++) {
    for (let run = 0; run < RUNS_PER_DAY; run++) {
      now += 15 * 60_000;
      for (const [s, site] of SITES.entries()) {
        for (const { kind, input } of inputs(day, run, site, s)) {
          const messages: ChatMessage[] = [{ role: "system", content: `You check ${kind} results and answer in JSON.` }, { role: "user", content: input }];
          const request = { messages, responseSchema: SCHEMA };
          const scope = { agentId: "ship", kind };
          lookups++;
          distinct.add(`${kind}|${input}`);
          const hit = await cache.lookup(scope, request);
          if (hit) {
            hits++;
            if (hit.answer.text !== input) falseHits++;
          } else {
            await cache.store(scope, request, { text: input, usage: { inputTokens: 60, outputTokens: 10, cachedTokens: 0 }, model: "m", servedTier: "nano" });
          }
        }
      }
    }
  }
  // the best any exact cache could do: every lookup but the first of each distinct input (within the TTL) is a repeat
  const ideal = lookups - distinct.size;
  say(`Semantic cache replay: ${DAYS} days × ${RUNS_PER_DAY} runs × ${SITES.length} sites × 3 pure steps = ${lookups} lookups, ${distinct.size} distinct inputs`);
  say(`  hits ${hits} (${((100 * hits) / lookups).toFixed(1)} %), false hits ${falseHits}; an exact cache with no TTL would hit ${ideal} (${((100 * ideal) / lookups).toFixed(1)} %)`);
  return [figure("router", "cache_replay_hit_rate", hits / lookups, ideal / lookups, "share", 3), figure("router", "cache_replay_false_hits", falseHits, 0, "hits", 0, 0)];
}
