import { readFileSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { shippedLabelsPath, type RoutingConfig } from "../config/index.js";
import { FleetError, TierName } from "../protocol/index.js";
import type { LabelledTitle } from "./local-classifier.js";

/*
 * Label files: one labelled title a line, `<tier> <title>`, `#` for comments. The shipped file
 * (config/routing-labels.txt) and the operator's files are read once at start; a bad line refuses the start with the
 * file and line, like any bad config.
 */

/** Parses a label file's text; `source` names it in errors and in each label's `source`. */
export function parseLabels(text: string, source: string): LabelledTitle[] {
  const labels: LabelledTitle[] = [];
  const issues: Array<{ path: string; message: string }> = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const match = /^(\S+)\s+(.+)$/.exec(line);
    const tier = TierName.safeParse(match?.[1]);
    if (!match || !tier.success) {
      issues.push({ path: `${source}:${i + 1}`, message: `expected "<tier> <title>" with a tier of ${TierName.options.join(", ")}, got "${line.slice(0, 80)}"` });
      return;
    }
    labels.push({ title: (match[2] as string).trim(), tier: tier.data, source: `${source}:${i + 1}` });
  });
  if (issues.length > 0) {
    throw new FleetError("CONFIG_INVALID", `${source}: ${issues.length} bad label line(s): ${issues.map((x) => `${x.path}: ${x.message}`).join("; ")}`, { details: issues });
  }
  return labels;
}

/** Reads a label file; a missing or unreadable one is a bad config, named with the path. */
export function readLabelFile(file: string): LabelledTitle[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new FleetError("CONFIG_INVALID", `routing.localClassifier.labels: cannot read ${file}: ${reason}`, {
      cause: err,
      details: [{ path: "routing.localClassifier.labels", message: `cannot read ${file}` }],
    });
  }
  return parseLabels(text, file);
}

/** The labels a fleet's config asks for: the shipped ones (unless turned off), then its own files, relative to `baseDir`. */
export function configuredLabels(routing: Pick<RoutingConfig, "localClassifier">, baseDir: string): LabelledTitle[] {
  const { shippedLabels, labels } = routing.localClassifier;
  const files = [...(shippedLabels ? [shippedLabelsPath()] : []), ...labels.map((file) => (isAbsolute(file) ? file : resolve(baseDir, file)))];
  return files.flatMap(readLabelFile);
}
