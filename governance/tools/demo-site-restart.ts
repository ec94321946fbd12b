import { z } from "zod";
import { FleetError } from "../../protocol/index.js";
import { defineTool, type ToolContext } from "../tool.js";
import { callSignal, failureReason, readText } from "./http-fetch.js";

/*
 * PROPOSE: restarts the default fleet's demo site (cli/demo-site.ts) through its control endpoint, which clears the fault
 * `fleet demo break` left, as `fleet demo fix` does by hand. It stands in for the restart or redeploy of a real site, so a
 * newcomer sees a fix go through a proposal, Sentinel and the rollback window on a laptop. Only a loopback URL is taken:
 * the demo site serves on 127.0.0.1, and this tool must never POST anywhere else. Reversible: the rollback puts the site
 * back as the call found it (broken again when it was broken).
 */

const TIMEOUT_MS = 5_000;
const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

/** The control paths the demo site answers (cli/demo-site.ts serves them). */
export const DEMO_SITE_CONTROL = { restart: "/.fleet/restart", break: "/.fleet/break" } as const;

const ControlAnswer = z.object({ wasBroken: z.boolean(), broken: z.boolean() });
type ControlAnswer = z.infer<typeof ControlAnswer>;

const RestartOutput = z.object({ url: z.string(), wasBroken: z.boolean(), broken: z.boolean() });
type RestartOutput = z.infer<typeof RestartOutput>;

async function control(url: string, action: keyof typeof DEMO_SITE_CONTROL, ctx: ToolContext): Promise<ControlAnswer> {
  const target = new URL(DEMO_SITE_CONTROL[action], url);
  const signal = callSignal(ctx, TIMEOUT_MS);
  let res: Response;
  try {
    res = await fetch(target, { method: "POST", signal, redirect: "manual" });
  } catch (err) {
    ctx.signal.throwIfAborted();
    throw new FleetError("TOOL_FAILED", `demo_site_restart: ${action} ${target.href}: ${failureReason(err, signal, TIMEOUT_MS)}`, { cause: err });
  }
  const { text } = await readText(res, 16 * 1024);
  if (res.status !== 200) throw new FleetError("TOOL_FAILED", `demo_site_restart: ${target.href} answered HTTP ${res.status}: ${text.slice(0, 200)}`);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw new FleetError("TOOL_FAILED", `demo_site_restart: ${target.href} is no demo site (its answer is not JSON)`, { cause: err });
  }
  const answer = ControlAnswer.safeParse(body);
  if (!answer.success) throw new FleetError("TOOL_FAILED", `demo_site_restart: ${target.href} is no demo site (unexpected answer)`);
  return answer.data;
}

export const demoSiteRestart = defineTool({
  name: "demo_site_restart",
  description:
    "Restart the default fleet's demo site (the local site `fleet up` serves for the demo) so it answers 200 again; reversible: the rollback leaves it as it was found. Takes the site's URL (http://127.0.0.1:<port>/).",
  risk: "PROPOSE",
  input: z.strictObject({
    url: z
      .string()
      .url()
      .refine((u) => LOOPBACK.has(new URL(u).hostname), { error: "must be the demo site's loopback URL (http://127.0.0.1:<port>/)" }),
  }),
  targetFields: ["url"],
  costUsd: 0,
  handler: async (input, ctx): Promise<RestartOutput> => {
    const answer = await control(input.url, "restart", ctx);
    ctx.log.info({ url: input.url, wasBroken: answer.wasBroken }, "demo site restarted");
    return { url: input.url, ...answer };
  },
  rollback: async (input, output, ctx) => {
    // the recorded output comes back from KV: data to check, not a value to trust
    const recorded = RestartOutput.safeParse(output);
    if (!recorded.success || !recorded.data.wasBroken) return { url: input.url, unchanged: true };
    return { url: input.url, ...(await control(input.url, "break", ctx)) };
  },
});
