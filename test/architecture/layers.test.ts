import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, posix, relative, resolve, sep } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

/*
 * The folders' order, checked on the source: a folder imports only folders below it, through their index.ts. Without a
 * test the order erodes one convenient import at a time, and a newcomer can no longer trust the folder names. Peers
 * (memory and actors; supervisor and bridges; bench and test) may not import each other either: actors define ports that
 * the wiring fills with memory, and benchmarks start servers from harness/, not from test/.
 */
export const LAYERS: readonly (readonly string[])[] = [
  ["protocol"],
  ["config"],
  ["router"],
  ["memory", "actors"],
  ["governance"],
  ["behaviours"],
  ["supervisor", "bridges"],
  ["cli"],
  ["harness"],
  ["bench", "test"],
];

/** Tests reach into their own subject's files on purpose; every other folder goes through a folder's index.ts. */
const DEEP_IMPORTS_ALLOWED = new Set(["test"]);

const rank = new Map(LAYERS.flatMap((layer, i) => layer.map((folder) => [folder, i] as const)));

export type Violation = { file: string; specifier: string; reason: string };

const IMPORT = /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\s+from\s+)?["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/g;

/** Every module specifier a source file names: static imports, re-exports, dynamic imports. Comments are skipped. */
export function specifiersOf(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  return [...code.matchAll(IMPORT)].map((m) => (m[1] ?? m[2])!);
}

/** What is wrong with one import of `file` (a path from the repository root, posix separators), if anything. */
export function checkImport(file: string, specifier: string): Violation | undefined {
  if (!specifier.startsWith(".")) return undefined;
  const from = file.split("/")[0]!;
  const target = posix.normalize(posix.join(posix.dirname(file), specifier));
  const to = target.split("/")[0]!;
  if (to === from) return undefined;
  const violation = (reason: string): Violation => ({ file, specifier, reason });
  const fromRank = rank.get(from);
  const toRank = rank.get(to);
  if (fromRank === undefined) return violation(`folder ${from}/ has no place in the layer order`);
  if (toRank === undefined) return violation(`imports ${to}/, which has no place in the layer order`);
  if (from === "bench" && to === "test") return violation("bench/ imports test/: start servers from harness/");
  if (toRank === fromRank) return violation(`${from}/ and ${to}/ are peers; neither imports the other`);
  if (toRank > fromRank) return violation(`${from}/ imports ${to}/, which sits above it in the layer order`);
  if (!DEEP_IMPORTS_ALLOWED.has(from) && target !== `${to}/index.js`) return violation(`deep import of ${target}: go through ${to}/index.js`);
  return undefined;
}

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === "node_modules" ? [] : sourceFiles(path);
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts") ? [path] : [];
  });
}

describe("layers", () => {
  it("every folder in tsconfig's include has a place in the order", () => {
    const { include } = JSON.parse(readFileSync(join(root, "tsconfig.json"), "utf8")) as { include: string[] };
    assert.deepEqual(include.filter((folder) => !rank.has(folder)), []);
  });

  it("no folder imports one above it or a peer, nor a deep file of another folder; bench/ never imports test/", () => {
    const { include } = JSON.parse(readFileSync(join(root, "tsconfig.json"), "utf8")) as { include: string[] };
    const violations: Violation[] = [];
    let imports = 0;
    for (const folder of include) {
      for (const path of sourceFiles(join(root, folder))) {
        const file = relative(root, path).split(sep).join("/");
        for (const specifier of specifiersOf(readFileSync(path, "utf8"))) {
          imports++;
          const v = checkImport(file, specifier);
          if (v) violations.push(v);
        }
      }
    }
    // a parser that finds nothing would pass everything
    assert.ok(imports > 500, `only ${imports} imports found`);
    assert.deepEqual(violations.map((v) => `${v.file}: "${v.specifier}": ${v.reason}`), []);
  });

  it("the check itself catches each kind of violation", () => {
    assert.match(checkImport("actors/discipline.ts", "../governance/index.js")!.reason, /sits above it/);
    assert.match(checkImport("memory/session-log.ts", "../actors/index.js")!.reason, /peers/);
    assert.match(checkImport("cli/memory.ts", "../memory/agent-memory.js")!.reason, /deep import of memory\/agent-memory\.js/);
    assert.match(checkImport("config/load.ts", "../protocol/errors.js")!.reason, /deep import/);
    assert.match(checkImport("bench/router.ts", "../test/helpers/nats-server.js")!.reason, /bench\/ imports test\//);
    assert.match(checkImport("scripts/x.ts", "../protocol/index.js")!.reason, /no place/);
    assert.equal(checkImport("memory/session-log.ts", "../config/index.js"), undefined);
    assert.equal(checkImport("governance/rules/rule.ts", "../tool.js"), undefined);
    assert.equal(checkImport("test/actors/x.test.ts", "../../actors/quiet-hours.js"), undefined);
    assert.equal(checkImport("cli/main.ts", "node:path"), undefined);
  });

  it("finds static, type-only, re-exported and dynamic imports, and skips comments", () => {
    const source = [
      `import { a } from "./a.js";`,
      `import type { B } from "../b/index.js";`,
      `export { c } from "./c.js";`,
      `import "./side-effect.js";`,
      `const d = await import("../d/index.js");`,
      `// import { e } from "../e/deep.js";`,
      `/* import { f } from "../f/deep.js"; */`,
      `import {\n  g,\n  type H,\n} from "../g/index.js";`,
    ].join("\n");
    assert.deepEqual(specifiersOf(source), ["./a.js", "../b/index.js", "./c.js", "./side-effect.js", "../d/index.js", "../g/index.js"]);
  });
});
