import { partsText, sendToInbox, titleOf, type CodecName, type FleetNames, type Message } from "../protocol/index.js";
import type { NatsConnection } from "@nats-io/nats-core";
import type { BehaviourStage } from "./stage.js";

/** The most of a task's answer a note carries: enough for a plan, bounded for the inbox. */
const NOTE_CHARS = 1500;

/**
 * An agent that reports to another (`reportsTo:` in its config, e.g. scout to atlas) sends it a one-way note on its inbox
 * each time it completes a task: the task's title and its answer, briefly. The note reaches the other agent's next cycle
 * (for Atlas: the next plan's input). The note's id follows from the task, so a task redelivered and completed again
 * is recognisably the same note.
 */
export function reportToStage(options: { self: string; to: string; nc: NatsConnection; names: FleetNames; codec: CodecName }): BehaviourStage {
  return {
    name: "report-to",
    async act(input, ctx, next) {
      const outcome = await next(input, ctx);
      const item = input.plan.item;
      if (!outcome.ok || !item) return outcome;
      const answer = partsText(outcome.artifacts.flatMap((a) => a.parts)).replace(/\s+/g, " ").slice(0, NOTE_CHARS);
      const note: Message = {
        messageId: `note:${options.self}:${item.taskId}`,
        role: "ROLE_AGENT",
        parts: [{ text: `${options.self} completed "${titleOf(item.message)}" (task ${item.taskId}): ${answer || "no answer text"}` }],
        metadata: { from: options.self, taskId: item.taskId },
      };
      try {
        sendToInbox(options.nc, options.names, options.to, note, options.codec);
      } catch (err) {
        ctx.log.warn({ err, to: options.to }, "note not sent");
      }
      return outcome;
    },
  };
}
