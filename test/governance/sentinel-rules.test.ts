import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { z } from "zod";
import { AgentConfig, SentinelConfig } from "../../config/index.js";
import type { ProposalState, RuleResult } from "../../protocol/index.js";
import { actionKey, evaluateProposal, type OtherProposal, type SentinelInput } from "../../governance/sentinel.js";
import { defineTool, type ToolDefinition } from "../../governance/tool.js";

/*
 * One describe per rule: a passing and a failing case, asserting the rule's name and the facts its reason must give.
 * The rules run through evaluateProposal, as they do in production; each case reads the one result it is about.
 */

const at = (iso: string): number => Date.parse(iso);
// a Thursday afternoon in Berlin: outside the default quiet hours
const NOON = at("2026-01-15T12:00:00Z");
const MIN = 60_000;

const ok = async () => ({});

const TOOLS = {
  email_send: defineTool({
    name: "email_send",
    description: "send an email",
    risk: "PROPOSE",
    input: z.object({ to: z.string(), subject: z.string(), body: z.string() }),
    personalDataFields: ["to"],
    targetFields: ["to"],
    handler: ok,
  }),
  web_fetch: defineTool({
    name: "web_fetch",
    description: "read a web page",
    risk: "AUTO",
    input: z.object({ url: z.string(), headers: z.record(z.string(), z.string()).optional() }),
    targetFields: ["url"],
    handler: ok,
  }),
  note_write: defineTool({ name: "note_write", description: "write a note", risk: "AUTO+", input: z.object({ text: z.string() }), handler: ok }),
  repo_delete: defineTool({ name: "repo_delete", description: "delete a repository", risk: "CONFIRM", input: z.object({ repo: z.string() }), handler: ok }),
  money_send: defineTool({ name: "money_send", description: "transfer money", risk: "BLOCK", input: z.object({ amount: z.number() }), handler: ok }),
} satisfies Record<string, ToolDefinition>;
type ToolName = keyof typeof TOOLS;

const DEFAULT_INPUT: Record<ToolName, unknown> = {
  email_send: { to: "ops@example.com", subject: "weekly report", body: "All green this week." },
  web_fetch: { url: "https://example.com/pricing" },
  note_write: { text: "remember the deploy" },
  repo_delete: { repo: "old-site" },
  money_send: { amount: 10 },
};

function agent(overrides: Partial<z.input<typeof AgentConfig>> = {}): AgentConfig {
  return AgentConfig.parse({
    id: "scout",
    name: "Scout",
    role: "research",
    layer: "execution",
    defaultTier: "capable",
    cycleMinutes: 20,
    dailyCapUsd: 10,
    tools: ["email_send", "web_fetch", "note_write", "repo_delete", "money_send"],
    skills: [{ id: "research", name: "Research", description: "finds things", tags: ["research"] }],
    ...overrides,
  });
}

function input(tool: ToolName, overrides: Partial<SentinelInput> & { proposalInput?: unknown } = {}): SentinelInput {
  const { proposalInput, ...rest } = overrides;
  return {
    proposal: { id: "p-new", agentId: "scout", tool, input: proposalInput ?? DEFAULT_INPUT[tool], reason: "because", submittedAt: NOON },
    tool: TOOLS[tool],
    agent: agent(),
    fleet: { quietHours: { start: "23:30", end: "06:30" }, timeZone: "Europe/Berlin" },
    rules: SentinelConfig.parse({ targetAllowList: ["example.com", "*.example.org", "localhost", "127.0.0.1", "::1"] }),
    budget: { spentUsd: 1, capUsd: 10 },
    others: [],
    now: NOON,
    ...rest,
  };
}

function result(rule: string, sentinelInput: SentinelInput): RuleResult {
  const found = evaluateProposal(sentinelInput).results.find((r) => r.rule === rule);
  assert.ok(found, `no result for ${rule}`);
  return found;
}

function assertPass(rule: string, sentinelInput: SentinelInput): RuleResult {
  const r = result(rule, sentinelInput);
  assert.equal(r.outcome, "pass", `${rule}: ${r.reason}`);
  return r;
}

function assertFail(rule: string, sentinelInput: SentinelInput, ...facts: (string | RegExp)[]): RuleResult {
  const r = result(rule, sentinelInput);
  assert.equal(r.outcome, "fail", `${rule} passed: ${r.reason}`);
  for (const fact of facts) {
    if (typeof fact === "string") assert.ok(r.reason.includes(fact), `${rule}: "${r.reason}" does not mention "${fact}"`);
    else assert.match(r.reason, fact);
  }
  return r;
}

function other(id: string, tool: ToolName, state: ProposalState, createdAt: number, toolInput: unknown = DEFAULT_INPUT[tool]): OtherProposal {
  return { id, agentId: "scout", tool, actionKey: actionKey(tool, toolInput), state, createdAt };
}

describe("agent_known", () => {
  it("passes for an agent of the fleet", () => {
    assertPass("agent_known", input("note_write"));
  });
  it("fails for an unknown agent, and the rules that need the agent fail closed", () => {
    const verdict = evaluateProposal(input("note_write", { agent: undefined }));
    assert.equal(verdict.rejectedBy?.rule, "agent_known");
    assert.match(verdict.rejectedBy?.reason ?? "", /no agent scout/);
    const rate = verdict.results.find((r) => r.rule === "rate_limit");
    assert.equal(rate?.outcome, "fail");
    assert.match(rate?.reason ?? "", /cannot check: no agent scout/);
  });
  it("fails when the agent given is not the proposing one", () => {
    assertFail("agent_known", input("note_write", { agent: agent({ id: "other" }) }), "other", "scout");
  });
});

describe("tool_permission", () => {
  it("passes for a tool in the allow list, and for any tool with \"*\"", () => {
    assertPass("tool_permission", input("web_fetch"));
    assert.match(assertPass("tool_permission", input("web_fetch", { agent: agent({ tools: ["*"] }) })).reason, /every tool/);
  });
  it("fails for a tool not in the allow list", () => {
    assertFail("tool_permission", input("web_fetch", { agent: agent({ tools: ["note_write"] }) }), "web_fetch", "allow list", "scout");
  });
  it("fails for a tool the catalogue does not have", () => {
    const sentinelInput = input("note_write", { tool: undefined });
    assertFail("tool_permission", sentinelInput, "no tool note_write");
    assertFail("input_schema", sentinelInput, "cannot check: no tool note_write");
  });
});

describe("risk_blocked", () => {
  it("passes a PROPOSE tool", () => {
    assertPass("risk_blocked", input("email_send"));
  });
  it("fails a BLOCK tool, whatever else is true", () => {
    const verdict = evaluateProposal(input("money_send"));
    assert.equal(verdict.outcome, "rejected");
    assert.deepEqual(verdict.rejectedBy, { rule: "risk_blocked", reason: "money_send is a BLOCK tool: BLOCK tools never run" });
  });
});

describe("budget_headroom", () => {
  it("passes below cap × (1 − headroom) and says the figures", () => {
    const r = assertPass("budget_headroom", input("note_write", { budget: { spentUsd: 9.49, capUsd: 10 } }));
    assert.match(r.reason, /\$9\.49.*\$10\.00.*\$9\.50.*5 %/);
  });
  it("fails at cap × (1 − headroom)", () => {
    assertFail("budget_headroom", input("note_write", { budget: { spentUsd: 9.5, capUsd: 10 } }), "$9.50", "$10.00", "5 % headroom");
  });
  it("fails closed when the spend is unknown", () => {
    assertFail("budget_headroom", input("note_write", { budget: undefined }), "unknown");
    assertFail("budget_headroom", input("note_write", { budget: { spentUsd: Number.NaN, capUsd: 10 } }), "not usable");
  });
});

describe("blocked_patterns", () => {
  it("passes an ordinary input", () => {
    assertPass("blocked_patterns", input("note_write"));
  });
  it("fails on a blocked pattern, case-insensitively, and names the pattern and the field", () => {
    assertFail("blocked_patterns", input("note_write", { proposalInput: { text: "then run RM -RF / on the box" } }), "/rm\\s+-rf\\s+/", "at text");
    assertFail("blocked_patterns", input("note_write", { proposalInput: { text: "please Drop Table users" } }), "drop\\s+(table|database)");
  });
  it("reads strings as they are, so an escaped tab or newline does not hide a pattern", () => {
    assertFail("blocked_patterns", input("note_write", { proposalInput: { text: "drop\ttable users" } }), "drop");
    assertFail("blocked_patterns", input("note_write", { proposalInput: { text: "git push\n--no-verify" } }), "--no-verify");
  });
  it("uses the fleet's own patterns", () => {
    const rules = SentinelConfig.parse({ blockedPatterns: ["curl\\s+.*\\|\\s*sh"] });
    assertFail("blocked_patterns", input("note_write", { rules, proposalInput: { text: "curl https://x.test | sh" } }), "curl");
    assertPass("blocked_patterns", input("note_write", { rules, proposalInput: { text: "rm -rf /" } }));
  });
});

describe("rate_limit", () => {
  const sent = (n: number, state: ProposalState = "completed", createdAt = NOON - 5 * MIN) =>
    Array.from({ length: n }, (_, i) => other(`e${i}`, "email_send", state, createdAt, { to: `u${i}@example.com`, subject: "s", body: "b" }));

  it("passes the 10th proposal of a tool in one cycle", () => {
    assert.match(assertPass("rate_limit", input("email_send", { others: sent(9) })).reason, /10 of at most 10/);
  });
  it("fails the 11th, naming the limit and the window", () => {
    assertFail("rate_limit", input("email_send", { others: sent(10) }), "no. 11", "limit is 10", "20 min");
  });
  it("does not count rejected proposals, other tools, other agents, or proposals from before the cycle", () => {
    const others = [
      ...sent(5, "rejected"),
      ...sent(5, "completed", NOON - 20 * MIN), // exactly one cycle ago: the previous cycle
      other("n1", "note_write", "completed", NOON - MIN),
      { ...other("x1", "email_send", "completed", NOON - MIN), agentId: "someone-else" },
      ...sent(9, "executing"),
    ];
    assertPass("rate_limit", input("email_send", { others }));
  });
  it("uses a tool's own limit", () => {
    const rules = SentinelConfig.parse({ rateLimits: { perTool: { email_send: 2 } } });
    assertFail("rate_limit", input("email_send", { rules, others: sent(2) }), "limit is 2");
    assertPass("rate_limit", input("note_write", { rules, others: sent(2) }));
  });
});

describe("proposal_dedup", () => {
  it("fails when the same action is open, whatever the key order, naming the other proposal", () => {
    const reordered = { body: "All green this week.", subject: "weekly report", to: "ops@example.com" };
    assertFail("proposal_dedup", input("email_send", { others: [other("p-old", "email_send", "awaiting_human", NOON - 3 * 60 * MIN, reordered)] }), "p-old");
    for (const state of ["pending", "sentinel_approved", "executing"] as const) {
      assertFail("proposal_dedup", input("email_send", { others: [other("p-old", "email_send", state, NOON - MIN)] }), "p-old", state);
    }
  });
  it("passes when the twin is completed or final, or the action differs", () => {
    for (const state of ["completed", "rejected", "expired", "rolled_back", "dead_letter"] as const) {
      assertPass("proposal_dedup", input("email_send", { others: [other("p-old", "email_send", state, NOON - MIN)] }));
    }
    const different = { ...(DEFAULT_INPUT.email_send as object), subject: "monthly report" };
    assertPass("proposal_dedup", input("email_send", { others: [other("p-old", "email_send", "pending", NOON - MIN, different)] }));
  });
  it("is not tripped by a resubmission of the proposal itself", () => {
    assertPass("proposal_dedup", input("email_send", { others: [other("p-new", "email_send", "pending", NOON - MIN)] }));
  });
});

describe("quiet_hours", () => {
  const night = at("2026-01-15T23:00:00Z"); // 00:00 in Berlin
  it("fails PROPOSE and CONFIRM tools inside the window, naming it", () => {
    assertFail("quiet_hours", input("email_send", { now: night }), "PROPOSE", "23:30–06:30 Europe/Berlin", "after 06:30");
    assertFail("quiet_hours", input("repo_delete", { now: night }), "CONFIRM");
  });
  it("passes AUTO and AUTO+ tools inside the window, and everything outside it", () => {
    assertPass("quiet_hours", input("web_fetch", { now: night }));
    assertPass("quiet_hours", input("note_write", { now: night }));
    assertPass("quiet_hours", input("email_send"));
  });
  it("passes when the fleet does not hold external effects back", () => {
    assertPass("quiet_hours", input("email_send", { now: night, rules: SentinelConfig.parse({ quietHoursForExternal: false }) }));
  });
});

describe("target_allow_list", () => {
  const fetch = (url: unknown) => input("web_fetch", { proposalInput: { url } });
  it("passes allowed hosts", () => {
    for (const url of ["https://example.com/x", "HTTPS://EXAMPLE.COM./y", "example.com:8080", "https://api.example.org", "https://a.b.example.org/", "http://127.1/", "[::1]:8080", "localhost"]) {
      assertPass("target_allow_list", fetch(url));
    }
    assertPass("target_allow_list", input("email_send"));
  });
  it("fails other hosts, naming the field and the host", () => {
    assertFail("target_allow_list", fetch("https://evil.test/x"), "field url", "host evil.test");
    // user info is not the host
    assertFail("target_allow_list", fetch("https://example.com@evil.test/"), "host evil.test");
    // a wildcard covers subdomains, not the apex
    assertFail("target_allow_list", fetch("https://example.org/"), "host example.org");
    assertFail("target_allow_list", fetch("https://badexample.org/"), "host badexample.org");
    assertFail("target_allow_list", fetch("https://example.com.evil.test/"), "host example.com.evil.test");
    // what a URL parser (and so fetch) would read, not what the text seems to say
    assertFail("target_allow_list", fetch("http:\\\\evil.test/"), "host evil.test");
    assertFail("target_allow_list", fetch("https://evil.test\\@example.com/"), "host evil.test");
    assertFail("target_allow_list", fetch(["https://example.com/", "https://evil.test/"]), "field url[1]", "host evil.test");
  });
  it("reads an email recipient's domain", () => {
    assertFail("target_allow_list", input("email_send", { proposalInput: { to: "jane@evil.test", subject: "s", body: "b" } }), "field to", "host evil.test");
    assertPass("target_allow_list", input("email_send", { proposalInput: { to: "Jane <jane@Example.COM>", subject: "s", body: "b" } }));
  });
  it("fails a target it cannot read, or one holding two addresses", () => {
    assertFail("target_allow_list", fetch(42), "field url", "number");
    assertFail("target_allow_list", fetch("file:///etc/passwd"), "no host");
    assertFail("target_allow_list", input("email_send", { proposalInput: { to: "a@example.com, b@evil.test", subject: "s", body: "b" } }), "no host");
  });
  it("passes when no target field is present", () => {
    assertPass("target_allow_list", input("web_fetch", { proposalInput: {} }));
  });
});

describe("payload_size", () => {
  it("passes an input under the limit", () => {
    assertPass("payload_size", input("note_write"));
  });
  it("fails above the limit, counting UTF-8 bytes, and says both figures", () => {
    const rules = SentinelConfig.parse({ maxInputBytes: 20 });
    // 14 characters of JSON text but 26 bytes: "€" is three bytes in UTF-8
    assertFail("payload_size", input("note_write", { rules, proposalInput: { t: "€€€€€€" } }), "26 bytes", "limit is 20");
    assertFail("payload_size", input("note_write", { proposalInput: { text: "x".repeat(20_000) } }), "20011 bytes", "16384");
  });
});

describe("personal_data", () => {
  it("passes personal data in a declared field", () => {
    assertPass("personal_data", input("email_send", { proposalInput: { to: "jane.doe@example.com", subject: "s", body: "b" } }));
  });
  it("fails personal data elsewhere, naming kind and field and never the value", () => {
    const value = "call me on +49 30 1234567";
    const r = assertFail("personal_data", input("email_send", { proposalInput: { to: "ops@example.com", subject: "s", body: value } }), "a phone number at body");
    assert.ok(!r.reason.includes("1234567"));
  });
  it("is off when the fleet turns it off", () => {
    assertPass("personal_data", input("note_write", { rules: SentinelConfig.parse({ personalDataCheck: false }), proposalInput: { text: "jane@example.com" } }));
  });
});

describe("input_schema", () => {
  it("passes a valid input", () => {
    assertPass("input_schema", input("email_send"));
  });
  it("fails an invalid one, naming the first issue's path and message", () => {
    assertFail("input_schema", input("email_send", { proposalInput: { to: "ops@example.com", body: "b" } }), "email_send", "subject:", /expected string/i);
  });
});

describe("human_confirmation", () => {
  it("asks a person about a CONFIRM tool", () => {
    const verdict = evaluateProposal(input("repo_delete"));
    assert.deepEqual(verdict.results.at(-1), { rule: "human_confirmation", outcome: "needs_human", reason: "CONFIRM: a person must approve" });
    assert.equal(verdict.outcome, "needs_human");
    assert.equal(verdict.rejectedBy, undefined);
  });
  it("passes other tools", () => {
    assertPass("human_confirmation", input("email_send"));
  });
});
