/**
 * Export of a model folder to GGUF, as the CLI, the demo and (later) the palette run it:
 * our own writer produces the full-precision file; quantized types are then made from it by
 * llama.cpp's own quantizer.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { exportGptOssToGguf, type GptOssExportResult } from "./gguf/gptOssConverter";
import { GgufExportError } from "./gguf/errors";
import type { GgufWriteProgress } from "./gguf/writer";

/** GGUF types our writer produces directly. */
export const DIRECT_EXPORT_TYPES = ["f32", "f16", "bf16"] as const;
export type DirectExportType = (typeof DIRECT_EXPORT_TYPES)[number];

export interface ExportRequest {
  modelFolder: string;
  outFile: string;
  type: DirectExportType;
  signal?: AbortSignal;
  onProgress?: (progress: GgufWriteProgress) => void;
}

export async function exportModelToGguf(request: ExportRequest): Promise<GptOssExportResult> {
  const modelType = await readModelType(request.modelFolder);
  if (modelType !== "gpt_oss") {
    throw new GgufExportError(
      "unsupported_architecture",
      `${join(request.modelFolder, "config.json")}: model_type "${modelType}" cannot be exported yet; supported: gpt_oss.`,
    );
  }
  return exportGptOssToGguf({
    modelFolder: request.modelFolder,
    outFile: request.outFile,
    outputType: request.type,
    ...(request.signal ? { signal: request.signal } : {}),
    ...(request.onProgress ? { onProgress: request.onProgress } : {}),
  });
}

async function readModelType(folder: string): Promise<string> {
  const configPath = join(folder, "config.json");
  if (!existsSync(configPath)) {
    throw new GgufExportError("missing_file", `${configPath} does not exist; a model folder needs config.json, the safetensors weights and tokenizer.json.`);
  }
  const config = JSON.parse(await readFile(configPath, "utf8")) as { model_type?: unknown };
  return typeof config.model_type === "string" ? config.model_type : "unknown";
}
