import type { Message } from "../protocol/index.js";

/** A message's text parts joined by newlines: what a step reads as the task, and what its title is cut from. */
export function textOf(message: Message): string {
  return message.parts
    .map((p) => ("text" in p ? p.text : ""))
    .filter(Boolean)
    .join("\n");
}
