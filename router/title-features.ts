/*
 * The features the local classifier reads from a title: words, word pairs and the character 3- to 5-grams of each word
 * (so "deployment", "deploys" and "redeploy" share most of their features, and a typo costs a few of them, not all),
 * hashed into a fixed number of buckets (the hashing trick: no vocabulary to keep in step across routers). Numbers are
 * folded to one digit: "v2.4" and "v3.1" are the same kind of work. Each word also sends the features of its word
 * classes (router/word-classes.ts: "breach", "leak" and "ransomware" are all crisis words), so a word no label used
 * still counts through its class-mates; chosen by cross-validation on the labels (bench/router-classifier-cv.ts).
 * The opening word is also paired with the classes of the words after it: "check" before a security word is a scan
 * (workhorse), "check" before a liveness word a status query (nano); "decide" before an orchestration word runs the
 * fleet's work (power), before a strategy word the company's future (premium). A linear model cannot see such pairs
 * from the words alone (round 3 of issue 14: 5-fold CV 94.6 → 95.3 % on the round-2 labels).
 *
 * Written for speed: one pass over the characters, FNV-1a hashes computed in place, no substrings, so extracting a
 * title's features is a few microseconds.
 */

import { WORD_CLASS_COUNT, wordClasses } from "./word-classes.js";

export const FEATURE_BITS = 18;
const FEATURE_MASK = (1 << FEATURE_BITS) - 1;
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const MIN_GRAM = 3;
const MAX_GRAM = 5;
const BOUNDARY = 0x23; // '#': marks a word's start and end inside its character grams
const SEED_WORD = 0x9e3779b1;
const SEED_PAIR = 0x85ebca6b;
const SEED_GRAM = 0xc2b2ae35;
const SEED_FIRST = 0x165667b1;
const SEED_CLASS = 0x27d4eb2f;
const SEED_OPENER = 0x5bd1e995;
/** how many times a word's class counts (router/word-classes.ts) */
const CLASS_REPEAT = 2;
/** how many times a whole word counts next to one of its character grams: words carry most of the meaning */
const WORD_REPEAT = 3;
/** how many times the opening word paired with a later word's class counts */
const OPENER_REPEAT = 3;

/** A title's features: bucket indices and their weights (equal, and scaled so the vector has unit length). */
export interface TitleFeatures {
  indices: Int32Array;
  weight: number;
  count: number;
}

/** Lower-cased words of letters and digits (digits folded to 0), the way the classifier sees a title. */
export function titleWords(title: string): string[] {
  const text = title.toLowerCase();
  const words: string[] = [];
  let word = "";
  let digits = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (!digits) word += "0";
      digits = true;
      continue;
    }
    digits = false;
    // ASCII letters, and any non-ASCII letter (ü, é, ß, ...) by the slower test
    if ((c >= 97 && c <= 122) || (c > 127 && LETTER.test(text[i] as string))) word += text[i];
    else if (word !== "") {
      words.push(word);
      word = "";
    }
  }
  if (word !== "") words.push(word);
  return words;
}

const LETTER = /\p{L}/u;

/** The normal form of a title for exact lookups: its words joined by single spaces. */
export function normalTitle(title: string): string {
  return titleWords(title).join(" ");
}

function mix(hash: number, seed: number): number {
  let h = Math.imul(hash ^ seed, 0x27d4eb2d);
  h ^= h >>> 15;
  return h >>> 0;
}

function hashWord(word: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < word.length; i++) h = Math.imul(h ^ word.charCodeAt(i), FNV_PRIME);
  return h >>> 0;
}

/** The character code of position `i` of `#word#`. */
function paddedChar(word: string, i: number): number {
  return i === 0 || i === word.length + 1 ? BOUNDARY : word.charCodeAt(i - 1);
}

/** `words`: the title's words from titleWords (a caller that has them already passes them, not the title again). */
export function titleFeatures(title: string | readonly string[]): TitleFeatures {
  const words = typeof title === "string" ? titleWords(title) : title;
  const out: number[] = [];
  let previous = 0;
  let opener = 0;
  let laterClasses = 0;
  for (let w = 0; w < words.length; w++) {
    const word = words[w] as string;
    const hash = hashWord(word);
    const wordFeature = mix(hash, SEED_WORD) & FEATURE_MASK;
    for (let r = 0; r < WORD_REPEAT; r++) out.push(wordFeature);
    const classes = wordClasses(word);
    if (w === 0) opener = hash;
    else laterClasses |= classes;
    for (let c = 0; c < WORD_CLASS_COUNT; c++) {
      if ((classes & (1 << c)) === 0) continue;
      const feature = mix(c + 1, SEED_CLASS) & FEATURE_MASK;
      for (let r = 0; r < CLASS_REPEAT; r++) out.push(feature);
    }
    // the opening word says what kind of step it is ("deploy", "write", "decide", "is", "should")
    if (w === 0) for (let r = 0; r < WORD_REPEAT; r++) out.push(mix(hash, SEED_FIRST) & FEATURE_MASK);
    if (w > 0) {
      const pair = mix(Math.imul(previous, 31) ^ hash, SEED_PAIR) & FEATURE_MASK;
      for (let r = 0; r < WORD_REPEAT; r++) out.push(pair);
    }
    previous = hash;
    const length = word.length + 2;
    for (let start = 0; start + MIN_GRAM <= length; start++) {
      let h = FNV_OFFSET;
      for (let n = 0; n < MAX_GRAM && start + n < length; n++) {
        h = Math.imul(h ^ paddedChar(word, start + n), FNV_PRIME);
        if (n + 1 >= MIN_GRAM) out.push(mix(h >>> 0, SEED_GRAM + n) & FEATURE_MASK);
      }
    }
  }
  for (let c = 0; c < WORD_CLASS_COUNT; c++) {
    if ((laterClasses & (1 << c)) === 0) continue;
    const feature = mix(Math.imul(opener, 31) ^ (c + 1), SEED_OPENER) & FEATURE_MASK;
    for (let r = 0; r < OPENER_REPEAT; r++) out.push(feature);
  }
  return { indices: Int32Array.from(out), weight: out.length === 0 ? 0 : 1 / Math.sqrt(out.length), count: out.length };
}
