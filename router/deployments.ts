import type { AgentConfig, FleetConfig, TierName } from "../config/index.js";
import { TIER_NAMES } from "../config/index.js";
import { lazyOpenAIProvider } from "./lazy-provider.js";
import type { ModelProvider } from "./provider.js";
import { simulatedProvider } from "./simulated-provider.js";

/**
 * The endpoints behind each tier, built once from config. A tier with `deployments` has those; a tier with a `baseUrl`
 * has one deployment named after the tier; a tier with neither runs on the simulated provider, which calls no model and
 * says so in every answer and USAGE record.
 */
export interface Deployment {
  id: string;
  tier: TierName;
  model: string;
  apiKeyEnv: string | undefined;
  /** its share of the tier's calls in a weighted pool */
  weight: number;
  provider: ModelProvider;
}

export type DeploymentTable = Record<TierName, Deployment[]>;

export function buildDeployments(tiers: FleetConfig["tiers"]): DeploymentTable {
  const table = {} as DeploymentTable;
  for (const tier of TIER_NAMES) {
    const config = tiers[tier];
    if (config.deployments) {
      table[tier] = config.deployments.map((d) => ({
        id: d.id,
        tier,
        model: d.model ?? config.model,
        apiKeyEnv: d.apiKeyEnv ?? config.apiKeyEnv,
        weight: d.weight,
        provider: lazyOpenAIProvider({ deploymentId: d.id, baseUrl: d.baseUrl }),
      }));
    } else if (config.baseUrl) {
      table[tier] = [{ id: tier, tier, model: config.model, apiKeyEnv: config.apiKeyEnv, weight: 1, provider: lazyOpenAIProvider({ deploymentId: tier, baseUrl: config.baseUrl }) }];
    } else {
      table[tier] = [{ id: `simulated-${tier}`, tier, model: config.model, apiKeyEnv: undefined, weight: 1, provider: simulatedProvider(`simulated-${tier}`) }];
    }
  }
  return table;
}

/** Each tier's deployment pool: the deployment ids buildDeployments gives it, and its configured rate limits. */
export function deploymentPools(tiers: FleetConfig["tiers"]): { tier: TierName; deployments: string[]; rateLimit: FleetConfig["tiers"][TierName]["rateLimit"] }[] {
  return TIER_NAMES.map((tier) => {
    const config = tiers[tier];
    const deployments = config.deployments ? config.deployments.map((d) => d.id) : config.baseUrl ? [tier] : [`simulated-${tier}`];
    return { tier, deployments, rateLimit: config.rateLimit };
  });
}

/**
 * The key a call carries: the agent's own key for the tier when it has one (so the provider's dashboard attributes the
 * spend and the failures to that agent), else the deployment's key. `env` is the environment read once at start.
 */
export function apiKeyFor(
  deployment: Deployment,
  agent: Pick<AgentConfig, "apiKeys"> | undefined,
  env: Readonly<Record<string, string | undefined>>,
): string | undefined {
  const name = agent?.apiKeys?.[deployment.tier] ?? deployment.apiKeyEnv;
  return name === undefined ? undefined : env[name];
}

/** Key variables config names that the environment does not set: reported at start instead of failing every call. */
export function missingKeys(config: Pick<FleetConfig, "tiers" | "agents">, env: Readonly<Record<string, string | undefined>>): string[] {
  const names = new Set<string>();
  for (const tier of TIER_NAMES) {
    const t = config.tiers[tier];
    if (t.apiKeyEnv) names.add(t.apiKeyEnv);
    for (const d of t.deployments ?? []) if (d.apiKeyEnv) names.add(d.apiKeyEnv);
  }
  for (const agent of config.agents) for (const name of Object.values(agent.apiKeys ?? {})) if (name) names.add(name);
  return [...names].filter((name) => !env[name]);
}
