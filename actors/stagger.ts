/** A stable offset within one cycle, from the agent's id: agents on the same cycle wake at different moments. */
export function staggerOf(agentId: string, cycleMs: number): number {
  let hash = 2166136261; // FNV-1a
  for (let i = 0; i < agentId.length; i++) hash = Math.imul(hash ^ agentId.charCodeAt(i), 16777619) >>> 0;
  return hash % Math.max(1, Math.floor(cycleMs));
}
