/**
 * What every benchmark prints: readable lines, then one JSON line per figure measured against a baseline in the same
 * run, `{"bench","metric","value","baseline","ratio","unit"}`, the headline last. Shared so the line's shape is one.
 */
export interface Result {
  bench: string;
  metric: string;
  value: number;
  baseline: number;
  ratio: number;
  unit: string;
}

export const say = (line: string): void => void process.stdout.write(line + "\n");
export const round = (x: number, digits: number): number => Number(x.toFixed(digits));

/** A figure; `ratio` is value / baseline unless the benchmark defines it otherwise (and says so in bench/README.md). */
export function figure(bench: string, metric: string, value: number, baseline: number, unit: string, digits = 2, ratio = value / baseline): Result {
  return { bench, metric, value: round(value, digits), baseline: round(baseline, digits), ratio: round(ratio, 3), unit };
}

/** The p-th percentile of an ascending list (nearest rank). */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

export const ascending = (xs: readonly number[]): number[] => [...xs].sort((a, b) => a - b);
export const median = (xs: readonly number[]): number => percentile(ascending(xs), 50);

/** The time of each of `n` calls made one after another, in ms. */
export async function timeSequential(n: number, call: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await call(i);
    out.push(performance.now() - t);
  }
  return out;
}
