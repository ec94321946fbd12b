import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { loadKnowledge, searchKnowledge, type Knowledge } from "../../memory/reference-knowledge.js";
import { FleetError } from "../../protocol/index.js";
import { DIST } from "../helpers/fleet-processes.js";

/** Reference knowledge: YAML files validated with zod, and the keyword ranking over them. */
describe("reference knowledge", () => {
  const dirs: string[] = [];
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  function dirWith(files: Record<string, string>): string {
    const dir = mkdtempSync(join(tmpdir(), "fleet-knowledge-"));
    dirs.push(dir);
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    return dir;
  }

  async function knowledgeError(dir: string): Promise<FleetError> {
    try {
      await loadKnowledge(dir);
    } catch (err) {
      assert.ok(err instanceof FleetError, `a FleetError, got ${String(err)}`);
      return err;
    }
    assert.fail("loadKnowledge accepted invalid knowledge");
  }

  it("loads valid files; a missing file or directory is empty", async () => {
    const dir = dirWith({
      "people.yaml": "- name: Dana Kovac\n  role: Founder and operator\n  contact: telegram:operator\n",
      "decisions.yaml": "- date: 2025-01-14\n  title: No daytime shop deploys\n  decision: Deploy the shop at night\n  why: Checkout errors cost money\n",
      "lessons.yaml": "",
      "README.md": "not YAML, not a knowledge file, ignored",
    });
    const k = await loadKnowledge(dir);
    assert.deepEqual(k.people, [{ name: "Dana Kovac", role: "Founder and operator", contact: "telegram:operator" }]);
    assert.equal(k.decisions[0]?.date, "2025-01-14", "an unquoted YAML date stays a string");
    assert.deepEqual(k.projects, []);
    assert.deepEqual(k.lessons, []);
    assert.deepEqual(await loadKnowledge(join(dir, "does-not-exist")), { people: [], projects: [], decisions: [], lessons: [] });
  });

  it("the shipped example directory is valid", async () => {
    const k = await loadKnowledge(join(DIST, "..", "config", "knowledge"));
    assert.ok(k.people.length > 0 && k.projects.length >= 5 && k.decisions.length > 0 && k.lessons.length > 0);
  });

  it("refuses a malformed file with KNOWLEDGE_INVALID naming the file and the path of every bad field", async () => {
    const dir = dirWith({
      "decisions.yaml": [
        "- { date: '2025-01-01', title: ok, decision: ok, why: ok }",
        "- { date: '2025-01-02', title: ok, decision: ok, why: ok }",
        "- { date: 2025-02-30, title: ok, decision: ok, why: ok }",
        "- { date: '2025-03-01', title: '', decision: ok }",
      ].join("\n"),
      "projects.yaml": "- name: shop\n  status: launched\n  summary: the shop\n  owner: ship\n  ownr: typo\n",
    });
    const err = await knowledgeError(dir);
    assert.equal(err.code, "KNOWLEDGE_INVALID");
    assert.equal(err.retryable, false);
    assert.match(err.message, /^decisions\.yaml: \[2\]\.date: is not a calendar date$/m);
    assert.match(err.message, /^decisions\.yaml: \[3\]\.title: /m);
    assert.match(err.message, /^decisions\.yaml: \[3\]\.why: /m);
    assert.match(err.message, /^projects\.yaml: \[0\]\.status: /m);
    const paths = (err.details ?? []).map((d) => d.path).sort();
    assert.deepEqual(paths, ["decisions.yaml[2].date", "decisions.yaml[3].title", "decisions.yaml[3].why", "projects.yaml[0]", "projects.yaml[0].status"]);
    assert.match(err.message, /^projects\.yaml: \[0\]: .*ownr/m);
  });

  it("refuses YAML syntax errors, a file that is not a list, and a misspelt file name", async () => {
    const broken = await knowledgeError(dirWith({ "lessons.yaml": "- date: '2025-01-01'\n  lesson: [unclosed\n" }));
    assert.equal(broken.code, "KNOWLEDGE_INVALID");
    assert.match(broken.message, /^lessons\.yaml: YAML syntax error at line \d+, column \d+/m);
    const notList = await knowledgeError(dirWith({ "people.yaml": "name: Dana\nrole: operator\n" }));
    assert.match(notList.message, /^people\.yaml: .*array/m);
    const typo = await knowledgeError(dirWith({ "decision.yaml": "[]" }));
    assert.match(typo.message, /^decision\.yaml: not a knowledge file/m);
  });

  it("ranks items by the share of the query's words they contain", () => {
    const k: Knowledge = {
      people: [{ name: "Priya Nair", role: "Content editor", notes: "signs off blog posts" }],
      projects: [
        { name: "shop.dcode.example", status: "active", owner: "ship", summary: "The web shop; deploys wait for a quiet hour" },
        { name: "blog.dcode.example", status: "active", summary: "Company blog, two posts a week" },
      ],
      decisions: [
        { date: "2025-01-14", title: "Night deploys", decision: "Shop deploys run at night", why: "checkout errors cost money" },
        { date: "2024-05-01", title: "Old rule", decision: "Shop deploys on Fridays", why: "habit" },
      ],
      lessons: [{ date: "2025-01-28", lesson: "Check disk space before a build", context: "a full disk broke two sites" }],
    };
    const hits = searchKnowledge(k, "When do shop deploys run?", 3);
    assert.deepEqual(hits.map((h) => h.kind), ["decision", "project", "decision"]);
    assert.equal(hits[0]?.score, 1, "every query word: shop, deploy, run");
    assert.match(hits[0]?.text ?? "", /^2025-01-14 Night deploys: Shop deploys run at night Why: checkout errors cost money$/);
    assert.ok((hits[1]?.score ?? 0) < 1);
    assert.equal(hits[1]?.score, hits[2]?.score);
    assert.match(hits[2]?.text ?? "", /Old rule/, "a project before a decision it ties with, by file order");
    for (const h of hits) assert.ok(!h.text.includes("\n"));

    assert.deepEqual(searchKnowledge(k, "who edits blog posts", 5).map((h) => h.kind), ["person", "project"]);
    assert.deepEqual(searchKnowledge(k, "kubernetes", 5), []);
    assert.deepEqual(searchKnowledge(k, "the and of", 5), [], "stop words alone match nothing");
    assert.equal(searchKnowledge(k, "shop", 1).length, 1);
    const reversed: Knowledge = { ...k, decisions: [...k.decisions].reverse() };
    assert.deepEqual(searchKnowledge(reversed, "shop deploys", 3).map((h) => h.text.slice(0, 10)), ["shop.dcode", "2025-01-14", "2024-05-01"], "of tied decisions, the newer first");
  });
});
