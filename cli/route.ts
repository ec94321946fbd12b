import { TierName } from "../protocol/index.js";
import { RouterClient } from "../router/index.js";
import { inspect, loadConfig, type CliOptions } from "./options.js";

/**
 * `fleet route "<title>" [--agent id] [--json]`: the tier the routers would pick for a step with this title, and why
 * (a rule, the local classifier and how sure it is, the nano classifier, the default), without calling a model.
 * `fleet route teach "<title>" <tier>`: the operator's correction of the local classifier, kept in KV for every router.
 */
export async function route(positionals: string[], options: CliOptions & { agent?: string | undefined }, env: NodeJS.ProcessEnv): Promise<number> {
  const teach = positionals[0] === "teach";
  const words = teach ? positionals.slice(1) : positionals;
  const tier = teach ? TierName.safeParse(words.at(-1)) : undefined;
  const title = (teach ? words.slice(0, -1) : words).join(" ").trim();
  if (title === "" || (teach && !tier?.success)) {
    console.error(`usage: fleet route "<title>" [--agent <id>] [--json]\n       fleet route teach "<title>" <${TierName.options.join("|")}>`);
    return 2;
  }
  const config = loadConfig(options, env);
  const { nc, names } = await inspect(options, env);
  try {
    const client = new RouterClient(nc, names, { timeoutMs: 10_000, retries: 0 });
    if (teach && tier?.success) {
      const reply = await client.teach({ title, tier: tier.data });
      if (options.json) console.log(JSON.stringify(reply, null, 2));
      else {
        const before = reply.before ? `; it said ${reply.before.tier} (confidence ${reply.before.confidence.toFixed(2)})` : "";
        console.log(`taught: "${reply.title}" → ${reply.tier}${before}; the local classifier now learns from ${reply.labels} labels`);
      }
      return 0;
    }
    const agentId = options.agent ?? config.agents[0]?.id;
    if (!agentId) throw new Error("the fleet has no agents");
    const decision = await client.route({ agentId, title });
    if (options.json) console.log(JSON.stringify(decision, null, 2));
    else {
      const confidence = decision.confidence !== undefined ? ` (confidence ${decision.confidence.toFixed(2)})` : "";
      console.log(`${decision.tier} ← ${decision.reason}${confidence}: ${decision.detail}`);
      if (decision.fallbackChain.length > 0) console.log(`fallback: ${decision.fallbackChain.join(" → ")}`);
    }
    return 0;
  } finally {
    await nc.close();
  }
}
