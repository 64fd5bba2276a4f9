/**
 * The C ABI of llama.cpp's quantizer, declared once, as data. The FFI binding (koffi, in
 * the quantizer child process) is built from these tables, and test/unit/quantizeAbi.test.ts
 * compares them with include/llama.h, ggml.h and llama-quant.cpp of the llama.cpp source that
 * node-llama-cpp ships (llama/gitRelease.bundle), so an upgrade that changes the struct fails
 * a test instead of corrupting memory at run time.
 *
 * Everything here is for the pinned versions below; change them together with the tables.
 */

/** node-llama-cpp version whose prebuilt libllama these declarations match (package.json pins it). */
export const PINNED_NODE_LLAMA_CPP_VERSION = "3.22.1";
/** llama.cpp release of that node-llama-cpp (llama/binariesGithubRelease.json, _nlcBuildMetadata.json). */
export const PINNED_LLAMA_CPP_RELEASE = "v0.5.0";

/** One struct member: its C type spelled as in the header, and the koffi type it maps to. */
export interface CField {
  name: string;
  cType: string;
  koffiType: string;
}

export interface CStruct {
  name: string;
  fields: readonly CField[];
}

export interface CParameter {
  name: string;
  cType: string;
  koffiType: string;
}

export interface CFunction {
  name: string;
  resultCType: string;
  resultKoffiType: string;
  parameters: readonly CParameter[];
}

// C enums are int-sized on every platform node-llama-cpp ships for (GCC/Clang without
// -fshort-enums, MSVC), so enum members map to koffi's `int`. Pointer members we never
// dereference from JS (imatrix, kv overrides, prune list, override patterns) are plain
// `void *`: we pass memory we allocated ourselves, or null.
const field = (name: string, cType: string, koffiType: string): CField => ({ name, cType, koffiType });

/** `struct llama_model_tensor_override` (include/llama.h): one `--tensor-type REGEX=TYPE` rule. */
export const LLAMA_MODEL_TENSOR_OVERRIDE: CStruct = {
  name: "llama_model_tensor_override",
  fields: [
    field("pattern", "const char *", "void *"),
    field("type", "enum ggml_type", "int"),
  ],
};

/** `llama_model_quantize_params` (include/llama.h), every member in declaration order. */
export const LLAMA_MODEL_QUANTIZE_PARAMS: CStruct = {
  name: "llama_model_quantize_params",
  fields: [
    field("nthread", "int32_t", "int32_t"),
    field("ftype", "enum llama_ftype", "int"),
    field("output_tensor_type", "enum ggml_type", "int"),
    field("token_embedding_type", "enum ggml_type", "int"),
    field("allow_requantize", "bool", "bool"),
    field("quantize_output_tensor", "bool", "bool"),
    field("only_copy", "bool", "bool"),
    field("pure", "bool", "bool"),
    field("keep_split", "bool", "bool"),
    field("dry_run", "bool", "bool"),
    field("imatrix", "const struct llama_model_imatrix_data *", "void *"),
    field("kv_overrides", "const struct llama_model_kv_override *", "void *"),
    field("tt_overrides", "const struct llama_model_tensor_override *", "void *"),
    field("prune_layers", "const int32_t *", "void *"),
    field("max_buf_size", "size_t", "size_t"),
  ],
};

/** Structs to register with koffi, dependencies first. */
export const LLAMA_QUANTIZE_STRUCTS: readonly CStruct[] = [LLAMA_MODEL_TENSOR_OVERRIDE, LLAMA_MODEL_QUANTIZE_PARAMS];

/** The functions we call, with result and parameter types spelled as in include/llama.h. */
export const LLAMA_QUANTIZE_FUNCTIONS: readonly CFunction[] = [
  { name: "llama_backend_init", resultCType: "void", resultKoffiType: "void", parameters: [] },
  {
    name: "llama_model_quantize_default_params",
    resultCType: "struct llama_model_quantize_params",
    resultKoffiType: "llama_model_quantize_params",
    parameters: [],
  },
  {
    name: "llama_model_quantize",
    resultCType: "uint32_t",
    resultKoffiType: "uint32_t",
    parameters: [
      { name: "fname_inp", cType: "const char *", koffiType: "const char *" },
      { name: "fname_out", cType: "const char *", koffiType: "const char *" },
      { name: "params", cType: "const llama_model_quantize_params *", koffiType: "const llama_model_quantize_params *" },
    ],
  },
];

/** `enum ggml_type` values we name (include/ggml.h). COUNT means "not set" in the params. */
export const GGML_TYPE_IDS = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  BF16: 30,
  MXFP4: 39,
  COUNT: 43,
} as const;
export type GgmlTypeName = Exclude<keyof typeof GGML_TYPE_IDS, "COUNT">;

/** `enum llama_ftype` values of the file types we offer (include/llama.h, LLAMA_FTYPE_*). */
export const LLAMA_FTYPE_IDS = {
  MOSTLY_F16: 1,
  MOSTLY_Q4_0: 2,
  MOSTLY_Q8_0: 7,
  MOSTLY_Q4_K_M: 15,
  MOSTLY_Q5_K_M: 17,
  MOSTLY_Q6_K: 18,
  MOSTLY_BF16: 32,
  MOSTLY_MXFP4_MOE: 38,
} as const;

/** llama-quant.cpp's LLAMA_QUANT_MAX_BUF_SIZE, the default of max_buf_size (8 GiB). */
export const LLAMA_QUANT_MAX_BUF_SIZE = 8 * 1024 * 1024 * 1024;

export type QuantizeParamsValue = number | boolean | null;

/**
 * What llama_model_quantize_default_params() returns in the pinned version. The child reads
 * the defaults back through the declared struct before quantizing: if the library's layout
 * differed, some member would read back wrong (a shifted bool, a garbage size), and it refuses
 * to call llama_model_quantize with a struct it would misread.
 */
export const LLAMA_QUANTIZE_DEFAULTS: Readonly<Record<string, QuantizeParamsValue>> = {
  nthread: 0,
  ftype: LLAMA_FTYPE_IDS.MOSTLY_Q8_0,
  output_tensor_type: GGML_TYPE_IDS.COUNT,
  token_embedding_type: GGML_TYPE_IDS.COUNT,
  allow_requantize: false,
  quantize_output_tensor: true,
  only_copy: false,
  pure: false,
  keep_split: false,
  dry_run: false,
  imatrix: null,
  kv_overrides: null,
  tt_overrides: null,
  prune_layers: null,
  max_buf_size: LLAMA_QUANT_MAX_BUF_SIZE,
};

/** koffi's struct definition: member name → koffi type, in declaration order. */
export function koffiStructDefinition(struct: CStruct): Record<string, string> {
  return Object.fromEntries(struct.fields.map((member) => [member.name, member.koffiType]));
}
