import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { AgentMemory, toMarkdown } from "../memory/index.js";
import { FleetError } from "../protocol/index.js";
import { inspect, loadConfig, prefixOf, type CliOptions } from "./options.js";

const USAGE = "usage: fleet memory show <agent> [--json] | fleet memory export <dir>";

/**
 * `fleet memory show <agent>` prints an agent's MEMORY.md; `fleet memory export <dir>` writes every agent's to
 * `<dir>/<agent>.md`. MEMORY.md lives in KV, not on disk, so these are how a person reads or archives it. The config is
 * read for the line cap, the codec and the prefix.
 */
export async function memory(positionals: string[], options: CliOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const [sub, arg] = positionals;
  if ((sub !== "show" && sub !== "export") || !arg) {
    console.error(USAGE);
    return 2;
  }
  const config = loadConfig(options);
  const { nc, kv } = await inspect({ ...options, prefix: prefixOf(options, config) }, env);
  try {
    const store = new AgentMemory({ kv: kv.memory, maxLines: config.memory.maxAgentLines, codec: config.fleet.codec });
    return sub === "show" ? await show(store, arg, options) : await exportAll(store, arg);
  } finally {
    await nc.close();
  }
}

async function show(store: AgentMemory, agentId: string, options: CliOptions): Promise<number> {
  const { lines, revision, replaced } = await store.read(agentId);
  if (options.json) {
    console.log(JSON.stringify({ agentId, lines, count: lines.length, cap: store.maxLines, revision, replaced }, null, 2));
    return 0;
  }
  // the count goes in an HTML comment so the output stays a markdown file that `fromMarkdown` reads back
  process.stdout.write(`${toMarkdown(agentId, lines)}\n<!-- ${lines.length}/${store.maxLines} lines, revision ${revision} -->\n`);
  return 0;
}

/** One file per agent; an agent whose record does not decode is reported and skipped, and the exit code says so. */
async function exportAll(store: AgentMemory, dir: string): Promise<number> {
  const target = resolve(dir);
  await mkdir(target, { recursive: true });
  const agents = await store.list();
  let written = 0;
  let failed = 0;
  for (const agentId of agents) {
    try {
      const { lines } = await store.read(agentId);
      const file = join(target, `${agentId}.md`);
      await writeFile(file, toMarkdown(agentId, lines));
      console.log(`wrote ${file} (${lines.length}/${store.maxLines} lines)`);
      written++;
    } catch (err) {
      const error = FleetError.from(err);
      console.error(`fleet: ${agentId}: ${error.code}: ${error.message}`);
      failed++;
    }
  }
  console.log(`exported MEMORY.md of ${written} agent(s) to ${target}${failed > 0 ? `; ${failed} failed` : ""}`);
  return failed > 0 ? 1 : 0;
}
