import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { shippedLabelsPath } from "../../config/index.js";
import { decode, encode, ErrorPayload, FleetError, type CompleteRequest } from "../../protocol/index.js";
import { LocalClassifier, parseLabels, readLabelFile, wordClasses } from "../../router/index.js";
import { startTestRouter } from "../helpers/router-fleet.js";
import { routerTestBed } from "../helpers/router-test-bed.js";
import { waitFor } from "../helpers/wait.js";

describe("local classifier: the model", () => {
  const shipped = readLabelFile(shippedLabelsPath());
  const model = LocalClassifier.train(shipped);

  it("ships a few hundred labels over every tier, and a bad label line names its file and line", () => {
    assert.ok(shipped.length >= 300, `${shipped.length} labels`);
    for (const tier of ["nano", "workhorse", "capable", "power", "premium"]) assert.ok(shipped.filter((l) => l.tier === tier).length >= 50, tier);
    assert.throws(
      () => parseLabels("nano  Health check of the blog\n\nmega  Deploy everything\n", "mine.txt"),
      (err: FleetError) => err.code === "CONFIG_INVALID" && /mine\.txt:3/.test(err.message) && /mega/.test(err.message),
    );
    assert.throws(() => readLabelFile("/nonexistent/labels.txt"), (err: FleetError) => err.code === "CONFIG_INVALID" && /labels\.txt/.test(err.message));
  });

  it("puts titles it never saw on the tier the design gives their kind of work, confidently", () => {
    const cases: Array<[string, string]> = [
      ["Run a health check of the plume.dev homepage", "nano"],
      ["Deploy the billing service to production", "workhorse"],
      ["Write a blog article about our uptime record", "capable"],
      ["Draft a follow-up email to the lead from the conference", "power"],
      ["Respond to the data breach at our payment provider", "premium"],
    ];
    for (const [title, tier] of cases) {
      const verdict = model.classify(title);
      assert.equal(verdict?.tier, tier, title);
      assert.ok((verdict?.confidence ?? 0) >= 0.5, `${title}: confidence ${verdict?.confidence}`);
      assert.equal(verdict?.taught, undefined, `${title} is not a training title`);
    }
  });

  it("abstains on a title with no real words, answers a taught title from its label, and trains the same model every time", () => {
    assert.equal(model.classify("a"), undefined);
    assert.equal(model.classify("   "), undefined);
    const taught = LocalClassifier.train([...shipped, { title: "Deploy the billing service to production", tier: "premium", source: "operator", weight: 3 }]);
    assert.deepEqual(taught.classify("deploy the  Billing service to production"), { tier: "premium", confidence: 1, taught: "operator" });
    const again = LocalClassifier.train(shipped);
    for (const title of ["Check the queue length", "Plan the week", "Write the newsletter"]) assert.deepEqual(again.classify(title), model.classify(title));
  });

  it("is not confident about a vague title of one meaningful word, so it falls through to the default", () => {
    for (const title of ["pricing", "question 3", "Pricing?", "the report", "some stuff about deploys", "quick question"]) {
      const verdict = model.classify(title);
      assert.ok(verdict === undefined || verdict.confidence < 0.5, `${title}: ${verdict?.tier} at ${verdict?.confidence}`);
    }
    // two meaningful words that name the work are enough
    assert.ok((model.classify("deploy billing")?.confidence ?? 0) >= 0.5);
    // a title taught word for word keeps its label's certainty, however short
    const taught = LocalClassifier.train([...shipped, { title: "pricing", tier: "power", source: "operator" }]);
    assert.deepEqual(taught.classify("Pricing"), { tier: "power", confidence: 1, taught: "operator" });
  });

  it("blends the nearest label's vote into the linear model's probabilities", () => {
    const labels = [
      ...["Check disk on web", "Check memory on the web host", "Check load on db", "Check swap on the mail host", "Check uptime of the shop", "Check the queue length"].map((title) => ({ title, tier: "nano" as const, source: "t" })),
      ...["Scan the servers for rootkits", "Audit the firewall of the db host", "Patch the kernel on web"].map((title) => ({ title, tier: "workhorse" as const, source: "t" })),
      { title: "Check the mail host for rootkits", tier: "workhorse" as const, source: "t" },
    ];
    const title = "Check the mail server for rootkits"; // its nearest label is the rootkit check of the mail host
    const linear = LocalClassifier.train(labels, { neighbourShare: 0 }).classify(title);
    const blended = LocalClassifier.train(labels, { neighbourShare: 0.5, neighbours: { k: 1 } }).classify(title);
    const linearWorkhorse = linear?.tier === "workhorse" ? linear.confidence : 0;
    assert.equal(blended?.tier, "workhorse");
    // half the probability is the one neighbour's vote, half the linear model's
    assert.ok(Math.abs((blended?.confidence ?? 0) - (0.5 + linearWorkhorse / 2)) < 1e-9, `${blended?.confidence} vs ${linearWorkhorse}`);
  });

  it("lets a word no label used count through its word class", () => {
    // "ransomware" and "hijacked" share the crisis class with "breach"; "deployed" and "rollout" share the deploy class
    assert.equal(wordClasses("ransomware") & wordClasses("breach"), wordClasses("breach") & wordClasses("ransomware"));
    assert.notEqual(wordClasses("ransomware") & wordClasses("breach"), 0);
    assert.notEqual(wordClasses("deployed") & wordClasses("rollout"), 0);
    assert.equal(wordClasses("deployed") & wordClasses("breach"), 0);
    assert.equal(wordClasses("zzzz"), 0);
    const tiny = LocalClassifier.train([
      { title: "Respond to the breach", tier: "premium", source: "t" },
      { title: "Handle the leak", tier: "premium", source: "t" },
      { title: "Deploy the site", tier: "workhorse", source: "t" },
      { title: "Release the site", tier: "workhorse", source: "t" },
    ]);
    // neither "hijack" nor "rollout" is in the labels, and they share no character gram with the labels' class words
    assert.equal(tiny.classify("hijack")?.tier, "premium");
    assert.equal(tiny.classify("rollout")?.tier, "workhorse");
  });

  it("the held-out titles (all three sets) share no title with the training labels", () => {
    const read = (file: string) => parseLabels(readFileSync(new URL(`../../../bench/${file}`, import.meta.url), "utf8"), file);
    const heldOut = [...read("router-heldout.txt"), ...read("router-heldout-2.txt"), ...read("router-heldout-3.txt")];
    assert.equal(heldOut.length, 450);
    const norm = (t: string) => t.toLowerCase().replace(/[^a-z0-9]+/g, " ").trim();
    const training = new Set(shipped.map((l) => norm(l.title)));
    assert.deepEqual(heldOut.filter((l) => training.has(norm(l.title))).map((l) => l.title), []);
  });
});

describe("local classifier: in the router", () => {
  const bed = routerTestBed("local-classifier-test", "lc");
  const ask = (agentId: string, title: string, extra: Partial<CompleteRequest> = {}): CompleteRequest => ({
    agentId, title, messages: [{ role: "user", content: title }], ...extra,
  });
  const nanoCalls = () => bed.openai.requests.filter((r) => r.model === "m-nano").length;

  it("comes after the rules and before the nano classifier, and says which decided and how sure it was", async () => {
    const { client } = await bed.fleet({ routing: `  rules:\n    - { contains: ["newsletter"], tier: power }` });
    const rule = await client.route({ agentId: "scout", title: "Write the newsletter for March" });
    assert.deepEqual([rule.tier, rule.reason], ["power", "rule"]);
    const local = await client.route({ agentId: "scout", title: "Respond to the data breach at our payment provider" });
    assert.deepEqual([local.tier, local.reason], ["premium", "local-classifier"]);
    assert.ok((local.confidence ?? 0) >= 0.5 && (local.confidence ?? 0) <= 1);
    assert.match(local.detail, /local classifier → premium, confidence (0\.\d\d|1\.00)/);
    assert.equal(nanoCalls(), 0, "a confident local verdict asks no model");
    // not confident: the nano classifier is asked (its provider is real here), and the detail keeps the local guess
    bed.openai.script("m-nano", { content: "workhorse" });
    const unsure = await client.route({ agentId: "scout", title: "Zorblax the quuxes" });
    assert.deepEqual([unsure.tier, unsure.reason], ["workhorse", "classifier"]);
    assert.match(unsure.detail, /local classifier unsure/);
    assert.equal(nanoCalls(), 1);
    // an alias asked by a skill, a step, a duty or a cron job is recorded with who asked
    const alias = await client.route({ agentId: "scout", title: "anything", alias: "triage", askedBy: "duty" });
    assert.deepEqual([alias.tier, alias.reason, alias.alias, alias.askedBy], ["nano", "alias", "triage", "duty"]);
  });

  it("the operator's correction holds for that title in every router, across restarts; an agent cannot teach", async () => {
    const { client, config, routers } = await bed.fleet({ routing: "  classifier: false" });
    const title = "Run a health check of the plume.dev homepage";
    assert.equal((await client.route({ agentId: "scout", title })).tier, "nano");
    const taught = await client.teach({ title, tier: "workhorse" });
    assert.equal(taught.before?.tier, "nano");
    assert.ok(taught.labels > 300);
    const after = await client.route({ agentId: "scout", title: "run a health check of the plume.dev  homepage" });
    assert.deepEqual([after.tier, after.reason, after.confidence], ["workhorse", "local-classifier", 1]);
    // a new router, started after the lesson, learns it from the labels bucket
    await routers[0]?.stop();
    const second = await startTestRouter(bed.nc, config);
    try {
      assert.equal((await client.route({ agentId: "scout", title })).tier, "workhorse");
    } finally {
      await second.stop();
      await routers[0]?.stop();
    }
  });

  it("refuses a teach in an agent's name", async () => {
    const { names } = await bed.fleet();
    const reply = await bed.nc.request(names.router("teach", "scout"), encode({ title: "Deploy the shop", tier: "premium" }), { timeout: 5_000 });
    const decoded = decode(ErrorPayload.partial().passthrough(), reply.data);
    assert.match(JSON.stringify(decoded), /PERMISSION_DENIED/);
  });

  it("a step that escalated teaches its title the tier it ended on", async () => {
    const { client } = await bed.fleet({ routing: "  classifier: false" });
    const title = "Summarise the quarterly partner feedback";
    const first = await client.route({ agentId: "scout", title });
    assert.deepEqual([first.tier, first.reason], ["capable", "local-classifier"]);
    const schema = { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"], additionalProperties: false };
    bed.openai.script("m-capable", { content: "not json" });
    bed.openai.script("m-workhorse", { content: '{"ok": true}' });
    const reply = await client.complete(ask("scout", title, { responseSchema: { name: "verdict", schema } }));
    assert.equal(reply.servedTier, "workhorse");
    const learned = await waitFor("the learned label", async () => {
      const d = await client.route({ agentId: "scout", title });
      return d.tier === "workhorse" ? d : undefined;
    });
    assert.equal(learned.reason, "local-classifier");
    assert.match(learned.detail, /taught \(escalation\)/);
  });
});
