import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ChatMessage } from "../../protocol/index.js";
import { SUMMARY_PREFIX, fitToBudget, pruneHistory, summarizeMessages } from "../../router/lean-context.js";
import { estimateInputTokens } from "../../protocol/index.js";

const system: ChatMessage = { role: "system", content: "You are atlas, a research agent. Be brief." };

/** n turns: a user question, an assistant answer, and on even turns a tool result in between. */
function history(turns: number, padding = ""): ChatMessage[] {
  const messages: ChatMessage[] = [system];
  for (let t = 1; t <= turns; t++) {
    messages.push({ role: "user", content: `Question ${t} about the payments service. More detail follows.${padding}` });
    if (t % 2 === 0) messages.push({ role: "tool", name: "http_get", content: `Status ${t}: 200 OK. Body omitted.${padding}` });
    messages.push({ role: "assistant", content: `Answer ${t}: it looks fine! Further notes here.${padding}` });
  }
  return messages;
}

function userMessages(messages: ChatMessage[]): string[] {
  return messages.filter((m) => m.role === "user").map((m) => m.content);
}

describe("pruneHistory", () => {
  it("leaves a history of at most two turns as it is", () => {
    const short = history(2);
    assert.deepEqual(pruneHistory(short), short);
    assert.notEqual(pruneHistory(short), short, "a copy, never the caller's array");
    const noUser: ChatMessage[] = [system, { role: "assistant", content: "Hello." }];
    assert.deepEqual(pruneHistory(noUser), noUser);
  });

  it("keeps the system messages and the last two turns, and folds every older turn into one summary", () => {
    const messages = history(5);
    const pruned = pruneHistory(messages);
    assert.deepEqual(pruned[0], system);
    const summary = pruned[1]!;
    assert.equal(summary.role, "system");
    assert.ok(summary.content.startsWith(SUMMARY_PREFIX));
    // the first sentence of each older message, with its role
    assert.equal(
      summary.content.slice(SUMMARY_PREFIX.length),
      [
        "user: Question 1 about the payments service.",
        "assistant: Answer 1: it looks fine!",
        "user: Question 2 about the payments service.",
        "tool (http_get): Status 2: 200 OK.",
        "assistant: Answer 2: it looks fine!",
        "user: Question 3 about the payments service.",
        "assistant: Answer 3: it looks fine!",
      ].join("\n"),
    );
    // turn 4 is user, tool, assistant; turn 5 is user, assistant: verbatim
    assert.deepEqual(pruned.slice(2), messages.slice(-5));
    assert.deepEqual(userMessages(pruned), userMessages(messages).slice(-2));
    assert.ok(estimateInputTokens(pruned) < estimateInputTokens(messages));
  });

  it("takes keepTurns and a summarizer of its own", () => {
    const messages = history(4);
    let seen: ChatMessage[] = [];
    const pruned = pruneHistory(messages, {
      keepTurns: 1,
      summarize: (older) => {
        seen = older;
        return `${older.length} messages`;
      },
    });
    assert.deepEqual(seen, messages.slice(1, -3));
    assert.deepEqual(pruned, [system, { role: "system", content: `${SUMMARY_PREFIX}${seen.length} messages` }, ...messages.slice(-3)]);
    assert.throws(() => pruneHistory(messages, { keepTurns: 0 }), RangeError);
  });

  it("bounds the summary, keeping the most recent lines, and is deterministic", () => {
    const messages = history(40, " ".repeat(3) + "x".repeat(400));
    const pruned = pruneHistory(messages);
    const body = pruned[1]!.content.slice(SUMMARY_PREFIX.length);
    assert.ok(body.length <= 600, `summary of ${body.length} chars`);
    assert.match(body, /^\(\d+ earlier messages omitted\)\n/);
    assert.match(body, /Answer 38: it looks fine!$/);
    assert.deepEqual(pruneHistory(messages), pruned);
    assert.ok(summarizeMessages([{ role: "user", content: "y".repeat(1000) }]).length <= 600);
  });

  it("folds the summary of an earlier pruning into the next one", () => {
    const once = pruneHistory(history(4));
    const next = [...once, { role: "user" as const, content: "Question 5. Go on." }, { role: "assistant" as const, content: "Answer 5." }];
    const twice = pruneHistory(next);
    assert.equal(twice.filter((m) => m.content.startsWith(SUMMARY_PREFIX)).length, 1);
    assert.match(twice[1]!.content, /earlier: user: Question 1/);
    assert.deepEqual(userMessages(twice), ["Question 4 about the payments service. More detail follows.", "Question 5. Go on."]);
  });
});

describe("fitToBudget", () => {
  const messages = history(6, " " + "z".repeat(200));

  it("returns a history that fits unchanged", () => {
    assert.deepEqual(fitToBudget(messages, estimateInputTokens(messages)), messages);
  });

  it("drops summary detail before it drops a turn", () => {
    const twoTurnsNoSummary = pruneHistory(messages, { summarize: () => "" });
    const budget = estimateInputTokens(twoTurnsNoSummary) + 10; // room for a very short summary at most
    const fitted = fitToBudget(messages, budget);
    assert.ok(estimateInputTokens(fitted) <= budget);
    assert.deepEqual(userMessages(fitted), userMessages(messages).slice(-2), "both recent turns kept");
    assert.ok(estimateInputTokens(fitted) < estimateInputTokens(pruneHistory(messages)));

    // a little more room: a shortened summary comes back, still with both turns
    const roomier = fitToBudget(messages, estimateInputTokens(twoTurnsNoSummary) + 50);
    const summary = roomier.find((m) => m.content.startsWith(SUMMARY_PREFIX));
    assert.ok(summary, "a short summary fits");
    assert.ok(summary.content.length < pruneHistory(messages)[1]!.content.length);
    assert.deepEqual(userMessages(roomier), userMessages(messages).slice(-2));
  });

  it("never removes the system messages or the last user message, even when nothing fits", () => {
    const fitted = fitToBudget(messages, 1);
    assert.deepEqual(fitted[0], system);
    assert.deepEqual(userMessages(fitted), userMessages(messages).slice(-1));
    assert.deepEqual(fitted.slice(1), messages.slice(-3), "the last turn (user, tool, assistant), verbatim");
  });
});
