/**
 * The quantization types we offer, how each maps onto llama.cpp's `llama_ftype`, and the one
 * error type of this module. The per-tensor mixture behind each type is llama.cpp's own
 * (reference: gpt-oss-and-gguf.md §4); we never choose tensor types ourselves except through
 * explicit tensor-type overrides.
 */
import { GGML_TYPE_IDS, LLAMA_FTYPE_IDS, type GgmlTypeName } from "./llamaQuantizeAbi";

export interface QuantizeTypeInfo {
  /** `llama_ftype`, also what llama.cpp writes as general.file_type. */
  ftype: number;
  /** The type most 2-D weights get before llama.cpp's mixture rules and shape fallbacks. */
  defaultTensorType: GgmlTypeName;
  /** False for F16/BF16: llama.cpp then skips the mixture rules and ignores tensor overrides. */
  quantized: boolean;
  description: string;
}

export const QUANTIZE_TYPES = {
  F16: { ftype: LLAMA_FTYPE_IDS.MOSTLY_F16, defaultTensorType: "F16", quantized: false, description: "16-bit floats (norms stay F32)" },
  BF16: { ftype: LLAMA_FTYPE_IDS.MOSTLY_BF16, defaultTensorType: "BF16", quantized: false, description: "bfloat16 (norms stay F32)" },
  Q8_0: { ftype: LLAMA_FTYPE_IDS.MOSTLY_Q8_0, defaultTensorType: "Q8_0", quantized: true, description: "8.5 bits per weight, near-lossless" },
  Q6_K: { ftype: LLAMA_FTYPE_IDS.MOSTLY_Q6_K, defaultTensorType: "Q6_K", quantized: true, description: "6.56 bits per weight" },
  Q5_K_M: { ftype: LLAMA_FTYPE_IDS.MOSTLY_Q5_K_M, defaultTensorType: "Q5_K", quantized: true, description: "Q5_K with Q6_K on sensitive tensors" },
  Q4_K_M: { ftype: LLAMA_FTYPE_IDS.MOSTLY_Q4_K_M, defaultTensorType: "Q4_K", quantized: true, description: "Q4_K with Q6_K on sensitive tensors" },
  Q4_0: { ftype: LLAMA_FTYPE_IDS.MOSTLY_Q4_0, defaultTensorType: "Q4_0", quantized: true, description: "4.5 bits per weight, legacy blocks" },
  MXFP4_MOE: { ftype: LLAMA_FTYPE_IDS.MOSTLY_MXFP4_MOE, defaultTensorType: "MXFP4", quantized: true, description: "MoE experts MXFP4, other weights Q8_0" },
} as const satisfies Record<string, QuantizeTypeInfo>;

export type QuantizeType = keyof typeof QUANTIZE_TYPES;
export const SUPPORTED_QUANTIZE_TYPES = Object.keys(QUANTIZE_TYPES) as QuantizeType[];

export function isQuantizeType(value: unknown): value is QuantizeType {
  return typeof value === "string" && Object.prototype.hasOwnProperty.call(QUANTIZE_TYPES, value);
}

/**
 * One `--tensor-type REGEX=TYPE` rule: llama.cpp searches `pattern` (ECMAScript std::regex)
 * in each tensor name; the first match decides that tensor's type, replacing the mixture
 * rules (the shape fallback still applies). Only honoured for quantized target types.
 */
export interface TensorTypeOverride {
  pattern: string;
  type: GgmlTypeName;
}

/**
 * Keeps GPT-OSS experts in MXFP4 inside a K-quant or legacy file, like
 * `llama-quantize --tensor-type ffn_(gate|up|down)_exps=mxfp4`. Experts that are already
 * MXFP4 are then copied byte for byte instead of being requantized (§4.2).
 */
export const KEEP_MXFP4_EXPERTS: readonly TensorTypeOverride[] = [{ pattern: "ffn_(gate|up|down)_exps", type: "MXFP4" }];

export const OVERRIDE_TYPE_NAMES = (Object.keys(GGML_TYPE_IDS) as (keyof typeof GGML_TYPE_IDS)[]).filter(
  (name): name is GgmlTypeName => name !== "COUNT",
);

export type QuantizeErrorCode =
  | "input_missing"
  | "bad_option"
  | "library_missing"
  | "library_mismatch"
  | "quantize_failed"
  | "crashed";

export class QuantizeError extends Error {
  constructor(
    readonly code: QuantizeErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "QuantizeError";
  }

  static is(error: unknown, code?: QuantizeErrorCode): error is QuantizeError {
    return error instanceof QuantizeError && (code === undefined || error.code === code);
  }
}
