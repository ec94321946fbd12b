import type { AgentConfig, FleetConfig, TierName } from "../config/index.js";
import { FleetError, type BudgetState, type RouteDecision, type RouteReason, type RouteRequest } from "../protocol/index.js";
import { cheaperStep, cheapestTier, fallbackChain } from "./tier-ladder.js";

/**
 * The routing policy: which tier a step goes to, and why. Explicit tier → alias → the first pattern rule whose phrase
 * the title contains → the local classifier when its confidence reaches `routing.localClassifier.minConfidence` → the
 * nano classifier (cached, may abstain; only when a real nano provider exists) → the agent's default tier. The budget
 * then has its say: downgraded moves the tier one step cheaper, nanoOnly sends everything to the cheapest tier with no
 * fallback. Pure apart from the classifiers, which the router injects.
 */
export interface PolicyInput {
  config: Pick<FleetConfig, "tiers" | "routing">;
  agent: Pick<AgentConfig, "id" | "defaultTier">;
  budgetState: BudgetState;
  /** the in-process classifier: a tier and its probability, or undefined for a title with no words */
  localClassify?: (title: string) => { tier: TierName; confidence: number; taught?: string } | undefined;
  /** answers with a tier for a title, or undefined when it cannot tell; called only when no rule matched */
  classify?: (title: string) => Promise<{ tier: TierName; cached: boolean } | undefined>;
}

export async function decideRoute(request: RouteRequest, input: PolicyInput): Promise<RouteDecision> {
  const { config, budgetState } = input;
  const chosen = await chooseTier(request, input);
  const { tiers, routing } = config;

  let tier = chosen.tier;
  let detail = chosen.detail;
  let chain = fallbackChain(tiers, routing, tier, chosen.reason === "alias" ? request.alias : undefined);
  if (budgetState === "downgraded") {
    const cheaper = cheaperStep(tiers, tier);
    if (cheaper !== tier) {
      detail += `; budget at ${Math.round(routing.budget.downgradeAt * 100)} %: ${tier} → ${cheaper}`;
      tier = cheaper;
      chain = fallbackChain(tiers, routing, tier);
    }
  } else if (budgetState === "nanoOnly") {
    const nano = cheapestTier(tiers);
    if (nano !== tier) detail += `; budget spent: only ${nano} runs`;
    tier = nano;
    chain = [];
  }
  return {
    requestedTier: chosen.tier, tier, reason: chosen.reason, detail, budgetState, fallbackChain: chain,
    ...(chosen.reason === "alias" && request.alias !== undefined ? { alias: request.alias } : {}),
    ...((chosen.reason === "alias" || chosen.reason === "explicit") && request.askedBy !== undefined ? { askedBy: request.askedBy } : {}),
    ...(chosen.confidence !== undefined ? { confidence: chosen.confidence } : {}),
  };
}

type Chosen = { tier: TierName; reason: RouteReason; detail: string; confidence?: number };

async function chooseTier(request: RouteRequest, input: PolicyInput): Promise<Chosen> {
  const { routing } = input.config;
  const by = request.askedBy !== undefined ? ` by the ${request.askedBy}` : "";
  if (request.tier !== undefined) return { tier: request.tier, reason: "explicit", detail: `asked for ${request.tier}${by}` };
  if (request.alias !== undefined) {
    const alias = routing.aliases[request.alias];
    if (!alias) {
      const known = Object.keys(routing.aliases).join(", ") || "none";
      throw new FleetError("MESSAGE_INVALID", `unknown tier alias "${request.alias}" (configured: ${known})`, {
        details: [{ path: "alias", message: `unknown alias; configured: ${known}` }],
      });
    }
    return { tier: alias.tier, reason: "alias", detail: `alias "${request.alias}"${by} → ${alias.tier}` };
  }
  const title = request.title.toLowerCase();
  for (const [index, rule] of routing.rules.entries()) {
    const phrase = rule.contains.find((p) => title.includes(p.toLowerCase()));
    if (phrase !== undefined) return { tier: rule.tier, reason: "rule", detail: `rule ${index}: title contains "${phrase}" → ${rule.tier}` };
  }
  let unsure = "";
  if (routing.localClassifier.enabled && input.localClassify) {
    const local = input.localClassify(request.title);
    if (local && local.confidence >= routing.localClassifier.minConfidence) {
      const how = local.taught ? `taught (${local.taught})` : `confidence ${local.confidence.toFixed(2)}`;
      return { tier: local.tier, reason: "local-classifier", detail: `local classifier → ${local.tier}, ${how}`, confidence: local.confidence };
    }
    if (local) unsure = `; local classifier unsure (${local.tier} at ${local.confidence.toFixed(2)})`;
  }
  if (routing.classifier && input.classify && request.title.trim() !== "") {
    const verdict = await input.classify(request.title);
    if (verdict) {
      return { tier: verdict.tier, reason: "classifier", detail: `classifier${verdict.cached ? " (cached)" : ""} → ${verdict.tier}${unsure}` };
    }
  }
  return { tier: input.agent.defaultTier, reason: "default", detail: `${input.agent.id}'s default tier ${input.agent.defaultTier}${unsure}` };
}
