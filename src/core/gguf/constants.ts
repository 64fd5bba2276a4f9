/**
 * Numbers of the GGUF v3 format and of ggml's tensor types, as llama.cpp reads them
 * (reference: /work/shared/reference/gpt-oss-and-gguf.md §3.1-3.2). Kept as `as const`
 * objects, not TS enums, so they erase to plain numbers and read like the C headers.
 */

export const GGUF_MAGIC = "GGUF";
export const GGUF_VERSION = 3;
/** Used when a file has no `general.alignment`; we always write it anyway. */
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** ggml's GGML_MAX_NAME includes the terminating NUL, so names may use 63 bytes. */
export const GGML_MAX_NAME_BYTES = 63;
export const GGML_MAX_DIMS = 4;
export const GGML_QUANTIZATION_VERSION = 2;

/** `gguf_type`: the type tag in front of every metadata value. */
export const GgufValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GgufValueType = (typeof GgufValueType)[keyof typeof GgufValueType];

const VALUE_TYPE_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(GgufValueType).map(([name, id]) => [id, name]));

export function ggufValueTypeName(type: number): string {
  return VALUE_TYPE_NAMES.get(type) ?? `unknown(${type})`;
}

/** Bytes of one fixed-size value; strings and arrays are variable. */
export const GGUF_SCALAR_BYTES: Readonly<Partial<Record<GgufValueType, number>>> = {
  [GgufValueType.UINT8]: 1,
  [GgufValueType.INT8]: 1,
  [GgufValueType.UINT16]: 2,
  [GgufValueType.INT16]: 2,
  [GgufValueType.UINT32]: 4,
  [GgufValueType.INT32]: 4,
  [GgufValueType.FLOAT32]: 4,
  [GgufValueType.BOOL]: 1,
  [GgufValueType.UINT64]: 8,
  [GgufValueType.INT64]: 8,
  [GgufValueType.FLOAT64]: 8,
};

/** `ggml_type` ids (retired ids 4, 5, 31-33, 36-38 are absent on purpose). */
export const GgmlType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q8_1: 9,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  Q8_K: 15,
  BF16: 30,
  MXFP4: 39,
} as const;
export type GgmlType = (typeof GgmlType)[keyof typeof GgmlType];

export interface GgmlTypeTraits {
  name: keyof typeof GgmlType;
  /** Elements sharing one block (1 for plain floats). ne[0] must be a multiple of it. */
  blockSize: number;
  bytesPerBlock: number;
}

export const GGML_TYPE_TRAITS: Readonly<Record<GgmlType, GgmlTypeTraits>> = {
  [GgmlType.F32]: { name: "F32", blockSize: 1, bytesPerBlock: 4 },
  [GgmlType.F16]: { name: "F16", blockSize: 1, bytesPerBlock: 2 },
  [GgmlType.Q4_0]: { name: "Q4_0", blockSize: 32, bytesPerBlock: 18 },
  [GgmlType.Q4_1]: { name: "Q4_1", blockSize: 32, bytesPerBlock: 20 },
  [GgmlType.Q5_0]: { name: "Q5_0", blockSize: 32, bytesPerBlock: 22 },
  [GgmlType.Q5_1]: { name: "Q5_1", blockSize: 32, bytesPerBlock: 24 },
  [GgmlType.Q8_0]: { name: "Q8_0", blockSize: 32, bytesPerBlock: 34 },
  [GgmlType.Q8_1]: { name: "Q8_1", blockSize: 32, bytesPerBlock: 36 },
  [GgmlType.Q2_K]: { name: "Q2_K", blockSize: 256, bytesPerBlock: 84 },
  [GgmlType.Q3_K]: { name: "Q3_K", blockSize: 256, bytesPerBlock: 110 },
  [GgmlType.Q4_K]: { name: "Q4_K", blockSize: 256, bytesPerBlock: 144 },
  [GgmlType.Q5_K]: { name: "Q5_K", blockSize: 256, bytesPerBlock: 176 },
  [GgmlType.Q6_K]: { name: "Q6_K", blockSize: 256, bytesPerBlock: 210 },
  [GgmlType.Q8_K]: { name: "Q8_K", blockSize: 256, bytesPerBlock: 292 },
  [GgmlType.BF16]: { name: "BF16", blockSize: 1, bytesPerBlock: 2 },
  [GgmlType.MXFP4]: { name: "MXFP4", blockSize: 32, bytesPerBlock: 17 },
};

export function isKnownGgmlType(type: number): type is GgmlType {
  return Object.prototype.hasOwnProperty.call(GGML_TYPE_TRAITS, type);
}

export function ggmlTypeName(type: number): string {
  return isKnownGgmlType(type) ? GGML_TYPE_TRAITS[type].name : `unknown(${type})`;
}

/**
 * Bytes of a tensor with dims `ne` (ne[0] innermost). Throws a plain Error when ne[0] is
 * not a multiple of the block size; callers wrap it with the tensor's name.
 */
export function ggmlTensorByteLength(type: GgmlType, ne: readonly number[]): number {
  const { blockSize, bytesPerBlock, name } = GGML_TYPE_TRAITS[type];
  const rowLength = ne[0] ?? 1;
  if (rowLength % blockSize !== 0) {
    throw new Error(`ne[0] = ${rowLength} is not a multiple of ${name}'s block size ${blockSize}`);
  }
  const rows = ne.slice(1).reduce((product, dim) => product * dim, 1);
  return (rowLength / blockSize) * bytesPerBlock * rows;
}

/** `llama_ftype`, written as `general.file_type`: the predominant type of the weights. */
export const LlamaFileType = {
  ALL_F32: 0,
  MOSTLY_F16: 1,
  MOSTLY_Q4_0: 2,
  MOSTLY_Q4_1: 3,
  MOSTLY_Q8_0: 7,
  MOSTLY_Q5_0: 8,
  MOSTLY_Q5_1: 9,
  MOSTLY_Q2_K: 10,
  MOSTLY_Q3_K_S: 11,
  MOSTLY_Q3_K_M: 12,
  MOSTLY_Q3_K_L: 13,
  MOSTLY_Q4_K_S: 14,
  MOSTLY_Q4_K_M: 15,
  MOSTLY_Q5_K_S: 16,
  MOSTLY_Q5_K_M: 17,
  MOSTLY_Q6_K: 18,
  MOSTLY_BF16: 32,
  MOSTLY_MXFP4_MOE: 38,
} as const;
export type LlamaFileType = (typeof LlamaFileType)[keyof typeof LlamaFileType];

/** `tokenizer.ggml.token_type` values (llama_token_type). */
export const GgufTokenType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;
export type GgufTokenType = (typeof GgufTokenType)[keyof typeof GgufTokenType];

export function alignOffset(offset: number, alignment: number): number {
  return offset + ((alignment - (offset % alignment)) % alignment);
}
