import { TierName, type RouteRequest } from "../protocol/index.js";

/**
 * What a task, a skill, a pipeline step, a duty or a cron job asks for, as a route request's fields: a tier name goes as
 * `tier`, anything else as `alias` (the router refuses an unknown alias with MESSAGE_INVALID), and who asked goes along
 * so the decision can say so. Undefined asks for nothing: the title decides.
 */
export function routeIntent(tierOrAlias: string | undefined, askedBy: NonNullable<RouteRequest["askedBy"]>): Pick<RouteRequest, "tier" | "alias" | "askedBy"> {
  if (tierOrAlias === undefined) return {};
  const tier = TierName.safeParse(tierOrAlias);
  return tier.success ? { tier: tier.data, askedBy } : { alias: tierOrAlias, askedBy };
}
