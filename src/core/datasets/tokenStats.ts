/**
 * Token length statistics in constant memory. Keeping every length to sort for the p95
 * would grow with the file, so lengths go into a histogram: exact up to 262,143 tokens
 * (1 MiB of counters, beyond any context length trained today), and in 4,096-token buckets
 * above, where the reported p95 is the bucket's upper edge.
 */

const EXACT_LIMIT = 1 << 18;
const COARSE_BUCKET = 4096;

export interface TokenLengthSummary {
  /** Samples counted. */
  count: number;
  total: number;
  mean: number;
  min: number;
  /** 95th percentile (nearest-rank). */
  p95: number;
  max: number;
}

export class TokenLengthHistogram {
  private readonly exact = new Uint32Array(EXACT_LIMIT);
  private readonly coarse = new Map<number, number>();
  private count = 0;
  private total = 0;
  private min = Number.POSITIVE_INFINITY;
  private max = 0;

  add(tokens: number): void {
    const length = Math.max(0, Math.round(tokens));
    if (length < EXACT_LIMIT) this.exact[length] = (this.exact[length] ?? 0) + 1;
    else {
      const bucket = Math.floor(length / COARSE_BUCKET);
      this.coarse.set(bucket, (this.coarse.get(bucket) ?? 0) + 1);
    }
    this.count++;
    this.total += length;
    this.min = Math.min(this.min, length);
    this.max = Math.max(this.max, length);
  }

  /** The length at or below which `fraction` of samples lie (nearest-rank). */
  percentile(fraction: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(fraction * this.count));
    let seen = 0;
    for (let length = this.min; length <= Math.min(this.max, EXACT_LIMIT - 1); length++) {
      seen += this.exact[length] ?? 0;
      if (seen >= rank) return length;
    }
    for (const bucket of [...this.coarse.keys()].sort((a, b) => a - b)) {
      seen += this.coarse.get(bucket) ?? 0;
      if (seen >= rank) return Math.min(this.max, (bucket + 1) * COARSE_BUCKET - 1);
    }
    return this.max;
  }

  summary(): TokenLengthSummary {
    return {
      count: this.count,
      total: this.total,
      mean: this.count === 0 ? 0 : this.total / this.count,
      min: this.count === 0 ? 0 : this.min,
      p95: this.percentile(0.95),
      max: this.max,
    };
  }
}
