/**
 * The tensor plan of a GPT-OSS GGUF: which HF tensor becomes which GGUF tensor, with what
 * dims and type, and a producer that streams its bytes (reference: gpt-oss-and-gguf.md §3.6).
 * Every source shape is checked against config.json before anything is written, so a
 * mismatched checkpoint fails in a second instead of after gigabytes.
 *
 * dtype rules (convert_hf_to_gguf): norms, sinks, biases and the router stay F32; other
 * 2-D weights take the output type; experts stay MXFP4 (nibbles repacked, scales copied) or,
 * with expertsAs "same", are dequantized to the output type. Gate and up are the even and
 * odd rows of the fused, interleaved gate_up_proj.
 */
import type { SafetensorsCheckpoint, SafetensorsDtype } from "../safetensors";
import { GgmlType } from "./constants";
import { GgufExportError } from "./errors";
import { convertFloats, decodeFloats, encodeFloats, type FloatFormat } from "./floats";
import type { GptOssHyperparameters } from "./gptOssConfig";
import { MXFP4_BLOCK_ELEMENTS, MXFP4_HF_BLOCK_BYTES, dequantizeExpertRows, quantizeRows, repackExpertRows } from "./mxfp4";
import type { GgufTensorSpec } from "./writer";

export type GgufOutputType = "f32" | "f16" | "bf16";
/** "mxfp4": experts as ggml MXFP4; "same": experts in the output type. */
export type ExpertStorage = "mxfp4" | "same";

export const OUTPUT_FORMATS: Readonly<Record<GgufOutputType, FloatFormat>> = { f32: "F32", f16: "F16", bf16: "BF16" };
const FORMAT_TYPES: Readonly<Record<FloatFormat, GgmlType>> = { F32: GgmlType.F32, F16: GgmlType.F16, BF16: GgmlType.BF16 };
/** Source bytes converted per chunk when streaming a large float tensor (embeddings are GBs). */
const CHUNK_BYTES = 16 << 20;

interface PlanInput {
  checkpoint: SafetensorsCheckpoint;
  hp: GptOssHyperparameters;
  outputType: GgufOutputType;
  expertsAs: ExpertStorage;
}

/** The checkpoint stores experts as MXFP4 `*_blocks`/`*_scales` (a merged one stores dense floats). */
export function hasMxfp4Experts(checkpoint: SafetensorsCheckpoint): boolean {
  return checkpoint.has("model.layers.0.mlp.experts.gate_up_proj_blocks");
}

/** GGUF tensor specs in file order: token_embd, blk.0 … blk.N-1, output_norm, output. */
export function planGptOssTensors(input: PlanInput): GgufTensorSpec[] {
  const { checkpoint, hp } = input;
  const out = OUTPUT_FORMATS[input.outputType];
  const tensors: GgufTensorSpec[] = [];
  const sourceExpertsMxfp4 = hasMxfp4Experts(checkpoint);
  const q = hp.heads * hp.headDim;
  const kv = hp.kvHeads * hp.headDim;
  const { hidden: H, intermediate: I, experts: E } = hp;

  const float = (gguf: string, hf: string, shape: number[], format: FloatFormat): void => {
    const source = checkSource(checkpoint, hf, shape, "float");
    tensors.push({ name: gguf, dims: [...shape].reverse(), type: FORMAT_TYPES[format], data: () => streamConverted(checkpoint, hf, source, format) });
  };

  float("token_embd.weight", "model.embed_tokens.weight", [hp.vocabSize, H], out);
  for (let layer = 0; layer < hp.layers; layer++) {
    const hf = `model.layers.${layer}.`;
    const blk = `blk.${layer}.`;
    float(`${blk}attn_norm.weight`, `${hf}input_layernorm.weight`, [H], "F32");
    for (const [name, proj, rows] of [["attn_q", "q_proj", q], ["attn_k", "k_proj", kv], ["attn_v", "v_proj", kv]] as const) {
      float(`${blk}${name}.weight`, `${hf}self_attn.${proj}.weight`, [rows, H], out);
      float(`${blk}${name}.bias`, `${hf}self_attn.${proj}.bias`, [rows], "F32");
    }
    float(`${blk}attn_output.weight`, `${hf}self_attn.o_proj.weight`, [H, q], out);
    float(`${blk}attn_output.bias`, `${hf}self_attn.o_proj.bias`, [H], "F32");
    float(`${blk}attn_sinks.weight`, `${hf}self_attn.sinks`, [hp.heads], "F32");
    float(`${blk}post_attention_norm.weight`, `${hf}post_attention_layernorm.weight`, [H], "F32");
    float(`${blk}ffn_gate_inp.weight`, `${hf}mlp.router.weight`, [E, H], "F32");
    float(`${blk}ffn_gate_inp.bias`, `${hf}mlp.router.bias`, [E], "F32");

    const experts = `${hf}mlp.experts.`;
    const expertFormat = input.expertsAs === "mxfp4" ? "MXFP4" : out;
    const gateUp = { rows: 2 * I, columns: H };
    const down = { rows: H, columns: I };
    const even = Array.from({ length: I }, (_, j) => 2 * j);
    const odd = even.map((row) => row + 1);
    const all = Array.from({ length: H }, (_, j) => j);
    for (const [name, source, shape, rows] of [
      ["ffn_gate_exps", "gate_up_proj", gateUp, even],
      ["ffn_up_exps", "gate_up_proj", gateUp, odd],
      ["ffn_down_exps", "down_proj", down, all],
    ] as const) {
      const producer = sourceExpertsMxfp4
        ? mxfp4Experts(checkpoint, `${experts}${source}`, E, shape.rows, shape.columns, rows, expertFormat)
        : denseExperts(checkpoint, `${experts}${source}`, E, shape.rows, shape.columns, rows, expertFormat);
      tensors.push({
        name: `${blk}${name}.weight`,
        dims: [shape.columns, rows.length, E],
        type: expertFormat === "MXFP4" ? GgmlType.MXFP4 : FORMAT_TYPES[expertFormat],
        data: producer,
      });
    }
    for (const [name, source, width, rows] of [
      ["ffn_gate_exps", "gate_up_proj_bias", 2 * I, even],
      ["ffn_up_exps", "gate_up_proj_bias", 2 * I, odd],
      ["ffn_down_exps", "down_proj_bias", H, all],
    ] as const) {
      const hfName = `${experts}${source}`;
      const format = checkSource(checkpoint, hfName, [E, width], "float");
      tensors.push({ name: `${blk}${name}.bias`, dims: [rows.length, E], type: GgmlType.F32, data: () => selectColumns(checkpoint, hfName, format, E, width, rows) });
    }
  }
  float("output_norm.weight", "model.norm.weight", [H], "F32");
  float("output.weight", "lm_head.weight", [hp.vocabSize, H], out);
  return tensors;
}

/** Checks a source tensor's presence, shape and dtype kind; returns its float format. */
function checkSource(checkpoint: SafetensorsCheckpoint, name: string, shape: readonly number[], kind: "float" | "u8"): FloatFormat {
  if (!checkpoint.has(name)) {
    throw new GgufExportError("missing_tensor", `The checkpoint in ${checkpoint.folder} has no tensor "${name}", which a gpt-oss GGUF needs; the folder is incomplete or not a gpt-oss checkpoint.`);
  }
  const tensor = checkpoint.tensor(name);
  if (tensor.shape.length !== shape.length || tensor.shape.some((dim, i) => dim !== shape[i])) {
    throw new GgufExportError("tensor_shape", `Tensor "${name}" in ${tensor.file} has shape [${tensor.shape.join(", ")}], but config.json implies [${shape.join(", ")}].`);
  }
  const allowed: readonly SafetensorsDtype[] = kind === "u8" ? ["U8"] : ["BF16", "F16", "F32"];
  if (!allowed.includes(tensor.dtype)) {
    throw new GgufExportError("tensor_dtype", `Tensor "${name}" in ${tensor.file} is ${tensor.dtype}; the exporter expects ${allowed.join(" or ")} here.`);
  }
  return tensor.dtype as FloatFormat;
}

async function* streamConverted(checkpoint: SafetensorsCheckpoint, name: string, from: FloatFormat, to: FloatFormat): AsyncIterable<Uint8Array> {
  const { byteLength } = checkpoint.tensor(name);
  for (let offset = 0; offset < byteLength; offset += CHUNK_BYTES) {
    const chunk = await checkpoint.read(name, { offset, length: Math.min(CHUNK_BYTES, byteLength - offset) });
    yield convertFloats(chunk, from, to);
  }
}

/** Columns `columns` of a [rows, width] float tensor, as F32 [rows, columns.length]. */
async function* selectColumns(checkpoint: SafetensorsCheckpoint, name: string, from: FloatFormat, rows: number, width: number, columns: readonly number[]): AsyncIterable<Uint8Array> {
  const values = decodeFloats(await checkpoint.read(name), from);
  const selected = new Float32Array(rows * columns.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < columns.length; c++) selected[r * columns.length + c] = values[r * width + columns[c]!]!;
  yield encodeFloats(selected, "F32");
}

/** HF MXFP4 experts (`<prefix>_blocks` [E, rows, nb, 16], `<prefix>_scales` [E, rows, nb]) → one expert per chunk. */
function mxfp4Experts(checkpoint: SafetensorsCheckpoint, prefix: string, experts: number, rows: number, columns: number, keep: readonly number[], format: FloatFormat | "MXFP4"): () => AsyncIterable<Uint8Array> {
  const blocksPerRow = columns / MXFP4_BLOCK_ELEMENTS;
  checkSource(checkpoint, `${prefix}_blocks`, [experts, rows, blocksPerRow, MXFP4_HF_BLOCK_BYTES], "u8");
  checkSource(checkpoint, `${prefix}_scales`, [experts, rows, blocksPerRow], "u8");
  return async function* () {
    const blockBytes = rows * blocksPerRow * MXFP4_HF_BLOCK_BYTES;
    const scaleBytes = rows * blocksPerRow;
    for (let e = 0; e < experts; e++) {
      const blocks = await checkpoint.read(`${prefix}_blocks`, { offset: e * blockBytes, length: blockBytes });
      const scales = await checkpoint.read(`${prefix}_scales`, { offset: e * scaleBytes, length: scaleBytes });
      yield format === "MXFP4" ? repackExpertRows(blocks, scales, blocksPerRow, keep) : encodeFloats(dequantizeExpertRows(blocks, scales, blocksPerRow, keep), format);
    }
  };
}

/**
 * Dense experts as a merged HF checkpoint stores them: [E, in (columns), out (rows)], used as
 * x @ W. Each expert is transposed to (out, in) rows before selecting gate/up rows.
 */
function denseExperts(checkpoint: SafetensorsCheckpoint, name: string, experts: number, rows: number, columns: number, keep: readonly number[], format: FloatFormat | "MXFP4"): () => AsyncIterable<Uint8Array> {
  const from = checkSource(checkpoint, name, [experts, columns, rows], "float");
  return async function* () {
    const expertBytes = checkpoint.tensor(name).byteLength / experts;
    for (let e = 0; e < experts; e++) {
      const values = decodeFloats(await checkpoint.read(name, { offset: e * expertBytes, length: expertBytes }), from);
      const transposed = new Float32Array(keep.length * columns);
      for (let r = 0; r < keep.length; r++) {
        const row = keep[r]!;
        for (let c = 0; c < columns; c++) transposed[r * columns + c] = values[c * rows + row]!;
      }
      yield format === "MXFP4" ? quantizeRows(transposed) : encodeFloats(transposed, format);
    }
  };
}
