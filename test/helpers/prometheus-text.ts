import { createRequire } from "node:module";
import { z } from "zod";

/** The Prometheus text format as parse-prometheus-text-format reads it (it ships no types: its output is parsed here). */
const Families = z.array(
  z.object({
    name: z.string(),
    help: z.string(),
    type: z.string(),
    metrics: z.array(z.object({ value: z.string().optional(), labels: z.record(z.string(), z.string()).optional() }).loose()),
  }),
);
export type MetricFamilies = z.infer<typeof Families>;

export function parsePrometheus(text: string): MetricFamilies {
  const parse: unknown = createRequire(import.meta.url)("parse-prometheus-text-format");
  if (typeof parse !== "function") throw new Error("parse-prometheus-text-format exports no function");
  return Families.parse(parse(text));
}

/** The value of one series, or undefined when the family or the label set is absent. */
export function sample(families: MetricFamilies, name: string, labels: Record<string, string> = {}): number | undefined {
  const family = families.find((f) => f.name === name);
  const m = family?.metrics.find((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v) && Object.keys(s.labels ?? {}).length === Object.keys(labels).length);
  return m?.value === undefined ? undefined : Number(m.value);
}
