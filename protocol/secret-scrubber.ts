/**
 * The one scrubber for secrets: provider API keys, bot tokens, nkey seeds and webhook tokens never leave a process in a
 * log line, an error that crosses the wire, a dead letter's reason, an audit or USAGE record, or `fleet status`.
 *
 * It knows secrets two ways. By shape: nkey seeds (`S` + a type letter + base32), `sk-…` provider keys, Telegram bot
 * tokens (also inside `…/bot<token>/…` URLs), Discord bot tokens, `Bearer …` and `Authorization: …` values. By value: the
 * process registers every secret its config names (the `…Env` variables it reads) at start, so a secret of any shape,
 * echoed back by a provider's error body or passed as a tool input, is replaced too.
 *
 * The registry is process-wide on purpose: a secret must be scrubbed from every sink of the process, including errors
 * built far from where the config was read.
 */

export const REDACTED = "[redacted]";

const SHAPES: readonly RegExp[] = [
  // nkey seeds: S + U(ser)/A(ccount)/N(server)/O(perator)/C(luster)/X(curve) + base32 of the rest (58 characters)
  /\bS[UANOCX][A-Z2-7]{50,}\b/g,
  // OpenAI-style and Anthropic keys (sk-…, sk-proj-…, sk-ant-…)
  /\bsk-[A-Za-z0-9_-]{16,}/g,
  // Telegram bot tokens, bare or in a bot API URL
  /(?<!\d)\d{6,12}:[A-Za-z0-9_-]{30,}/g,
  // Discord bot tokens: three base64url parts
  /\b[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,}/g,
];
// credentials in HTTP headers and URLs: keep the name, drop the value
const LABELLED: readonly [RegExp, string][] = [
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, `$1 ${REDACTED}`],
  [/\b(authorization|api[-_]?key|x-api-key|token|password|secret)("?\s*[:=]\s*"?)(?!\[redacted\]|Bearer\b|Basic\b)[^\s",;&}]{6,}/gi, `$1$2${REDACTED}`],
  [/(\/\/[^/\s:@]+:)[^/\s@]+@/g, `$1${REDACTED}@`],
];

/** Values shorter than this are not secrets worth the false positives ("1", "true", a port). */
const MIN_SECRET_LENGTH = 8;

export class SecretScrubber {
  private readonly values = new Set<string>();
  private valuePattern: RegExp | undefined;

  /** Registers secret values (a provider key, a bot token read from the environment); empty and short ones are ignored. */
  add(...values: readonly (string | undefined)[]): void {
    let changed = false;
    for (const v of values) {
      if (!v || v.length < MIN_SECRET_LENGTH || this.values.has(v)) continue;
      this.values.add(v);
      // a value inside a JSON line is escaped: match that form as well
      const escaped = JSON.stringify(v).slice(1, -1);
      if (escaped !== v) this.values.add(escaped);
      changed = true;
    }
    if (changed) {
      // longest first, so a secret that contains another is replaced whole
      const alternatives = [...this.values].sort((a, b) => b.length - a.length).map(escapeRegExp);
      this.valuePattern = new RegExp(alternatives.join("|"), "g");
    }
  }

  /** The text with every known secret and every secret-shaped string replaced by `[redacted]`. */
  scrub(text: string): string {
    let out = text;
    if (this.valuePattern) out = out.replace(this.valuePattern, REDACTED);
    for (const shape of SHAPES) out = out.replace(shape, REDACTED);
    for (const [pattern, replacement] of LABELLED) out = out.replace(pattern, replacement);
    return out;
  }

  /**
   * A copy of a JSON-like value (an audit record, a USAGE record, a tool input) with every string scrubbed. Bytes, numbers
   * and other leaves are kept as they are; unchanged subtrees are returned as they were, so a clean record is not copied.
   */
  scrubDeep<T>(value: T): T {
    return this.walk(value, 0) as T;
  }

  private walk(value: unknown, depth: number): unknown {
    if (typeof value === "string") return this.scrub(value);
    if (value === null || typeof value !== "object" || depth > 64 || value instanceof Uint8Array) return value;
    if (Array.isArray(value)) {
      let copy: unknown[] | undefined;
      value.forEach((item, i) => {
        const next = this.walk(item, depth + 1);
        if (next !== item) (copy ??= [...value])[i] = next;
      });
      return copy ?? value;
    }
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) return value;
    let copy: Record<string, unknown> | undefined;
    for (const [key, item] of Object.entries(value)) {
      const next = this.walk(item, depth + 1);
      if (next !== item) (copy ??= { ...value })[key] = next;
    }
    return copy ?? value;
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The process's scrubber: every sink uses this one. */
export const secrets = new SecretScrubber();

/** Environment variables whose names say they hold a secret, for processes that have not loaded a config yet. */
export function secretEnvNames(env: Readonly<Record<string, string | undefined>>): string[] {
  return Object.keys(env).filter((name) => /(KEY|TOKEN|SECRET|PASSWORD|SEED|CREDENTIAL)/i.test(name) && !/PUBLIC_KEY$/i.test(name));
}
