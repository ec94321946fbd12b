/*
 * An embedding that needs no model: hashed character trigrams (the "hashing trick"). It knows nothing of meaning, only
 * of spelling, so it finds near-identical requests (the same prompt with a changed date or extra whitespace), which is
 * what a semantic cache without an embedding endpoint can honestly promise. Deterministic across processes and versions
 * of Node, because the fleet's routers must agree on it.
 */

const DEFAULT_DIMENSIONS = 256;

/** FNV-1a, 32 bit: tiny, stable and well spread over short keys such as trigrams. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

export function localEmbedding(text: string, dimensions = DEFAULT_DIMENSIONS): number[] {
  if (!Number.isInteger(dimensions) || dimensions < 1) throw new RangeError(`dimensions must be a positive integer, got ${dimensions}`);
  const vector = new Array<number>(dimensions).fill(0);
  // Whitespace runs collapse and the ends are padded, so layout does not matter and a one-letter text still has a trigram.
  const normalised = text.toLowerCase().replace(/\s+/g, " ").trim();
  if (normalised === "") return vector;
  // code points, not UTF-16 units, so an emoji is one character and not two halves of a surrogate pair
  const chars = Array.from(` ${normalised} `);
  for (let i = 0; i + 3 <= chars.length; i++) {
    const hash = fnv1a(chars.slice(i, i + 3).join(""));
    // The top bit picks a sign, so colliding trigrams cancel out on average instead of inflating every similarity.
    const sign = hash & 0x80000000 ? -1 : 1;
    const index = (hash & 0x7fffffff) % dimensions;
    vector[index] = (vector[index] ?? 0) + sign;
  }
  let sumOfSquares = 0;
  for (const value of vector) sumOfSquares += value * value;
  const norm = Math.sqrt(sumOfSquares);
  return norm === 0 ? vector : vector.map((value) => value / norm);
}

/** Cosine of the angle between two vectors; 0 when either is all zeros (an empty text is similar to nothing). */
export function cosineSimilarity(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length) throw new RangeError(`vectors differ in length (${a.length} vs ${b.length}): not from the same embedding`);
  let dot = 0;
  let normA = 0;
  let normB = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    dot += x * y;
    normA += x * x;
    normB += y * y;
  }
  if (normA === 0 || normB === 0) return 0;
  return dot / Math.sqrt(normA * normB);
}
