import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { z } from "zod";
import { AgentConfig, SentinelConfig } from "../../config/index.js";
import { SentinelVerdict, type ProposalSubmission } from "../../protocol/index.js";
import { RULE_NAMES, actionKey, canonicalJson, evaluateProposal, type OtherProposal, type SentinelInput } from "../../governance/sentinel.js";
import { personalDataIn } from "../../governance/rules/index.js";
import { defineTool, type ToolDefinition } from "../../governance/tool.js";

/*
 * Sentinel as a whole: the verdict, the 47-email case, quiet hours across DST, the action key, and the personal-data
 * detectors with their false positives. Rule-by-rule cases are in sentinel-rules.test.ts.
 */

const at = (iso: string): number => Date.parse(iso);
const NOON = at("2026-01-15T12:00:00Z");
const SECOND = 1000;
const MIN = 60_000;
const ok = async () => ({});

const emailSend = defineTool({
  name: "email_send",
  description: "send an email",
  risk: "PROPOSE",
  input: z.object({ to: z.string(), subject: z.string(), body: z.string() }),
  personalDataFields: ["to"],
  targetFields: ["to"],
  handler: ok,
});
const noteWrite = defineTool({ name: "note_write", description: "write a note", risk: "AUTO+", input: z.object({ text: z.string() }), handler: ok });
const throwing = defineTool({
  name: "brittle",
  description: "a tool whose schema throws",
  risk: "AUTO",
  input: z.object({ x: z.string() }).refine(() => {
    throw new Error("refinement exploded");
  }),
  handler: ok,
});

const scout = AgentConfig.parse({
  id: "scout",
  name: "Scout",
  role: "outreach",
  layer: "execution",
  defaultTier: "capable",
  cycleMinutes: 20,
  dailyCapUsd: 10,
  tools: ["*"],
  skills: [{ id: "outreach", name: "Outreach", description: "writes to people", tags: ["email"] }],
});

function input(tool: ToolDefinition, toolInput: unknown, overrides: Partial<SentinelInput> = {}, id = "p-1"): SentinelInput {
  const proposal: ProposalSubmission = { id, agentId: "scout", tool: tool.name, input: toolInput, reason: "because", submittedAt: overrides.now ?? NOON };
  return {
    proposal,
    tool,
    agent: scout,
    fleet: { quietHours: { start: "23:30", end: "06:30" }, timeZone: "Europe/Berlin" },
    rules: SentinelConfig.parse({ targetAllowList: ["example.com"] }),
    budget: { spentUsd: 0.5, capUsd: 10 },
    others: [],
    now: NOON,
    ...overrides,
  };
}

const email = (i: number) => ({ to: `customer${i}@example.com`, subject: `Your order ${i}`, body: "It has shipped." });

describe("the verdict", () => {
  it("records every rule's result, in the order of RULE_NAMES", () => {
    const verdict = evaluateProposal(input(emailSend, email(1)));
    assert.deepEqual(verdict.results.map((r) => r.rule), [...RULE_NAMES]);
    assert.deepEqual(RULE_NAMES, [
      "agent_known", "tool_permission", "risk_blocked", "budget_headroom", "blocked_patterns", "rate_limit", "proposal_dedup",
      "quiet_hours", "target_allow_list", "payload_size", "personal_data", "brand_safety", "input_schema", "human_confirmation",
    ]);
    assert.equal(verdict.outcome, "approved");
    assert.equal(verdict.rejectedBy, undefined);
    assert.equal(verdict.at, NOON);
    // it is a wire record: it must pass its own schema
    assert.deepEqual(SentinelVerdict.parse(verdict), verdict);
  });

  it("keeps running after a failure and names the first failing rule", () => {
    const bad = { to: "jane@evil.test", body: "ring +49 30 1234567; rm -rf / afterwards" };
    const verdict = evaluateProposal(input(emailSend, bad, { budget: undefined }));
    assert.equal(verdict.outcome, "rejected");
    assert.equal(verdict.results.length, RULE_NAMES.length);
    assert.equal(verdict.rejectedBy?.rule, "budget_headroom");
    const failed = verdict.results.filter((r) => r.outcome === "fail").map((r) => r.rule);
    assert.deepEqual(failed, ["budget_headroom", "blocked_patterns", "target_allow_list", "personal_data", "input_schema"]);
  });

  it("is deterministic", () => {
    const first = evaluateProposal(input(emailSend, email(1)));
    // the same situation built anew, the input's keys in another order
    const again = evaluateProposal(input(emailSend, { body: email(1).body, subject: email(1).subject, to: email(1).to }));
    assert.deepEqual(again, first);
  });

  it("a rejection outranks a needs_human", () => {
    const confirm = defineTool({ name: "repo_delete", description: "d", risk: "CONFIRM", input: z.object({ repo: z.string() }), handler: ok });
    assert.equal(evaluateProposal(input(confirm, { repo: "x" })).outcome, "needs_human");
    assert.equal(evaluateProposal(input(confirm, { repo: "x" }, { budget: undefined })).outcome, "rejected");
  });

  it("a rule that throws fails closed instead of opening the gate", () => {
    const verdict = evaluateProposal(input(throwing, { x: "y" }));
    assert.equal(verdict.outcome, "rejected");
    assert.equal(verdict.rejectedBy?.rule, "input_schema");
    assert.match(verdict.rejectedBy?.reason ?? "", /could not be checked.*refinement exploded/);
  });
});

describe("a fleet must never send 47 emails in one cycle", () => {
  it("of 47 email_send proposals in one 20-minute cycle the first 10 pass and the 11th to 47th are refused by rate_limit", () => {
    const others: OtherProposal[] = [];
    const start = at("2026-01-15T10:00:00Z");
    for (let i = 1; i <= 47; i++) {
      const now = start + i * 20 * SECOND; // all 47 within 16 minutes
      const verdict = evaluateProposal(input(emailSend, email(i), { now, others: [...others] }, `mail-${i}`));
      const rate = verdict.results.find((r) => r.rule === "rate_limit");
      if (i <= 10) {
        assert.equal(verdict.outcome, "approved", `proposal ${i}: ${JSON.stringify(verdict.rejectedBy)}`);
        assert.equal(rate?.outcome, "pass");
      } else {
        assert.equal(verdict.outcome, "rejected", `proposal ${i} was not refused`);
        assert.equal(verdict.rejectedBy?.rule, "rate_limit");
        assert.match(verdict.rejectedBy?.reason ?? "", /no\. 11 .*20 min cycle; the limit is 10 per cycle/);
      }
      others.push({
        id: `mail-${i}`, agentId: "scout", tool: "email_send", actionKey: actionKey("email_send", email(i)),
        state: verdict.outcome === "approved" ? "completed" : "rejected", createdAt: now,
      });
    }
    assert.equal(others.filter((o) => o.state === "completed").length, 10);
    // the next cycle has room again: the first ten have aged out of the window
    const later = start + 10 * 20 * SECOND + 20 * MIN;
    assert.equal(evaluateProposal(input(emailSend, email(48), { now: later, others }, "mail-48")).outcome, "approved");
  });
});

describe("quiet hours for external effects, on the fleet's wall clock", () => {
  const quiet = (iso: string) => evaluateProposal(input(emailSend, email(1), { now: at(iso) })).results.find((r) => r.rule === "quiet_hours")?.outcome;

  it("the window's edges: the start is inside, the end outside", () => {
    // January: Berlin is UTC+1, so 23:30–06:30 is 22:30Z–05:30Z
    assert.equal(quiet("2026-01-15T22:29:59Z"), "pass");
    assert.equal(quiet("2026-01-15T22:30:00Z"), "fail");
    assert.equal(quiet("2026-01-16T05:29:59Z"), "fail");
    assert.equal(quiet("2026-01-16T05:30:00Z"), "pass");
  });

  it("spring forward (2026-03-29, 02:00 CET → 03:00 CEST): the night ends at 06:30 summer time", () => {
    assert.equal(quiet("2026-03-28T22:29:59Z"), "pass"); // 23:29:59 CET
    assert.equal(quiet("2026-03-28T22:30:00Z"), "fail"); // 23:30 CET
    assert.equal(quiet("2026-03-29T01:30:00Z"), "fail"); // 03:30 CEST, just after the gap
    assert.equal(quiet("2026-03-29T04:29:59Z"), "fail"); // 06:29:59 CEST
    assert.equal(quiet("2026-03-29T04:30:00Z"), "pass"); // 06:30 CEST (a fixed UTC+1 would say quiet until 05:30Z)
    assert.equal(quiet("2026-03-29T21:29:59Z"), "pass"); // 23:29:59 CEST
    assert.equal(quiet("2026-03-29T21:30:00Z"), "fail"); // 23:30 CEST
  });

  it("fall back (2026-10-25, 03:00 CEST → 02:00 CET): the repeated hour stays quiet, the night ends at 06:30 winter time", () => {
    assert.equal(quiet("2026-10-24T21:29:59Z"), "pass"); // 23:29:59 CEST
    assert.equal(quiet("2026-10-24T21:30:00Z"), "fail"); // 23:30 CEST
    assert.equal(quiet("2026-10-25T00:30:00Z"), "fail"); // 02:30 CEST, the first time
    assert.equal(quiet("2026-10-25T01:30:00Z"), "fail"); // 02:30 CET, the second time
    assert.equal(quiet("2026-10-25T05:29:59Z"), "fail"); // 06:29:59 CET
    assert.equal(quiet("2026-10-25T05:30:00Z"), "pass"); // 06:30 CET
    assert.equal(quiet("2026-10-25T22:30:00Z"), "fail"); // 23:30 CET
  });

  it("an internal tool runs at any hour", () => {
    const result = evaluateProposal(input(noteWrite, { text: "x" }, { now: at("2026-03-29T01:30:00Z") })).results.find((r) => r.rule === "quiet_hours");
    assert.equal(result?.outcome, "pass");
  });
});

describe("actionKey", () => {
  it("is the same for the same tool and input in any key order, at any depth", () => {
    const a = actionKey("email_send", { to: "a@example.com", meta: { y: 2, x: [1, { q: 1, p: 2 }] } });
    const b = actionKey("email_send", { meta: { x: [1, { p: 2, q: 1 }], y: 2 }, to: "a@example.com" });
    assert.equal(a, b);
    assert.match(a, /^[0-9a-f]{64}$/);
  });
  it("differs by tool and by input", () => {
    assert.notEqual(actionKey("email_send", { to: "a" }), actionKey("email_draft", { to: "a" }));
    assert.notEqual(actionKey("email_send", { to: "a" }), actionKey("email_send", { to: "b" }));
    assert.notEqual(actionKey("email_send", [1, 2]), actionKey("email_send", [2, 1]));
  });
  it("canonical JSON follows JSON.stringify for everything but key order", () => {
    assert.equal(canonicalJson({ b: 1, a: [undefined, Number.NaN, "x"], c: undefined, d: new Date(0) }), '{"a":[null,null,"x"],"b":1,"d":"1970-01-01T00:00:00.000Z"}');
    assert.equal(canonicalJson(undefined), "null");
    assert.equal(canonicalJson(2n ** 64n), "18446744073709551616");
  });
});

describe("personal-data detectors", () => {
  const kinds = (text: string) => personalDataIn(text);

  it("finds email addresses, international phone numbers, card numbers and IBANs", () => {
    assert.deepEqual(kinds("write to jane.doe+news@mail.example.org please"), ["email address"]);
    for (const phone of ["+49 30 1234567", "+49 (0)30 123 4567", "+1 (555) 010-9999", "+4915112345678", "0049 30 1234567", "+44 20 7946 0958"]) {
      assert.deepEqual(kinds(`call ${phone} today`), ["phone number"], phone);
    }
    for (const card of ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", "5555555555554444", "3782 822463 10005", "4111 1111 1111 1111 12 26"]) {
      assert.deepEqual(kinds(`card ${card}`), ["payment card number"], card);
    }
    for (const iban of ["DE89 3704 0044 0532 0130 00", "DE89370400440532013000", "GB82 WEST 1234 5698 7654 32", "de89370400440532013000"]) {
      assert.deepEqual(kinds(`pay to ${iban} and more`), ["IBAN"], iban);
    }
    assert.deepEqual(kinds("ref AB12 DE89 3704 0044 0532 0130 00"), ["IBAN"]);
  });

  it("does not mistake dates, versions, order numbers, timestamps or hashes for personal data", () => {
    const innocent = [
      "2026-03-29", "2026-03-29T02:30:00+02:00", "1.2.3", "v10.20.30", "version 1.2.3-beta.4", "order 12345", "order #4711-2026",
      "ticket 00123456789", "192.168.100.200", "1774742400000", "4111111111111112" /* 16 digits, fails Luhn */,
      "4111 1111 1111 1112", "12345678901234567890123", "sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
      "550e8400-e29b-41d4-a716-446655440000", "npm i zod@4.6.7", "@scope/package", "DE89 3704 0044 0532 0130 01" /* bad check digits */,
      "+1 555 0100" /* too short */, "price +12.50 EUR", "UTC+0100",
    ];
    for (const text of innocent) assert.deepEqual(kinds(text), [], text);
  });

  it("the rule names kind and path, redacts a member name that is itself personal data, and counts the rest", () => {
    const toolInput = { to: "ops@example.com", subject: "s", body: "b", meta: { "jane@example.com": "x", cards: ["4111111111111111", "5555555555554444", "GB82WEST12345698765432"] } };
    const lenient = defineTool({ ...emailSend, name: "email_send", input: z.unknown() });
    const result = evaluateProposal(input(lenient, toolInput)).results.find((r) => r.rule === "personal_data");
    assert.equal(result?.outcome, "fail");
    const reason = result?.reason ?? "";
    assert.match(reason, /an email address in a member name under meta/);
    assert.match(reason, /a payment card number at meta\.cards\[0\]/);
    assert.match(reason, /and 1 more/);
    assert.match(reason, /declared personal-data fields: to/);
    for (const secret of ["jane@", "4111", "5555", "GB82"]) assert.ok(!reason.includes(secret), `the reason quotes ${secret}: ${reason}`);
  });

  it("reads card numbers given as JSON numbers", () => {
    const result = evaluateProposal(input(noteWrite, { text: "x", n: 4111111111111111 })).results.find((r) => r.rule === "personal_data");
    assert.match(result?.reason ?? "", /a payment card number at n/);
  });
});
