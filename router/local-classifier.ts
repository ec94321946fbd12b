import { TIER_NAMES, type TierName } from "../protocol/index.js";
import { FEATURE_BITS, normalTitle, titleFeatures, titleWords, type TitleFeatures } from "./title-features.js";
import { TitleNeighbours, type NeighbourOptions } from "./title-neighbours.js";

/*
 * The local classifier: which tier a step's title calls for, decided in-process in microseconds and for $0. A
 * multinomial logistic regression over hashed word, word-pair and character n-gram features (router/title-features.ts),
 * trained by stochastic gradient descent on labelled titles: the labels shipped with natsfleet, the operator's files,
 * and what the fleet learned (a step that escalated, an operator's correction). Its confidence is the probability of
 * its best tier, so a title unlike anything it was taught gets a low one and the policy asks elsewhere.
 *
 * A title it was taught word for word (after normalising case, spacing and numbers) is answered from that label with
 * confidence 1: an operator's correction holds for the title it names, whatever the model makes of its neighbours.
 * Among labels for the same title the last one wins, so learned labels are passed after the files.
 *
 * Its probabilities are blended half and half with the vote of the title's nearest labels (router/title-neighbours.ts),
 * which remember the odd examples a linear boundary cuts off. A title of at most one meaningful word ("pricing",
 * "question 3", "quick question") is too little to go on, whatever the model says: its confidence is capped below the default threshold,
 * so it falls through to the nano classifier or the agent's default.
 *
 * Measured in bench/router (accuracy on held-out titles, confusion matrix, decision time) against nearest neighbours
 * over the local trigram embedding, which it beats on held-out phrasings.
 */

export interface LabelledTitle {
  title: string;
  tier: TierName;
  /** where the label came from (a file and line, "operator", "escalation"), for the operator's questions */
  source: string;
  /** how much the example counts in training (default 1; learned labels count more: they are the fleet's own work) */
  weight?: number;
}

export interface LocalVerdict {
  tier: TierName;
  /** the best tier's probability, 0–1; 1 for a title taught word for word */
  confidence: number;
  /** the label's source when the title was taught word for word */
  taught?: string;
}

export interface TrainOptions {
  epochs?: number;
  learningRate?: number;
  /** L2 shrinkage per epoch, keeping probabilities honest on titles far from every example */
  decay?: number;
  /** the shuffle's seed: the same labels train the same model in every router process */
  seed?: number;
  /** the nearest labels' share of the blended probabilities, 0–1 (default 0.5; 0: the linear model alone) */
  neighbourShare?: number;
  neighbours?: NeighbourOptions;
  /** the highest confidence a title of one meaningful word gets (default 0.4, under the default threshold 0.5) */
  vagueCap?: number;
}

const K = TIER_NAMES.length;
const FILLER = new Set(["the", "and", "for", "with", "from", "this", "that", "these", "those", "our", "all", "any", "some", "one", "two", "three", "what", "who", "why", "how", "it's", "its", "please", "thing", "things", "stuff", "something", "anything", "task", "step"]);
/** words that say a step exists but not what kind of work it is: they count as features, not as evidence */
const VAGUE = new Set(["question", "questions", "quick", "issue", "issues", "problem", "request", "help", "misc", "todo", "note", "notes", "item", "ticket", "urgent", "asap", "idea", "topic", "followup"]);
const DIMENSIONS = 1 << FEATURE_BITS;

export class LocalClassifier {
  private constructor(
    /** weight of feature i for tier k at i * K + k: the K weights a feature touches sit side by side */
    private readonly weights: Float32Array,
    private readonly bias: Float64Array,
    private readonly exact: ReadonlyMap<string, { tier: TierName; source: string }>,
    /** how many labels it learned from */
    readonly size: number,
    private readonly neighbours: TitleNeighbours,
    private readonly neighbourShare: number,
    private readonly vagueCap: number,
  ) {}

  static train(labels: readonly LabelledTitle[], options: TrainOptions = {}): LocalClassifier {
    const epochs = options.epochs ?? 40;
    const rate = options.learningRate ?? 0.6;
    const decay = options.decay ?? 0.002;
    const exact = new Map<string, { tier: TierName; source: string }>();
    // Training runs on a dense table of only the buckets the examples touch (a few thousand, in cache), not on the
    // 2^18-bucket table, whose random accesses would make training ten times slower; the result is scattered into it.
    const dense = new Map<number, number>();
    const examples: Array<{ indices: Int32Array; value: number; target: number; weight: number }> = [];
    const kept: Array<{ features: TitleFeatures; tier: TierName }> = [];
    for (const label of labels) {
      const key = normalTitle(label.title);
      if (key === "") continue;
      exact.set(key, { tier: label.tier, source: label.source });
      const features = titleFeatures(label.title);
      kept.push({ features, tier: label.tier });
      const indices = features.indices.map((index) => {
        let id = dense.get(index);
        if (id === undefined) dense.set(index, (id = dense.size));
        return id;
      });
      examples.push({ indices, value: features.weight, target: TIER_NAMES.indexOf(label.tier), weight: label.weight ?? 1 });
    }
    const table = new Float64Array(dense.size * K);
    const bias = new Float64Array(K);
    const order = examples.map((_, i) => i);
    let state = (options.seed ?? 0x5eed) >>> 0;
    const random = () => {
      // xorshift32: a deterministic shuffle, so every router trains the same model from the same labels
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return (state >>> 0) / 0x1_0000_0000;
    };
    const probabilities = new Float64Array(K);
    for (let epoch = 0; epoch < epochs; epoch++) {
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        const swap = order[i] as number;
        order[i] = order[j] as number;
        order[j] = swap;
      }
      const step = rate / (1 + epoch * 0.1);
      for (const index of order) {
        const example = examples[index]!;
        softmax(table, bias, example.indices, example.value, probabilities);
        const { indices, value } = example;
        for (let k = 0; k < K; k++) {
          const gradient = step * example.weight * ((k === example.target ? 1 : 0) - (probabilities[k] as number));
          bias[k] = (bias[k] as number) + gradient * 0.1;
          const g = gradient * value;
          for (let f = 0; f < indices.length; f++) {
            const at = (indices[f] as number) * K + k;
            table[at] = (table[at] as number) + g;
          }
        }
      }
      if (decay > 0) {
        const keep = 1 - decay;
        for (let i = 0; i < table.length; i++) table[i] = (table[i] as number) * keep;
      }
    }
    const weights = new Float32Array(DIMENSIONS * K);
    for (const [index, id] of dense) for (let k = 0; k < K; k++) weights[index * K + k] = table[id * K + k] as number;
    const neighbours = TitleNeighbours.build(kept, options.neighbours);
    return new LocalClassifier(weights, bias, exact, examples.length, neighbours, options.neighbourShare ?? 0.5, options.vagueCap ?? 0.4);
  }

  /** The tier a title calls for and how sure the model is; undefined for a title with no words. */
  classify(title: string): LocalVerdict | undefined {
    const words = titleWords(title);
    const taught = this.exact.get(words.join(" "));
    if (taught) return { tier: taught.tier, confidence: 1, taught: taught.source };
    // a title of nothing but short or filler words ("a", "do it") is no evidence: the model would only echo its priors
    let any = 0;
    let meaningful = 0;
    for (const w of words) {
      if (w.length < 3 || FILLER.has(w)) continue;
      any++;
      if (!VAGUE.has(w)) meaningful++;
    }
    if (this.size === 0 || any === 0) return undefined;
    const features = titleFeatures(words);
    const probabilities = new Float64Array(K);
    softmax(this.weights, this.bias, features.indices, features.weight, probabilities);
    if (this.neighbourShare > 0) {
      const votes = new Float64Array(K);
      this.neighbours.vote(features, votes);
      const share = this.neighbourShare;
      for (let k = 0; k < K; k++) probabilities[k] = (1 - share) * (probabilities[k] as number) + share * (votes[k] as number);
    }
    let best = 0;
    for (let k = 1; k < K; k++) if ((probabilities[k] as number) > (probabilities[best] as number)) best = k;
    const confidence = probabilities[best] as number;
    return { tier: TIER_NAMES[best] as TierName, confidence: meaningful <= 1 ? Math.min(confidence, this.vagueCap) : confidence };
  }
}

function softmax(weights: Float32Array | Float64Array, bias: Float64Array, indices: Int32Array, weight: number, out: Float64Array): void {
  for (let k = 0; k < K; k++) out[k] = bias[k] as number;
  for (let f = 0; f < indices.length; f++) {
    const base = (indices[f] as number) * K;
    for (let k = 0; k < K; k++) out[k] = (out[k] as number) + (weights[base + k] as number) * weight;
  }
  let max = -Infinity;
  for (let k = 0; k < K; k++) max = Math.max(max, out[k] as number);
  let sum = 0;
  for (let k = 0; k < K; k++) {
    const e = Math.exp((out[k] as number) - max);
    out[k] = e;
    sum += e;
  }
  for (let k = 0; k < K; k++) out[k] = (out[k] as number) / sum;
}
