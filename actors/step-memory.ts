import type { ChatMessage, SessionLogEntry } from "../protocol/index.js";
import type { HostedAgent } from "./behaviour.js";

/**
 * The memory an agent's step reads and writes; without it a step sees only its role, its skill and the task. A port:
 * actors know nothing of memory, behaviours/ fills it from memory/'s tiers and session log.
 */
export interface StepMemory {
  /** the step's messages: role, the skills the task matches, the memory tiers within their budgets, then the task */
  prompt(agent: HostedAgent, task: string): Promise<ChatMessage[]>;
  /** what happened, for the session log that tomorrow's prompts and tonight's distillation read */
  record(entry: { agentId: string; kind: SessionLogEntry["kind"]; text: string; taskId?: string | undefined }): Promise<void>;
}
