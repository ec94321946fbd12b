import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { shippedLabelsPath } from "../config/index.js";
import { LocalClassifier, parseLabels, type LabelledTitle, type TrainOptions } from "../router/index.js";

/**
 * Model selection for the local classifier WITHOUT the held-out files: k-fold cross-validation over the shipped labels
 * plus the development set (bench/router-dev.txt), and the development set's accuracy when trained on the shipped
 * labels alone. Choices of features, epochs, rate and decay are made on these figures; the held-out files
 * (bench/router-heldout*.txt) are measured once, by bench/router, after the choice.
 *
 *   node dist/bench/router-classifier-cv.js [--folds 5] [--options '{"epochs":40}']
 */

const SOURCE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

function accuracy(model: LocalClassifier, set: readonly LabelledTitle[]): number {
  let correct = 0;
  for (const label of set) if (model.classify(label.title)?.tier === label.tier) correct++;
  return correct / set.length;
}

export function crossValidate(labels: readonly LabelledTitle[], folds: number, options: TrainOptions): number {
  let correct = 0;
  for (let f = 0; f < folds; f++) {
    const train = labels.filter((_, i) => i % folds !== f);
    const test = labels.filter((_, i) => i % folds === f);
    correct += accuracy(LocalClassifier.train(train, options), test) * test.length;
  }
  return correct / labels.length;
}

const { values } = parseArgs({ options: { folds: { type: "string", default: "5" }, options: { type: "string", default: "{}" } } });
const options = JSON.parse(values.options ?? "{}") as TrainOptions;
const shipped = parseLabels(readFileSync(shippedLabelsPath(), "utf8"), "shipped");
const dev = parseLabels(readFileSync(join(SOURCE_ROOT, "bench", "router-dev.txt"), "utf8"), "dev");
const folds = Number(values.folds);
const started = performance.now();
const cv = crossValidate([...shipped, ...dev], folds, options);
const devAccuracy = accuracy(LocalClassifier.train(shipped, options), dev);
const seconds = (performance.now() - started) / 1000;
process.stdout.write(
  `${folds}-fold CV over ${shipped.length} shipped + ${dev.length} dev labels: ${(100 * cv).toFixed(1)} %; dev (trained on shipped): ${(100 * devAccuracy).toFixed(1)} % [${seconds.toFixed(1)} s] ${JSON.stringify(options)}\n`,
);
