/**
 * Reads a Hugging Face Qwen2 / Qwen2.5(-Coder) or Qwen3 (dense) config.json into the
 * hyperparameters of a GGUF for llama.cpp's arch "qwen2" / "qwen3", and the `<arch>.*`
 * metadata its loader reads (the keys convert_hf_to_gguf's Qwen2Model / Qwen3Model write).
 *
 * llama.cpp facts this relies on: arch "qwen2" has q/k/v biases and no o_proj bias; "qwen3"
 * has no biases and a per-head RMSNorm of q and k (attn_q_norm / attn_k_norm); both use NeoX
 * RoPE with `rope.freq_base`, and take `output.weight` as optional (tied embeddings reuse
 * token_embd). Qwen's sliding-window option (off in every release) is not implemented by
 * llama.cpp, so a config that turns it on is refused instead of silently changing the model.
 */
import { GgufValueType } from "./constants";
import { GgufExportError } from "./errors";
import { readHfConfig } from "./hfConfigFile";
import type { MetadataEntry } from "./gptOssConfig";

/** config.json model_type → GGUF general.architecture. */
export const QWEN_ARCHITECTURES = { qwen2: "qwen2", qwen3: "qwen3" } as const;
export type QwenModelType = keyof typeof QWEN_ARCHITECTURES;

export function isQwenModelType(value: unknown): value is QwenModelType {
  return typeof value === "string" && Object.hasOwn(QWEN_ARCHITECTURES, value);
}

export interface QwenHyperparameters {
  modelType: QwenModelType;
  architecture: (typeof QWEN_ARCHITECTURES)[QwenModelType];
  layers: number;
  hidden: number;
  intermediate: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocabSize: number;
  contextLength: number;
  ropeTheta: number;
  rmsNormEps: number;
  /** lm_head shares the embedding matrix (no output.weight in the GGUF). */
  tied: boolean;
  /** q/k/v carry biases (always for qwen2; never for the qwen3 llama.cpp graph). */
  qkvBias: boolean;
  /** Qwen3's q_norm/k_norm. */
  qkNorm: boolean;
  ropeScaling:
    | { type: "linear"; factor: number }
    | { type: "yarn"; factor: number; originalContextLength: number; betaFast?: number; betaSlow?: number }
    | undefined;
}

export async function readQwenConfig(folder: string): Promise<QwenHyperparameters> {
  const { path, config } = await readHfConfig(folder);
  const modelType = config["model_type"];
  if (!isQwenModelType(modelType)) {
    throw new GgufExportError("unsupported_architecture", `${path}: model_type ${JSON.stringify(modelType ?? null)} is not a Qwen2/Qwen3 dense model (expected "qwen2" or "qwen3").`);
  }
  const integer = (key: string, fallback?: number): number => {
    const value = config[key] ?? fallback;
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
      throw new GgufExportError("bad_config", `${path}: "${key}" must be a positive integer, got ${JSON.stringify(value ?? null)}.`);
    }
    return value;
  };
  const number = (key: string, fallback: number): number => {
    const value = config[key] ?? fallback;
    if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
      throw new GgufExportError("bad_config", `${path}: "${key}" must be a positive number, got ${JSON.stringify(value)}.`);
    }
    return value;
  };
  const activation = config["hidden_act"] ?? "silu";
  if (activation !== "silu") throw new GgufExportError("bad_config", `${path}: hidden_act ${JSON.stringify(activation)} is not supported; llama.cpp's ${modelType} graph uses SwiGLU (silu).`);
  if (config["use_sliding_window"] === true) {
    throw new GgufExportError("bad_config", `${path}: use_sliding_window is true; llama.cpp's ${modelType} graph has no sliding-window attention, so the GGUF would compute a different model. Set it to false (as in every Qwen release) if the model was trained without it.`);
  }
  const qwen3 = modelType === "qwen3";
  const attentionBias = config["attention_bias"] === true;
  if (qwen3 && attentionBias) {
    throw new GgufExportError("bad_config", `${path}: attention_bias is true, but llama.cpp's qwen3 graph has no attention biases (no Qwen3 release uses them).`);
  }
  const heads = integer("num_attention_heads");
  const hidden = integer("hidden_size");
  const hp: QwenHyperparameters = {
    modelType,
    architecture: QWEN_ARCHITECTURES[modelType],
    layers: integer("num_hidden_layers"),
    hidden,
    intermediate: integer("intermediate_size"),
    heads,
    kvHeads: integer("num_key_value_heads", heads),
    headDim: integer("head_dim", Math.floor(hidden / heads)),
    vocabSize: integer("vocab_size"),
    contextLength: integer("max_position_embeddings"),
    ropeTheta: number("rope_theta", 10000),
    rmsNormEps: number("rms_norm_eps", 1e-6),
    tied: config["tie_word_embeddings"] === true,
    qkvBias: !qwen3,
    qkNorm: qwen3,
    ropeScaling: readRopeScaling(config, path),
  };
  if (hp.headDim % 2 !== 0 || hp.heads % hp.kvHeads !== 0) {
    throw new GgufExportError("bad_config", `${path}: head_dim (${hp.headDim}) must be even and num_attention_heads (${hp.heads}) a multiple of num_key_value_heads (${hp.kvHeads}).`);
  }
  return hp;
}

function readRopeScaling(config: Record<string, unknown>, path: string): QwenHyperparameters["ropeScaling"] {
  const scaling = config["rope_scaling"];
  if (scaling === undefined || scaling === null) return undefined;
  if (typeof scaling !== "object" || Array.isArray(scaling)) throw new GgufExportError("bad_config", `${path}: rope_scaling must be an object or null.`);
  const rope = scaling as Record<string, unknown>;
  const type = rope["rope_type"] ?? rope["type"];
  const factor = rope["factor"];
  if (type === "default") return undefined;
  if ((type !== "linear" && type !== "yarn") || typeof factor !== "number" || factor <= 0) {
    throw new GgufExportError("bad_config", `${path}: rope_scaling ${JSON.stringify(scaling)} is not supported; use none, "linear" or "yarn" with a positive factor.`);
  }
  if (type === "linear") return { type, factor };
  const original = rope["original_max_position_embeddings"];
  const contextLength = config["max_position_embeddings"];
  const originalContextLength = typeof original === "number" ? original : typeof contextLength === "number" ? Math.floor(contextLength / factor) : undefined;
  if (originalContextLength === undefined) throw new GgufExportError("bad_config", `${path}: yarn rope_scaling needs original_max_position_embeddings.`);
  const yarn: NonNullable<QwenHyperparameters["ropeScaling"]> = { type, factor, originalContextLength };
  if (typeof rope["beta_fast"] === "number") yarn.betaFast = rope["beta_fast"];
  if (typeof rope["beta_slow"] === "number") yarn.betaSlow = rope["beta_slow"];
  return yarn;
}

/** The `<arch>.*` keys llama.cpp's qwen2/qwen3 loader reads. */
export function qwenMetadata(hp: QwenHyperparameters): MetadataEntry[] {
  const a = hp.architecture;
  const { UINT32, FLOAT32, STRING } = GgufValueType;
  const entries: MetadataEntry[] = [
    [`${a}.block_count`, UINT32, hp.layers],
    [`${a}.context_length`, UINT32, hp.contextLength],
    [`${a}.embedding_length`, UINT32, hp.hidden],
    [`${a}.feed_forward_length`, UINT32, hp.intermediate],
    [`${a}.attention.head_count`, UINT32, hp.heads],
    [`${a}.attention.head_count_kv`, UINT32, hp.kvHeads],
    [`${a}.rope.freq_base`, FLOAT32, hp.ropeTheta],
    [`${a}.attention.layer_norm_rms_epsilon`, FLOAT32, hp.rmsNormEps],
    // Written always: the loader's default is embedding_length / head_count, which Qwen3 breaks.
    [`${a}.attention.key_length`, UINT32, hp.headDim],
    [`${a}.attention.value_length`, UINT32, hp.headDim],
  ];
  const scaling = hp.ropeScaling;
  if (scaling) {
    entries.push([`${a}.rope.scaling.type`, STRING, scaling.type], [`${a}.rope.scaling.factor`, FLOAT32, scaling.factor]);
    if (scaling.type === "yarn") {
      entries.push([`${a}.rope.scaling.original_context_length`, UINT32, scaling.originalContextLength]);
      if (scaling.betaFast !== undefined) entries.push([`${a}.rope.scaling.yarn_beta_fast`, FLOAT32, scaling.betaFast]);
      if (scaling.betaSlow !== undefined) entries.push([`${a}.rope.scaling.yarn_beta_slow`, FLOAT32, scaling.betaSlow]);
    }
  }
  return entries;
}
