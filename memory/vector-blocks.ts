/*
 * Where the embedded vector store keeps its vectors, and the arithmetic over them.
 *
 * Vectors are normalised at insert (cosine = dot product) and kept as float32 rows in blocks of 1,024 rows, each block one
 * contiguous Float32Array, so growth never copies: n × d × 4 bytes (100,000 × 1,536 = 614 MB). A row's bytes are a view
 * of its block, so the log writes a vector without copying it either. The store (embedded-vector-store.ts) and its index
 * (ivf-index.ts) both score rows with the same `dot`; the store keeps a search's best rows in a `TopK`.
 */

const BLOCK_SHIFT = 10;

/** Fixed-width float32 rows in blocks of 1,024: each block contiguous, so growing never copies what is there. */
export class Rows {
  readonly blocks: Float32Array[] = [];
  constructor(readonly width: number) {}

  ensure(rows: number): void {
    while (this.blocks.length << BLOCK_SHIFT < rows) this.blocks.push(new Float32Array(this.width << BLOCK_SHIFT));
  }

  /** Frees trailing blocks, keeping one spare so a delete/insert pair at a boundary does not reallocate. */
  trim(rows: number): void {
    while ((this.blocks.length - 2) << BLOCK_SHIFT >= rows) this.blocks.pop();
  }

  block(row: number): Float32Array {
    return this.blocks[row >> BLOCK_SHIFT] as Float32Array;
  }

  offset(row: number): number {
    return (row & ((1 << BLOCK_SHIFT) - 1)) * this.width;
  }

  /** The row's float32s as bytes: a view of its block, not a copy. */
  bytes(row: number): Buffer {
    const block = this.block(row);
    return Buffer.from(block.buffer, block.byteOffset + this.offset(row) * 4, this.width * 4);
  }
}

/** Unrolled by 8: V8 does not vectorise, and separate accumulators let the multiplies overlap. */
export function dot(a: Float32Array, aAt: number, b: Float32Array, bAt: number, length: number): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0; // prettier-ignore
  let i = 0;
  for (; i + 7 < length; i += 8) {
    const x = aAt + i;
    const y = bAt + i;
    s0 += (a[x] as number) * (b[y] as number);
    s1 += (a[x + 1] as number) * (b[y + 1] as number);
    s2 += (a[x + 2] as number) * (b[y + 2] as number);
    s3 += (a[x + 3] as number) * (b[y + 3] as number);
    s4 += (a[x + 4] as number) * (b[y + 4] as number);
    s5 += (a[x + 5] as number) * (b[y + 5] as number);
    s6 += (a[x + 6] as number) * (b[y + 6] as number);
    s7 += (a[x + 7] as number) * (b[y + 7] as number);
  }
  for (; i < length; i++) s0 += (a[aAt + i] as number) * (b[bAt + i] as number);
  return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
}

/** The `k` best (score, row) pairs, kept sorted; a candidate below the k-th is rejected with one comparison. */
export class TopK {
  readonly scores: Float64Array;
  private readonly best: Int32Array;
  size = 0;

  constructor(private readonly k: number) {
    this.scores = new Float64Array(k);
    this.best = new Int32Array(k);
  }

  push(score: number, row: number): void {
    if (this.size === this.k && score <= (this.scores[this.k - 1] as number)) return;
    let i = this.size < this.k ? this.size++ : this.k - 1;
    for (; i > 0 && (this.scores[i - 1] as number) < score; i--) {
      this.scores[i] = this.scores[i - 1] as number;
      this.best[i] = this.best[i - 1] as number;
    }
    this.scores[i] = score;
    this.best[i] = row;
  }

  rows(): number[] {
    return Array.from(this.best.subarray(0, this.size));
  }
}

export function normaliseInto(v: readonly number[], out: Float32Array, at: number): void {
  let sum = 0;
  for (const x of v) sum += x * x;
  const scale = 1 / Math.sqrt(sum);
  for (let i = 0; i < v.length; i++) out[at + i] = (v[i] as number) * scale;
}

export function normaliseInPlace(v: Float32Array, at: number, length: number): void {
  let sum = 0;
  for (let i = at; i < at + length; i++) sum += (v[i] as number) ** 2;
  const scale = sum > 0 ? 1 / Math.sqrt(sum) : 0;
  for (let i = at; i < at + length; i++) v[i] = (v[i] as number) * scale;
}
