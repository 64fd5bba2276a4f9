/**
 * Validates a JSONL dataset in one streaming pass and returns a report: the dominant
 * format, per-line problems with line, column and field, duplicates, and token statistics
 * when a counter is given. A bad line never stops the pass. Memory does not grow with the
 * file, except for one 22-character fingerprint per sample to find duplicates (about
 * 100 bytes each with the map's overhead, ~20 MB for 200k samples); the problem list is
 * capped, while per-code counts stay exact.
 */
import { stat } from "node:fs/promises";
import type { DatasetFormat, TrainingSample } from "./conversation";
import { scanJsonlLine, type ScannedLine } from "./datasetScanner";
import { DATASET_FORMATS, DEFAULT_DETECTION_WINDOW, FormatDetector } from "./formats";
import { MixedFormatCheck, ProblemCollector } from "./problemCollector";
import { DEFAULT_MAX_LINE_BYTES, readJsonlLineBatches, type JsonlReaderOptions } from "./jsonlReader";
import { fileError, type DatasetProblem, type DatasetProblemCode } from "./problems";
import { sampleFingerprint } from "./sampleFingerprint";
import { TokenLengthHistogram, type TokenLengthSummary } from "./tokenStats";

export type CountTokens = (sample: TrainingSample) => number | Promise<number>;

export interface ValidationProgress {
  bytesRead: number;
  totalBytes: number;
  lines: number;
}

/** The options that can cross a worker boundary (plain data). */
export interface ValidationSettings extends JsonlReaderOptions {
  /** The chosen model's maximum sequence length; needs `countTokens`. */
  maxTokens?: number;
  /** Records of a known format used to decide the dominant one (default 200). */
  detectionWindow?: number;
  /** Problems kept in the report (default 10,000); counts per code are always complete. */
  maxProblems?: number;
  /** Minimum time between progress callbacks (default 100 ms). */
  progressIntervalMs?: number;
}

export interface ValidationOptions extends ValidationSettings {
  countTokens?: CountTokens;
  signal?: AbortSignal;
  onProgress?: (progress: ValidationProgress) => void;
}

export interface TokenReport extends TokenLengthSummary {
  maxTokens?: number;
  overLimit: number;
}

export interface DatasetReport {
  file: string;
  totalBytes: number;
  lines: number;
  format: {
    /** Most frequent format among the first `sampledRecords` records of a known format. */
    dominant: DatasetFormat | undefined;
    sampledRecords: number;
    /** Records per detected format over the whole file, usable or not. */
    counts: Record<DatasetFormat, number>;
  };
  /** Lines converted to a sample without schema errors. */
  samples: number;
  /** Samples with no error at all (length and token counting included): what training gets. */
  usableSamples: number;
  linesWithErrors: number;
  linesWithWarnings: number;
  /** Sorted by line and column; the first `maxProblems` found. */
  problems: DatasetProblem[];
  problemsOmitted: number;
  problemCounts: Partial<Record<DatasetProblemCode, number>>;
  /** Present when a token counter was given. */
  tokens?: TokenReport;
  durationMs: number;
}

export async function validateDataset(file: string, options: ValidationOptions = {}): Promise<DatasetReport> {
  const started = performance.now();
  let totalBytes: number;
  try {
    totalBytes = (await stat(file)).size;
  } catch (error) {
    throw fileError(file, error);
  }
  options.signal?.throwIfAborted();
  const pass = new ValidationPass(options);
  const maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  const interval = options.progressIntervalMs ?? 100;
  let lastProgress = 0;
  for await (const batch of readJsonlLineBatches(file, options)) {
    for (const line of batch) {
      options.signal?.throwIfAborted();
      const scanned = scanJsonlLine(line, maxLineBytes, pass.dominantFormat);
      // Only an asynchronous token counter costs an await per line.
      const pending = pass.check(scanned);
      if (pending !== undefined) await pending;
      const now = performance.now();
      if (options.onProgress !== undefined && now - lastProgress >= interval) {
        lastProgress = now;
        options.onProgress({ bytesRead: scanned.endOffset, totalBytes, lines: scanned.line });
      }
    }
  }
  const report = pass.finish(file, totalBytes);
  options.onProgress?.({ bytesRead: totalBytes, totalBytes, lines: report.lines });
  report.durationMs = Math.round(performance.now() - started);
  return report;
}

/** The state of one validation: the checks that look across lines, and the tallies. */
class ValidationPass {
  private readonly collector: ProblemCollector;
  private readonly detector: FormatDetector;
  private readonly mixed: MixedFormatCheck;
  private readonly counts = Object.fromEntries(DATASET_FORMATS.map((format) => [format, 0])) as Record<DatasetFormat, number>;
  /** Fingerprint to the first line holding that sample: the one structure that grows with the file. */
  private readonly firstLineOf = new Map<string, number>();
  private readonly histogram: TokenLengthHistogram | undefined;
  private overLimit = 0;
  private lines = 0;
  private samples = 0;
  private usableSamples = 0;

  constructor(private readonly options: ValidationOptions) {
    this.collector = new ProblemCollector(options.maxProblems ?? 10_000);
    this.detector = new FormatDetector(options.detectionWindow ?? DEFAULT_DETECTION_WINDOW);
    this.mixed = new MixedFormatCheck(this.detector, this.collector);
    this.histogram = options.countTokens === undefined ? undefined : new TokenLengthHistogram();
  }

  get dominantFormat(): DatasetFormat | undefined {
    return this.detector.dominant;
  }

  check(scanned: ScannedLine): Promise<void> | undefined {
    this.lines = scanned.line;
    if (scanned.sample === undefined) {
      this.record(scanned);
      return undefined;
    }
    this.samples++;
    const fingerprint = sampleFingerprint(scanned.sample);
    const first = this.firstLineOf.get(fingerprint);
    if (first === undefined) this.firstLineOf.set(fingerprint, scanned.line);
    else scanned.problems.push(duplicateProblem(scanned.line, first));
    if (this.options.countTokens === undefined) {
      this.record(scanned);
      return undefined;
    }
    let counted: number | Promise<number>;
    try {
      counted = this.options.countTokens(scanned.sample);
    } catch (error) {
      this.recordTokens(scanned, error);
      return undefined;
    }
    if (typeof counted === "number") {
      this.recordTokens(scanned, counted);
      return undefined;
    }
    return counted.then(
      (tokens) => this.recordTokens(scanned, tokens),
      (error: unknown) => this.recordTokens(scanned, error),
    );
  }

  private recordTokens(scanned: ScannedLine, tokens: unknown): void {
    if (typeof tokens !== "number" || !Number.isFinite(tokens) || tokens < 0) {
      const reason = tokens instanceof Error ? tokens.message : `it returned ${String(tokens)}`;
      scanned.problems.push({ line: scanned.line, severity: "error", code: "token_count_failed", message: `the token counter failed on this sample: ${reason}` });
    } else {
      this.histogram?.add(tokens);
      const maxTokens = this.options.maxTokens;
      if (maxTokens !== undefined && tokens > maxTokens) {
        this.overLimit++;
        scanned.problems.push(tooLongProblem(scanned.line, tokens, maxTokens));
      }
    }
    this.record(scanned);
  }

  private record(scanned: ScannedLine): void {
    const problems = scanned.problems;
    if (scanned.sample !== undefined && !problems.some((problem) => problem.severity === "error")) this.usableSamples++;
    if (scanned.format !== undefined) {
      this.counts[scanned.format]++;
      const mixedFormat = this.mixed.observe(scanned.line, scanned.format, problems.length > 0);
      if (mixedFormat !== undefined) problems.push(mixedFormat);
    }
    this.collector.addLine(problems);
  }

  finish(file: string, totalBytes: number): DatasetReport {
    this.mixed.finish();
    const report: DatasetReport = {
      file,
      totalBytes,
      lines: this.lines,
      format: { dominant: this.detector.dominant, sampledRecords: this.detector.sampled, counts: this.counts },
      samples: this.samples,
      usableSamples: this.usableSamples,
      linesWithErrors: this.collector.linesWithErrors,
      linesWithWarnings: this.collector.linesWithWarnings,
      problems: this.collector.sorted(),
      problemsOmitted: this.collector.omitted,
      problemCounts: this.collector.counts,
      durationMs: 0,
    };
    if (this.histogram !== undefined) {
      report.tokens = { ...this.histogram.summary(), overLimit: this.overLimit };
      if (this.options.maxTokens !== undefined) report.tokens.maxTokens = this.options.maxTokens;
    }
    return report;
  }
}

function duplicateProblem(line: number, firstLine: number): DatasetProblem {
  return {
    line,
    severity: "warning",
    code: "duplicate",
    message: `duplicate of line ${firstLine} (same sample once whitespace, key order and tool-call ids are set aside); duplicates weigh that sample twice`,
  };
}

function tooLongProblem(line: number, tokens: number, maxTokens: number): DatasetProblem {
  return {
    line,
    severity: "error",
    code: "too_long",
    message: `${tokens.toLocaleString("en-US")} tokens, over the chosen model's maximum length of ${maxTokens.toLocaleString("en-US")}; shorten or split the sample, or pick a longer maximum length`,
  };
}
