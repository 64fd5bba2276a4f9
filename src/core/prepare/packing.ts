/**
 * Packs tokenized samples into rows of exactly seq_len tokens for the token-shard format.
 *
 * - A sample is never split across rows: the trainer's attention stays inside a document
 *   (document ids 1.. within a row, positions restart per document), so a split sample would
 *   lose its prompt. Longer samples are dropped (default) or cut to seq_len ("truncate"), and
 *   both are counted in the stats.
 * - First-fit decreasing: longest samples first, each into the first row with room. A max
 *   segment tree over the rows' free space finds that row in O(log n), so packing 10^6 samples
 *   stays fast. Equal lengths are ordered by a seeded shuffle and the finished rows are
 *   shuffled with the seed, so the result depends only on (samples, seq_len, seed) and long
 *   samples are not all in the first shard.
 * - Padding: pad id, document id 0, mask 0.
 * - The first token of every document is never a target: nothing in its document precedes it.
 */
import type { PackedRows } from "../tokenShardFile";
import { PrepareError } from "./errors";
import { seededRandom, shuffleInPlace } from "./random";
import type { TokenizedSample } from "./tokenSequence";

export type OverlongPolicy = "drop" | "truncate";

export interface PackOptions {
  seqLen: number;
  padId: number;
  seed: number;
  overlong?: OverlongPolicy;
}

export interface PackStats {
  rows: number;
  documents: number;
  /** Non-padding tokens. */
  tokens: number;
  targetTokens: number;
  /** tokens / (rows * seqLen); 1 = no padding. */
  efficiency: number;
  droppedOverlong: number;
  truncated: number;
  /** Truncation cut away every target of these samples, so they were dropped. */
  droppedNoTargetsAfterTruncation: number;
}

export interface PackedDataset {
  seqLen: number;
  /** Sample indices (into `samples`) of each row, in row order. */
  rows: number[][];
  /** The samples as packed (truncated where that was configured). */
  samples: TokenizedSample[];
  stats: PackStats;
  /** Rows [start, end) as the shard writer takes them. */
  materialize(start: number, end: number): PackedRows;
}

export function packSamples(input: readonly TokenizedSample[], options: PackOptions): PackedDataset {
  const { seqLen, padId } = options;
  if (!Number.isInteger(seqLen) || seqLen < 2) throw new PrepareError("bad_option", `seq_len must be an integer >= 2 (got ${seqLen}).`);
  let droppedOverlong = 0;
  let truncated = 0;
  let droppedNoTargets = 0;
  const samples: TokenizedSample[] = [];
  for (const sample of input) {
    let { ids, mask } = sample;
    if (ids.length === 0) continue;
    if (ids.length > seqLen) {
      if (options.overlong !== "truncate") {
        droppedOverlong += 1;
        continue;
      }
      ids = ids.subarray(0, seqLen);
      mask = mask.subarray(0, seqLen);
      truncated += 1;
    }
    if (mask[0] === 1) {
      mask = Uint8Array.from(mask);
      mask[0] = 0;
    }
    if (!mask.includes(1)) {
      droppedNoTargets += 1;
      continue;
    }
    samples.push({ ids, mask });
  }

  const order = shuffleInPlace(samples.map((_, index) => index), seededRandom(options.seed, "pack-ties"));
  order.sort((a, b) => (samples[b]?.ids.length ?? 0) - (samples[a]?.ids.length ?? 0)); // stable: ties keep the shuffle
  const free = new FreeSpaceTree(Math.max(1, samples.length), seqLen);
  const rows: number[][] = [];
  for (const index of order) {
    const length = samples[index]?.ids.length ?? 0;
    const row = free.firstFit(length);
    free.take(row, length);
    (rows[row] ??= []).push(index);
  }
  shuffleInPlace(rows, seededRandom(options.seed, "pack-rows"));

  let tokens = 0;
  let targetTokens = 0;
  for (const sample of samples) {
    tokens += sample.ids.length;
    for (const value of sample.mask) targetTokens += value;
  }
  const stats: PackStats = {
    rows: rows.length,
    documents: samples.length,
    tokens,
    targetTokens,
    efficiency: rows.length === 0 ? 0 : tokens / (rows.length * seqLen),
    droppedOverlong,
    truncated,
    droppedNoTargetsAfterTruncation: droppedNoTargets,
  };

  const materialize = (start: number, end: number): PackedRows => {
    const count = (end - start) * seqLen;
    const packed: PackedRows = {
      rows: end - start,
      seqLen,
      tokens: new Uint32Array(count).fill(padId),
      documentIds: new Uint16Array(count),
      lossMask: new Uint8Array(count),
    };
    for (let row = start; row < end; row++) {
      let offset = (row - start) * seqLen;
      const members = rows[row] ?? [];
      if (members.length > 0xffff) throw new PrepareError("bad_option", `Row ${row} holds ${members.length} documents; document ids are 16-bit.`);
      members.forEach((index, position) => {
        const sample = samples[index] as TokenizedSample;
        packed.tokens.set(sample.ids, offset);
        packed.lossMask.set(sample.mask, offset);
        packed.documentIds.fill(position + 1, offset, offset + sample.ids.length);
        offset += sample.ids.length;
      });
    }
    return packed;
  };
  return { seqLen, rows, samples, stats, materialize };
}

/**
 * Max segment tree over rows' free space. Unopened rows have full capacity, so the leftmost
 * row with room is always an opened row or the next new one: first fit without scanning.
 */
class FreeSpaceTree {
  private readonly size: number;
  private readonly tree: Int32Array;

  constructor(leaves: number, capacity: number) {
    let size = 1;
    while (size < leaves) size *= 2;
    this.size = size;
    this.tree = new Int32Array(2 * size).fill(capacity);
  }

  firstFit(length: number): number {
    if ((this.tree[1] ?? 0) < length) throw new PrepareError("bad_option", `No row can hold ${length} tokens.`);
    let node = 1;
    while (node < this.size) node = (this.tree[2 * node] ?? 0) >= length ? 2 * node : 2 * node + 1;
    return node - this.size;
  }

  take(row: number, length: number): void {
    let node = row + this.size;
    this.tree[node] = (this.tree[node] ?? 0) - length;
    for (node >>= 1; node >= 1; node >>= 1) this.tree[node] = Math.max(this.tree[2 * node] ?? 0, this.tree[2 * node + 1] ?? 0);
  }
}
