/**
 * How alike two task titles are, for the dedup layers. The measure is the Sørensen–Dice coefficient over the multiset of
 * character bigrams of each word (padded with a space on both sides, so " pr", "pri", … "ng " and one-letter words count):
 *
 * - Word order does not matter: the bigrams are taken per word, so "pricing of competitors" and "competitors pricing of"
 *   score 1. Token Jaccard has this too, but a typo ("competiton") or an inflection ("competitors") makes a whole word
 *   disjoint there, while here it costs only the one or two bigrams around the change.
 * - Levenshtein handles typos but punishes reordering (a swapped pair of words costs almost their whole length), needs
 *   O(n·m) time per pair and a normalisation of its own; Dice over bigrams is one pass over each title.
 * - It is symmetric and bounded in [0, 1], so one threshold (0.7) reads the same for any pair.
 *
 * Known weakness: short titles. With few bigrams, one word decides the score: "deploy site" vs "deploy docs" is 0.58
 * and "send weekly report" vs "send weekly invoice" 0.62, just under the line, while "update pricing page" vs "update
 * pricing docs" is 0.75, just over it. Long titles are the opposite: one changed word barely counts, for better (a
 * rephrased finding) or worse ("enable the staging firewall" vs "disable …" is 0.88). The measure knows nothing of
 * meaning ("check rivals' pricing" vs "competitor price audit" is 0.23); that would need embeddings. This layer only has
 * to stop an agent filing the same finding again and again, and it does that cheaply and predictably.
 */

/** Normalised titles are cut here: enough to tell tasks apart, and it bounds both the KV record and the comparison. */
export const MAX_TITLE_CHARS = 200;

/**
 * Lower-case, accents and punctuation removed, whitespace collapsed, capped at MAX_TITLE_CHARS. Words made only of digits
 * are dropped: automated discoveries number their batches, runs and dates ("competitor pricing batch 3", "… batch 4",
 * "report 2024-05-01") and those are the repeats dedup exists to catch. The cost is that an id alone no longer tells two
 * titles apart ("fix issue 812" vs "fix issue 913"), but with the digits kept bigrams rate that pair 0.71 anyway. A
 * title of nothing but numbers keeps them, since otherwise it would have no text to compare at all. Idempotent.
 */
export function normalizeTitle(text: string): string {
  // cut the raw text first, so a megabyte of message body costs no more than a long title
  const words = text
    .slice(0, MAX_TITLE_CHARS * 4)
    // Latin accents only (café = cafe); other scripts' marks carry meaning, and NFC puts them back together
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .normalize("NFC")
    .toLowerCase()
    .replace(/['’`]/g, "")
    .split(/[^\p{L}\p{N}]+/u)
    .filter(Boolean);
  const textual = words.filter((w) => !/^\p{N}+$/u.test(w));
  const kept = textual.length > 0 ? textual : words;
  // whole words only, so a cut never leaves a fragment that a second pass would read differently
  let out = "";
  for (const word of kept) {
    const next = out ? `${out} ${word}` : word;
    if (next.length > MAX_TITLE_CHARS) return out || Array.from(word).slice(0, MAX_TITLE_CHARS).join("");
    out = next;
  }
  return out;
}

/** The bigram multiset of an already normalised title: each word padded with spaces, counted per bigram. */
export function titleBigrams(normalized: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const word of normalized.split(" ")) {
    if (!word) continue;
    const padded = ` ${word} `;
    for (let i = 0; i < padded.length - 1; i++) {
      const gram = padded.slice(i, i + 2);
      counts.set(gram, (counts.get(gram) ?? 0) + 1);
    }
  }
  return counts;
}

/**
 * Dice over two bigram multisets: 2·|A∩B| / (|A|+|B|). Empty on either side is 0, never 1: a title with no text carries
 * no evidence that two tasks are the same, and scoring it 1 would fold every untitled task into the first one.
 */
export function bigramDice(a: Map<string, number>, b: Map<string, number>): number {
  let sizeA = 0;
  let sizeB = 0;
  for (const n of a.values()) sizeA += n;
  for (const n of b.values()) sizeB += n;
  if (sizeA === 0 || sizeB === 0) return 0;
  const [small, large] = a.size <= b.size ? [a, b] : [b, a];
  let shared = 0;
  for (const [gram, n] of small) shared += Math.min(n, large.get(gram) ?? 0);
  return (2 * shared) / (sizeA + sizeB);
}

/** Similarity of two raw titles in [0, 1]; see the top of this file for why this measure. */
export function titleSimilarity(a: string, b: string): number {
  return bigramDice(titleBigrams(normalizeTitle(a)), titleBigrams(normalizeTitle(b)));
}
