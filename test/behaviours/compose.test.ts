import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, it } from "node:test";
import { pino } from "pino";
import type { ActInput, AgentBehaviour, EffectContext, Outcome, Plan, PlanInput, WorkItem } from "../../actors/index.js";
import { composeBehaviour, toolTaskOf, type BehaviourStage } from "../../behaviours/index.js";
import type { Message } from "../../protocol/index.js";

/**
 * The stage chain with fakes of our own interfaces: a terminal AgentBehaviour and stages that write what they see into
 * one trace, so the order of entry and exit, a short circuit and a pass-through are each visible.
 */

function item(parts: Message["parts"]): WorkItem {
  return { taskId: randomUUID(), contextId: randomUUID(), message: { messageId: randomUUID(), role: "ROLE_USER" as const, parts } };
}

function actInput(text = "check the api"): ActInput {
  return { agentId: "ship", trigger: "task", plan: { kind: "work", item: item([{ text }]), skillId: undefined } };
}

function planInput(): PlanInput {
  return { agentId: "ship", trigger: "task", item: item([{ text: "check the api" }]), inbox: [] };
}

function ctx(): EffectContext {
  return { signal: new AbortController().signal, log: pino({ level: "silent" }) };
}

function answer(text: string): Outcome {
  return { ok: true, artifacts: [{ artifactId: text, parts: [{ text }] }] };
}

/** The terminal: answers every act with "terminal" and plans work, writing both into the trace. */
function terminal(trace: string[]): AgentBehaviour {
  return {
    async plan(input) {
      trace.push("terminal.plan");
      return { kind: "work", item: input.item, skillId: "terminal" };
    },
    async act() {
      trace.push("terminal.act");
      return answer("terminal");
    },
  };
}

/** A stage that calls next and notes when it enters and leaves. */
function around(name: string, trace: string[]): BehaviourStage {
  return {
    name,
    async plan(input, c, next) {
      trace.push(`${name}.plan>`);
      const plan = await next(input, c);
      trace.push(`${name}.plan<`);
      return plan;
    },
    async act(input, c, next) {
      trace.push(`${name}>`);
      const outcome = await next(input, c);
      trace.push(`${name}<`);
      return outcome;
    },
  };
}

describe("composeBehaviour: a step as one chain of stages", () => {
  it("runs the stages in list order around the terminal, the first entered first and left last", async () => {
    const trace: string[] = [];
    const behaviour = composeBehaviour([around("a", trace), around("b", trace), around("c", trace)], terminal(trace));
    const outcome = await behaviour.act(actInput(), ctx());
    assert.deepEqual(trace, ["a>", "b>", "c>", "terminal.act", "c<", "b<", "a<"]);
    assert.deepEqual(outcome, answer("terminal"));
  });

  it("composes plan the same way as act", async () => {
    const trace: string[] = [];
    const behaviour = composeBehaviour([around("a", trace), around("b", trace)], terminal(trace));
    const plan = await behaviour.plan(planInput(), ctx());
    assert.deepEqual(trace, ["a.plan>", "b.plan>", "terminal.plan", "b.plan<", "a.plan<"]);
    assert.equal(plan.kind === "work" && plan.skillId, "terminal");
  });

  it("a stage that answers by itself never calls next: later stages and the terminal do not run", async () => {
    const trace: string[] = [];
    const shortCircuit: BehaviourStage = {
      name: "answers",
      async act() {
        trace.push("answers");
        return answer("from the stage");
      },
    };
    const behaviour = composeBehaviour([around("a", trace), shortCircuit, around("c", trace)], terminal(trace));
    const outcome = await behaviour.act(actInput(), ctx());
    assert.deepEqual(trace, ["a>", "answers", "a<"]);
    assert.deepEqual(outcome, answer("from the stage"));
  });

  it("a stage passes on what it does not handle, and a stage without a hook for an effect is skipped for it", async () => {
    const trace: string[] = [];
    // handles only tasks that say "urgent"; everything else goes on unchanged
    const urgentOnly: BehaviourStage = {
      name: "urgent-only",
      async act(input, c, next) {
        const text = input.plan.item?.message.parts.map((p) => ("text" in p ? p.text : "")).join(" ") ?? "";
        if (!text.includes("urgent")) return next(input, c);
        trace.push("urgent-only");
        return answer("urgent");
      },
    };
    const planOnly: BehaviourStage = {
      name: "plan-only",
      async plan(input, c, next) {
        trace.push("plan-only");
        return next(input, c);
      },
    };
    const behaviour = composeBehaviour([urgentOnly, planOnly], terminal(trace));

    const input = actInput("check the api");
    const passed = await behaviour.act(input, ctx());
    assert.deepEqual(trace, ["terminal.act"]);
    assert.deepEqual(passed, answer("terminal"));

    trace.length = 0;
    const handled = await behaviour.act(actInput("urgent: the api is down"), ctx());
    assert.deepEqual(trace, ["urgent-only"]);
    assert.deepEqual(handled, answer("urgent"));

    trace.length = 0;
    await behaviour.plan(planInput(), ctx());
    assert.deepEqual(trace, ["plan-only", "terminal.plan"]);
  });

  it("next takes the input and context a stage hands it, so a stage can narrow the logger or rewrite the input", async () => {
    const seen: { input: ActInput; ctx: EffectContext }[] = [];
    const recorder: AgentBehaviour = {
      plan: async (): Promise<Plan> => ({ kind: "nothing" }),
      act: async (input, c) => (seen.push({ input, ctx: c }), answer("terminal")),
    };
    const child = ctx();
    const rewrites: BehaviourStage = {
      name: "rewrites",
      act: (input, _c, next) => next({ ...input, plan: { ...input.plan, skillId: "rewritten" } }, child),
    };
    const behaviour = composeBehaviour([rewrites], recorder);
    await behaviour.act(actInput(), ctx());
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.input.plan.skillId, "rewritten");
    assert.equal(seen[0]!.ctx, child);
  });

  it("with no stages the terminal's effects are the behaviour's", async () => {
    const trace: string[] = [];
    const behaviour = composeBehaviour([], terminal(trace));
    assert.deepEqual(await behaviour.act(actInput(), ctx()), answer("terminal"));
    assert.deepEqual(trace, ["terminal.act"]);
  });
});

describe("toolTaskOf: which tasks the tier-0 stage answers", () => {
  it("finds a data part naming a tool, and nothing in a task of text alone", () => {
    const named = item([{ text: "please" }, { data: { tool: "http_check", input: { url: "https://example.com" } } }]);
    assert.deepEqual(toolTaskOf(named.message), { tool: "http_check", input: { url: "https://example.com" } });
    assert.equal(toolTaskOf(item([{ text: "run http_check on example.com" }]).message), undefined);
    assert.equal(toolTaskOf(item([{ data: { tool: "" } }]).message), undefined);
    assert.equal(toolTaskOf(undefined), undefined);
  });
});
