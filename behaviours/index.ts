export { atlasBehaviour, STATUS_REPORT_TASK, type AgentStatusLine } from "./atlas-behaviour.js";
export { composeBehaviour } from "./compose.js";
export { governedStepTools, type GovernedStepToolsOptions } from "./governed-step-tools.js";
export { offlineBehaviour } from "./offline-behaviour.js";
export { behaviourFor } from "./role-behaviour.js";
export { DEFAULT_MAX_TOOL_ROUNDS, routedModelStep, type RoutedStepOptions } from "./routed-model-step.js";
export type { BehaviourStage, Next, StageMethod } from "./stage.js";
export { toolTaskOf, toolTaskStage, ToolTaskRequest } from "./tool-task-stage.js";
