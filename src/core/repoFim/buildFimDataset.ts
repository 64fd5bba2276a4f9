/**
 * Repository → FIM dataset: walk, hold out whole files, cut, write train.jsonl / eval.jsonl and
 * report.json. Files, not samples, are held out (anchors.md section 7): a sample cut from a file
 * the model trained on would make the eval measure memory, not completion.
 */

import { createWriteStream } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { once } from "node:events";
import { cutFimSamples, FIM_STRATEGIES, hashString, type FimCutOptions, type FimStrategy } from "./cutFimSamples";
import { SKIP_REASONS, type SkipReason } from "./fileFilters";
import { readRepoFile, RepoWalkError, walkRepository, type RepoFile, type SkippedEntry } from "./walkRepository";

export interface BuildFimProgress {
  phase: "walk" | "cut" | "done";
  /** Walk: files looked at so far; cut: files cut so far. */
  files: number;
  totalFiles?: number;
  samples: number;
}

export interface BuildFimOptions extends Omit<FimCutOptions, "seed"> {
  root: string;
  outDir: string;
  seed?: number | string;
  /** Share of usable files held out whole for evaluation (default 0.1; at least one file when > 0). */
  evalFraction?: number;
  maxFileBytes?: number;
  signal?: AbortSignal;
  onProgress?: (progress: BuildFimProgress) => void;
}

export interface FimDatasetReport {
  root: string;
  seed: number | string;
  createdAt: string;
  files: { used: number; train: number; eval: number; skipped: number };
  skippedByReason: Record<SkipReason, number>;
  /** Every skipped file or folder with its reason, so the UI can show why a file is missing. */
  skipped: SkippedEntry[];
  evalFiles: string[];
  samples: { train: number; eval: number; byStrategy: Record<FimStrategy, number> };
  languages: Record<string, number>;
  outputs: { train: string; eval: string; report: string };
}

export class FimDatasetError extends Error {
  constructor(readonly path: string, message: string, options?: ErrorOptions) {
    super(`${path}: ${message}`, options);
    this.name = "FimDatasetError";
  }
}

export async function buildFimDataset(options: BuildFimOptions): Promise<FimDatasetReport> {
  const seed = options.seed ?? 0;
  const { signal, onProgress } = options;
  let looked = 0;
  const walkOptions = {
    onFile: () => {
      looked++;
      if (looked % 200 === 0) onProgress?.({ phase: "walk", files: looked, samples: 0 });
    },
    ...(options.maxFileBytes !== undefined ? { maxFileBytes: options.maxFileBytes } : {}),
    ...(signal !== undefined ? { signal } : {}),
  };
  const walk = await walkRepository(options.root, walkOptions);
  if (walk.files.length === 0) {
    throw new FimDatasetError(options.root, `no usable source files (${walk.skipped.length} skipped; see their reasons)`);
  }
  const evalSet = pickEvalFiles(walk.files, options.evalFraction ?? 0.1, seed);
  const outputs = {
    train: join(options.outDir, "train.jsonl"),
    eval: join(options.outDir, "eval.jsonl"),
    report: join(options.outDir, "report.json"),
  };
  await mkdir(options.outDir, { recursive: true }).catch((error: unknown) => {
    throw new FimDatasetError(options.outDir, `cannot create the output folder (${(error as Error).message})`, { cause: error });
  });
  const suffix = `.tmp-${process.pid}-${Date.now()}`;
  const train = new JsonlOut(outputs.train + suffix);
  const evalOut = new JsonlOut(outputs.eval + suffix);
  const byStrategy = Object.fromEntries(FIM_STRATEGIES.map((s) => [s, 0])) as Record<FimStrategy, number>;
  const languages: Record<string, number> = {};
  const counts = { train: 0, eval: 0 };
  try {
    for (const [index, file] of walk.files.entries()) {
      signal?.throwIfAborted();
      let text: string;
      try {
        text = await readRepoFile(file);
      } catch (error) {
        if (error instanceof RepoWalkError) throw new FimDatasetError(file.path, error.message, { cause: error });
        throw error;
      }
      const split = evalSet.has(file.path) ? "eval" : "train";
      const cuts = cutFimSamples(text, file.path, { ...options, seed });
      for (const cut of cuts) {
        // Field names as the explorer's "fim" format reads them (textFormats.ts convertFim).
        await (split === "eval" ? evalOut : train).write({ prefix: cut.prefix, suffix: cut.suffix, middle: cut.middle, path: cut.path });
        byStrategy[cut.strategy]++;
      }
      counts[split] += cuts.length;
      languages[file.language] = (languages[file.language] ?? 0) + 1;
      onProgress?.({ phase: "cut", files: index + 1, totalFiles: walk.files.length, samples: counts.train + counts.eval });
    }
    await Promise.all([train.close(), evalOut.close()]);
    const report: FimDatasetReport = {
      root: options.root,
      seed,
      createdAt: new Date().toISOString(),
      files: { used: walk.files.length, train: walk.files.length - evalSet.size, eval: evalSet.size, skipped: walk.skipped.length },
      skippedByReason: countReasons(walk.skipped),
      skipped: walk.skipped,
      evalFiles: [...evalSet].sort(),
      samples: { ...counts, byStrategy },
      languages,
      outputs,
    };
    await writeFile(outputs.report + suffix, `${JSON.stringify(report, null, 2)}\n`, "utf8");
    // Rename last, all three together: a reader never sees a half-written or mismatched set.
    await rename(outputs.train + suffix, outputs.train);
    await rename(outputs.eval + suffix, outputs.eval);
    await rename(outputs.report + suffix, outputs.report);
    onProgress?.({ phase: "done", files: walk.files.length, totalFiles: walk.files.length, samples: counts.train + counts.eval });
    return report;
  } catch (error) {
    await Promise.all([train.abort(), evalOut.abort(), rm(outputs.report + suffix, { force: true })]);
    throw error;
  }
}

/**
 * Whole files for evaluation, chosen by a seeded hash of the path: stable when unrelated files
 * are added, and never the only file (training needs at least one).
 */
export function pickEvalFiles(files: readonly RepoFile[], fraction: number, seed: number | string): Set<string> {
  if (!(fraction > 0) || files.length < 2) return new Set();
  const wanted = Math.min(files.length - 1, Math.max(1, Math.round(files.length * Math.min(fraction, 1))));
  const ranked = files
    .map((f) => ({ path: f.path, rank: hashString(`${String(seed)}\u0000eval\u0000${f.path}`) }))
    .sort((a, b) => a.rank - b.rank || (a.path < b.path ? -1 : 1));
  return new Set(ranked.slice(0, wanted).map((r) => r.path));
}

function countReasons(skipped: readonly SkippedEntry[]): Record<SkipReason, number> {
  const counts = Object.fromEntries(SKIP_REASONS.map((r) => [r, 0])) as Record<SkipReason, number>;
  for (const entry of skipped) counts[entry.reason]++;
  return counts;
}

/** A JSONL writer that respects back-pressure and can be thrown away. */
class JsonlOut {
  private readonly stream;
  private failure: Error | undefined;

  constructor(readonly path: string) {
    this.stream = createWriteStream(path, { encoding: "utf8" });
    this.stream.on("error", (error) => (this.failure = error));
  }

  async write(record: Record<string, string | undefined>): Promise<void> {
    if (this.failure !== undefined) throw new FimDatasetError(this.path, this.failure.message, { cause: this.failure });
    if (!this.stream.write(`${JSON.stringify(record)}\n`)) await once(this.stream, "drain");
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve, reject) => this.stream.end((error?: Error | null) => (error ? reject(error) : resolve())));
    if (this.failure !== undefined) throw new FimDatasetError(this.path, this.failure.message, { cause: this.failure });
  }

  async abort(): Promise<void> {
    this.stream.destroy();
    await rm(this.path, { force: true });
  }
}
