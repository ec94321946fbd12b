/** A stable offset within one cycle, from the agent's id: agents on the same cycle wake at different moments. */
export function staggerOf(agentId: string, cycleMs: number): number {
  let hash = 2166136261; // FNV-1a
  for (let i = 0; i < agentId.length; i++) hash = Math.imul(hash ^ agentId.charCodeAt(i), 16777619) >>> 0;
  return hash % Math.max(1, Math.floor(cycleMs));
}

/** The first instant after `now` on the agent's phase of the epoch's grid of cycles: k·cycleMs + stagger, within one cycle. */
export function firstCycleAfter(now: number, cycleMs: number, stagger: number): number {
  if (!(cycleMs > 0)) return now + stagger;
  const wait = (((stagger - now) % cycleMs) + cycleMs) % cycleMs;
  return now + (wait === 0 ? cycleMs : wait);
}
