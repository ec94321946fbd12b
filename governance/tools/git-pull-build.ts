import { execFile } from "node:child_process";
import { z } from "zod";
import type { GovernanceConfig } from "../../config/index.js";
import { FleetError } from "../../protocol/index.js";
import { defineTool, type ToolContext, type ToolDefinition } from "../tool.js";

/*
 * PROPOSE: fast-forwards a configured checkout to its upstream and builds it. Reversible: the rollback resets the checkout
 * to the HEAD it had before (recorded in the call's output) and builds that again. Commands run without a shell, with the
 * host's AbortSignal, so a hung git or build is killed at the call's timeout.
 */

type Repos = GovernanceConfig["repos"];
type Repo = Repos[string];

const GitPullOutput = z.object({
  repo: z.string(),
  previousHead: z.string().regex(/^[0-9a-f]{7,64}$/),
  head: z.string(),
  changed: z.boolean(),
  built: z.boolean(),
  buildOutput: z.string().optional(),
});
type GitPullOutput = z.infer<typeof GitPullOutput>;

const OUTPUT_TAIL = 2_000;

function run(file: string, args: string[], options: { cwd?: string; signal: AbortSignal }): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { ...options, maxBuffer: 16 * 1024 * 1024, encoding: "utf8" }, (err, stdout, stderr) => {
      if (err) {
        const said = `${stderr}${stdout}`.trim().slice(-OUTPUT_TAIL);
        reject(new FleetError("TOOL_FAILED", `${[file, ...args].join(" ")} failed: ${said || err.message}`, { cause: err }));
      } else resolve(`${stdout}${stderr}`);
    });
  });
}

const git = (repo: Repo, args: string[], ctx: ToolContext) => run("git", ["-C", repo.dir, ...args], { signal: ctx.signal });
const head = async (repo: Repo, ctx: ToolContext) => (await git(repo, ["rev-parse", "HEAD"], ctx)).trim();

async function build(repo: Repo, ctx: ToolContext): Promise<string | undefined> {
  const [command, ...args] = repo.build ?? [];
  if (!command) return undefined;
  return (await run(command, args, { cwd: repo.dir, signal: ctx.signal })).slice(-OUTPUT_TAIL);
}

export function gitPullBuild(repos: Repos): ToolDefinition {
  const names = Object.keys(repos);
  const repoOf = (name: string): Repo => {
    const repo = repos[name];
    if (!repo) throw new FleetError("TOOL_FAILED", `no repository "${name}" in governance.repos`);
    return repo;
  };
  return defineTool({
    name: "git_pull_build",
    description: `Fast-forward a configured repository to its upstream (git pull --ff-only) and run its build; undone by resetting to the previous HEAD. Repositories: ${names.join(", ") || "none configured"}.`,
    risk: "PROPOSE",
    input: z.strictObject({
      repo: z.string().refine((name) => names.includes(name), { error: `must be a repository named in governance.repos (${names.join(", ") || "none configured"})` }),
    }),
    handler: async (input, ctx): Promise<GitPullOutput> => {
      const repo = repoOf(input.repo);
      const previousHead = await head(repo, ctx);
      await git(repo, ["pull", "--ff-only"], ctx);
      const now = await head(repo, ctx);
      let buildOutput: string | undefined;
      try {
        buildOutput = await build(repo, ctx);
      } catch (err) {
        // a failed call must leave nothing behind: the checkout goes back to what it was, so the build that ran before still matches it
        if (now !== previousHead) await git(repo, ["reset", "--hard", previousHead], { ...ctx, signal: AbortSignal.timeout(30_000) });
        throw new FleetError("TOOL_FAILED", `build of ${input.repo} failed; the checkout is back at ${previousHead.slice(0, 12)}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
      ctx.log.info({ repo: input.repo, previousHead, head: now }, "pulled and built");
      return { repo: input.repo, previousHead, head: now, changed: now !== previousHead, built: buildOutput !== undefined, ...(buildOutput !== undefined ? { buildOutput } : {}) };
    },
    rollback: async (input, output, ctx) => {
      const repo = repoOf(input.repo);
      // the recorded output comes back from KV: it is data to check, not a value to trust
      const recorded = GitPullOutput.parse(output);
      await git(repo, ["reset", "--hard", recorded.previousHead], ctx);
      const buildOutput = await build(repo, ctx);
      ctx.log.info({ repo: input.repo, head: recorded.previousHead }, "rolled back to the previous HEAD");
      return { repo: input.repo, head: recorded.previousHead, undid: recorded.head, built: buildOutput !== undefined };
    },
  });
}
