import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import { estimateTextTokens, FleetError } from "../protocol/index.js";

/** The part of a skill's config a skill file stands in for (SkillConfig satisfies it). */
export interface SkillDescription {
  id: string;
  name: string;
  description: string;
  examples?: ReadonlyArray<string> | undefined;
}

export interface SkillText {
  skillId: string;
  text: string;
  /** "file" when `<skillsDir>/<id>.md` was read, "config" when the config's description (and examples) stand in for it */
  source: "file" | "config";
  /** the text was cut to the token limit it was asked for (or the file is longer than `maxBytes`) */
  truncated: boolean;
  /** the file exists but could not be read; the description was used instead */
  error?: string;
}

/** The two file operations skill loading needs, so tests can count reads and the rest of the code never sees `fs`. */
export interface SkillFileSystem {
  /** undefined when there is no regular file at `path` */
  stat(path: string): Promise<{ mtimeMs: number; size: number } | undefined>;
  /** the first `maxBytes` bytes of the file, as UTF-8 */
  readHead(path: string, maxBytes: number): Promise<string>;
}

export interface SkillFilesOptions {
  /** the directory of `<skill-id>.md` files (already resolved); without one every skill is its config description */
  dir: string | undefined;
  /** bytes read from a file at most; the default is far more than any skills budget can hold */
  maxBytes?: number;
  fs?: SkillFileSystem;
}

export const DEFAULT_MAX_SKILL_BYTES = 64 * 1024;
export const TRUNCATION_NOTE = "[… cut here: the rest of this skill does not fit the prompt's skills budget]";
// config validation enforces this too; checked again because the id becomes part of a file path
const SKILL_ID = /^[a-z][a-z0-9-]{0,63}$/;

/**
 * Skill files, read only when a task needs them: a skill's instructions can be long, and an agent with many skills would
 * otherwise pay for all of them on every call. Each read is cached and reused while the file's mtime and size are
 * unchanged, so an edited skill takes effect on the next call without a restart.
 *
 * A file longer than the budget is cut (at a line, with a note saying so), never refused: its opening is what its author
 * put first, and an agent working with part of its instructions does better than one silently working with none; the
 * cut shows as `truncated` in `fleet context`, which tells the author to shorten it.
 */
export class SkillFiles {
  private readonly fs: SkillFileSystem;
  private readonly maxBytes: number;
  private readonly cache = new Map<string, { mtimeMs: number; size: number; text: string; partial: boolean }>();

  constructor(private readonly options: SkillFilesOptions) {
    this.fs = options.fs ?? nodeSkillFileSystem;
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_SKILL_BYTES;
  }

  /** The skill's text within `maxTokens` (estimated): its file when there is one, else its config description. */
  async load(skill: SkillDescription, maxTokens: number): Promise<SkillText> {
    const fallback = (error?: string): SkillText => {
      const fitted = fitText(describe(skill), maxTokens);
      return { skillId: skill.id, source: "config", ...fitted, ...(error ? { error } : {}) };
    };
    const dir = this.options.dir;
    if (dir === undefined || !SKILL_ID.test(skill.id)) return fallback();
    const path = join(dir, `${skill.id}.md`);
    try {
      const file = await this.read(path);
      if (file === undefined) return fallback();
      const fitted = fitText(file.text, maxTokens);
      return { skillId: skill.id, source: "file", text: fitted.text, truncated: fitted.truncated || file.partial };
    } catch (err) {
      const error = FleetError.from(err);
      return fallback(`${path}: ${error.message}`);
    }
  }

  private async read(path: string): Promise<{ text: string; partial: boolean } | undefined> {
    const info = await this.fs.stat(path);
    if (info === undefined) {
      this.cache.delete(path);
      return undefined;
    }
    const cached = this.cache.get(path);
    if (cached && cached.mtimeMs === info.mtimeMs && cached.size === info.size) return cached;
    const partial = info.size > this.maxBytes;
    let text = normalize(await this.fs.readHead(path, Math.min(info.size, this.maxBytes)));
    // a head cut at a byte limit ends mid-line (perhaps mid-character): that fragment is dropped, not shown
    if (partial && text.includes("\n")) text = text.slice(0, text.lastIndexOf("\n")).trimEnd();
    const entry = { mtimeMs: info.mtimeMs, size: info.size, text, partial };
    this.cache.set(path, entry);
    return entry;
  }
}

/** The text cut at a line boundary (with TRUNCATION_NOTE) so that its estimate is at most `maxTokens`. */
export function fitText(text: string, maxTokens: number): { text: string; truncated: boolean } {
  if (estimateTextTokens(text) <= maxTokens) return { text, truncated: false };
  const lines = text.split("\n");
  const kept: string[] = [];
  for (const line of lines) {
    if (estimateTextTokens([...kept, line, TRUNCATION_NOTE].join("\n")) > maxTokens) break;
    kept.push(line);
  }
  if (kept.length > 0) return { text: [...kept, TRUNCATION_NOTE].join("\n"), truncated: true };
  // not even the first line fits beside the note: the first line is cut mid-way, which beats showing nothing
  const room = maxTokens * 4 - TRUNCATION_NOTE.length - 2;
  if (room <= 0) return { text: "", truncated: true };
  return { text: `${lines[0]!.slice(0, room).trimEnd()}…\n${TRUNCATION_NOTE}`, truncated: true };
}

function describe(skill: SkillDescription): string {
  const lines = [skill.description.trim()];
  if (skill.examples && skill.examples.length > 0) lines.push("Examples:", ...skill.examples.map((e) => `- ${e.trim()}`));
  return lines.join("\n");
}

function normalize(text: string): string {
  // a head cut mid-character decodes to U+FFFD at its end
  return text.replace(/\r\n?/g, "\n").replace(/\uFFFD+$/, "").trim();
}

export const nodeSkillFileSystem: SkillFileSystem = {
  async stat(path) {
    try {
      const info = await stat(path);
      return info.isFile() ? { mtimeMs: info.mtimeMs, size: info.size } : undefined;
    } catch (err) {
      const code = err instanceof Error && "code" in err ? err.code : undefined;
      if (code === "ENOENT" || code === "ENOTDIR") return undefined;
      throw err;
    }
  },
  async readHead(path, maxBytes) {
    const handle = await open(path, "r");
    try {
      const buffer = Buffer.alloc(maxBytes);
      let filled = 0;
      while (filled < maxBytes) {
        const { bytesRead } = await handle.read(buffer, filled, maxBytes - filled, filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      return new TextDecoder().decode(buffer.subarray(0, filled));
    } finally {
      await handle.close();
    }
  },
};
