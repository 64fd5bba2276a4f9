/**
 * Export of a model folder to GGUF, as the CLI, the demo and the palette run it. Our own
 * writer produces F32/F16/BF16 directly; every quantized type is then made from an F16 file
 * by llama.cpp's own quantizer, with GPT-OSS's MXFP4 experts copied as they are (they were
 * trained in MXFP4; requantizing them would only lose precision).
 */
import { existsSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { GgufExportError } from "./gguf/errors";
import { exportGptOssToGguf } from "./gguf/gptOssConverter";
import { quantizeGguf } from "./quantize/quantizeGguf";
import { KEEP_MXFP4_EXPERTS, type QuantizeType } from "./quantize/quantizeTypes";

/** Every type the product exports, in the user-facing spelling. */
export const EXPORT_TYPES = ["F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "MXFP4_MOE"] as const;
export type ExportType = (typeof EXPORT_TYPES)[number];

export function parseExportType(value: string): ExportType | undefined {
  const upper = value.toUpperCase();
  return (EXPORT_TYPES as readonly string[]).includes(upper) ? (upper as ExportType) : undefined;
}

export interface ExportProgress {
  stage: "write" | "quantize";
  /** 0..1 within the whole export. */
  fraction: number;
  detail: string;
}

export interface ExportRequest {
  modelFolder: string;
  outFile: string;
  type: ExportType;
  signal?: AbortSignal;
  onProgress?: (progress: ExportProgress) => void;
  onLog?: (line: string) => void;
}

export interface ExportResult {
  outFile: string;
  type: ExportType;
  bytes: number;
  fileType: number;
  seconds: number;
}

const DIRECT: Partial<Record<ExportType, "f32" | "f16" | "bf16">> = { F32: "f32", F16: "f16", BF16: "bf16" };

export async function exportModelToGguf(request: ExportRequest): Promise<ExportResult> {
  const started = performance.now();
  const modelType = await readModelType(request.modelFolder);
  if (modelType !== "gpt_oss") {
    throw new GgufExportError(
      "unsupported_architecture",
      `${join(request.modelFolder, "config.json")}: model_type "${modelType}" cannot be exported yet; supported: gpt_oss.`,
    );
  }
  const direct = DIRECT[request.type];
  const writeTarget = direct ? request.outFile : join(dirname(request.outFile), `.${basename(request.outFile)}.f16-intermediate.gguf`);
  const writeShare = direct ? 1 : 0.5;
  try {
    const written = await exportGptOssToGguf({
      modelFolder: request.modelFolder,
      outFile: writeTarget,
      outputType: direct ?? "f16",
      ...(request.signal ? { signal: request.signal } : {}),
      onProgress: (progress) =>
        request.onProgress?.({
          stage: "write",
          fraction: (writeShare * progress.bytesWritten) / Math.max(1, progress.totalBytes),
          detail: progress.tensor ?? "header",
        }),
    });
    if (direct) {
      return { outFile: written.outFile, type: request.type, bytes: written.bytes, fileType: written.fileType, seconds: elapsed(started) };
    }
    const quantized = await quantizeGguf({
      input: writeTarget,
      output: request.outFile,
      type: request.type as QuantizeType,
      tensorTypeOverrides: KEEP_MXFP4_EXPERTS,
      ...(request.signal ? { signal: request.signal } : {}),
      ...(request.onLog ? { onLog: request.onLog } : {}),
      onProgress: (progress) =>
        request.onProgress?.({ stage: "quantize", fraction: 0.5 + 0.5 * progress.fraction, detail: `quantizing to ${request.type}` }),
    });
    return { outFile: quantized.output, type: request.type, bytes: quantized.bytes, fileType: quantized.fileType, seconds: elapsed(started) };
  } finally {
    if (!direct) await rm(writeTarget, { force: true });
  }
}

function elapsed(started: number): number {
  return (performance.now() - started) / 1000;
}

async function readModelType(folder: string): Promise<string> {
  const configPath = join(folder, "config.json");
  if (!existsSync(configPath)) {
    throw new GgufExportError("missing_file", `${configPath} does not exist; a model folder needs config.json, the safetensors weights and tokenizer.json.`);
  }
  const config = JSON.parse(await readFile(configPath, "utf8")) as { model_type?: unknown };
  return typeof config.model_type === "string" ? config.model_type : "unknown";
}
