import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MAX_TITLE_CHARS, normalizeTitle, titleSimilarity } from "../../actors/similarity.js";

/** Title similarity for the dedup layers: Dice over per-word character bigrams of normalised titles. */

describe("normalizeTitle", () => {
  it("lower-cases, drops punctuation, accents and digit-only words, and collapses whitespace", () => {
    assert.equal(normalizeTitle("  Check the Competitors' PRICING —  pages!! "), "check the competitors pricing pages");
    assert.equal(normalizeTitle("Café menu: update"), "cafe menu update");
    assert.equal(normalizeTitle("Competitor pricing, batch #3 (2024-05-01)"), "competitor pricing batch");
    assert.equal(normalizeTitle("deploy v2 to 3d-viewer"), "deploy v2 to 3d viewer", "words with letters keep their digits");
  });

  it("keeps the digits of a title that has nothing else", () => {
    assert.equal(normalizeTitle("2024-05-01"), "2024 05 01");
    assert.equal(normalizeTitle(" !! "), "");
  });

  it("caps long titles at whole words and is idempotent", () => {
    const long = "competitor pricing analysis ".repeat(40);
    const once = normalizeTitle(long);
    assert.ok(once.length <= MAX_TITLE_CHARS && once.length > MAX_TITLE_CHARS - 20, `length ${once.length}`);
    assert.ok(once.endsWith("analysis") || once.endsWith("pricing") || once.endsWith("competitor"), "no word is cut");
    for (const title of [long, "Café: batch 3 of 1234a", "2024-05-01", "x".repeat(500), "Ünïcödé — テスト 価格"]) {
      const n = normalizeTitle(title);
      assert.equal(normalizeTitle(n), n, title.slice(0, 30));
    }
  });
});

describe("titleSimilarity", () => {
  it("identical titles score 1, titles with no bigram in common 0", () => {
    assert.equal(titleSimilarity("Check competitor pricing", "Check competitor pricing"), 1);
    assert.equal(titleSimilarity("Check competitor pricing", "check COMPETITOR pricing!"), 1, "after normalisation");
    assert.equal(titleSimilarity("abc", "xyz"), 0);
  });

  it("is symmetric and within [0, 1]", () => {
    const pairs: [string, string][] = [
      ["deploy the site", "deploy the docs site now"],
      ["a", "aa"],
      ["weekly report", "report weekly report"],
    ];
    for (const [a, b] of pairs) {
      const s = titleSimilarity(a, b);
      assert.equal(s, titleSimilarity(b, a));
      assert.ok(s >= 0 && s <= 1, `${a} / ${b}: ${s}`);
    }
  });

  it("reordered words score high (exactly 1 when only the order changes)", () => {
    assert.equal(titleSimilarity("pricing of competitors", "competitors pricing of"), 1);
    assert.ok(titleSimilarity("check the competitors' pricing pages", "pricing pages of the competitors: check") > 0.9);
  });

  it("a one-word change or a typo in a long title stays above 0.7", () => {
    const base = "Investigate the spike in checkout errors reported by the payment provider this morning";
    assert.ok(titleSimilarity(base, base.replace("errors", "failures")) > 0.7);
    assert.ok(titleSimilarity(base, base.replace("checkout", "chekout")) > 0.7);
    assert.ok(titleSimilarity("competitor pricing", "competiton pricing") > 0.7);
  });

  it("numbered runs of the same automated finding are the same title", () => {
    assert.equal(titleSimilarity("competitor pricing batch 3", "competitor pricing batch 4"), 1);
    assert.equal(titleSimilarity("Daily anomaly scan 2024-05-01", "daily anomaly scan 2024-05-02"), 1);
  });

  it("unrelated titles that share stop words stay below 0.7", () => {
    const pairs: [string, string][] = [
      ["Update the pricing page for the new enterprise plan", "Write a summary of the weekly meeting for the team"],
      ["write the report for the board", "read the notes from the team"],
      ["check the status of the deploy", "check the inbox of the support team"],
      ["check rivals' pricing", "competitor price audit"],
    ];
    for (const [a, b] of pairs) assert.ok(titleSimilarity(a, b) < 0.7, `${a} / ${b}: ${titleSimilarity(a, b)}`);
  });

  it("empty titles match nothing, not even each other", () => {
    assert.equal(titleSimilarity("", ""), 0);
    assert.equal(titleSimilarity("", "deploy"), 0);
    assert.equal(titleSimilarity("!!!", "???"), 0, "punctuation only normalises to empty");
    assert.equal(titleSimilarity("a", "a"), 1, "one letter still has its padded bigrams");
  });
});
