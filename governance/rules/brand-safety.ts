import type { BrandPolicy, BrandSafetyConfig } from "../../config/index.js";
import type { OutgoingMessageFields } from "../tool.js";
import { redactedPath } from "./pii-detectors.js";
import { defineRule, fail, noTool, pass } from "./rule.js";
import { hostAllowed, targetHost } from "./target-host.js";
import { valuesAt, type Path } from "./walk.js";

/**
 * What a post or an email may say (`governance.sentinel.brandSafety`), checked before it goes out: blocked words and
 * claims, the domains its links may point to, its length and a required disclaimer, per channel. It reads the tools that
 * declare their message fields (`message` on the tool: channel_post, email_send, and any module or MCP tool declaring
 * it); every other tool passes. Deterministic: the same text always gets the same verdict, and the refusal names what
 * matched, so the agent (or the person reading the verdict) can fix the message.
 */

/** Reasons name at most this many problems; the first few are enough to fix the text. */
const MAX_REPORTED = 3;
/** matched text quoted in a reason is cut to this many characters */
const QUOTE_MAX = 60;

/** The policy one channel's messages meet: its own, on top of "*". */
export function policyFor(config: BrandSafetyConfig, channel: string): BrandPolicy | undefined {
  const all = config.channels["*"];
  const own = channel === "*" ? undefined : config.channels[channel];
  if (!all && !own) return undefined;
  if (!all || !own) return all ?? own;
  const allowedLinkDomains = own.allowedLinkDomains ?? all.allowedLinkDomains;
  const maxLength = own.maxLength ?? all.maxLength;
  const requiredDisclaimer = own.requiredDisclaimer ?? all.requiredDisclaimer;
  return {
    blockedWords: [...all.blockedWords, ...own.blockedWords],
    blockedClaims: [...all.blockedClaims, ...own.blockedClaims],
    ...(allowedLinkDomains ? { allowedLinkDomains } : {}),
    ...(maxLength !== undefined ? { maxLength } : {}),
    ...(requiredDisclaimer !== undefined ? { requiredDisclaimer } : {}),
  };
}

export const brandSafety = defineRule("brand_safety", (input) => {
  const { tool, proposal, rules } = input;
  if (!tool) return noTool(input);
  if (!tool.message) return pass(`${tool.name} sends no message`);
  const channel = channelOf(tool.message, proposal.input);
  if (channel === undefined) return fail(`cannot check: ${tool.name}'s channel field holds no channel name`);
  const policy = policyFor(rules.brandSafety, channel);
  if (!policy) return pass(`no brand-safety policy for channel ${channel}`);
  const problems = messageProblems(policy, tool.message, proposal.input);
  if (problems.length === 0) return pass(`the message meets channel ${channel}'s brand-safety policy`);
  const more = problems.length > MAX_REPORTED ? ` and ${problems.length - MAX_REPORTED} more` : "";
  return fail(`${problems.slice(0, MAX_REPORTED).join("; ")}${more} (brand-safety policy of channel ${channel})`);
});

function channelOf(message: OutgoingMessageFields, input: unknown): string | undefined {
  if (typeof message.channel === "string") return message.channel;
  const value = valuesAt(input, message.channel.field)[0]?.value;
  return typeof value === "string" && value !== "" ? value : undefined;
}

interface TextField {
  path: Path;
  text: string;
  isBody: boolean;
}

function textFields(message: OutgoingMessageFields, input: unknown): TextField[] {
  const out: TextField[] = [];
  for (const field of message.textFields) {
    for (const { path, value } of valuesAt(input, field)) {
      if (typeof value === "string") out.push({ path, text: value, isBody: field === message.bodyField });
    }
  }
  return out;
}

/** Every way the message breaks the policy, in the policy's order: words, claims, links, length, disclaimer. */
export function messageProblems(policy: BrandPolicy, message: OutgoingMessageFields, input: unknown): string[] {
  const fields = textFields(message, input);
  const problems: string[] = [];
  for (const word of policy.blockedWords) {
    // "free money" also matches "Free\n  money": a line break must not hide a phrase
    const phrase = word.split(/\s+/u).map(escapeRegExp).join("\\s+");
    const regex = new RegExp(`(?<![\\p{L}\\p{N}_])${phrase}(?![\\p{L}\\p{N}_])`, "iu");
    const at = fields.find((f) => regex.test(f.text));
    if (at) problems.push(`blocked word "${word}" in ${redactedPath(at.path)}`);
  }
  for (const claim of policy.blockedClaims) {
    const regex = new RegExp(claim, "i");
    for (const f of fields) {
      const hit = regex.exec(f.text);
      if (!hit) continue;
      problems.push(`blocked claim /${claim}/ matched "${quote(hit[0])}" in ${redactedPath(f.path)}`);
      break;
    }
  }
  if (policy.allowedLinkDomains) {
    const refused = new Set<string>();
    for (const f of fields) {
      for (const link of linksIn(f.text)) {
        const host = targetHost(link);
        const shown = host ?? quote(link);
        if ((host === undefined || !hostAllowed(host, policy.allowedLinkDomains)) && !refused.has(shown)) {
          refused.add(shown);
          problems.push(`link to ${shown} in ${redactedPath(f.path)} is not on the allowed link domains (${policy.allowedLinkDomains.join(", ") || "none"})`);
        }
      }
    }
  }
  const body = fields.filter((f) => f.isBody);
  if (policy.maxLength !== undefined) {
    for (const f of body) {
      const length = [...f.text].length;
      if (length > policy.maxLength) problems.push(`${redactedPath(f.path)} is ${length} characters, more than the ${policy.maxLength} allowed`);
    }
  }
  if (policy.requiredDisclaimer !== undefined) {
    const wanted = normalise(policy.requiredDisclaimer);
    if (!body.some((f) => normalise(f.text).includes(wanted))) {
      problems.push(`the required disclaimer "${quote(policy.requiredDisclaimer)}" is missing from ${message.bodyField}`);
    }
  }
  return problems;
}

/** http(s) URLs and bare `www.` names: what a reader can follow. Trailing punctuation belongs to the sentence. */
export function linksIn(text: string): string[] {
  const found = text.match(/\b(?:https?:\/\/|www\.)[^\s<>"'`]+/giu) ?? [];
  return found.map((link) => link.replace(/[.,;:!?)\]}]+$/u, ""));
}

function normalise(text: string): string {
  return text.replace(/\s+/gu, " ").trim().toLowerCase();
}

function quote(text: string): string {
  const flat = text.replace(/\s+/gu, " ");
  return flat.length <= QUOTE_MAX ? flat : `${flat.slice(0, QUOTE_MAX - 1)}…`;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
