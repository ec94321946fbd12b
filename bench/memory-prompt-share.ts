import { resolve } from "node:path";
import { loadFleetConfig } from "../config/index.js";
import { assembleContext, loadKnowledge, searchKnowledge, SkillFiles, type MemorySources } from "../memory/index.js";

/**
 * How much of an agent's prompt memory takes, for the reference fleet (config/fleets/dcode-ops.yaml), when every tier
 * is full: MEMORY.md at its 100-line cap, a busy day's and yesterday's session log (60 entries each), five semantic hits
 * and the reference knowledge shipped in config/knowledge. Baseline: the same memory loaded whole (no tier budgets), the
 * "one ever-growing thread" the budgets exist to prevent. Prints one line per agent, then JSON lines; the last is the
 * fleet's mean share.
 */

const config = loadFleetConfig(resolve("config/fleets/dcode-ops.yaml"));
const knowledge = await loadKnowledge(resolve("config/knowledge"));
const line = (i: number) => `Fact ${i}: the Acme site's checkout page answers in 420 ms at p95 since the March CDN change; watch it.`;

function fullSources(agentId: string): MemorySources {
  return {
    agentMemory: async () => Array.from({ length: config.memory.maxAgentLines }, (_, i) => line(i)),
    sessionLog: async () =>
      Array.from({ length: 120 }, (_, i) => ({
        agentId, day: i < 60 ? "2026-11-22" : "2026-11-23", at: 1_700_000_000_000 + i * 60_000, kind: "task" as const,
        text: `Checked the pricing page of competitor ${i % 7} → prices unchanged, one new plan at $49/month, noted for the weekly report.`,
      })),
    semantic: async (_agent, _query, limit) =>
      Array.from({ length: limit }, (_, i) => ({
        id: `m${i}`, score: 0.9 - i * 0.05,
        payload: { agentId, kind: "insight" as const, text: `Insight ${i}: competitor pricing moves follow their quarterly releases by about two weeks.`, updatedAt: 0 },
      })),
    reference: async (query, limit) => searchKnowledge(knowledge, query, limit),
  };
}

const unbounded = { agent: 1e9, session: 1e9, semantic: 1e9, reference: 1e9, skills: 1e9 };
const MEMORY_SECTIONS = new Set(["agent", "session", "semantic", "reference"]);
const shares: number[] = [];
const totals: number[] = [];
const wholes: number[] = [];
for (const agent of config.agents) {
  const task = agent.skills[0]?.examples?.[0] ?? `${agent.skills[0]?.name ?? "work"}: ${agent.skills[0]?.tags.join(", ") ?? ""}`;
  const input = { agent, task, semanticTopK: config.memory.semanticTopK };
  const skills = new SkillFiles({ dir: undefined });
  const bounded = await assembleContext({ ...input, budgets: config.memory.budgets }, fullSources(agent.id), skills);
  const whole = await assembleContext({ ...input, budgets: unbounded, semanticTopK: 50 }, fullSources(agent.id), skills);
  const memoryTokens = bounded.sections.filter((s) => MEMORY_SECTIONS.has(s.name)).reduce((n, s) => n + s.tokens, 0);
  const share = memoryTokens / bounded.totalTokens;
  shares.push(share);
  totals.push(bounded.totalTokens);
  wholes.push(whole.totalTokens);
  console.log(
    `${agent.id.padEnd(9)} prompt ${String(bounded.totalTokens).padStart(5)} tokens, memory ${String(memoryTokens).padStart(5)} (${(share * 100).toFixed(1)} %); ` +
      `everything loaded whole: ${whole.totalTokens} tokens`,
  );
}
const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const mean = avg(shares);
const [prompt, loadedWhole] = [Math.round(avg(totals)), Math.round(avg(wholes))];
console.log(JSON.stringify({ bench: "memory", metric: "prompt_tokens_full_memory", value: prompt, baseline: loadedWhole, ratio: Math.round((prompt / loadedWhole) * 1000) / 1000, unit: "tokens" }));
console.log(JSON.stringify({ bench: "memory", metric: "prompt_memory_share", value: Math.round(mean * 1000) / 10, baseline: null, ratio: null, unit: "%" }));
