import { formatPath } from "../../protocol/index.js";
import type { Path } from "./walk.js";

/**
 * Deterministic detectors for the personal data the personal_data rule refuses: email addresses, international phone
 * numbers, payment card numbers (Luhn) and IBANs (mod 97). Each is tuned against the false positives an agent's input
 * is full of — dates, versions, timestamps, order numbers, hashes — at the price of some misses, listed per detector.
 *
 * A found span is masked before the next detector runs, so an IBAN's digits are not also read as a card number and a
 * phone number's tail not as one either. The order (email, IBAN, phone, card) runs the most specific shapes first.
 */

export type PersonalDataKind = "email address" | "IBAN" | "phone number" | "payment card number";

/** A character no detector treats as part of anything, so a masked span is a clean break. */
const MASK = "\u0000";

// Local part of the common (unquoted ASCII) form; the domain needs a letters-only TLD, so "pkg@1.2.3" is no address.
// Misses: quoted local parts, non-ASCII addresses, "name at example dot com".
const EMAIL = /(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![A-Za-z0-9-])/g;

// International format only: "+" or "00", a country code, then digit groups with single separators (space - . / or
// parentheses, "+49 (0)30 …"). "00" must be followed by a separated group, so a zero-padded id ("0012345678") is not a
// phone, and must not continue a run of digit groups, so the tail of an account number ("… 3704 0044 0532 …") is not
// one either. Misses: national numbers ("030 1234567", "(555) 010-9999"), "0049301234567" without separators.
const SEPARATOR = String.raw`(?:[ \-./]|[ ]?\(|\)[ ]?)`;
const PHONE_PLUS = new RegExp(String.raw`(?<![\w+])\+[1-9]\d*(?:${SEPARATOR}\d+)*`, "g");
const PHONE_ZERO = new RegExp(String.raw`(?<![\w+])(?<!\d[ \-./])00[1-9]\d{0,2}(?:${SEPARATOR}\d+)+`, "g");
const MIN_PHONE_DIGITS = 9;

// A run of digit groups with single spaces or dashes, not glued to letters or digits (hashes, ids), and not the tail of
// an identifier that already had digits ("DE89 3704 0044 …", "INV-7 4111 …"): that is the identifier's, not a card.
const DIGIT_RUN = /(?<![A-Za-z0-9+])(?<!\d[A-Za-z0-9]*[ -])\d+(?:[ -]\d+)*(?![A-Za-z0-9])/g;

// Country code and check digits start a candidate; the account (BBAN) follows in groups of letters and digits, with or
// without single spaces. Starts are found first and each read on its own, so a failed candidate cannot swallow a real
// IBAN that follows it ("ref AB12 DE89 …").
const IBAN_START = /(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}/g;
const IBAN_BODY = /[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}/y;

/** IBAN length per country (the SWIFT IBAN registry), so a candidate is cut where the account really ends. */
const IBAN_LENGTH: Readonly<Record<string, number>> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BI: 27, BR: 29, BY: 28, CH: 21, CR: 22,
  CY: 28, CZ: 24, DE: 22, DJ: 27, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18, FK: 18, FO: 18, FR: 27, GB: 22,
  GE: 22, GI: 23, GL: 18, GR: 27, GT: 28, HR: 21, HU: 28, IE: 22, IL: 23, IQ: 23, IS: 26, IT: 27, JO: 30, KW: 30,
  KZ: 20, LB: 28, LC: 32, LI: 21, LT: 20, LU: 20, LV: 21, LY: 25, MC: 27, MD: 24, ME: 22, MK: 19, MN: 20, MR: 27,
  MT: 31, MU: 30, NI: 28, NL: 18, NO: 15, OM: 23, PK: 24, PL: 28, PS: 29, PT: 25, QA: 29, RO: 24, RS: 22, RU: 33,
  SA: 24, SC: 31, SD: 18, SE: 24, SI: 19, SK: 24, SM: 27, SO: 23, ST: 25, SV: 28, TL: 23, TN: 24, TR: 26, UA: 29,
  VA: 22, VG: 24, XK: 20, YE: 30,
};

/** The kinds of personal data in one piece of text, in detection order, each at most once. Never returns the data. */
export function personalDataIn(text: string): PersonalDataKind[] {
  const found: PersonalDataKind[] = [];
  let rest = text;
  const detect = (kind: PersonalDataKind, spans: (text: string) => [number, number][]): void => {
    const hits = spans(rest);
    if (hits.length === 0) return;
    found.push(kind);
    rest = masked(rest, hits);
  };
  detect("email address", (t) => matches(t, EMAIL).map((m) => span(m)));
  detect("IBAN", ibanSpans);
  detect("phone number", phoneSpans);
  detect("payment card number", cardSpans);
  return found;
}

/** The text with the spans overwritten, built in one pass: a long input with thousands of hits stays linear. */
function masked(text: string, spans: [number, number][]): string {
  const parts: string[] = [];
  let from = 0;
  for (const [start, end] of [...spans].sort((a, b) => a[0] - b[0])) {
    if (start < from) continue;
    parts.push(text.slice(from, start), MASK.repeat(end - start));
    from = end;
  }
  parts.push(text.slice(from));
  return parts.join("");
}

function matches(text: string, pattern: RegExp): RegExpExecArray[] {
  return [...text.matchAll(pattern)];
}

function span(match: RegExpExecArray, length = match[0].length): [number, number] {
  return [match.index, match.index + length];
}

const digitCount = (text: string): number => text.replace(/\D/g, "").length;

function phoneSpans(text: string): [number, number][] {
  const plus = matches(text, PHONE_PLUS).filter((m) => digitCount(m[0]) >= MIN_PHONE_DIGITS);
  // the "00" is the international call prefix, not part of the number
  const zero = matches(text, PHONE_ZERO).filter((m) => digitCount(m[0]) - 2 >= MIN_PHONE_DIGITS);
  return [...plus, ...zero].map((m) => span(m));
}

/**
 * A card number is 13–19 digits passing Luhn, starting 2–6 (every major scheme: Mastercard 2/5, Amex and Diners 3,
 * Visa 4, Discover and UnionPay 6), so epoch-millisecond timestamps (1…) and zero-padded ids are not read as one. The
 * whole run is tried, then its prefixes at group boundaries, for a number followed by more digits ("… 1111 12 26").
 * Luhn passes one random number in ten, so a 13–19 digit id starting 2–6 is still flagged one time in ten.
 */
function cardSpans(text: string): [number, number][] {
  const spans: [number, number][] = [];
  for (const run of matches(text, DIGIT_RUN)) {
    // a run starting "00" is an international phone number the phone detector did not take
    if (run[0].startsWith("00")) continue;
    const groups = run[0].split(/[ -]/);
    let digits = "";
    let length = -1;
    for (const group of groups) {
      digits += group;
      length += group.length + 1;
      if (digits.length > 19) break;
      if (digits.length >= 13 && /^[2-6]/.test(digits) && luhn(digits)) {
        spans.push(span(run, length));
        break;
      }
    }
  }
  return spans;
}

export function luhn(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/**
 * A known country's IBAN has one length, so the candidate is cut there, and only where a group or the text ends (the
 * next word is not part of the account). An unknown country's candidate must be 15–34 characters as a whole. Either
 * way the mod-97 check decides: one random candidate in 97 passes it.
 */
function ibanSpans(text: string): [number, number][] {
  const spans: [number, number][] = [];
  for (const start of matches(text, IBAN_START)) {
    IBAN_BODY.lastIndex = start.index;
    const candidate = IBAN_BODY.exec(text);
    if (!candidate) continue;
    const raw = candidate[0];
    const expected = IBAN_LENGTH[raw.slice(0, 2).toUpperCase()];
    let compact = "";
    let end = 0;
    for (const ch of raw) {
      end++;
      if (ch === " ") continue;
      compact += ch.toUpperCase();
      if (compact.length === expected) break;
    }
    if (expected !== undefined) {
      const next = raw[end];
      if (compact.length !== expected || (next !== undefined && next !== " ")) continue;
    } else if (compact.length < 15 || compact.length > 34) continue;
    if (ibanChecksumOk(compact)) spans.push(span(candidate, end));
  }
  return spans;
}

export function ibanChecksumOk(iban: string): boolean {
  const rotated = iban.slice(4) + iban.slice(0, 4);
  let remainder = 0;
  for (const ch of rotated) {
    const value = /\d/.test(ch) ? ch : String(ch.charCodeAt(0) - 55);
    for (const digit of value) remainder = (remainder * 10 + Number(digit)) % 97;
  }
  return remainder === 1;
}

/**
 * A field path fit for a reason: a member name that is itself personal data ({"jane@example.com": …}) is shown as
 * "<redacted>", so a reason never carries the data it reports.
 */
export function redactedPath(path: Path): string {
  return formatPath(path.map((segment) => (typeof segment === "string" && personalDataIn(segment).length > 0 ? "<redacted>" : segment)));
}
