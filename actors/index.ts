export { agentMachine, type ActInput, type AgentContext, type AgentEvent, type AgentInput, type AgentMachine, type Outcome, type Plan, type PlanInput, type ReportInput, type WorkItem } from "./agent-machine.js";
export { ActorHost, type ActorHostOptions, type Clock } from "./actor-host.js";
export { AgentRuntime, type RuntimeDeps, type RuntimeSettings } from "./agent-runtime.js";
export { matchSkill, type AgentBehaviour, type EffectContext, type HostedAgent } from "./behaviour.js";
export { offlineBehaviour, textOf } from "./offline-behaviour.js";
export { submitTask, taskIdFor, type SubmitDeps } from "./submit-task.js";
export { TaskStore } from "./task-store.js";
