/**
 * Exports a Hugging Face Qwen2 / Qwen2.5(-Coder) or Qwen3 (dense) checkpoint folder to a GGUF
 * that llama.cpp loads as arch "qwen2" / "qwen3". Same shape as the GPT-OSS converter:
 * config, tokenizer and every tensor shape are checked first, then tensors stream one at a
 * time into a temporary file that is renamed when complete (cancelling removes it).
 *
 * Tensor map (HF → GGUF, ne = reversed torch shape): embed_tokens → token_embd; per layer
 * input_layernorm → attn_norm, q/k/v_proj (+bias for qwen2) → attn_q/k/v, o_proj →
 * attn_output, q_norm/k_norm → attn_q_norm/attn_k_norm (qwen3), post_attention_layernorm →
 * ffn_norm, gate/up/down_proj → ffn_gate/up/down; norm → output_norm; lm_head → output
 * (left out when tied: llama.cpp then reuses token_embd). Norms and biases stay F32, like
 * convert_hf_to_gguf writes them; other 2-D weights take the output type.
 *
 * Tokenizer: byte-level BPE with llama.cpp's "qwen2" pre-tokenizer, the chat template
 * embedded as is, and the FIM token ids (fimTokens.ts) so infill works from the GGUF alone.
 */
import { existsSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { SafetensorsCheckpoint } from "../safetensors";
import { GGML_QUANTIZATION_VERSION, LlamaFileType } from "./constants";
import { GgufExportError } from "./errors";
import type { BeforeWriteHook } from "./exportPlan";
import { fimTokenMetadata, tokenListOf } from "./fimTokens";
import type { FloatFormat } from "./floats";
import { configTokenIds, ensureDiskSpace } from "./gptOssConverter";
import { OUTPUT_FORMATS, type GgufOutputType } from "./gptOssTensors";
import { floatTensorSpec } from "./hfTensors";
import { qwenMetadata, readQwenConfig, type QwenHyperparameters } from "./qwen2Config";
import { readTokenizerMetadata } from "./tokenizerMetadata";
import { GgufWriter, type GgufTensorSpec, type GgufWriteProgress } from "./writer";

/** llama.cpp's pre-tokenizer for Qwen2/2.5/3 (their shared regex). */
export const QWEN_PRE_TOKENIZER = "qwen2";

export interface QwenExportOptions {
  /** Folder with config.json, model.safetensors (or shards + index) and tokenizer.json. */
  modelFolder: string;
  outFile: string;
  /** Type of the 2-D weights (norms and biases are always F32). */
  outputType: GgufOutputType;
  /** general.name; default: the model folder's name. */
  modelName?: string;
  signal?: AbortSignal;
  onProgress?: (progress: GgufWriteProgress) => void;
  /** Called with the complete plan before anything is written (disk-space checks). */
  beforeWrite?: BeforeWriteHook;
}

export interface QwenExportResult {
  outFile: string;
  bytes: number;
  tensorCount: number;
  fileType: number;
  architecture: string;
  seconds: number;
}

const FILE_TYPES: Readonly<Record<GgufOutputType, number>> = {
  f32: LlamaFileType.ALL_F32,
  f16: LlamaFileType.MOSTLY_F16,
  bf16: LlamaFileType.MOSTLY_BF16,
};

export async function exportQwenToGguf(options: QwenExportOptions): Promise<QwenExportResult> {
  const started = performance.now();
  if (!Object.hasOwn(FILE_TYPES, options.outputType)) {
    throw new GgufExportError("bad_option", `Output type ${JSON.stringify(options.outputType)} is not supported; choose one of ${Object.keys(FILE_TYPES).join(", ")} (quantize afterwards for smaller files).`);
  }
  const folder = resolve(options.modelFolder);
  const outFile = resolve(options.outFile);
  if (!existsSync(dirname(outFile))) {
    throw new GgufExportError("bad_option", `The output folder ${dirname(outFile)} does not exist; create it or choose another location for ${basename(outFile)}.`);
  }
  const hp = await readQwenConfig(folder);
  const tokenizer = await readTokenizerMetadata(folder, { vocabSize: hp.vocabSize, pre: QWEN_PRE_TOKENIZER, fallbackIds: await configTokenIds(folder) });
  const fim = fimTokenMetadata(tokenListOf(tokenizer));
  const checkpoint = await SafetensorsCheckpoint.open(folder);
  try {
    const tensors = planQwenTensors(checkpoint, hp, OUTPUT_FORMATS[options.outputType]);
    const fileType = FILE_TYPES[options.outputType];
    const writer = new GgufWriter(outFile);
    writer.addString("general.architecture", hp.architecture);
    writer.addString("general.name", options.modelName ?? basename(folder));
    writer.addUint32("general.file_type", fileType);
    writer.addUint32("general.quantization_version", GGML_QUANTIZATION_VERSION);
    for (const [key, type, value] of qwenMetadata(hp)) writer.addKeyValue(key, type, value);
    for (const entry of [...tokenizer, ...fim]) writer.addKeyValue(entry.key, entry.type, entry.value, entry.elementType);
    for (const tensor of tensors) writer.addTensor(tensor);

    await options.beforeWrite?.({ outFile, fileBytes: writer.plannedFileSize, tensors });
    await ensureDiskSpace(dirname(outFile), writer.plannedFileSize, outFile);
    options.signal?.throwIfAborted();
    const written = await writer.writeAll({ ...(options.signal ? { signal: options.signal } : {}), ...(options.onProgress ? { onProgress: options.onProgress } : {}) });
    return { outFile: written.path, bytes: written.bytes, tensorCount: tensors.length, fileType, architecture: hp.architecture, seconds: (performance.now() - started) / 1000 };
  } finally {
    await checkpoint.close();
  }
}

/** GGUF tensor specs in file order: token_embd, blk.0 … blk.N-1, output_norm, output. */
export function planQwenTensors(checkpoint: SafetensorsCheckpoint, hp: QwenHyperparameters, out: FloatFormat): GgufTensorSpec[] {
  const tensors: GgufTensorSpec[] = [];
  const float = (gguf: string, hf: string, shape: number[], format: FloatFormat): void => {
    tensors.push(floatTensorSpec(checkpoint, gguf, hf, shape, format, hp.architecture));
  };
  const { hidden: H, intermediate: I } = hp;
  const q = hp.heads * hp.headDim;
  const kv = hp.kvHeads * hp.headDim;
  float("token_embd.weight", "model.embed_tokens.weight", [hp.vocabSize, H], out);
  for (let layer = 0; layer < hp.layers; layer++) {
    const hf = `model.layers.${layer}.`;
    const blk = `blk.${layer}.`;
    float(`${blk}attn_norm.weight`, `${hf}input_layernorm.weight`, [H], "F32");
    for (const [name, proj, rows] of [["attn_q", "q_proj", q], ["attn_k", "k_proj", kv], ["attn_v", "v_proj", kv]] as const) {
      float(`${blk}${name}.weight`, `${hf}self_attn.${proj}.weight`, [rows, H], out);
      if (hp.qkvBias) float(`${blk}${name}.bias`, `${hf}self_attn.${proj}.bias`, [rows], "F32");
    }
    if (hp.qkNorm) {
      float(`${blk}attn_q_norm.weight`, `${hf}self_attn.q_norm.weight`, [hp.headDim], "F32");
      float(`${blk}attn_k_norm.weight`, `${hf}self_attn.k_norm.weight`, [hp.headDim], "F32");
    }
    float(`${blk}attn_output.weight`, `${hf}self_attn.o_proj.weight`, [H, q], out);
    float(`${blk}ffn_norm.weight`, `${hf}post_attention_layernorm.weight`, [H], "F32");
    float(`${blk}ffn_gate.weight`, `${hf}mlp.gate_proj.weight`, [I, H], out);
    float(`${blk}ffn_up.weight`, `${hf}mlp.up_proj.weight`, [I, H], out);
    float(`${blk}ffn_down.weight`, `${hf}mlp.down_proj.weight`, [H, I], out);
  }
  float("output_norm.weight", "model.norm.weight", [H], "F32");
  // A tied checkpoint may still carry lm_head (a copy); the embedding wins, as in transformers.
  if (!hp.tied) float("output.weight", "lm_head.weight", [hp.vocabSize, H], out);
  return tensors;
}
