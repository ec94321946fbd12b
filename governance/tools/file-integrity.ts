import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import { join, relative, resolve, sep } from "node:path";
import { z } from "zod";
import { FleetError } from "../../protocol/index.js";
import { defineTool, type ToolContext, type ToolDefinition } from "../tool.js";
import { ToolState } from "./tool-state.js";

/*
 * AUTO: a sha256 manifest of the regular files under a directory on the tool host, compared with a baseline: the one
 * stored in KV toolstate for that directory (made by the first call, replaced only when a call asks with
 * `updateBaseline`), or a manifest file given as `baseline` ({"files": {"<relative path>": "<sha256 hex>"}}, the shape
 * this tool answers with). Symbolic links are listed by their target, never followed, so a link cannot pull files from
 * elsewhere into the manifest. The stored baseline keeps 128 bits of each hash (a prefix of the sha256), which keeps a
 * large tree's record within a KV value; a given file's full hashes are compared in full.
 */

const STORED_HEX = 32;

const Manifest = z.object({ files: z.record(z.string(), z.string().regex(/^[0-9a-f]{32,64}$/)) });
const StoredManifest = z.object({ dir: z.string(), files: z.record(z.string(), z.string()), at: z.number() });

async function sha256(path: string, signal: AbortSignal): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { signal })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Relative path (with "/") → sha256 of every regular file under `dir`; a link hashes as "link:<target>". */
export async function manifestOf(dir: string, maxFiles: number, ctx: ToolContext): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  let count = 0;
  const walk = async (at: string): Promise<void> => {
    const entries = await readdir(at, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const entry of entries) {
      ctx.signal.throwIfAborted();
      const full = join(at, entry.name);
      const rel = relative(dir, full).split(sep).join("/");
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile() || entry.isSymbolicLink()) {
        if (++count > maxFiles) throw new FleetError("TOOL_FAILED", `file_integrity: more than ${maxFiles} files under ${dir}; raise maxFiles or audit a narrower directory`);
        if (entry.isSymbolicLink()) {
          files[rel] = createHash("sha256").update(`link:${await readlink(full)}`).digest("hex");
        } else files[rel] = await sha256(full, ctx.signal);
      }
    }
  };
  await walk(dir);
  return files;
}

function compare(current: Record<string, string>, baseline: Record<string, string>) {
  const same = (now: string, then: string) => now.startsWith(then) || then.startsWith(now);
  const added = Object.keys(current).filter((p) => !(p in baseline)).sort();
  const removed = Object.keys(baseline).filter((p) => !(p in current)).sort();
  const changed = Object.keys(current).filter((p) => p in baseline && !same(current[p] ?? "", baseline[p] ?? "")).sort();
  return { added, removed, changed };
}

export function fileIntegrity(deps: { state: ToolState }): ToolDefinition {
  return defineTool({
    name: "file_integrity",
    description:
      "Hash (sha256) every file under a directory on the tool host and compare with the baseline: the stored one (made by the first call) or a manifest file; reports added, removed and changed files.",
    risk: "AUTO",
    input: z.strictObject({
      dir: z.string().min(1),
      /** a manifest file to compare with instead of the stored baseline */
      baseline: z.string().min(1).optional(),
      /** after comparing, store the current manifest as the directory's baseline (accepting the changes) */
      updateBaseline: z.boolean().default(false),
      maxFiles: z.number().int().min(1).max(20_000).default(5_000),
      /** answer with the full current manifest too (the shape a baseline file has) */
      includeManifest: z.boolean().default(false),
    }),
    handler: async (input, ctx) => {
      const dir = resolve(input.dir);
      const info = await lstat(dir).catch((err: unknown) => {
        throw new FleetError("TOOL_FAILED", `file_integrity: ${dir}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      });
      if (!info.isDirectory()) throw new FleetError("TOOL_FAILED", `file_integrity: ${dir} is not a directory`);
      const current = await manifestOf(dir, input.maxFiles, ctx);
      const summary = { dir, files: Object.keys(current).length, ...(input.includeManifest ? { manifest: { files: current } } : {}) };

      if (input.baseline) {
        let parsed: z.infer<typeof Manifest>;
        try {
          parsed = Manifest.parse(JSON.parse(await readFile(input.baseline, "utf8")));
        } catch (err) {
          throw new FleetError("TOOL_FAILED", `file_integrity: ${input.baseline} is not a manifest ({"files": {"path": "sha256"}}): ${err instanceof Error ? err.message : String(err)}`, { cause: err });
        }
        return { ...summary, baseline: input.baseline, ...compare(current, parsed.files) };
      }

      const short = Object.fromEntries(Object.entries(current).map(([p, h]) => [p, h.slice(0, STORED_HEX)]));
      return deps.state.update("file_integrity", ToolState.key("integrity", dir), StoredManifest, (stored) => {
        if (!stored) return { next: { dir, files: short, at: ctx.now() }, result: { ...summary, baseline: "created", added: [], removed: [], changed: [] } };
        const diff = compare(current, stored.files);
        const next = input.updateBaseline ? { dir, files: short, at: ctx.now() } : stored;
        return {
          next,
          result: { ...summary, baseline: input.updateBaseline ? "updated" : `stored ${new Date(stored.at).toISOString()}`, ...diff },
        };
      });
    },
  });
}
