import { TIER_NAMES, type TierName } from "../protocol/index.js";
import { FEATURE_BITS, type TitleFeatures } from "./title-features.js";

/*
 * Nearest neighbours among the labelled titles, the local classifier's second opinion. Each title is a TF-IDF vector
 * over its hashed features (router/title-features.ts: words, word pairs, character grams, word classes), normalised to
 * unit length; a title's neighbours are the labels with the highest cosine, found through an inverted index (only the
 * labels that share a feature are touched). The `k` nearest vote for their tier, each vote weighted by its cosine to
 * the power `sharpness`, so a near copy outvotes loose relatives.
 *
 * A linear model draws one boundary per tier; neighbours remember the odd examples the boundary cuts off (a "check" that
 * is a scan, a "why" that is a business question). Blended half and half with the linear model's probabilities, they
 * raised 10-fold CV over the round-3 labels and dev set from 93.1 to 95.3 % (bench/router-classifier-cv.ts, round 4 of
 * issue 14). A title that shares no indexed feature with any label gets no vote, so the blend halves the linear model's
 * confidence: a title unlike every label is not decided locally.
 *
 * `vote` uses scratch tables owned by the instance (no allocation per title); JavaScript runs it on one thread.
 */

const K = TIER_NAMES.length;

interface Posting {
  idf: number;
  ids: Int32Array;
  weights: Float32Array;
}

export interface NeighbourOptions {
  /** how many neighbours vote (default 10) */
  k?: number;
  /** each vote counts cosine^sharpness (default 4) */
  sharpness?: number;
  /** features held by more than this share of the labels are left out of the index (default 0.05): they say little
   * (low IDF) and their long lists would cost most of the lookup time */
  commonShare?: number;
}

export class TitleNeighbours {
  private readonly scores: Float64Array;
  private readonly bestId: Int32Array;
  private readonly bestScore: Float64Array;
  /** per feature bucket, 1 + its index in `postings` (0: no label holds it), for direct lookups */
  private readonly slots = new Int32Array(1 << FEATURE_BITS);
  private readonly counts = new Uint16Array(1 << FEATURE_BITS);
  private readonly postings: Posting[] = [];

  private constructor(
    postings: ReadonlyMap<number, Posting>,
    private readonly tiers: Int8Array,
    k: number,
    private readonly sharpness: number,
  ) {
    this.scores = new Float64Array(tiers.length);
    this.bestId = new Int32Array(Math.max(1, k));
    this.bestScore = new Float64Array(Math.max(1, k));
    for (const [bucket, posting] of postings) this.slots[bucket] = this.postings.push(posting);
  }

  static build(examples: ReadonlyArray<{ features: TitleFeatures; tier: TierName }>, options: NeighbourOptions = {}): TitleNeighbours {
    const counts = examples.map((e) => termCounts(e.features));
    const df = new Map<number, number>();
    for (const c of counts) for (const bucket of c.keys()) df.set(bucket, (df.get(bucket) ?? 0) + 1);
    const n = examples.length;
    const idf = new Map<number, number>();
    for (const [bucket, d] of df) idf.set(bucket, Math.log((n + 1) / (d + 1)) + 1);
    const common = Math.max(1, Math.floor(n * (options.commonShare ?? 0.05)));
    const lists = new Map<number, { ids: number[]; weights: number[] }>();
    counts.forEach((c, id) => {
      for (const [bucket, w] of unitVector(c, (b) => idf.get(b) as number)) {
        if ((df.get(bucket) as number) > common) continue;
        let list = lists.get(bucket);
        if (!list) lists.set(bucket, (list = { ids: [], weights: [] }));
        list.ids.push(id);
        list.weights.push(w);
      }
    });
    const postings = new Map<number, Posting>();
    for (const [bucket, list] of lists) postings.set(bucket, { idf: idf.get(bucket) as number, ids: Int32Array.from(list.ids), weights: Float32Array.from(list.weights) });
    const tiers = Int8Array.from(examples.map((e) => TIER_NAMES.indexOf(e.tier)));
    return new TitleNeighbours(postings, tiers, options.k ?? 10, options.sharpness ?? 4);
  }

  /** The neighbours' vote, one share per tier (summing to 1), written to `out`; all zero when no label shares a feature. */
  vote(features: TitleFeatures, out: Float64Array): void {
    out.fill(0);
    const scores = this.scores;
    scores.fill(0);
    // the title's distinct buckets with their counts, in a table of counters left all zero again. The title's own
    // length is left out: it scales every cosine alike, and the vote below is normalised.
    const { indices } = features;
    const counts = this.counts;
    for (let i = 0; i < indices.length; i++) counts[indices[i] as number] = (counts[indices[i] as number] as number) + 1;
    for (let i = 0; i < indices.length; i++) {
      const bucket = indices[i] as number;
      const c = counts[bucket] as number;
      if (c === 0) continue; // a repeat, counted already
      counts[bucket] = 0;
      const at = this.slots[bucket] as number;
      if (at === 0) continue;
      const { idf, ids, weights } = this.postings[at - 1] as Posting;
      const w = (1 + Math.log(c)) * idf;
      for (let j = 0; j < ids.length; j++) scores[ids[j] as number] = (scores[ids[j] as number] as number) + w * (weights[j] as number);
    }
    // the k best, by insertion into a short sorted list
    const bestId = this.bestId;
    const bestScore = this.bestScore;
    bestScore.fill(0);
    const k = bestId.length;
    for (let id = 0; id < scores.length; id++) {
      const s = scores[id] as number;
      if (s <= (bestScore[k - 1] as number)) continue;
      let at = k - 1;
      while (at > 0 && (bestScore[at - 1] as number) < s) {
        bestScore[at] = bestScore[at - 1] as number;
        bestId[at] = bestId[at - 1] as number;
        at--;
      }
      bestScore[at] = s;
      bestId[at] = id;
    }
    let total = 0;
    for (let i = 0; i < k && (bestScore[i] as number) > 0; i++) {
      const w = Math.pow(bestScore[i] as number, this.sharpness);
      const tier = this.tiers[bestId[i] as number] as number;
      out[tier] = (out[tier] as number) + w;
      total += w;
    }
    if (total > 0) for (let t = 0; t < K; t++) out[t] = (out[t] as number) / total;
  }
}

function termCounts(features: TitleFeatures): Map<number, number> {
  const counts = new Map<number, number>();
  for (let i = 0; i < features.indices.length; i++) {
    const bucket = features.indices[i] as number;
    counts.set(bucket, (counts.get(bucket) ?? 0) + 1);
  }
  return counts;
}

/** Sublinear TF times IDF, scaled to unit length. */
function unitVector(counts: ReadonlyMap<number, number>, idf: (bucket: number) => number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let sum = 0;
  for (const [bucket, c] of counts) {
    const w = (1 + Math.log(c)) * idf(bucket);
    out.push([bucket, w]);
    sum += w * w;
  }
  const norm = Math.sqrt(sum) || 1;
  for (const pair of out) pair[1] /= norm;
  return out;
}
