import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { z } from "zod";
import { AgentConfig, parseFleetConfig, SentinelConfig } from "../../config/index.js";
import { evaluateProposal, type SentinelInput } from "../../governance/sentinel.js";
import { defineTool, type ToolDefinition } from "../../governance/tool.js";
import { linksIn } from "../../governance/rules/index.js";
import type { RuleResult } from "../../protocol/index.js";
import { FleetError } from "../../protocol/index.js";

/*
 * Sentinel's brand_safety rule, one describe per kind of rule: blocked words, blocked claims, link domains, length and
 * the required disclaimer; then how a channel's policy combines with "*", and which tools it reads. Each case runs the
 * whole of Sentinel and reads the brand_safety result, as production does.
 */

const NOON = Date.parse("2026-01-15T12:00:00Z");
const ok = async () => ({});

// the built-ins' declarations (governance/tools/outbox-tools.ts): a post names its channel, an email goes to "email"
const post = defineTool({
  name: "channel_post", description: "post", risk: "PROPOSE", handler: ok,
  input: z.object({ channel: z.string(), text: z.string(), to: z.string().default("*") }),
  message: { channel: { field: "channel" }, textFields: ["text"], bodyField: "text" },
});
const email = defineTool({
  name: "email_send", description: "email", risk: "CONFIRM", handler: ok, personalDataFields: ["to"], targetFields: ["to"],
  input: z.object({ to: z.string(), subject: z.string(), body: z.string() }),
  message: { channel: "email", textFields: ["subject", "body"], bodyField: "body" },
});
const note = defineTool({ name: "note_write", description: "note", risk: "AUTO+", handler: ok, input: z.object({ text: z.string() }) });

function run(tool: ToolDefinition, proposalInput: unknown, brandSafety: unknown): RuleResult {
  const input: SentinelInput = {
    proposal: { id: "p-1", agentId: "plume", tool: tool.name, input: proposalInput, reason: "because", submittedAt: NOON },
    tool,
    agent: AgentConfig.parse({
      id: "plume", name: "Plume", role: "content", layer: "execution", defaultTier: "capable", cycleMinutes: 30, dailyCapUsd: 8,
      tools: ["channel_post", "email_send", "note_write"], skills: [{ id: "content", name: "Content", description: "writes", tags: ["content"] }],
    }),
    fleet: { quietHours: { start: "23:30", end: "06:30" }, timeZone: "UTC" },
    rules: SentinelConfig.parse({ targetAllowList: ["example.com"], brandSafety }),
    budget: { spentUsd: 0, capUsd: 8 },
    others: [],
    now: NOON,
  };
  const verdict = evaluateProposal(input);
  const result = verdict.results.find((r) => r.rule === "brand_safety");
  assert.ok(result, "brand_safety ran");
  if (result.outcome === "fail") assert.deepEqual(verdict.rejectedBy, { rule: "brand_safety", reason: result.reason }, "the refusal names the rule");
  return result;
}

const posting = (text: string, channel = "telegram") => ({ channel, text });
const mailing = (body: string, subject = "Weekly numbers") => ({ to: "ops@example.com", subject, body });
const policy = (channels: Record<string, unknown>) => ({ channels });

function fails(result: RuleResult, ...facts: RegExp[]): void {
  assert.equal(result.outcome, "fail", result.reason);
  for (const fact of facts) assert.match(result.reason, fact);
}

describe("brand_safety: blocked words", () => {
  const words = policy({ "*": { blockedWords: ["cheap", "free money"] } });
  it("refuses a blocked word in any case, naming the word and the field", () => {
    fails(run(post, posting("Our CHEAP plan is back"), words), /blocked word "cheap" in text/, /policy of channel telegram/);
    fails(run(email, mailing("All good", "Free money inside"), words), /blocked word "free money" in subject/);
    fails(run(email, mailing("Claim your free\n   money now"), words), /blocked word "free money" in body/);
  });
  it("matches whole words only", () => {
    assert.equal(run(post, posting("The cheapest path is not always cheapness"), words).outcome, "pass");
    fails(run(post, posting("cheap!"), words), /"cheap"/);
  });
});

describe("brand_safety: blocked claims", () => {
  const claims = policy({ "*": { blockedClaims: ["guarantee(d)?\\s+(results|rankings)", "#1\\s+in\\s+\\w+"] } });
  it("refuses a claim matching a pattern, quoting what matched", () => {
    fails(run(post, posting("We Guaranteed   rankings within a week"), claims), /blocked claim \/guarantee\(d\)\?\\s\+\(results\|rankings\)\/ matched "Guaranteed rankings" in text/);
    fails(run(email, mailing("Best regards", "#1 in Europe"), claims), /matched "#1 in Europe" in subject/);
  });
  it("passes text that makes no such claim", () => {
    assert.equal(run(post, posting("Rankings improved for three sites"), claims).outcome, "pass");
  });
  it("refuses a pattern that does not compile when the config is loaded", () => {
    const bad = SentinelConfig.safeParse({ brandSafety: { channels: { "*": { blockedClaims: ["(unclosed"] } } } });
    assert.ok(!bad.success);
    assert.deepEqual(bad.error.issues.map((i) => [i.path.join("."), i.message]), [["brandSafety.channels.*.blockedClaims.0", "not a valid regular expression"]]);
  });
});

describe("brand_safety: allowed link domains", () => {
  const links = policy({ "*": { allowedLinkDomains: ["dcode.dev", "*.dcode.dev"] } });
  it("passes links to allowed domains and their listed subdomains", () => {
    assert.equal(run(post, posting("Read https://dcode.dev/blog and https://docs.dcode.dev/start."), links).outcome, "pass");
  });
  it("refuses a link elsewhere, bare www. names included, naming the host", () => {
    fails(run(post, posting("Compare at https://competitor.example/pricing"), links), /link to competitor\.example in text is not on the allowed link domains \(dcode\.dev, \*\.dcode\.dev\)/);
    fails(run(email, mailing("See www.Other-Site.test/offer, today."), links), /link to www\.other-site\.test in body/);
    fails(run(post, posting("https://dcode.dev.evil.test/login"), links), /dcode\.dev\.evil\.test/);
  });
  it("an empty list allows no links at all; no list checks none", () => {
    fails(run(post, posting("https://dcode.dev"), policy({ "*": { allowedLinkDomains: [] } })), /not on the allowed link domains \(none\)/);
    assert.equal(run(post, posting("https://anything.test"), policy({ "*": { blockedWords: ["x"] } })).outcome, "pass");
  });
  it("finds http(s) and www. links and leaves the sentence's punctuation out", () => {
    assert.deepEqual(linksIn("See (https://a.test/x), www.b.test. And http://c.test:8080/?q=1!"), ["https://a.test/x", "www.b.test", "http://c.test:8080/?q=1"]);
  });
});

describe("brand_safety: length", () => {
  it("refuses a body over the maximum, counting characters, not bytes", () => {
    const max = policy({ telegram: { maxLength: 10 } });
    assert.equal(run(post, posting("🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀"), max).outcome, "pass", "ten emoji are ten characters");
    fails(run(post, posting("eleven char"), max), /text is 11 characters, more than the 10 allowed/);
  });
  it("measures an email's body, not its subject", () => {
    assert.equal(run(email, mailing("short", "a subject far longer than ten"), policy({ email: { maxLength: 10 } })).outcome, "pass");
  });
});

describe("brand_safety: required disclaimer", () => {
  const disclaimer = policy({ email: { requiredDisclaimer: "You get this because you asked for reports." } });
  it("passes a body that carries it, whatever its case and line breaks", () => {
    assert.equal(run(email, mailing("Numbers.\n\nyou get this because\nyou asked for reports."), disclaimer).outcome, "pass");
  });
  it("refuses a body without it, quoting it", () => {
    fails(run(email, mailing("Numbers.", "You get this because you asked for reports."), disclaimer), /the required disclaimer "You get this because you asked for reports\." is missing from body/);
  });
});

describe("brand_safety: channels and tools", () => {
  const layered = policy({
    "*": { blockedWords: ["cheap"], allowedLinkDomains: ["dcode.dev"], maxLength: 500 },
    discord: { blockedWords: ["lol"], allowedLinkDomains: ["discord.gg"] },
  });
  it("a channel's policy adds its words to those of \"*\" and replaces its link domains", () => {
    fails(run(post, posting("cheap", "discord"), layered), /"cheap"/);
    fails(run(post, posting("lol", "discord"), layered), /"lol"/);
    assert.equal(run(post, posting("lol", "telegram"), layered).outcome, "pass", "discord's words stay on discord");
    assert.equal(run(post, posting("join https://discord.gg/abc", "discord"), layered).outcome, "pass");
    fails(run(post, posting("https://dcode.dev", "discord"), layered), /dcode\.dev/);
    fails(run(post, posting("x".repeat(501), "discord"), layered), /more than the 500 allowed/);
  });
  it("reports every problem at once, up to three and a count", () => {
    const result = run(post, posting("cheap lol https://x.test https://y.test", "discord"), layered);
    fails(result, /"cheap".*; .*"lol".*; link to x\.test.* and 1 more/);
  });
  it("passes a channel without a policy, and tools that send no message", () => {
    assert.equal(run(post, posting("cheap"), policy({ discord: { blockedWords: ["cheap"] } })).reason, "no brand-safety policy for channel telegram");
    assert.equal(run(note, { text: "cheap" }, layered).reason, "note_write sends no message");
  });
  it("a post whose channel cannot be read fails closed", () => {
    fails(run(post, { channel: 42, text: "hi" }, layered), /channel field holds no channel name/);
  });
  it("is configured under governance.sentinel.brandSafety; a misspelt key is refused at start with its path", () => {
    const yaml = (policyYaml: string) => `fleet: { name: t, timeZone: UTC, dailyCapUsd: 10 }
tiers:
${["nano", "workhorse", "capable", "power", "premium"].map((t) => `  ${t}: { model: m-${t}, inputPerM: 1, outputPerM: 1 }`).join("\n")}
agents:
  - { id: atlas, name: A, role: r, layer: orchestration, defaultTier: nano, cycleMinutes: 20, dailyCapUsd: 1, tools: [channel_post], skills: [{ id: s, name: S, description: s, tags: [s] }] }
governance:
  sentinel:
    brandSafety: ${policyYaml}
`;
    const config = parseFleetConfig(yaml(`{ channels: { "*": { blockedWords: [cheap] } } }`), "t.yaml");
    assert.deepEqual(config.governance.sentinel.brandSafety.channels["*"]?.blockedWords, ["cheap"]);
    assert.throws(
      () => parseFleetConfig(yaml(`{ channels: { email: { blockedWord: [cheap] } } }`), "t.yaml"),
      (err) => err instanceof FleetError && err.code === "CONFIG_INVALID" && /governance\.sentinel\.brandSafety\.channels\.email\.blockedWord: unknown key, did you mean "blockedWords"\?/.test(err.message),
    );
  });
});
