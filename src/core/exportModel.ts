/**
 * Export of a model folder to GGUF, as the CLI, the demo and the palette run it. Our own
 * writer produces F32/F16/BF16 directly; every quantized type is then made from an F16 file
 * by llama.cpp's own quantizer, with GPT-OSS's MXFP4 experts copied as they are (they were
 * trained in MXFP4; requantizing them would only lose precision).
 *
 * Architectures, by config.json model_type: gpt_oss (gptOssConverter.ts), qwen2 and qwen3
 * (qwen2Converter.ts). Before any byte is written the whole job's disk need is checked: the
 * file itself, or for quantized types the F16 intermediate plus the estimated output, which
 * exist side by side while llama.cpp quantizes.
 *
 * With `verify`, the finished file is checked (exportVerify.ts): metadata, a load by
 * llama.cpp, a chat prompt through the embedded template and next-token distributions
 * against PyTorch. A failed verification fails the export with an ExportVerificationError;
 * the file is kept as `<outFile>.unverified` next to a `.verification.json` report.
 */
import { existsSync } from "node:fs";
import { readFile, rm, statfs } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import {
  createNodeLlamaCppEvaluator,
  markUnverified,
  sidecarReferenceLogits,
  verifyGguf,
  type ChatMessage,
  type GgufEvaluator,
  type VerifyReport,
  type VerifyThresholds,
} from "./exportVerify";
import { alignOffset, type GgmlType } from "./gguf/constants";
import { GgufExportError } from "./gguf/errors";
import type { BeforeWriteHook, GgufWritePlan } from "./gguf/exportPlan";
import { formatBytes } from "./formatBytes";
import { exportGptOssToGguf } from "./gguf/gptOssConverter";
import type { GgufOutputType } from "./gguf/gptOssTensors";
import { exportQwenToGguf } from "./gguf/qwen2Converter";
import { estimateTensorType, tensorBytes } from "./quantize/quantizeEstimate";
import { quantizeGguf } from "./quantize/quantizeGguf";
import { KEEP_MXFP4_EXPERTS, type QuantizeType, type TensorTypeOverride } from "./quantize/quantizeTypes";

/** Every type the product exports, in the user-facing spelling. */
export const EXPORT_TYPES = ["F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "MXFP4_MOE"] as const;
export type ExportType = (typeof EXPORT_TYPES)[number];

/** config.json model_type values the exporter converts. */
export const EXPORTABLE_MODEL_TYPES = ["gpt_oss", "qwen2", "qwen3"] as const;

export function parseExportType(value: string): ExportType | undefined {
  const upper = value.toUpperCase();
  return (EXPORT_TYPES as readonly string[]).includes(upper) ? (upper as ExportType) : undefined;
}

export interface ExportProgress {
  stage: "write" | "quantize" | "verify";
  /** 0..1 within the whole export. */
  fraction: number;
  detail: string;
}

export interface ExportVerifyOptions {
  /** Interpreter with torch for the sidecar's `logits` command (the PyTorch reference). */
  python: string;
  /** The folder holding the finetune_sidecar package. */
  nativeDir: string;
  /** Runs llama.cpp on the file; default: node-llama-cpp in this process (CPU). */
  evaluator?: GgufEvaluator;
  /** Where the PyTorch reference runs; default cpu. */
  device?: "cpu" | "cuda";
  conversation?: readonly ChatMessage[];
  /** Override the per-type thresholds (VERIFY_THRESHOLDS). */
  thresholds?: VerifyThresholds;
}

export interface ExportRequest {
  modelFolder: string;
  outFile: string;
  type: ExportType;
  /** Verify the finished file (see exportVerify.ts); false or absent skips it. */
  verify?: ExportVerifyOptions | false;
  signal?: AbortSignal;
  onProgress?: (progress: ExportProgress) => void;
  onLog?: (line: string) => void;
}

export interface ExportResult {
  outFile: string;
  type: ExportType;
  /** general.architecture of the file. */
  architecture: string;
  bytes: number;
  fileType: number;
  seconds: number;
  /** Present when the export was verified (always ok here: a failure throws). */
  verification?: VerifyReport;
}

const DIRECT: Partial<Record<ExportType, GgufOutputType>> = { F32: "f32", F16: "f16", BF16: "bf16" };
const ARCHITECTURES: Readonly<Record<(typeof EXPORTABLE_MODEL_TYPES)[number], string>> = { gpt_oss: "gpt-oss", qwen2: "qwen2", qwen3: "qwen3" };
/** Share of the progress bar the verification takes when it runs. */
const VERIFY_SHARE = 0.1;

export async function exportModelToGguf(request: ExportRequest): Promise<ExportResult> {
  const started = performance.now();
  const modelType = await readModelType(request.modelFolder);
  if (!(EXPORTABLE_MODEL_TYPES as readonly string[]).includes(modelType)) {
    throw new GgufExportError(
      "unsupported_architecture",
      `${join(request.modelFolder, "config.json")}: model_type "${modelType}" cannot be exported yet; supported: ${EXPORTABLE_MODEL_TYPES.join(", ")}.`,
    );
  }
  const gptOss = modelType === "gpt_oss";
  const architecture = ARCHITECTURES[modelType as keyof typeof ARCHITECTURES];
  const direct = DIRECT[request.type];
  const writeTarget = direct ? request.outFile : join(dirname(request.outFile), `.${basename(request.outFile)}.f16-intermediate.gguf`);
  const verifyShare = request.verify ? VERIFY_SHARE : 0;
  const writeShare = (direct ? 1 : 0.5) * (1 - verifyShare);
  const overrides = gptOss ? KEEP_MXFP4_EXPERTS : [];
  const beforeWrite: BeforeWriteHook | undefined = direct ? undefined : (plan) => ensureQuantizeSpace(plan, request.outFile, request.type as QuantizeType, overrides);
  const converterOptions = {
    modelFolder: request.modelFolder,
    outFile: writeTarget,
    outputType: direct ?? "f16",
    ...(request.signal ? { signal: request.signal } : {}),
    ...(beforeWrite ? { beforeWrite } : {}),
    onProgress: (progress: { bytesWritten: number; totalBytes: number; tensor: string | undefined }) =>
      request.onProgress?.({
        stage: "write",
        fraction: (writeShare * progress.bytesWritten) / Math.max(1, progress.totalBytes),
        detail: progress.tensor ?? "header",
      }),
  } as const;
  let produced: { outFile: string; bytes: number; fileType: number };
  try {
    const written = gptOss ? await exportGptOssToGguf(converterOptions) : await exportQwenToGguf(converterOptions);
    if (direct) {
      produced = { outFile: written.outFile, bytes: written.bytes, fileType: written.fileType };
    } else {
      const quantized = await quantizeGguf({
        input: writeTarget,
        output: request.outFile,
        type: request.type as QuantizeType,
        tensorTypeOverrides: overrides,
        ...(request.signal ? { signal: request.signal } : {}),
        ...(request.onLog ? { onLog: request.onLog } : {}),
        onProgress: (progress) =>
          request.onProgress?.({ stage: "quantize", fraction: (0.5 + 0.5 * progress.fraction) * (1 - verifyShare), detail: `quantizing to ${request.type}` }),
      });
      produced = { outFile: quantized.output, bytes: quantized.bytes, fileType: quantized.fileType };
    }
  } finally {
    if (!direct) await rm(writeTarget, { force: true });
  }
  const result: ExportResult = { ...produced, type: request.type, architecture, seconds: 0 };
  if (request.verify) {
    request.onProgress?.({ stage: "verify", fraction: 1 - verifyShare, detail: "verifying the GGUF with llama.cpp and PyTorch" });
    result.verification = await verifyExport(request, request.verify, produced);
    request.onProgress?.({ stage: "verify", fraction: 1, detail: "verified" });
  }
  result.seconds = (performance.now() - started) / 1000;
  return result;
}

async function verifyExport(request: ExportRequest, options: ExportVerifyOptions, produced: { outFile: string; fileType: number }): Promise<VerifyReport> {
  const ownEvaluator = options.evaluator ? undefined : createNodeLlamaCppEvaluator();
  const evaluator = options.evaluator ?? ownEvaluator!;
  let report: VerifyReport;
  try {
    report = await verifyGguf({
      ggufPath: produced.outFile,
      modelFolder: request.modelFolder,
      type: request.type,
      expectedFileType: produced.fileType,
      evaluator,
      reference: sidecarReferenceLogits({
        python: options.python,
        nativeDir: options.nativeDir,
        modelFolder: request.modelFolder,
        scratchFile: join(dirname(produced.outFile), `.${basename(produced.outFile)}.reference-logits.json`),
        ...(options.device ? { device: options.device } : {}),
        ...(request.onLog ? { onLog: request.onLog } : {}),
      }),
      ...(options.conversation ? { conversation: options.conversation } : {}),
      ...(options.thresholds ? { thresholds: options.thresholds } : {}),
      ...(request.signal ? { signal: request.signal } : {}),
    });
  } finally {
    await ownEvaluator?.dispose();
  }
  for (const check of report.checks) request.onLog?.(`verify ${check.ok ? "ok  " : "FAIL"} ${check.name}: ${check.detail}`);
  if (!report.ok) throw await markUnverified(report);
  return report;
}

/** Bytes a quantized export needs at its peak: the F16 intermediate and the estimated output. */
export function quantizedExportNeeds(plan: GgufWritePlan, type: QuantizeType, overrides: readonly TensorTypeOverride[]): { intermediate: number; output: number; total: number } {
  const dataBytes = plan.tensors.reduce((sum, tensor) => sum + alignOffset(tensorBytes(tensor.type, tensor.dims) ?? 0, 32), 0);
  const headerBytes = Math.max(0, plan.fileBytes - dataBytes);
  const output =
    headerBytes +
    plan.tensors.reduce((sum, tensor) => {
      const target = estimateTensorType({ name: tensor.name, dims: [...tensor.dims], type: tensor.type as GgmlType }, type, overrides);
      return sum + alignOffset(tensorBytes(target, tensor.dims) ?? 0, 32);
    }, 0);
  return { intermediate: plan.fileBytes, output, total: plan.fileBytes + output };
}

async function statfsFreeBytes(folder: string): Promise<number | undefined> {
  try {
    const stats = await statfs(folder);
    return stats.bavail * stats.bsize;
  } catch {
    return undefined; // statfs is missing on some platforms/filesystems; the writes themselves fail loudly.
  }
}

/**
 * Disk preflight of a quantized export: the F16 intermediate and the quantized output live in
 * the same folder at the same time. The output size is llama-quant's mixture rules applied to
 * the planned tensors (quantizeEstimate.ts), a slight underestimate for the _M mixtures.
 */
export async function ensureQuantizeSpace(
  plan: GgufWritePlan,
  outFile: string,
  type: QuantizeType,
  overrides: readonly TensorTypeOverride[],
  freeBytes: (folder: string) => Promise<number | undefined> = statfsFreeBytes,
): Promise<void> {
  const needs = quantizedExportNeeds(plan, type, overrides);
  const folder = dirname(outFile);
  const free = await freeBytes(folder);
  if (free !== undefined && free < needs.total) {
    throw new GgufExportError(
      "disk_space",
      `Exporting ${outFile} as ${type} needs ${formatBytes(needs.total)} (${needs.total} bytes: the F16 intermediate, ${needs.intermediate} bytes, and about ${needs.output} bytes of ${type} output are both on disk while llama.cpp quantizes) but ${folder} has only ${formatBytes(free)} (${free} bytes) free; free some space or choose another output folder.`,
    );
  }
}

async function readModelType(folder: string): Promise<string> {
  const configPath = join(folder, "config.json");
  if (!existsSync(configPath)) {
    throw new GgufExportError("missing_file", `${configPath} does not exist; a model folder needs config.json, the safetensors weights and tokenizer.json.`);
  }
  const config = JSON.parse(await readFile(configPath, "utf8")) as { model_type?: unknown };
  return typeof config.model_type === "string" ? config.model_type : "unknown";
}
