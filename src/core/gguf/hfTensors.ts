/**
 * Building blocks for planning dense (non-MXFP4) GGUF tensors from a Hugging Face checkpoint:
 * a source check that names the tensor, its file and the expected shape, and a producer that
 * streams a float tensor converted to the target float format in chunks (embeddings are GBs).
 */
import type { SafetensorsCheckpoint, SafetensorsDtype } from "../safetensors";
import { GgmlType } from "./constants";
import { GgufExportError } from "./errors";
import { convertFloats, type FloatFormat } from "./floats";
import type { GgufTensorSpec } from "./writer";

export const FLOAT_FORMAT_TYPES: Readonly<Record<FloatFormat, GgmlType>> = { F32: GgmlType.F32, F16: GgmlType.F16, BF16: GgmlType.BF16 };
const FLOAT_DTYPES: readonly SafetensorsDtype[] = ["BF16", "F16", "F32"];
/** Source bytes converted per chunk when streaming a large float tensor. */
const CHUNK_BYTES = 16 << 20;

/**
 * Checks that `name` exists with exactly `shape` and a float dtype; returns its float format.
 * `architecture` only words the message ("a qwen2 GGUF needs").
 */
export function checkFloatSource(checkpoint: SafetensorsCheckpoint, name: string, shape: readonly number[], architecture: string): FloatFormat {
  if (!checkpoint.has(name)) {
    throw new GgufExportError("missing_tensor", `The checkpoint in ${checkpoint.folder} has no tensor "${name}", which a ${architecture} GGUF needs; the folder is incomplete or holds another architecture.`);
  }
  const tensor = checkpoint.tensor(name);
  if (tensor.shape.length !== shape.length || tensor.shape.some((dim, i) => dim !== shape[i])) {
    throw new GgufExportError("tensor_shape", `Tensor "${name}" in ${tensor.file} has shape [${tensor.shape.join(", ")}], but config.json implies [${shape.join(", ")}].`);
  }
  if (!FLOAT_DTYPES.includes(tensor.dtype)) {
    throw new GgufExportError("tensor_dtype", `Tensor "${name}" in ${tensor.file} is ${tensor.dtype}; the exporter expects ${FLOAT_DTYPES.join(" or ")} here.`);
  }
  return tensor.dtype as FloatFormat;
}

/** A GGUF tensor spec that streams HF tensor `hfName` (torch shape `shape`) converted to `format`. */
export function floatTensorSpec(checkpoint: SafetensorsCheckpoint, ggufName: string, hfName: string, shape: readonly number[], format: FloatFormat, architecture: string): GgufTensorSpec {
  const source = checkFloatSource(checkpoint, hfName, shape, architecture);
  return { name: ggufName, dims: [...shape].reverse(), type: FLOAT_FORMAT_TYPES[format], data: () => streamConverted(checkpoint, hfName, source, format) };
}

export async function* streamConverted(checkpoint: SafetensorsCheckpoint, name: string, from: FloatFormat, to: FloatFormat): AsyncIterable<Uint8Array> {
  const { byteLength } = checkpoint.tensor(name);
  for (let offset = 0; offset < byteLength; offset += CHUNK_BYTES) {
    const chunk = await checkpoint.read(name, { offset, length: Math.min(CHUNK_BYTES, byteLength - offset) });
    yield convertFloats(chunk, from, to);
  }
}
