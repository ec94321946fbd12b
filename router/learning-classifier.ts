import type { KV } from "@nats-io/kv";
import type { Logger } from "pino";
import type { TierName } from "../protocol/index.js";
import { LearnedLabels } from "./learned-labels.js";
import { LocalClassifier, type LabelledTitle, type LocalVerdict } from "./local-classifier.js";

/*
 * The local classifier as a router runs it: trained at start on the label files, retrained whenever the fleet's learned
 * labels change (an operator's teach, an escalated step; from this router or any other), answering in between from the
 * model it has. Training a few hundred labels takes milliseconds, so a retrain is a full one, not an online update: the
 * same labels give the same model in every router.
 */

export interface LearningClassifierOptions {
  /** the labels from files (shipped and the operator's), read at start */
  fileLabels: readonly LabelledTitle[];
  /** the labels bucket; without it nothing is learned or kept (a classifier of the files alone) */
  kv?: KV | undefined;
  log: Logger;
}

export class LearningClassifier {
  private model: LocalClassifier;
  private readonly learned: LearnedLabels | undefined;
  /** how long the last training took, in ms (for the router's log and the bench) */
  lastTrainingMs = 0;

  constructor(private readonly options: LearningClassifierOptions) {
    this.model = this.train([]);
    this.learned = options.kv ? new LearnedLabels({ kv: options.kv, log: options.log, onChange: () => this.retrain() }) : undefined;
  }

  /** Loads what the fleet learned so far; the first decisions wait for nothing (the files' model answers until then). */
  async start(): Promise<void> {
    if (!this.learned) return;
    await this.learned.start();
    await this.learned.ready;
    this.retrain();
  }

  stop(): void {
    this.learned?.stop();
  }

  classify(title: string): LocalVerdict | undefined {
    return this.model.classify(title);
  }

  get size(): number {
    return this.model.size;
  }

  /** The operator's correction, kept for every router; the reply says what it decided before. */
  async teach(title: string, tier: TierName): Promise<{ before: LocalVerdict | undefined; labels: number }> {
    if (!this.learned) throw new Error("no labels bucket: this classifier learns nothing");
    const before = this.model.classify(title);
    await this.learned.teach(title, tier);
    return { before, labels: this.model.size };
  }

  /** A step that escalated from the tier its title was given: its title needs `tier`. */
  async learn(title: string, tier: TierName, agentId: string): Promise<boolean> {
    return this.learned ? this.learned.learn(title, tier, agentId) : false;
  }

  private retrain(): void {
    this.model = this.train(this.learned?.list() ?? []);
  }

  private train(learned: readonly LabelledTitle[]): LocalClassifier {
    const started = performance.now();
    // learned labels last: for the same title they win over a file's
    const model = LocalClassifier.train([...this.options.fileLabels, ...learned]);
    this.lastTrainingMs = performance.now() - started;
    return model;
  }
}
