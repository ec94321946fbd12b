import { z } from "zod";

/** Where an agent stands in the fleet: the one orchestrator, the agents that do the work, and governance. */
export const Layer = z.enum(["orchestration", "execution", "governance"]);
export type Layer = z.infer<typeof Layer>;
