/**
 * Estimates the size of the quantized file, so progress can be reported from the growing
 * temporary file (llama_model_quantize has no progress callback). It applies the coarse
 * rules of llama-quant.cpp (reference: gpt-oss-and-gguf.md §4.1): which tensors are
 * quantized, the default type, output.weight, MXFP4_MOE's experts, tensor overrides and the
 * shape fallbacks. It leaves out the Q6_K bumps of the _M mixtures, so it is a slight
 * underestimate for Q4_K_M/Q5_K_M; progress is capped below 100% until llama.cpp returns.
 */
import { GGML_TYPE_TRAITS, alignOffset, isKnownGgmlType } from "../gguf/constants";
import type { GgufFileContents, GgufTensorRecord } from "../gguf/reader";
import { GGML_TYPE_IDS, type GgmlTypeName } from "./llamaQuantizeAbi";
import { QUANTIZE_TYPES, type QuantizeType, type TensorTypeOverride } from "./quantizeTypes";

/** Where llama.cpp sends a type whose block does not divide a row (tensor_type_fallback). */
const SHAPE_FALLBACK: Partial<Record<GgmlTypeName, GgmlTypeName>> = {
  Q2_K: "Q4_0",
  Q3_K: "Q4_0",
  Q4_K: "Q5_0",
  Q5_K: "Q5_1",
  Q6_K: "Q8_0",
};

/** llama.cpp writes GGUF_DEFAULT_ALIGNMENT (32) whatever the input used. */
const OUTPUT_ALIGNMENT = 32;

/** The name-based part of llama.cpp's tensor_allows_quantization, for the tensors LLMs have. */
export function allowsQuantization(tensor: Pick<GgufTensorRecord, "name" | "dims">): boolean {
  const { name } = tensor;
  // ggml_n_dims: trailing dims of 1 do not count, so a [n, 1] tensor is a vector.
  let nDims = 1;
  for (let index = tensor.dims.length - 1; index >= 1; index--) {
    if ((tensor.dims[index] ?? 1) > 1) {
      nDims = index + 1;
      break;
    }
  }
  return (
    nDims >= 2 &&
    name.endsWith("weight") &&
    !name.includes("_norm.weight") &&
    !name.includes("ffn_gate_inp.weight") &&
    name !== "position_embd.weight" &&
    name !== "token_types.weight"
  );
}

function typeId(name: GgmlTypeName): number {
  return GGML_TYPE_IDS[name];
}

function nameOfId(id: number): GgmlTypeName | undefined {
  return (Object.keys(GGML_TYPE_IDS) as GgmlTypeName[]).find((name) => GGML_TYPE_IDS[name] === id);
}

/** The estimated target type of one tensor, as a ggml type id. */
export function estimateTensorType(tensor: Pick<GgufTensorRecord, "name" | "dims" | "type">, type: QuantizeType, overrides: readonly TensorTypeOverride[] = []): number {
  if (!allowsQuantization(tensor)) return tensor.type;
  const info = QUANTIZE_TYPES[type];
  if (!info.quantized) return typeId(info.defaultTensorType);
  let target: GgmlTypeName = info.defaultTensorType;
  const override = overrides.find((candidate) => new RegExp(candidate.pattern).test(tensor.name));
  if (override) {
    target = override.type;
  } else if (tensor.name === "output.weight") {
    target = type === "MXFP4_MOE" || type === "Q8_0" ? "Q8_0" : "Q6_K";
  } else if (type === "MXFP4_MOE") {
    target = (tensor.dims[2] ?? 1) > 1 ? "MXFP4" : "Q8_0";
  }
  const rowLength = tensor.dims[0] ?? 1;
  const blockSize = (id: GgmlTypeName): number => GGML_TYPE_TRAITS[GGML_TYPE_IDS[id] as keyof typeof GGML_TYPE_TRAITS].blockSize;
  if (rowLength % blockSize(target) !== 0) {
    const fallback = SHAPE_FALLBACK[target];
    target = fallback !== undefined && rowLength % blockSize(fallback) === 0 ? fallback : "F16";
  }
  return typeId(target);
}

/** Bytes of a tensor of `type` with dims `ne`; undefined for types we have no traits for. */
export function tensorBytes(type: number, dims: readonly number[]): number | undefined {
  if (!isKnownGgmlType(type)) return undefined;
  const { blockSize, bytesPerBlock } = GGML_TYPE_TRAITS[type];
  const rows = dims.slice(1).reduce((product, dim) => product * dim, 1);
  return Math.ceil((dims[0] ?? 1) / blockSize) * bytesPerBlock * rows;
}

export interface QuantizeEstimate {
  /** Expected size of the output file in bytes. */
  bytes: number;
  tensorCount: number;
  /** Estimated target type name per tensor (for logs and tests). */
  tensorTypes: Map<string, string>;
}

export function estimateQuantizedFile(contents: GgufFileContents, type: QuantizeType, overrides: readonly TensorTypeOverride[] = []): QuantizeEstimate {
  // The header keeps every key/value and tensor info; only a couple of integers change.
  let bytes = alignOffset(contents.dataOffset, OUTPUT_ALIGNMENT);
  const tensorTypes = new Map<string, string>();
  for (const tensor of contents.tensors) {
    const target = estimateTensorType(tensor, type, overrides);
    tensorTypes.set(tensor.name, nameOfId(target) ?? `type ${target}`);
    bytes += alignOffset(tensorBytes(target, tensor.dims) ?? tensor.byteLength, OUTPUT_ALIGNMENT);
  }
  return { bytes, tensorCount: contents.tensors.length, tensorTypes };
}
