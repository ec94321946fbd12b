export {
  AgentConfig,
  CronJob,
  DEFAULT_ALIASES,
  DeploymentConfig,
  PrincipalConfig,
  RoutingConfig,
  FleetConfig,
  FleetSettings,
  Layer,
  MemoryConfig,
  SkillConfig,
  SupervisorConfig,
  TasksConfig,
  TIER_NAMES,
  TierConfig,
  TierName,
  WebhookConfig,
  agentById,
} from "./schema.js";
export {
  ApprovalsConfig,
  BridgesConfig,
  DiscordBridgeConfig,
  GovernanceConfig,
  SentinelConfig,
  TelegramBridgeConfig,
} from "./governance-schema.js";
export {
  Condition,
  Delivery,
  DutyConfig,
  FindingRule,
  Interval,
  ModelStep,
  PipelineConfig,
  PipelineStep,
  ToolStep,
} from "./pipeline-schema.js";
export { closest } from "./strict-object.js";
export { loadFleetConfig, parseFleetConfig, shippedFleetNames, shippedFleetPath, shippedLabelsPath } from "./load.js";
export {
  DAY_MS,
  addDays,
  formatter,
  localParts,
  nextDailyAt,
  parseHhmm,
  zonedTimeToEpoch,
  type LocalDate,
  type LocalParts,
} from "./local-time.js";
export { deferUntil, isQuiet, nextBoundary, validateWindow, type Boundary, type DailyWindow } from "./quiet-window.js";
export { fleetDay, nextMidnight } from "./fleet-day.js";
