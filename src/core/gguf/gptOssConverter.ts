/**
 * Exports a Hugging Face GPT-OSS checkpoint folder (config.json, safetensors, tokenizer
 * files) to a GGUF that llama.cpp loads as arch "gpt-oss". Validation runs first (config,
 * tokenizer, every tensor shape, free disk space), then tensors stream one at a time into a
 * temporary file that is renamed when complete; cancelling removes it.
 */
import { existsSync } from "node:fs";
import { readFile, statfs } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { formatBytes } from "../formatBytes";
import { SafetensorsCheckpoint } from "../safetensors";
import { GGML_QUANTIZATION_VERSION, LlamaFileType } from "./constants";
import { GgufExportError } from "./errors";
import type { BeforeWriteHook } from "./exportPlan";
import { GGUF_ARCHITECTURE, gptOssMetadata, readGptOssConfig } from "./gptOssConfig";
import { hasMxfp4Experts, planGptOssTensors, type ExpertStorage, type GgufOutputType } from "./gptOssTensors";
import { readTokenizerMetadata } from "./tokenizerMetadata";
import { GgufWriter, type GgufWriteProgress } from "./writer";

export type { ExpertStorage, GgufOutputType } from "./gptOssTensors";

export interface GptOssExportOptions {
  /** Folder with config.json, model.safetensors (or shards + index) and tokenizer.json. */
  modelFolder: string;
  outFile: string;
  /** Type of the non-expert 2-D weights (norms, biases, sinks and routers are always F32). */
  outputType: GgufOutputType;
  /** Default: "mxfp4" when the checkpoint stores MXFP4 experts, else "same". */
  expertsAs?: ExpertStorage;
  /** general.name; default: the model folder's name. */
  modelName?: string;
  signal?: AbortSignal;
  onProgress?: (progress: GgufWriteProgress) => void;
  /** Called with the complete plan before anything is written (disk-space checks). */
  beforeWrite?: BeforeWriteHook;
}

export interface GptOssExportResult {
  outFile: string;
  bytes: number;
  tensorCount: number;
  fileType: number;
  expertsAs: ExpertStorage;
  seconds: number;
}

const OUTPUT_TYPES: readonly GgufOutputType[] = ["f32", "f16", "bf16"];
const FILE_TYPES: Readonly<Record<GgufOutputType, number>> = {
  f32: LlamaFileType.ALL_F32,
  f16: LlamaFileType.MOSTLY_F16,
  bf16: LlamaFileType.MOSTLY_BF16,
};
/** llama.cpp's pre-tokenizer for o200k_harmony (the o200k regex). */
const GPT_OSS_PRE_TOKENIZER = "gpt-4o";

export async function exportGptOssToGguf(options: GptOssExportOptions): Promise<GptOssExportResult> {
  const started = performance.now();
  if (!OUTPUT_TYPES.includes(options.outputType)) {
    throw new GgufExportError("bad_option", `Output type ${JSON.stringify(options.outputType)} is not supported; choose one of ${OUTPUT_TYPES.join(", ")} (quantize afterwards for smaller files).`);
  }
  if (options.expertsAs !== undefined && options.expertsAs !== "mxfp4" && options.expertsAs !== "same") {
    throw new GgufExportError("bad_option", `expertsAs must be "mxfp4" or "same", got ${JSON.stringify(options.expertsAs)}.`);
  }
  const folder = resolve(options.modelFolder);
  const outFile = resolve(options.outFile);
  if (!existsSync(dirname(outFile))) {
    throw new GgufExportError("bad_option", `The output folder ${dirname(outFile)} does not exist; create it or choose another location for ${basename(outFile)}.`);
  }
  const hp = await readGptOssConfig(folder);
  // The tokenizer is checked before any tensor work: a missing tokenizer.json is the most common failure.
  const tokenizer = await readTokenizerMetadata(folder, {
    vocabSize: hp.vocabSize,
    pre: GPT_OSS_PRE_TOKENIZER,
    fallbackIds: await configTokenIds(folder),
  });
  const checkpoint = await SafetensorsCheckpoint.open(folder);
  try {
    const expertsAs = options.expertsAs ?? (hasMxfp4Experts(checkpoint) ? "mxfp4" : "same");
    const tensors = planGptOssTensors({ checkpoint, hp, outputType: options.outputType, expertsAs });
    // §3.6: MXFP4 experts with a float outtype are labelled MXFP4_MOE, like convert_hf_to_gguf does.
    const fileType = expertsAs === "mxfp4" ? LlamaFileType.MOSTLY_MXFP4_MOE : FILE_TYPES[options.outputType];

    const writer = new GgufWriter(outFile);
    writer.addString("general.architecture", GGUF_ARCHITECTURE);
    writer.addString("general.name", options.modelName ?? basename(folder));
    writer.addUint32("general.file_type", fileType);
    writer.addUint32("general.quantization_version", GGML_QUANTIZATION_VERSION);
    for (const [key, type, value] of gptOssMetadata(hp)) writer.addKeyValue(key, type, value);
    for (const entry of tokenizer) writer.addKeyValue(entry.key, entry.type, entry.value, entry.elementType);
    for (const tensor of tensors) writer.addTensor(tensor);

    await options.beforeWrite?.({ outFile, fileBytes: writer.plannedFileSize, tensors });
    await ensureDiskSpace(dirname(outFile), writer.plannedFileSize, outFile);
    options.signal?.throwIfAborted();
    const dataOptions = { ...(options.signal ? { signal: options.signal } : {}), ...(options.onProgress ? { onProgress: options.onProgress } : {}) };
    const written = await writer.writeAll(dataOptions);
    return {
      outFile: written.path,
      bytes: written.bytes,
      tensorCount: tensors.length,
      fileType,
      expertsAs,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await checkpoint.close();
  }
}

/** Refuses to start when the target folder lacks room for the whole file (statfs where available). */
export async function ensureDiskSpace(folder: string, neededBytes: number, outFile = folder): Promise<void> {
  let freeBytes: number;
  try {
    const stats = await statfs(folder);
    freeBytes = stats.bavail * stats.bsize;
  } catch {
    return; // statfs is missing on some platforms/filesystems; the write itself will fail loudly.
  }
  if (freeBytes < neededBytes) {
    throw new GgufExportError(
      "disk_space",
      `Exporting ${outFile} needs ${formatBytes(neededBytes)} (${neededBytes} bytes) but ${folder} has only ${formatBytes(freeBytes)} (${freeBytes} bytes) free; free some space or choose another output folder.`,
    );
  }
}

interface TokenIds {
  bos?: number | undefined;
  eos?: number | undefined;
  pad?: number | undefined;
}

/** bos/eos/pad from config.json, then generation_config.json (first eos when it is a list). */
export async function configTokenIds(folder: string): Promise<TokenIds> {
  const ids: TokenIds = {};
  for (const file of ["config.json", "generation_config.json"]) {
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(await readFile(join(folder, file), "utf8")) as Record<string, unknown>;
    } catch {
      continue;
    }
    const pick = (value: unknown): number | undefined => (typeof value === "number" ? value : Array.isArray(value) && typeof value[0] === "number" ? value[0] : undefined);
    ids.bos ??= pick(parsed["bos_token_id"]);
    ids.eos ??= pick(parsed["eos_token_id"]);
    ids.pad ??= pick(parsed["pad_token_id"]);
  }
  return ids;
}

