import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { EmbeddedVectorStore, type MemoryKind, type MemoryPoint } from "../memory/index.js";
import { figure, percentile, say, type Result } from "./report.js";

/**
 * Memory benchmark: the embedded vector store at 10,000 and 100,000 points of 1,536 dimensions, against a brute-force scan
 * over one plain Float32Array in the same process and run (same vectors, same queries, the same unrolled dot product).
 * Each size runs in its own child process, so its RSS is its own; the RSS baseline is another child holding only the
 * plain array. Figures: insert rate, search p50/p99, recall@10 against the scan, RSS. The last line is the headline:
 * search p50 at 100,000.
 */

const D = 1_536;
const BATCH = 1_000;
const QUERIES = 200;
const WARMUP = 20;
const K = 10;
const MB = 1024 * 1024;
const KINDS: MemoryKind[] = ["insight", "fact", "finding", "decision", "lesson"];

type Figures = Record<string, number>;

const result = (metric: string, value: number, baseline: number, unit: string, digits = 2): Result => figure("memory", metric, value, baseline, unit, digits);
const rssMb = () => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1]) / 1024;
const gc = () => (globalThis as { gc?: () => void }).gc?.();

/**
 * Random but clustered, like embeddings of a fleet's notes: 100 topics, each split into subtopics, n / 10 subtopics in
 * all, so every size has about 10 points per subtopic and the same difficulty. A point is topic + 0.8 × subtopic + noise
 * of norm 1.5 (random unit directions), normalised: same-subtopic points have cosine ≈ 0.42, same-topic ≈ 0.26, others
 * ≈ 0. Topics and subtopics depend only on their number; `stream` seeds the sequence of points, so the same stream
 * gives the same vectors in any process.
 */
class Corpus {
  private readonly gauss = new Float32Array(1 << 16);
  private readonly topics: Float32Array[];
  private readonly subtopic = new Float32Array(D);
  private readonly noise = new Float32Array(D);
  private state = 1;

  constructor(stream: number, private readonly subtopics: number) {
    for (let i = 0; i < this.gauss.length; i++) this.gauss[i] = Math.sqrt(-2 * Math.log(1 - this.uniform())) * Math.cos(2 * Math.PI * this.uniform());
    this.topics = Array.from({ length: 100 }, () => this.direction(new Float32Array(D), 1));
    this.state = stream;
  }

  /** Writes the next point, normalised, at `out[at..at+D)`. */
  next(out: Float32Array, at: number): void {
    const sub = Math.floor(this.uniform() * this.subtopics);
    const topic = this.topics[sub % 100] as Float32Array;
    this.direction(this.noise, 1.5);
    const stream = this.state;
    this.state = 0x9e3779b9 ^ sub; // the subtopic's own direction, the same whichever stream asks
    this.direction(this.subtopic, 0.8);
    this.state = stream;
    let norm = 0;
    for (let i = 0; i < D; i++) {
      const x = (topic[i] as number) + (this.subtopic[i] as number) + (this.noise[i] as number);
      out[at + i] = x;
      norm += x * x;
    }
    const scale = 1 / Math.sqrt(norm);
    for (let i = 0; i < D; i++) out[at + i] = (out[at + i] as number) * scale;
  }

  private direction(v: Float32Array, length: number): Float32Array {
    let norm = 0;
    for (let i = 0; i < D; i++) {
      const x = this.gauss[(this.uniform() * 65_536) | 0] as number;
      v[i] = x;
      norm += x * x;
    }
    const scale = length / Math.sqrt(norm);
    for (let i = 0; i < D; i++) v[i] = (v[i] as number) * scale;
    return v;
  }

  private uniform(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(this.state ^ (this.state >>> 15), 1 | this.state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }
}

const PROBES = Number(process.env["BENCH_PROBES"] ?? 0);
const POINTS = 2;
const QUERY_STREAM = 3;

const TEXT = "Competitor pricing changed: the starter plan went from 19 to 24 USD a month, annual billing unchanged; checked on the public pricing page";
const agentOf = (i: number) => (i % 100 === 0 ? "rare" : `agent-${i % 20}`);
function memory(i: number, vector: Float32Array): MemoryPoint {
  const payload = { agentId: agentOf(i), kind: KINDS[i % KINDS.length] as MemoryKind, text: `${TEXT} (note ${i}).`, updatedAt: 1_790_000_000_000 + i, source: `task-${i}` };
  return { id: `mem-${i}`, vector: Array.from(vector), payload };
}

/** The baseline scan: every row of one Float32Array, the same 8-way unrolled dot product as the store, a top-K. */
function scan(rows: Float32Array, n: number, q: Float32Array, only?: (row: number) => boolean): number[] {
  const best: { row: number; score: number }[] = [];
  for (let r = 0; r < n; r++) {
    if (only && !only(r)) continue;
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0; // prettier-ignore
    const o = r * D;
    for (let i = 0; i < D; i += 8) {
      s0 += (q[i] as number) * (rows[o + i] as number);
      s1 += (q[i + 1] as number) * (rows[o + i + 1] as number);
      s2 += (q[i + 2] as number) * (rows[o + i + 2] as number);
      s3 += (q[i + 3] as number) * (rows[o + i + 3] as number);
      s4 += (q[i + 4] as number) * (rows[o + i + 4] as number);
      s5 += (q[i + 5] as number) * (rows[o + i + 5] as number);
      s6 += (q[i + 6] as number) * (rows[o + i + 6] as number);
      s7 += (q[i + 7] as number) * (rows[o + i + 7] as number);
    }
    const score = s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
    if (best.length === K && score <= (best[K - 1] as { score: number }).score) continue;
    best.push({ row: r, score });
    best.sort((a, b) => b.score - a.score);
    if (best.length > K) best.pop();
  }
  return best.map((b) => b.row);
}

async function time<T>(runs: number, call: (i: number) => Promise<T> | T): Promise<{ sorted: number[]; out: T[] }> {
  const ms: number[] = [];
  const out: T[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    out.push(await call(i));
    ms.push(performance.now() - t);
  }
  return { sorted: ms.sort((a, b) => a - b), out };
}

/** Child: the embedded store at `n` points, then the scan over the same points and queries in the same process. */
async function storeChild(n: number, indexFrom: number | undefined): Promise<Figures> {
  const dir = mkdtempSync(join(tmpdir(), "bench-memory-"));
  try {
    const corpus = new Corpus(POINTS, n / 10);
    const buf = new Float32Array(BATCH * D);
    const tuning = { ...(PROBES ? { probes: PROBES } : {}), ...(indexFrom ? { indexFrom } : {}) };
    const store = await EmbeddedVectorStore.open({ dir, dimensions: D, ...tuning });
    let insertMs = 0;
    for (let at = 0; at < n; at += BATCH) {
      const points: MemoryPoint[] = [];
      for (let j = 0; j < BATCH && at + j < n; j++) {
        corpus.next(buf, j * D);
        points.push(memory(at + j, buf.subarray(j * D, (j + 1) * D)));
      }
      const t = performance.now();
      await store.upsert(points);
      insertMs += performance.now() - t;
    }
    gc();
    const rss = rssMb();
    const heap = process.memoryUsage().heapUsed / MB;
    const stats = store.stats();

    const queries = new Corpus(QUERY_STREAM, n / 10); // same topics, points of their own
    const qbuf = new Float32Array((QUERIES + WARMUP) * D);
    for (let i = 0; i < QUERIES + WARMUP; i++) queries.next(qbuf, i * D);
    const query = (i: number) => Array.from(qbuf.subarray(i * D, (i + 1) * D));
    await time(WARMUP, (i) => store.search(query(QUERIES + i), { limit: K }));
    const searched = await time(QUERIES, (i) => store.search(query(i), { limit: K }));
    const agent = await time(QUERIES, (i) => store.search(query(i), { limit: K, filter: { agentId: "agent-3" } }));
    const rare = await time(QUERIES, (i) => store.search(query(i), { limit: K, filter: { agentId: "rare" } }));

    // the baseline: the same vectors, regenerated from the same stream, normalised into one plain Float32Array (the
    // store's insert without validation, persistence or index); generating them is not timed, for either side
    const plain = new Float32Array(n * D);
    const again = new Corpus(POINTS, n / 10);
    let copyMs = 0;
    for (let r = 0; r < n; r++) {
      again.next(buf, 0);
      const vector = memory(r, buf.subarray(0, D)).vector;
      const t = performance.now();
      let norm = 0;
      for (const x of vector) norm += x * x;
      const scale = 1 / Math.sqrt(norm);
      for (let i = 0; i < D; i++) plain[r * D + i] = (vector[i] as number) * scale;
      copyMs += performance.now() - t;
    }
    await time(WARMUP, (i) => scan(plain, n, qbuf.subarray((QUERIES + i) * D)));
    const scanned = await time(QUERIES, (i) => scan(plain, n, qbuf.subarray(i * D, (i + 1) * D)));
    const recall = (results: { id: string }[][], truths: number[][]) => {
      let found = 0;
      results.forEach((hits, i) => {
        const truth = new Set((truths[i] as number[]).map((r) => `mem-${r}`));
        for (const h of hits) if (truth.has(h.id)) found++;
      });
      return found / (results.length * K);
    };
    const agentTruth = Array.from({ length: QUERIES }, (_, i) => scan(plain, n, qbuf.subarray(i * D, (i + 1) * D), (r) => agentOf(r) === "agent-3"));

    // information: inserts once the index exists (each point is sketched and listed), then a reopen
    const extra = await time(100, async (b) => {
      const points: MemoryPoint[] = [];
      for (let j = 0; j < 10; j++) {
        corpus.next(buf, j * D);
        points.push(memory(n + b * 10 + j, buf.subarray(j * D, (j + 1) * D)));
      }
      await store.upsert(points);
    });
    await store.close();
    const logMb = statSync(join(dir, EmbeddedVectorStore.LOG_FILE)).size / MB;
    const opened = performance.now();
    const reopened = await EmbeddedVectorStore.open({ dir, ...tuning });
    const reopenMs = performance.now() - opened;
    await reopened.close();
    const sum = (xs: number[]) => xs.reduce((s, x) => s + x, 0);
    return {
      insertRate: n / (insertMs / 1000), copyRate: n / (copyMs / 1000), trainMs: stats.trainMs, lists: stats.indexLists, rss, heap, // prettier-ignore
      p50: percentile(searched.sorted, 50), p99: percentile(searched.sorted, 99), scanP50: percentile(scanned.sorted, 50), scanP99: percentile(scanned.sorted, 99), // prettier-ignore
      recall: recall(searched.out, scanned.out), agentRecall: recall(agent.out, agentTruth), agentP50: percentile(agent.sorted, 50), rareP50: percentile(rare.sorted, 50), // prettier-ignore
      indexedInsertRate: 1_000 / (sum(extra.sorted) / 1000), logMb, reopenMs, // prettier-ignore
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Child: only the plain array of the same vectors, for the RSS baseline. */
function scanChild(n: number): Figures {
  const corpus = new Corpus(POINTS, n / 10);
  const plain = new Float32Array(n * D);
  for (let r = 0; r < n; r++) corpus.next(plain, r * D);
  gc();
  return { rss: rssMb(), heap: process.memoryUsage().heapUsed / MB, check: plain[n * D - 1] as number };
}

function child(role: string, n: number, indexFrom?: number): Promise<Figures> {
  const args = ["--expose-gc", fileURLToPath(import.meta.url), "--child", role, "--size", String(n), ...(indexFrom ? ["--index-from", String(indexFrom)] : [])];
  const proc = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  proc.stdout.on("data", (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) =>
    proc.once("exit", (code) => (code === 0 ? resolve(JSON.parse(out) as Figures) : reject(new Error(`${role} child for ${n} exited with ${code}`)))),
  );
}

async function main(): Promise<void> {
  const options = { child: { type: "string" }, size: { type: "string" }, sizes: { type: "string" }, "index-from": { type: "string" } } as const;
  const { values } = parseArgs({ options });
  if (values.child) {
    const n = Number(values.size);
    say(JSON.stringify(values.child === "store" ? await storeChild(n, Number(values["index-from"] ?? 0)) : scanChild(n)));
    return;
  }
  const sizes = (values.sizes ?? "10000,100000").split(",").map(Number);
  say(`Embedded vector store vs a brute-force scan, ${D} dimensions, ${QUERIES} queries of top-${K}; node ${process.version}`);
  const results: Result[] = [];
  for (const n of sizes) {
    const tag = n >= 1000 ? `${n / 1000}k` : String(n);
    const s = await child("store", n);
    const b = await child("scan", n);
    const f = (k: string) => s[k] as number;
    say(`${n} points: ${f("lists") > 0 ? `IVF index, ${f("lists")} lists, trained in ${(f("trainMs") / 1000).toFixed(1)} s during the load` : "exact scan (below the index threshold)"}`);
    say(`  insert ${f("insertRate").toFixed(0)} points/s (durable, in batches of ${BATCH}) vs copying into a Float32Array ${f("copyRate").toFixed(0)}/s`);
    say(`  search p50 ${f("p50").toFixed(2)} ms, p99 ${f("p99").toFixed(2)} ms vs scan p50 ${f("scanP50").toFixed(2)} ms, p99 ${f("scanP99").toFixed(2)} ms; recall@10 ${f("recall").toFixed(3)}`);
    say(`  information: filtered by one agent of 20 p50 ${f("agentP50").toFixed(2)} ms (recall@10 ${f("agentRecall").toFixed(3)}), by a 1 % agent p50 ${f("rareP50").toFixed(2)} ms (exact)`);
    say(`  information: 1,000 more inserts in batches of 10: ${f("indexedInsertRate").toFixed(0)} points/s; log ${f("logMb").toFixed(0)} MB; reopen ${(f("reopenMs") / 1000).toFixed(1)} s`);
    say(`  RSS ${f("rss").toFixed(0)} MB vs ${(b["rss"] as number).toFixed(0)} MB for the plain array alone (JS heap in use ${f("heap").toFixed(0)} vs ${(b["heap"] as number).toFixed(0)} MB; the vectors are outside it)`);
    if (f("lists") === 0) {
      // information: what the index would give at this size, had the store not chosen an exact scan
      const forced = await child("store", n, 4_096);
      const g = (k: string) => forced[k] as number;
      say(`  information: with the index forced (${g("lists")} lists) p50 ${g("p50").toFixed(2)} ms, p99 ${g("p99").toFixed(2)} ms, recall@10 ${g("recall").toFixed(3)}`);
    }
    results.push(
      result(`insert_rate_${tag}`, f("insertRate"), f("copyRate"), "points/s", 0),
      result(`search_p99_${tag}`, f("p99"), f("scanP99"), "ms", 3),
      result(`recall_at_10_${tag}`, f("recall"), 1, "ratio", 3),
      result(`rss_${tag}`, f("rss"), b["rss"] as number, "MB", 1),
      result(`search_p50_${tag}`, f("p50"), f("scanP50"), "ms", 3),
    );
  }
  const headline = results.filter((r) => r.metric.startsWith("search_p50_")).at(-1);
  for (const r of [...results.filter((r) => r !== headline), ...(headline ? [headline] : [])]) say(JSON.stringify(r));
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
