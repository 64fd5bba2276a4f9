/**
 * Seeded randomness for preparation: the same seed and input give the same split, packing and
 * row order on every machine. Each use draws from its own stream (seed + label), so changing
 * how one step consumes numbers never changes another step's result.
 */
import { createHash } from "node:crypto";

export type Random = () => number;

/** mulberry32 seeded from sha256(seed:label): uniform numbers in [0, 1). */
export function seededRandom(seed: number, label: string): Random {
  let state = createHash("sha256").update(`${seed}:${label}`).digest().readUInt32LE(0);
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher-Yates in place. */
export function shuffleInPlace<T>(items: T[], random: Random): T[] {
  for (let index = items.length - 1; index > 0; index--) {
    const other = Math.floor(random() * (index + 1));
    const held = items[index] as T;
    items[index] = items[other] as T;
    items[other] = held;
  }
  return items;
}
