/**
 * CLI `validate` and `prepare`: the dataset explorer's checks and the run preflight's
 * preparation, headless. Both use the same core modules as the extension.
 */
import { resolve } from "node:path";
import { formatProblem } from "../core/datasets/problems";
import { validateDataset, type DatasetReport } from "../core/datasets/validate";
import { samplesFromJsonl } from "../core/prepare/jsonlSamples";
import { prepareDataset, type PrepareResult } from "../core/prepare/prepareDataset";
import { createSampleRenderer, type TokenizerSpec } from "../core/prepare/sampleRenderer";
import { buildFimDataset, type FimDatasetReport } from "../core/repoFim/buildFimDataset";

export interface DatasetCommandOutput {
  print: (line: string) => void;
  log: (line: string) => void;
}

/** Validates one file; resolves to true when no line has an error. */
export async function validateCommand(
  file: string,
  options: { tokenizer: TokenizerSpec; maxTokens: number | undefined; problemLimit: number },
  output: DatasetCommandOutput,
): Promise<boolean> {
  const renderer = await createSampleRenderer(options.tokenizer);
  const report = await validateDataset(resolve(file), {
    countTokens: (sample) => renderer.render(sample).ids.length,
    ...(options.maxTokens !== undefined ? { maxTokens: options.maxTokens } : {}),
  });
  for (const problem of report.problems.slice(0, options.problemLimit)) output.print(formatProblem(file, problem));
  const hidden = report.problems.length - Math.min(report.problems.length, options.problemLimit) + report.problemsOmitted;
  if (hidden > 0) output.print(`… and ${hidden} more problems`);
  output.print(summarizeReport(report));
  return report.linesWithErrors === 0;
}

export function summarizeReport(report: DatasetReport): string {
  const format = report.format.dominant ?? "unknown format";
  const tokens = report.tokens
    ? `; tokens per sample: mean ${report.tokens.mean.toFixed(0)}, p95 ${report.tokens.p95}, max ${report.tokens.max}` +
      (report.tokens.overLimit > 0 ? ` (${report.tokens.overLimit} over ${report.tokens.maxTokens})` : "")
    : "";
  return (
    `${report.file}: ${format}, ${report.lines} lines, ${report.usableSamples} usable samples, ` +
    `${report.linesWithErrors} lines with errors, ${report.linesWithWarnings} with warnings${tokens}`
  );
}

export async function prepareCommand(
  files: readonly string[],
  options: { tokenizer: TokenizerSpec; outDir: string; seqLen: number; evalFraction: number; seed: number; signal?: AbortSignal },
  output: DatasetCommandOutput,
): Promise<PrepareResult> {
  const skipped = { count: 0 };
  let phase = "";
  const result = await prepareDataset({
    samples: samplesFromJsonl(files.map((file) => resolve(file)), skipped),
    tokenizer: options.tokenizer,
    seqLen: options.seqLen,
    outDir: resolve(options.outDir),
    evalFraction: options.evalFraction,
    seed: options.seed,
    ...(options.signal ? { signal: options.signal } : {}),
    onProgress: (progress) => {
      if (progress.phase !== phase) output.log(`prepare: ${(phase = progress.phase)}…`);
    },
  });
  const { report, manifest } = result;
  if (skipped.count > 0) output.print(`Skipped ${skipped.count} lines with errors (run \`validate\` to see them).`);
  output.print(
    `Prepared ${manifest.counts.train_documents} train and ${manifest.counts.eval_documents} eval samples ` +
      `(${manifest.counts.target_tokens} target tokens) into ${manifest.shards.length} shard(s) of ${manifest.seq_len}-token rows ` +
      `at ${options.outDir}; packing efficiency ${(report.train.efficiency * 100).toFixed(1)}%` +
      `${report.rejected.total > 0 ? `; ${report.rejected.total} samples rejected` : ""}${report.duplicates > 0 ? `; ${report.duplicates} duplicates dropped` : ""}`,
  );
  return result;
}

export async function buildFimCommand(
  root: string,
  options: { outDir: string; seed: number; evalFraction: number; samplesPerFile: number | undefined },
  output: DatasetCommandOutput,
): Promise<FimDatasetReport> {
  const report = await buildFimDataset({
    root: resolve(root),
    outDir: resolve(options.outDir),
    seed: options.seed,
    evalFraction: options.evalFraction,
    ...(options.samplesPerFile !== undefined ? { samplesPerFile: options.samplesPerFile } : {}),
  });
  const skipped = Object.entries(report.skippedByReason)
    .filter(([, count]) => count > 0)
    .map(([reason, count]) => `${reason} ${count}`)
    .join(", ");
  output.print(
    `Built ${report.samples.train} train and ${report.samples.eval} eval FIM samples from ${report.files.used} files ` +
      `(${report.files.eval} held out whole for evaluation) into ${report.outputs.train} and ${report.outputs.eval}` +
      `${skipped ? `; skipped: ${skipped}` : ""}. Details: ${report.outputs.report}`,
  );
  return report;
}
