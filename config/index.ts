export {
  AgentConfig,
  BusinessConfig,
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
  UrgentPolicy,
  WebhookConfig,
  agentById,
} from "./schema.js";
export { DashboardConfig } from "./dashboard-schema.js";
export { OtlpConfig, TelemetryConfig } from "./telemetry-schema.js";
export { GatewayConfig, GatewayPeer, GatewayRateLimit } from "./gateway-schema.js";
export {
  ApprovalsConfig,
  BrandPolicy,
  BrandSafetyConfig,
  BridgesConfig,
  DiscordBridgeConfig,
  EmailBridgeConfig,
  GovernanceConfig,
  SentinelConfig,
  TelegramBridgeConfig,
  mailboxAddress,
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
  TOOL_CHECKS,
  ToolStep,
} from "./pipeline-schema.js";
export { PATH_ROOTS, RULE_PATH_ROOTS, pathProblem, placeholdersOf, replacePlaceholders, splitPath, wholePlaceholder } from "./pipeline-paths.js";
export { EventRoute, EventsConfig, PlanningConfig } from "./planning-schema.js";
export { closest } from "./strict-object.js";
export { MCP_SERVER_NAME, McpServerConfig, McpServerName, McpServersConfig } from "./mcp-schema.js";
export { PEER_ASSIGNEE_PREFIX, PeerConfig, PeerName, PeerSkillConfig, PeerSkillName, PeersConfig, peerSkillRisk, peerSkillTimeoutSeconds, PEER_MAX_TIMEOUT_SECONDS } from "./peers-schema.js";
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
export {
  CronExpression,
  WEEKDAYS,
  cronExpressionProblem,
  describeSchedule,
  formatInterval,
  latestDue,
  nextDue,
  runsPerDay,
  scheduleOf,
  type Schedule,
  type Weekday,
} from "./schedule.js";
export { AlertsConfig, RateLimit, ReportsConfig, SweeperConfig, WeeklyReportConfig } from "./reports-schema.js";
