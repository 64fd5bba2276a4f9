/**
 * Dataset preparation: samples -> rendered tokens + loss masks -> dedupe -> seeded train/eval
 * split -> packed rows -> token shards + manifest.json, in one folder the trainer reads.
 *
 * Order on disk matters for crash safety: an old manifest.json is deleted first, shards are
 * written (each atomically by writeTokenShard), stale shards of an earlier preparation are
 * removed, prepare-report.json is written, and manifest.json comes last (temp + rename). A
 * folder with a manifest is therefore complete, and verifyPreparedDataset checks it.
 *
 * Samples that cannot be rendered (bad structure, a template that is not prefix-stable for
 * this conversation, a FIM sample for a model without FIM tokens) are skipped and counted by
 * reason with their file:line; problems with the model files abort. All tokenized samples are
 * held in memory until packing (about 5 bytes per token).
 */
import { createHash } from "node:crypto";
import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { SampleSource, TrainingSample } from "../datasets/conversation";
import type { PreparedDatasetManifest } from "../../protocol/tokenShards";
import { writeTokenShard } from "../tokenShardFile";
import { PrepareError, describeSource, throwIfCancelled, type PrepareErrorCode } from "./errors";
import type { MaskMode } from "./harmonyRenderer";
import { packSamples, type OverlongPolicy, type PackedDataset, type PackStats } from "./packing";
import {
  MANIFEST_FILE,
  PREPARED_DATASET_FORMAT,
  PREPARED_DATASET_VERSION,
  REPORT_FILE,
  SHARD_NAME_PATTERN,
  sha256File,
  shardFileName,
  writeJsonAtomically,
} from "./preparedDatasetFiles";
import { createSampleRenderer, type SampleRendererOptions, type TokenizerSpec } from "./sampleRenderer";
import { assignSplits, splitGroupKey, type Split } from "./splitting";
import { countTargets, type TokenizedSample } from "./tokenSequence";

export interface SourcedSample {
  sample: TrainingSample;
  source: SampleSource;
}

export interface PrepareProgress {
  phase: "render" | "pack" | "write";
  /** Samples rendered so far (render), or shards written so far (write). */
  done: number;
  /** Known only for the write phase. */
  total?: number;
}

export interface PrepareDatasetOptions extends Omit<SampleRendererOptions, "maskMode"> {
  samples: AsyncIterable<SourcedSample> | Iterable<SourcedSample>;
  tokenizer: TokenizerSpec;
  seqLen: number;
  outDir: string;
  /** Fraction of split groups held out for evaluation; default 0. */
  evalFraction?: number;
  seed?: number;
  /** Drop samples whose rendered ids equal an earlier sample's; default true. */
  dedupe?: boolean;
  maskMode?: MaskMode;
  overlong?: OverlongPolicy;
  /** Upper bound of one shard file; default 64 MiB. */
  maxShardBytes?: number;
  signal?: AbortSignal;
  onProgress?: (progress: PrepareProgress) => void;
}

export interface RejectedSample {
  source: SampleSource;
  code: PrepareErrorCode | "no_targets";
  message: string;
}

export interface PrepareReport {
  samplesRead: number;
  rendered: number;
  rejected: { total: number; byReason: Record<string, number>; examples: RejectedSample[] };
  duplicates: number;
  split: { trainGroups: number; evalGroups: number };
  train: PackStats;
  eval: PackStats;
  maskMode: MaskMode;
  renderSeconds: number;
  totalSeconds: number;
  samplesPerSecond: number;
  tokensPerSecond: number;
}

export interface PrepareResult {
  manifest: PreparedDatasetManifest;
  manifestPath: string;
  report: PrepareReport;
}

const PER_SAMPLE_CODES = new Set<PrepareErrorCode>(["bad_sample", "template_not_prefix_stable", "token_boundary", "no_fim_support"]);
const MAX_EXAMPLES = 20;
const DEFAULT_MAX_SHARD_BYTES = 64 * 1024 * 1024;

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export async function prepareDataset(options: PrepareDatasetOptions): Promise<PrepareResult> {
  const started = performance.now();
  const { seqLen, outDir, signal } = options;
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seqLen) || seqLen < 2) throw new PrepareError("bad_option", `seqLen must be an integer >= 2 (got ${seqLen}).`);
  throwIfCancelled(signal);
  const renderer = await createSampleRenderer(options.tokenizer, options);

  await mkdir(outDir, { recursive: true });
  await rm(join(outDir, MANIFEST_FILE), { force: true });

  // Render.
  const kept: Array<{ tokens: TokenizedSample; sample: TrainingSample }> = [];
  const rejected: RejectedSample[] = [];
  const byReason: Record<string, number> = {};
  const reject = (entry: RejectedSample): void => {
    byReason[entry.code] = (byReason[entry.code] ?? 0) + 1;
    if (rejected.length < MAX_EXAMPLES) rejected.push(entry);
  };
  const seen = new Set<string>();
  let samplesRead = 0;
  let duplicates = 0;
  let renderedTokens = 0;
  let lastYield = performance.now();
  for await (const { sample, source } of options.samples) {
    samplesRead += 1;
    let tokens: TokenizedSample;
    try {
      tokens = renderer.render(sample, source);
    } catch (error) {
      if (!PrepareError.is(error) || !PER_SAMPLE_CODES.has(error.code)) throw error;
      reject({ source, code: error.code, message: error.message });
      continue;
    }
    renderedTokens += tokens.ids.length;
    if (countTargets(tokens.mask) === 0) {
      reject({ source, code: "no_targets", message: `${describeSource(source)}: no assistant output to train on (mask mode "${renderer.maskMode}").` });
      continue;
    }
    if (options.dedupe ?? true) {
      const digest = createHash("sha256").update(tokens.ids).digest("base64");
      if (seen.has(digest)) {
        duplicates += 1;
        continue;
      }
      seen.add(digest);
    }
    kept.push({ tokens, sample });
    if (performance.now() - lastYield > 50) {
      // Rendering is synchronous CPU work; give the extension host's event loop a turn.
      options.onProgress?.({ phase: "render", done: samplesRead });
      await yieldToEventLoop();
      throwIfCancelled(signal);
      lastYield = performance.now();
    }
  }
  throwIfCancelled(signal);
  options.onProgress?.({ phase: "render", done: samplesRead });
  const renderSeconds = (performance.now() - started) / 1000;

  // Split, then pack each side on its own.
  const assignment = assignSplits(kept.map((entry, index) => splitGroupKey(entry.sample, index)), options.evalFraction ?? 0, seed);
  const bySplit = (split: Split): TokenizedSample[] => kept.filter((_, index) => assignment.splits[index] === split).map((entry) => entry.tokens);
  options.onProgress?.({ phase: "pack", done: 0 });
  const pack = (split: Split): PackedDataset =>
    packSamples(bySplit(split), { seqLen, padId: renderer.padId, seed, ...(options.overlong ? { overlong: options.overlong } : {}) });
  const packed = { train: pack("train"), eval: pack("eval") };
  if (packed.train.stats.documents === 0) {
    const reasons = Object.entries(byReason).map(([reason, count]) => `${reason}: ${count}`).join(", ");
    throw new PrepareError(
      "empty_dataset",
      `Nothing to train on: ${samplesRead} samples read, ${kept.length} rendered with targets, ${packed.train.stats.droppedOverlong} longer than seq_len ${seqLen}` +
        `${reasons ? ` (rejected: ${reasons}; first: ${rejected[0]?.message ?? ""})` : ""}.`,
    );
  }

  // Write shards.
  const rowBytes = 7 * seqLen;
  const rowsPerShard = Math.max(1, Math.floor(((options.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES) - 4096) / rowBytes));
  const plan: Array<{ split: Split; index: number; start: number; end: number }> = [];
  for (const split of ["train", "eval"] as const) {
    const rows = packed[split].rows.length;
    for (let start = 0, index = 0; start < rows; start += rowsPerShard, index++) plan.push({ split, index, start, end: Math.min(rows, start + rowsPerShard) });
  }
  const shards: PreparedDatasetManifest["shards"] = [];
  const meta = { vocab_size: renderer.vocabSize, tokenizer: renderer.tokenizerId, template_hash: renderer.templateHash };
  for (const entry of plan) {
    throwIfCancelled(signal);
    const file = shardFileName(entry.split, entry.index);
    const path = join(outDir, file);
    writeTokenShard(path, packed[entry.split].materialize(entry.start, entry.end), meta);
    shards.push({ file, split: entry.split, rows: entry.end - entry.start, sha256: await sha256File(path) });
    options.onProgress?.({ phase: "write", done: shards.length, total: plan.length });
  }
  const current = new Set(shards.map((shard) => shard.file));
  for (const name of await readdir(outDir)) {
    if (SHARD_NAME_PATTERN.test(name) && !current.has(name)) await rm(join(outDir, name), { force: true });
  }
  throwIfCancelled(signal);

  const totalSeconds = (performance.now() - started) / 1000;
  const report: PrepareReport = {
    samplesRead,
    rendered: kept.length,
    rejected: { total: Object.values(byReason).reduce((sum, count) => sum + count, 0), byReason, examples: rejected },
    duplicates,
    split: { trainGroups: assignment.trainGroups, evalGroups: assignment.evalGroups },
    train: packed.train.stats,
    eval: packed.eval.stats,
    maskMode: renderer.maskMode,
    renderSeconds,
    totalSeconds,
    samplesPerSecond: samplesRead / totalSeconds,
    tokensPerSecond: renderedTokens / totalSeconds,
  };
  await writeJsonAtomically(join(outDir, REPORT_FILE), report);

  const manifest: PreparedDatasetManifest = {
    format: PREPARED_DATASET_FORMAT,
    version: PREPARED_DATASET_VERSION,
    tokenizer: renderer.tokenizerId,
    template_hash: renderer.templateHash,
    seq_len: seqLen,
    shards,
    counts: {
      train_documents: packed.train.stats.documents,
      eval_documents: packed.eval.stats.documents,
      target_tokens: packed.train.stats.targetTokens + packed.eval.stats.targetTokens,
    },
  };
  const manifestPath = join(outDir, MANIFEST_FILE);
  await writeJsonAtomically(manifestPath, manifest);
  return { manifest, manifestPath, report };
}
