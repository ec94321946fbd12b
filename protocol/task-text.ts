import type { Message, Part } from "./a2a.js";

/*
 * What a task says, read one way everywhere: the dedup layer's title, the session log's title, the cron job's
 * summary and the CLI's listing must agree on which parts count and where the title ends, or two copies of one request
 * stop looking alike.
 */

/** A title is the request's first line, at most this long: long enough to tell tasks apart, short enough for a log line. */
export const TITLE_MAX_CHARS = 200;

/** The text parts of a message or artifact, joined (data, raw and url parts carry no text). */
export function partsText(parts: readonly Part[], separator = "\n"): string {
  return parts
    .map((p) => ("text" in p ? p.text : ""))
    .filter(Boolean)
    .join(separator);
}

/** A message's text: its text parts, one per line. */
export function textOf(message: Message): string {
  return partsText(message.parts);
}

/** The title of a request's text: its first line, cut at TITLE_MAX_CHARS. */
export function titleOfText(text: string): string {
  return (text.split("\n", 1)[0] ?? "").slice(0, TITLE_MAX_CHARS);
}

/** A message's title: the first line of its text. */
export function titleOf(message: Message): string {
  return titleOfText(textOf(message));
}
