import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { ERROR_CATALOGUE, type FleetErrorCode } from "../../protocol/index.js";

/** The package root: the first directory above this (compiled) file that holds a package.json. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
  return dir;
}

/** The text of a `## title` section, up to the next level-2 heading (its `###` subsections included). */
function section(markdown: string, title: string): string | undefined {
  const lines = markdown.split(/\r?\n/);
  const start = lines.findIndex((line) => line.trim() === `## ${title}`);
  if (start === -1) return undefined;
  const end = lines.findIndex((line, i) => i > start && /^## /.test(line));
  return lines.slice(start + 1, end === -1 ? undefined : end).join("\n");
}

/** Every `CODE` in backticks whose whole content is an UPPER_SNAKE word (TIMEOUT counts; `A2A-Version`, `FleetError` do not). */
function backtickedCodes(text: string): string[] {
  return [...text.matchAll(/`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*)`/g)].map((m) => m[1]!);
}

/** Table rows whose first cell is a backticked code, as their trimmed cells. */
function codeRows(text: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    if (!line.trim().startsWith("|")) continue;
    const cells = line.trim().replace(/^\||\|$/g, "").split("|").map((c) => c.trim());
    const code = /^`([A-Z][A-Z0-9_]*)`$/.exec(cells[0] ?? "")?.[1];
    if (code) rows.set(code, cells);
  }
  return rows;
}

const SAMPLE = `# natsfleet

Mentions \`NATS_URL\` and \`TASK_NOT_FOUND\` outside the section.

## Errors

Every error is a \`FleetError\` with a code; \`A2A-Version\` mismatches give \`VERSION_NOT_SUPPORTED\`.

| code | A2A code | retryable | meaning |
|---|---|---|---|
| \`TIMEOUT\` | -32101 | yes | a request got no reply in time |
| \`TASK_NOT_FOUND\` | -32001 | no | no task with this id |

### Details

\`CONFIG_INVALID\` lists every bad field.

## Reference

\`NOT_IN_SECTION\`
`;

describe("README parsing helpers", () => {
  it("section() stops at the next level-2 heading and keeps subsections", () => {
    const errors = section(SAMPLE, "Errors");
    assert.ok(errors);
    assert.ok(errors.includes("CONFIG_INVALID"));
    assert.ok(!errors.includes("NOT_IN_SECTION"));
    assert.ok(!errors.includes("NATS_URL"));
    assert.equal(section(SAMPLE, "Missing"), undefined);
  });

  it("backtickedCodes() finds single- and multi-word codes and skips other identifiers", () => {
    assert.deepEqual(backtickedCodes(section(SAMPLE, "Errors")!), ["VERSION_NOT_SUPPORTED", "TIMEOUT", "TASK_NOT_FOUND", "CONFIG_INVALID"]);
  });

  it("codeRows() reads the table rows keyed by code", () => {
    const rows = codeRows(section(SAMPLE, "Errors")!);
    assert.deepEqual([...rows.keys()], ["TIMEOUT", "TASK_NOT_FOUND"]);
    assert.deepEqual(rows.get("TIMEOUT"), ["`TIMEOUT`", "-32101", "yes", "a request got no reply in time"]);
  });
});

describe("README documents the error catalogue", () => {
  const codes = Object.keys(ERROR_CATALOGUE) as FleetErrorCode[];
  const readErrors = (): string => {
    const readme = readFileSync(join(packageRoot(), "README.md"), "utf8");
    const errors = section(readme, "Errors");
    assert.ok(errors !== undefined, 'README.md has a "## Errors" section');
    return errors;
  };

  it("names every catalogue code in backticks in ## Errors", () => {
    const documented = new Set(backtickedCodes(readErrors()));
    const missing = codes.filter((code) => !documented.has(code));
    assert.deepEqual(missing, [], `undocumented codes: ${missing.join(", ")}`);
  });

  it("names no code in ## Errors that the catalogue lacks", () => {
    const unknown = backtickedCodes(readErrors()).filter((word) => !(word in ERROR_CATALOGUE));
    assert.deepEqual(unknown, [], `codes documented but not in ERROR_CATALOGUE: ${unknown.join(", ")}`);
  });

  it("gives each code's A2A code and retryable as the catalogue does", () => {
    const rows = codeRows(readErrors());
    for (const code of codes) {
      const cells = rows.get(code);
      assert.ok(cells, `a table row for ${code}`);
      const { a2aCode, retryable } = ERROR_CATALOGUE[code];
      assert.ok(cells[1]?.includes(String(a2aCode)), `${code}: A2A code ${a2aCode}, README says ${cells[1]}`);
      const said = (cells[2] ?? "").toLowerCase().replace(/[`*]/g, "");
      const yes = ["yes", "true", "y", "✓", "✔"].includes(said);
      const no = ["no", "false", "n", "✗", "✘", "-", "—", ""].includes(said);
      assert.ok(yes || no, `${code}: retryable cell "${cells[2]}" is not yes/no`);
      assert.equal(yes, retryable, `${code}: retryable ${retryable}, README says ${cells[2]}`);
    }
  });
});
