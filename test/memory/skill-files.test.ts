import assert from "node:assert/strict";
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { nodeSkillFileSystem, SkillFiles, TRUNCATION_NOTE, fitText, type SkillFileSystem } from "../../memory/skill-files.js";
import { estimateTextTokens } from "../../protocol/index.js";

const research = { id: "research", name: "Research", description: "Finds and compares public sources.", examples: ["compare competitor prices", "summarize a report"] };

/** An in-memory file system that counts what is asked of it. */
class FakeFiles implements SkillFileSystem {
  readonly files = new Map<string, { text: string; mtimeMs: number }>();
  readonly reads: Array<{ path: string; maxBytes: number }> = [];
  stats = 0;
  failStat: Error | undefined;

  put(path: string, text: string, mtimeMs = 1): void {
    this.files.set(path, { text, mtimeMs });
  }

  async stat(path: string) {
    this.stats++;
    if (this.failStat) throw this.failStat;
    const file = this.files.get(path);
    return file ? { mtimeMs: file.mtimeMs, size: Buffer.byteLength(file.text) } : undefined;
  }

  async readHead(path: string, maxBytes: number) {
    this.reads.push({ path, maxBytes });
    const file = this.files.get(path);
    if (!file) throw Object.assign(new Error(`ENOENT: ${path}`), { code: "ENOENT" });
    return Buffer.from(file.text).subarray(0, maxBytes).toString("utf8");
  }
}

describe("SkillFiles", () => {
  it("uses the config's description and examples when there is no skills directory or no file", async () => {
    const fs = new FakeFiles();
    for (const skills of [new SkillFiles({ dir: undefined, fs }), new SkillFiles({ dir: "/skills", fs })]) {
      const text = await skills.load(research, 800);
      assert.equal(text.source, "config");
      assert.equal(text.truncated, false);
      assert.equal(text.text, "Finds and compares public sources.\nExamples:\n- compare competitor prices\n- summarize a report");
    }
    assert.equal(fs.reads.length, 0);
  });

  it("reads the file once and rereads it only when its mtime or size changes", async () => {
    const fs = new FakeFiles();
    fs.put("/skills/research.md", "# Research\r\nCite every source.\n", 1);
    const skills = new SkillFiles({ dir: "/skills", fs });
    const first = await skills.load(research, 800);
    assert.deepEqual(first, { skillId: "research", source: "file", text: "# Research\nCite every source.", truncated: false });
    await skills.load(research, 800);
    await skills.load(research, 100);
    assert.equal(fs.reads.length, 1, "unchanged file: served from the cache");
    fs.put("/skills/research.md", "# Research\nCite every source, with its date.", 2);
    assert.equal((await skills.load(research, 800)).text, "# Research\nCite every source, with its date.");
    assert.equal(fs.reads.length, 2);
    fs.files.delete("/skills/research.md");
    assert.equal((await skills.load(research, 800)).source, "config", "a removed file falls back to the description");
  });

  it("cuts a file longer than the budget at a line, with a note, instead of refusing it", async () => {
    const fs = new FakeFiles();
    const lines = Array.from({ length: 200 }, (_, i) => `Step ${i + 1}: do the thing carefully and write down what you saw.`);
    fs.put("/skills/research.md", lines.join("\n"));
    const text = await new SkillFiles({ dir: "/skills", fs }).load(research, 100);
    assert.equal(text.source, "file");
    assert.equal(text.truncated, true);
    assert.ok(estimateTextTokens(text.text) <= 100, `${estimateTextTokens(text.text)} tokens`);
    const shown = text.text.split("\n");
    assert.equal(shown.at(-1), TRUNCATION_NOTE);
    assert.deepEqual(shown.slice(0, -1), lines.slice(0, shown.length - 1), "whole lines from the top");
    assert.ok(shown.length > 2);
  });

  it("reads at most maxBytes of a huge file and drops the partial last line", async () => {
    const fs = new FakeFiles();
    fs.put("/skills/research.md", "line one\nline two\n" + "x".repeat(10_000));
    const text = await new SkillFiles({ dir: "/skills", fs, maxBytes: 30 }).load(research, 800);
    assert.deepEqual(fs.reads, [{ path: "/skills/research.md", maxBytes: 30 }]);
    assert.equal(text.text, "line one\nline two");
    assert.equal(text.truncated, true);
  });

  it("falls back to the description, and says why, when the file cannot be read", async () => {
    const fs = new FakeFiles();
    fs.failStat = Object.assign(new Error("EACCES: permission denied"), { code: "EACCES" });
    const text = await new SkillFiles({ dir: "/skills", fs }).load(research, 800);
    assert.equal(text.source, "config");
    assert.match(text.error ?? "", /research\.md: EACCES/);
  });

  it("never builds a path from an id that is not a skill id", async () => {
    const fs = new FakeFiles();
    const text = await new SkillFiles({ dir: "/skills", fs }).load({ ...research, id: "../secrets" }, 800);
    assert.equal(text.source, "config");
    assert.equal(fs.stats, 0);
  });

  describe("on the real file system", () => {
    const dir = mkdtempSync(join(tmpdir(), "skill-files-"));
    after(() => rmSync(dir, { recursive: true, force: true }));

    it("notices an edit by its mtime", async () => {
      const reads: string[] = [];
      const counting: SkillFileSystem = {
        stat: (path) => nodeSkillFileSystem.stat(path),
        readHead: (path, max) => (reads.push(path), nodeSkillFileSystem.readHead(path, max)),
      };
      const file = join(dir, "research.md");
      writeFileSync(file, "Version one.");
      utimesSync(file, 1_000, 1_000);
      const skills = new SkillFiles({ dir, fs: counting });
      assert.equal((await skills.load(research, 800)).text, "Version one.");
      assert.equal((await skills.load(research, 800)).text, "Version one.");
      assert.equal(reads.length, 1);
      writeFileSync(file, "Version two.");
      utimesSync(file, 2_000, 2_000);
      assert.equal((await skills.load(research, 800)).text, "Version two.");
      assert.equal(reads.length, 2);
      assert.equal((await skills.load({ ...research, id: "missing" }, 800)).source, "config");
    });

    it("drops a multi-byte character cut by the byte limit", async () => {
      writeFileSync(join(dir, "unicode.md"), "€€€ prices");
      // 4 bytes: the first euro sign (3 bytes) and the first byte of the second
      const text = await new SkillFiles({ dir, maxBytes: 4 }).load({ ...research, id: "unicode" }, 800);
      assert.deepEqual([text.text, text.truncated], ["€", true]);
    });
  });
});

describe("fitText", () => {
  it("leaves text within the budget alone and cuts a single long line mid-way only when nothing else fits", () => {
    assert.deepEqual(fitText("short", 10), { text: "short", truncated: false });
    const cut = fitText("y".repeat(1_000), 40);
    assert.equal(cut.truncated, true);
    assert.ok(estimateTextTokens(cut.text) <= 40);
    assert.ok(cut.text.endsWith(`…\n${TRUNCATION_NOTE}`));
    assert.deepEqual(fitText("y".repeat(1_000), 5), { text: "", truncated: true });
  });
});
