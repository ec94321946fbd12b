export {
  AgentConfig,
  CronJob,
  DeploymentConfig,
  PrincipalConfig,
  RoutingConfig,
  FleetConfig,
  FleetSettings,
  Layer,
  SkillConfig,
  SupervisorConfig,
  TasksConfig,
  TIER_NAMES,
  TierConfig,
  TierName,
  WebhookConfig,
  agentById,
} from "./schema.js";
export { loadFleetConfig, parseFleetConfig, shippedFleetNames, shippedFleetPath } from "./load.js";
