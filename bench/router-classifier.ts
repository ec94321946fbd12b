import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { shippedLabelsPath, TIER_NAMES, type TierName } from "../config/index.js";
import { cosineSimilarity, LocalClassifier, localEmbedding, normalTitle, parseLabels, type LabelledTitle } from "../router/index.js";
import { figure, median, say, type Result } from "./report.js";

/**
 * The local classifier measured for bench/router: trained on the shipped labels (config/routing-labels.txt), asked the
 * held-out titles of bench/router-heldout.txt (written after the first labels were final; never trained on, never tuned
 * on) and of bench/router-heldout-2.txt (150 titles written before the second round's labels and word classes were
 * measured; model choices were made by bench/router-classifier-cv.ts on the training and dev labels only) and of
 * bench/router-heldout-3.txt (150 titles written in round 3 before any of its changes was measured).
 * Reports top-1 accuracy with its confusion matrix (and the linear model's alone, without the nearest labels' vote), accuracy and coverage at the default confidence threshold, the same
 * on the development set (seen while writing the labels: optimistic), the decision time, the training time, and the
 * baseline: one nearest neighbour over the local trigram embedding (router/local-embedding.ts) on the same labels.
 */

const SOURCE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const MIN_CONFIDENCE = 0.5;
const TIMING_N = 200_000;

function labelsOf(file: string): LabelledTitle[] {
  return parseLabels(readFileSync(file, "utf8"), file);
}

function confusion(model: LocalClassifier, set: readonly LabelledTitle[]): { correct: number; matrix: number[][]; confident: number; confidentCorrect: number } {
  const matrix = TIER_NAMES.map(() => TIER_NAMES.map(() => 0));
  let correct = 0;
  let confident = 0;
  let confidentCorrect = 0;
  for (const label of set) {
    const verdict = model.classify(label.title);
    const predicted = verdict?.tier;
    if (predicted === undefined) continue;
    (matrix[TIER_NAMES.indexOf(label.tier)] as number[])[TIER_NAMES.indexOf(predicted)]! += 1;
    if (predicted === label.tier) correct++;
    if ((verdict?.confidence ?? 0) >= MIN_CONFIDENCE) {
      confident++;
      if (predicted === label.tier) confidentCorrect++;
    }
  }
  return { correct, matrix, confident, confidentCorrect };
}

function nearestNeighbour(training: readonly LabelledTitle[], set: readonly LabelledTitle[]): number {
  const vectors = training.map((l) => localEmbedding(l.title));
  let correct = 0;
  for (const label of set) {
    const v = localEmbedding(label.title);
    let best = -Infinity;
    let tier: TierName | undefined;
    vectors.forEach((x, i) => {
      const s = cosineSimilarity(v, x);
      if (s > best) [best, tier] = [s, training[i]?.tier];
    });
    if (tier === label.tier) correct++;
  }
  return correct;
}

const pct = (n: number, d: number) => `${((100 * n) / d).toFixed(1)} %`;

export function classifierSection(): Result[] {
  const training = labelsOf(shippedLabelsPath());
  const heldOut = labelsOf(join(SOURCE_ROOT, "bench", "router-heldout.txt"));
  const heldOut2 = labelsOf(join(SOURCE_ROOT, "bench", "router-heldout-2.txt"));
  const heldOut3 = labelsOf(join(SOURCE_ROOT, "bench", "router-heldout-3.txt"));
  const dev = labelsOf(join(SOURCE_ROOT, "bench", "router-dev.txt"));
  const known = new Set(training.map((l) => normalTitle(l.title)));
  const copies = [...heldOut, ...heldOut2, ...heldOut3, ...dev].filter((l) => known.has(normalTitle(l.title)));
  if (copies.length > 0) throw new Error(`held-out titles that are training titles: ${copies.map((l) => l.title).join("; ")}`);

  const trainings: number[] = [];
  let model = LocalClassifier.train(training);
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    model = LocalClassifier.train(training);
    trainings.push(performance.now() - t);
  }
  say(`Local classifier: trained on ${training.length} shipped labels in ${median(trainings).toFixed(1)} ms (median of 5); held-out ${heldOut.length} + ${heldOut2.length} + ${heldOut3.length} titles, development set ${dev.length}`);
  const report = (name: string, set: readonly LabelledTitle[]) => {
    const test = confusion(model, set);
    say(`  ${name} top-1: ${test.correct}/${set.length} = ${pct(test.correct, set.length)} on the intended tier`);
    say(`  ${name} at confidence ≥ ${MIN_CONFIDENCE} (the default threshold): ${test.confident}/${set.length} decided locally (${pct(test.confident, set.length)}), ${pct(test.confidentCorrect, test.confident)} of those right; the rest go to the nano classifier or the default`);
    say(`  confusion matrix (rows: intended tier, columns: the classifier's tier)`);
    say(`    ${"".padEnd(10)}${TIER_NAMES.map((t) => t.padStart(10)).join("")}`);
    TIER_NAMES.forEach((t, i) => say(`    ${t.padEnd(10)}${(test.matrix[i] as number[]).map((n) => String(n).padStart(10)).join("")}`));
    return test;
  };
  const test = report("held-out (bench/router-heldout.txt)", heldOut);
  const test2 = report("second held-out (bench/router-heldout-2.txt)", heldOut2);
  const test3 = report("third held-out (bench/router-heldout-3.txt)", heldOut3);
  const devResult = confusion(model, dev);
  say(`  development set (seen while writing the labels, so optimistic): top-1 ${pct(devResult.correct, dev.length)}, at confidence ≥ ${MIN_CONFIDENCE} ${pct(devResult.confidentCorrect, devResult.confident)} of ${devResult.confident}`);
  const knn = nearestNeighbour(training, heldOut);
  const knn2 = nearestNeighbour(training, heldOut2);
  const knn3 = nearestNeighbour(training, heldOut3);
  const linear = LocalClassifier.train(training, { neighbourShare: 0 });
  const linearTop1 = [heldOut, heldOut2, heldOut3].map((set) => pct(confusion(linear, set).correct, set.length));
  say(`  the linear model alone (without the nearest labels' vote): held-out top-1 ${linearTop1.join(", ")}`);
  say(`  baseline, one nearest neighbour over the local trigram embedding: held-out top-1 ${pct(knn, heldOut.length)}, second ${pct(knn2, heldOut2.length)}, third ${pct(knn3, heldOut3.length)}`);

  const titles = heldOut.map((l) => l.title);
  let sink = 0;
  for (let i = 0; i < 20_000; i++) sink += model.classify(titles[i % titles.length] as string)?.confidence ?? 0;
  const t = performance.now();
  for (let i = 0; i < TIMING_N; i++) sink += model.classify(titles[i % titles.length] as string)?.confidence ?? 0;
  const us = ((performance.now() - t) * 1_000) / TIMING_N;
  say(`  decision time: ${us.toFixed(2)} µs per title over ${TIMING_N} classifications of the held-out titles (checksum ${sink.toFixed(0)})`);
  return [
    figure("router", "local_classifier_us", us, 50, "µs", 2),
    figure("router", "local_classifier_heldout_accuracy", test.correct / heldOut.length, knn / heldOut.length, "share", 3),
    figure("router", "local_classifier_heldout2_accuracy", test2.correct / heldOut2.length, knn2 / heldOut2.length, "share", 3),
    figure("router", "local_classifier_heldout3_accuracy", test3.correct / heldOut3.length, knn3 / heldOut3.length, "share", 3),
  ];
}
