import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { HEADINGS, SECTION_NAMES, assembleContext, matchSkills, type AssembledContext, type AssembleInput, type ContextBudgets } from "../../memory/context-assembly.js";
import type { MemorySources, ReferenceItem } from "../../memory/memory-sources.js";
import { SkillFiles, type SkillFileSystem } from "../../memory/skill-files.js";
import type { SearchHit } from "../../memory/vector-store.js";
import type { ChatMessage, SessionLogEntry } from "../../protocol/index.js";
import { estimateInputTokens, estimateTextTokens } from "../../protocol/index.js";

const agent = {
  id: "scout",
  name: "Scout",
  role: "You research markets and competitors for the company.",
  skills: [
    { id: "research", name: "Research", description: "Finds and compares public sources.", tags: ["research", "competitor"], examples: ["research a market"] },
    { id: "pricing", name: "Pricing", description: "Reads pricing pages and compares plans.", tags: ["pricing", "price", "competitor"] },
    { id: "writing", name: "Writing", description: "Drafts posts and emails.", tags: ["draft", "email"] },
  ],
};
const roomy: ContextBudgets = { agent: 1500, session: 1500, semantic: 800, reference: 600, skills: 800 };
const TASK = "Check the competitor pricing pages for Acme";

type Answer<T> = T | Error | "hang";

/** Our own fake of MemorySources: fixed answers, an Error to throw, or "hang" for a source that never answers. */
class FakeSources implements MemorySources {
  calls: string[] = [];
  constructor(
    private readonly answers: {
      agent?: Answer<string[]>;
      session?: Answer<SessionLogEntry[]>;
      semantic?: Answer<SearchHit[]>;
      reference?: Answer<ReferenceItem[]>;
    } = {},
  ) {}
  private answer<T>(name: string, value: Answer<T> | undefined, empty: T): Promise<T> {
    this.calls.push(name);
    if (value === "hang") return new Promise(() => {});
    if (value instanceof Error) return Promise.reject(value);
    return Promise.resolve(value ?? empty);
  }
  agentMemory = (agentId: string) => this.answer(`agent:${agentId}`, this.answers.agent, []);
  sessionLog = (agentId: string) => this.answer(`session:${agentId}`, this.answers.session, []);
  semantic = (agentId: string, query: string, limit: number) => this.answer(`semantic:${agentId}:${limit}:${query}`, this.answers.semantic, []);
  reference = (query: string, limit: number) => this.answer(`reference:${limit}:${query}`, this.answers.reference, []);
}

/** Skill files in memory; every read is counted by path. */
function skillFiles(files: Record<string, string> = {}) {
  const reads: string[] = [];
  const fs: SkillFileSystem = {
    async stat(path) {
      const text = files[path];
      return text === undefined ? undefined : { mtimeMs: 1, size: Buffer.byteLength(text) };
    },
    async readHead(path, maxBytes) {
      reads.push(path);
      return (files[path] ?? "").slice(0, maxBytes);
    },
  };
  return { skills: new SkillFiles({ dir: "/skills", fs }), reads };
}

const input = (overrides: Partial<AssembleInput> = {}): AssembleInput => ({ agent, task: TASK, budgets: roomy, semanticTopK: 5, ...overrides });
const entry = (at: number, text: string, kind: SessionLogEntry["kind"] = "note"): SessionLogEntry => ({ agentId: "scout", day: at < 100 ? "2026-11-22" : "2026-11-23", at, kind, text });
const hit = (id: string, score: number, text: string): SearchHit => ({ id, score, payload: { agentId: "scout", kind: "insight", text, updatedAt: 1 } });
const section = (context: AssembledContext, name: string) => context.sections.find((s) => s.name === name)!;

/** The lines under a heading in the system message, up to the next blank line. */
function block(system: string, heading: string): string[] | undefined {
  const start = system.split("\n\n").find((part) => part.startsWith(`${heading}\n`));
  return start?.split("\n");
}

function oversized() {
  const long = (i: number, what: string) => `${what} ${i}: ${"a detail worth keeping about competitor pricing ".repeat((i % 4) + 1)}`.trim();
  return new FakeSources({
    agent: Array.from({ length: 300 }, (_, i) => long(i, "memory")),
    session: Array.from({ length: 300 }, (_, i) => entry(i * 10, long(i, "entry"))),
    semantic: Array.from({ length: 50 }, (_, i) => hit(`h${i}`, 0.99 - i / 100, long(i, "insight"))),
    reference: Array.from({ length: 50 }, (_, i) => ({ kind: "lesson", text: long(i, "lesson"), score: 1 - i / 100 })),
  });
}

describe("assembleContext", () => {
  it("keeps every tier within its budget with oversized inputs, by whole items", async () => {
    const budgets: ContextBudgets = { agent: 120, session: 90, semantic: 70, reference: 60, skills: 50 };
    const long = Array.from({ length: 100 }, (_, i) => `Rule ${i}: always compare the annual and the monthly price.`).join("\n");
    const { skills } = skillFiles({ "/skills/pricing.md": long, "/skills/research.md": long });
    const sources = oversized();
    const context = await assembleContext(input({ budgets }), sources, skills);
    const system = context.messages[0]!.content;
    for (const name of ["agent", "session", "semantic", "reference", "skills"] as const) {
      const s = section(context, name);
      assert.ok(s.tokens <= budgets[name], `${name}: ${s.tokens} > ${budgets[name]}`);
      assert.ok(s.items > 0, `${name} has items`);
      assert.equal(s.truncated, true, `${name} was cut`);
      const lines = block(system, HEADINGS[name]);
      assert.ok(lines, `${name} is in the prompt`);
      assert.ok(estimateTextTokens(lines.join("\n")) <= budgets[name]);
    }
    // whole items only: every line under a memory heading is an input item, entire
    const memories = new Set((await sources.agentMemory("scout")).map((l) => `- ${l}`));
    for (const line of block(system, HEADINGS.agent)!.slice(1)) assert.ok(memories.has(line), `not a whole memory line: ${line}`);
    const lessons = new Set((await sources.reference("", 0)).map((r) => `- (lesson) ${r.text}`));
    for (const line of block(system, HEADINGS.reference)!.slice(1)) assert.ok(lessons.has(line), `not a whole lesson: ${line}`);
    const entries = new Set((await sources.sessionLog("scout")).map((e) => e.text));
    for (const line of block(system, HEADINGS.session)!.slice(1)) assert.ok(entries.has(line.replace(/^- \S+ note: /, "")), line);
  });

  it("adds no heading for an empty tier, and reports it as empty", async () => {
    const { skills, reads } = skillFiles();
    const context = await assembleContext(input({ task: "Say hello" }), new FakeSources(), skills);
    assert.equal(context.messages[0]!.content, `You are Scout. ${agent.role}`);
    for (const heading of Object.values(HEADINGS)) assert.ok(!context.messages[0]!.content.includes(heading));
    assert.deepEqual(context.sections.map((s) => s.name), SECTION_NAMES);
    for (const name of ["skills", "agent", "session", "semantic", "reference", "history"]) {
      assert.deepEqual(section(context, name), { name, tokens: 0, items: 0, truncated: false });
    }
    assert.deepEqual(context.messages.at(-1), { role: "user", content: "Say hello" });
    assert.equal(reads.length, 0);
  });

  it("reads only the skills the task matches, best first, and each file once", async () => {
    const { skills, reads } = skillFiles({
      "/skills/research.md": "Cite every source.",
      "/skills/pricing.md": "Compare annual and monthly prices.",
      "/skills/writing.md": "Write plainly.",
    });
    const sources = new FakeSources();
    const context = await assembleContext(input({ task: "Compare competitor price and pricing tiers" }), sources, skills);
    assert.deepEqual([...reads].sort(), ["/skills/pricing.md", "/skills/research.md"], "writing.md is never read");
    const lines = block(context.messages[0]!.content, HEADINGS.skills)!;
    assert.deepEqual(lines, [HEADINGS.skills, "### Pricing", "Compare annual and monthly prices.", "### Research", "Cite every source."]);
    assert.equal(section(context, "skills").items, 2);
    await assembleContext(input({ task: "Compare competitor price and pricing tiers" }), sources, skills);
    assert.equal(reads.length, 2, "unchanged files come from the cache");
    assert.deepEqual(matchSkills(agent, "draft an email").map((s) => s.id), ["writing"]);
  });

  it("uses the skill's description and examples when its file is missing", async () => {
    const { skills } = skillFiles({});
    const context = await assembleContext(input({ task: "research the market" }), new FakeSources(), skills);
    assert.deepEqual(block(context.messages[0]!.content, HEADINGS.skills), [HEADINGS.skills, "### Research", "Finds and compares public sources.", "Examples:", "- research a market"]);
  });

  it("leaves out a tier whose source throws, rejects or hangs, and says so", async () => {
    const sources = new FakeSources({
      agent: new Error("KV down"),
      session: "hang",
      semantic: [hit("a", 0.9, "Acme raised prices in March.")],
      reference: [{ kind: "project", text: "Pricing review due Friday.", score: 1 }],
    });
    sources.agentMemory = () => {
      throw new Error("KV down");
    };
    const { skills } = skillFiles();
    const started = Date.now();
    const context = await assembleContext(input({ sourceTimeoutMs: 50 }), sources, skills);
    assert.ok(Date.now() - started < 2_000);
    const system = context.messages[0]!.content;
    assert.equal(block(system, HEADINGS.agent), undefined);
    assert.equal(block(system, HEADINGS.session), undefined);
    assert.deepEqual(section(context, "agent"), { name: "agent", tokens: 0, items: 0, truncated: false, error: "INTERNAL: KV down" });
    assert.match(section(context, "session").error ?? "", /^TIMEOUT/);
    assert.deepEqual(block(system, HEADINGS.semantic), [HEADINGS.semantic, "- Acme raised prices in March."]);
    assert.deepEqual(block(system, HEADINGS.reference), [HEADINGS.reference, "- (project) Pricing review due Friday."]);
  });

  it("prunes history to a summary and the last two turns, then puts the task last", async () => {
    const history: ChatMessage[] = [];
    for (let t = 1; t <= 5; t++) {
      history.push({ role: "user", content: `Question ${t}. With detail.` }, { role: "assistant", content: `Answer ${t}. More.` });
    }
    const { skills } = skillFiles();
    const context = await assembleContext(input({ history }), new FakeSources(), skills);
    const [system, summary, ...rest] = context.messages;
    assert.equal(system!.role, "system");
    assert.equal(summary!.role, "system");
    assert.match(summary!.content, /^Summary of earlier conversation: /);
    assert.match(summary!.content, /Question 1\./);
    assert.deepEqual(rest, [...history.slice(6), { role: "user", content: TASK }]);
    assert.deepEqual(section(context, "history"), {
      name: "history",
      tokens: [summary!, ...history.slice(6)].reduce((n, m) => n + estimateTextTokens(m.content), 0),
      items: 5,
      truncated: true,
    });
  });

  it("totals its sections, which match the estimate of the messages up to their framing", async () => {
    const history: ChatMessage[] = Array.from({ length: 8 }, (_, i) => ({ role: i % 2 ? "assistant" : "user", content: `Turn ${i}. Some text here.` }));
    const { skills } = skillFiles({ "/skills/pricing.md": "Compare plans." });
    const context = await assembleContext(input({ history }), oversized(), skills);
    assert.equal(context.totalTokens, context.sections.reduce((n, s) => n + s.tokens, 0));
    const estimate = estimateInputTokens(context.messages);
    const framing = 4 * context.messages.length;
    // the rest is rounding: each section is rounded up on its own, and the blank lines between them count once
    const slack = context.sections.length;
    assert.ok(Math.abs(estimate - framing - context.totalTokens) <= slack, `${estimate} - ${framing} vs ${context.totalTokens}`);
  });

  it("puts the stable sections first and the volatile last, so two tasks share the prompt's prefix up to them", async () => {
    const sources = () =>
      new FakeSources({
        agent: ["Acme sells annual plans.", "The office moved to Berlin."],
        session: [entry(10, "Yesterday's note.")],
        semantic: [hit("d", 0.7, "Prices rise in January.")],
        reference: [{ kind: "decision", text: "We match Acme's price.", score: 0.8 }],
      });
    const { skills } = skillFiles();
    const one = (await assembleContext(input(), sources(), skills)).messages[0]!.content;
    const two = (await assembleContext(input({ task: `${TASK} And the office?` }), sources(), skills)).messages[0]!.content;
    const at = (text: string, heading: string) => text.indexOf(heading);
    const order = [HEADINGS.reference, HEADINGS.agent, HEADINGS.semantic, HEADINGS.session].map((h) => at(one, h));
    assert.deepEqual([...order].sort((a, b) => a - b), order, "reference, MEMORY.md, then related memories and today's log");
    assert.ok(order.every((i) => i > 0));
    // MEMORY.md in the file's order whatever the task: the stable part is byte for byte the same
    assert.equal(one.slice(0, at(one, HEADINGS.semantic)), two.slice(0, at(two, HEADINGS.semantic)));
  });

  it("is deterministic, ranks each tier, drops weak and repeated semantic hits", async () => {
    const memories = ["Acme sells annual plans.", "The office moved to Berlin.", "Acme pricing changed in May.", "Acme pricing pages list three tiers."];
    const make = (hits: SearchHit[]) =>
      new FakeSources({
        agent: memories,
        session: [entry(10, "Yesterday's note."), entry(200, "Second today."), entry(150, "First today.")],
        semantic: hits,
        reference: [{ kind: "person", text: "Dana owns pricing.", score: 0.5 }, { kind: "decision", text: "We match Acme's price.", score: 0.8 }],
      });
    const hits = [hit("b", 0.5, "Competitors discount in Q4."), hit("a", 0.5, "Acme pricing changed in May."), hit("c", 0.1, "Unrelated."), hit("d", 0.7, "Prices rise in January.")];
    const { skills } = skillFiles();
    const one = await assembleContext(input(), make(hits), skills);
    const two = await assembleContext(input(), make([...hits].reverse()), skills);
    assert.deepEqual(one, two);
    const system = one.messages[0]!.content;
    // all fit: shown in the file's order (ranking only chooses the lines when they do not all fit)
    assert.deepEqual(block(system, HEADINGS.agent), [
      HEADINGS.agent,
      "- Acme sells annual plans.",
      "- The office moved to Berlin.",
      "- Acme pricing changed in May.",
      "- Acme pricing pages list three tiers.",
    ]);
    assert.deepEqual(block(system, HEADINGS.session), [HEADINGS.session, "- 2026-11-23 note: Second today.", "- 2026-11-23 note: First today.", "- 2026-11-22 note: Yesterday's note."]);
    assert.deepEqual(block(system, HEADINGS.semantic), [HEADINGS.semantic, "- Prices rise in January.", "- Competitors discount in Q4."]);
    assert.deepEqual(block(system, HEADINGS.reference), [HEADINGS.reference, "- (decision) We match Acme's price.", "- (person) Dana owns pricing."]);
    assert.equal(section(one, "semantic").truncated, false, "below the floor or already shown is not a cut");
  });

  it("asks the semantic and reference tiers with the task and semanticTopK", async () => {
    const sources = new FakeSources();
    const { skills } = skillFiles();
    await assembleContext(input({ semanticTopK: 3 }), sources, skills);
    assert.deepEqual([...sources.calls].sort(), ["agent:scout", `reference:3:${TASK}`, `semantic:scout:3:${TASK}`, "session:scout"]);
  });
});
