/**
 * Cuts one file into fill-in-the-middle samples, after Refact's recipe (anchors.md section 4):
 * the middle is a span inside a line, the rest of a line, or several lines, plus syntactic
 * blocks so the model also learns to write a whole body. Every sample is a contiguous slice of
 * the file (prefix + middle + suffix), so the eval side can score completions against the truth.
 */

import type { FimSample } from "../datasets/conversation";
import { findBlocks, lineTable, type LineTable } from "./textBlocks";

export type FimStrategy = "inline-span" | "line-end" | "multi-line" | "block";

export const FIM_STRATEGIES: readonly FimStrategy[] = ["inline-span", "line-end", "multi-line", "block"];

export type FimMix = Record<FimStrategy, number>;

/** Refact's 5% / 50% / 45%, with the multi-line share split between free spans and whole blocks. */
export const DEFAULT_FIM_MIX: Readonly<FimMix> = { "inline-span": 0.05, "line-end": 0.5, "multi-line": 0.25, block: 0.2 };

export interface FimCutOptions {
  /** Same seed and file text give the same samples on every machine. */
  seed: number | string;
  samplesPerFile?: number;
  /** Longest middle in characters (default 800). */
  maxMiddleChars?: number;
  /** Characters of prefix and of suffix kept around the middle, cut back to whole lines (default 3000). */
  contextChars?: number;
  /** Longest multi-line middle in lines (default 8). */
  maxMiddleLines?: number;
  mix?: Partial<FimMix>;
}

/** A sample plus where its middle sits in the file, for checks and for eval scoring. */
export interface FimCut extends FimSample {
  strategy: FimStrategy;
  /** Character offsets of the middle in the file text. */
  start: number;
  end: number;
}

export function cutFimSamples(text: string, path: string, options: FimCutOptions): FimCut[] {
  const count = options.samplesPerFile ?? 8;
  const maxMiddle = options.maxMiddleChars ?? 800;
  const context = options.contextChars ?? 3000;
  const maxLines = options.maxMiddleLines ?? 8;
  const mix = { ...DEFAULT_FIM_MIX, ...options.mix };
  // Seeded per file, so adding a file to the repository does not reshuffle the others' samples.
  const random = mulberry32(hashString(`${String(options.seed)}\u0000${path}`));
  const lines = lineTable(text);
  const blocks = findBlocks(text, lines).filter((b) => b.end - b.start <= maxMiddle);
  const cuts: FimCut[] = [];
  const seen = new Set<string>();
  // Small files cannot give `count` distinct spans; give up after a bounded number of tries.
  for (let attempt = 0; attempt < count * 6 && cuts.length < count; attempt++) {
    const strategy = pickStrategy(mix, random());
    const span = cutSpan(strategy, text, lines, blocks, random, maxMiddle, maxLines);
    if (span === undefined) continue;
    const middle = text.slice(span.start, span.end);
    if (middle.trim() === "") continue;
    const key = `${span.start}:${span.end}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const from = windowStart(text, lines, span.start, context);
    const to = windowEnd(text, lines, span.end, context);
    cuts.push({
      kind: "fim",
      prefix: text.slice(from, span.start),
      middle,
      suffix: text.slice(span.end, to),
      path,
      strategy: span.strategy,
      start: span.start,
      end: span.end,
    });
  }
  return cuts;
}

interface Span {
  start: number;
  end: number;
  strategy: FimStrategy;
}

function cutSpan(
  strategy: FimStrategy,
  text: string,
  lines: LineTable,
  blocks: readonly { start: number; end: number }[],
  random: () => number,
  maxMiddle: number,
  maxLines: number,
): Span | undefined {
  if (strategy === "block") {
    if (blocks.length > 0) {
      const block = blocks[Math.floor(random() * blocks.length)]!;
      return { start: block.start, end: block.end, strategy };
    }
    strategy = "multi-line"; // no block in this file: the nearest thing is a multi-line span
  }
  const line = pickCodeLine(text, lines, random);
  if (line === undefined) return undefined;
  const contentStart = lines.starts[line]! + indentOf(text, lines, line);
  const lineEnd = lines.ends[line]!;
  const length = lineEnd - contentStart;
  if (strategy === "inline-span") {
    if (length < 3) return undefined;
    const start = contentStart + Math.floor(random() * (length - 1));
    const end = Math.min(start + 1 + Math.floor(random() * (lineEnd - start - 1)), start + maxMiddle);
    return end > start && end < lineEnd ? { start, end, strategy } : undefined;
  }
  // The cursor lands somewhere in the line's code, never inside the indentation.
  const start = contentStart + Math.floor(random() * length);
  if (strategy === "line-end") {
    const end = Math.min(lineEnd, start + maxMiddle);
    return { start, end, strategy };
  }
  let last = Math.min(lines.starts.length - 1, line + 1 + Math.floor(random() * maxLines));
  while (last > line && lines.ends[last]! - start > maxMiddle) last--;
  if (last === line) return undefined;
  return { start, end: lines.ends[last]!, strategy };
}

function pickStrategy(mix: FimMix, roll: number): FimStrategy {
  const total = FIM_STRATEGIES.reduce((sum, s) => sum + Math.max(0, mix[s]), 0);
  if (total <= 0) return "line-end";
  let acc = 0;
  for (const s of FIM_STRATEGIES) {
    acc += Math.max(0, mix[s]) / total;
    if (roll < acc) return s;
  }
  return "line-end";
}

/** A line with some code on it; blank lines make middles that teach nothing. */
function pickCodeLine(text: string, lines: LineTable, random: () => number): number | undefined {
  const total = lines.starts.length;
  const first = Math.floor(random() * total);
  for (let i = 0; i < total; i++) {
    const line = (first + i) % total;
    if (text.slice(lines.starts[line], lines.ends[line]).trim().length >= 2) return line;
  }
  return undefined;
}

function indentOf(text: string, lines: LineTable, line: number): number {
  const content = text.slice(lines.starts[line], lines.ends[line]);
  return content.length - content.trimStart().length;
}

/** The first line start at or after `offset - context`, but never past the middle's own line. */
function windowStart(text: string, lines: LineTable, offset: number, context: number): number {
  if (offset <= context) return 0;
  const limit = offset - context;
  const newline = text.indexOf("\n", limit - 1);
  const ownLine = lines.starts[lines.lineAt(offset)]!;
  return newline === -1 || newline + 1 > ownLine ? ownLine : newline + 1;
}

/** The end of the last whole line (newline included) within `offset + context`. */
function windowEnd(text: string, lines: LineTable, offset: number, context: number): number {
  if (text.length - offset <= context) return text.length;
  const newline = text.lastIndexOf("\n", offset + context - 1);
  const ownEnd = lines.ends[lines.lineAt(offset)]!;
  return newline === -1 || newline < ownEnd ? Math.min(text.length, ownEnd + 1) : newline + 1;
}

/** FNV-1a, 32-bit: a stable seed from a string. */
export function hashString(value: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < value.length; i++) {
    hash ^= value.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** A small seeded generator: Math.random cannot be seeded, and reproducible datasets need one. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
