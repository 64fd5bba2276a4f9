/**
 * Reads a Hugging Face GPT-OSS config.json into the hyperparameters the GGUF needs and the
 * `gpt-oss.*` metadata llama.cpp's loader reads (reference: gpt-oss-and-gguf.md §1.1, §3.6).
 * Everything llama.cpp would otherwise default wrongly (key_length = n_embd/n_head = 45,
 * rope base 10000, linear scaling) is written explicitly.
 */
import { GgufValueType } from "./constants";
import { GgufExportError } from "./errors";
import { readHfConfig } from "./hfConfigFile";

export const GGUF_ARCHITECTURE = "gpt-oss";
/** config.json model_type values this exporter converts, with their HF class names. */
export const SUPPORTED_MODEL_TYPES: Readonly<Record<string, string>> = { gpt_oss: "GptOssForCausalLM" };

export interface GptOssHyperparameters {
  layers: number;
  hidden: number;
  intermediate: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  experts: number;
  expertsPerToken: number;
  vocabSize: number;
  contextLength: number;
  ropeTheta: number;
  rmsNormEps: number;
  slidingWindow: number;
  yarn: { factor: number; originalContextLength: number; betaFast?: number; betaSlow?: number } | undefined;
  /** config.json says the experts are stored as MXFP4 `*_blocks`/`*_scales`. */
  mxfp4Experts: boolean;
}

export async function readGptOssConfig(folder: string): Promise<GptOssHyperparameters> {
  const { path, config } = await readHfConfig(folder);
  const modelType = config["model_type"];
  if (typeof modelType !== "string" || !(modelType in SUPPORTED_MODEL_TYPES)) {
    const supported = Object.entries(SUPPORTED_MODEL_TYPES).map(([type, cls]) => `${type} (${cls})`).join(", ");
    throw new GgufExportError("unsupported_architecture", `Cannot export model_type ${JSON.stringify(modelType ?? null)} from ${path} to GGUF; supported: ${supported}.`);
  }
  const integer = (key: string, fallbackKey?: string): number => {
    const value = config[key] ?? (fallbackKey ? config[fallbackKey] : undefined);
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
      throw new GgufExportError("bad_config", `${path}: "${key}" must be a positive integer, got ${JSON.stringify(value ?? null)}.`);
    }
    return value;
  };
  const number = (key: string, fallback?: number): number => {
    const value = config[key] ?? fallback;
    if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
      throw new GgufExportError("bad_config", `${path}: "${key}" must be a positive number, got ${JSON.stringify(value ?? null)}.`);
    }
    return value;
  };
  const hp: GptOssHyperparameters = {
    layers: integer("num_hidden_layers"),
    hidden: integer("hidden_size"),
    intermediate: integer("intermediate_size"),
    heads: integer("num_attention_heads"),
    kvHeads: integer("num_key_value_heads"),
    headDim: integer("head_dim"),
    experts: integer("num_local_experts", "num_experts"),
    expertsPerToken: integer("num_experts_per_tok", "experts_per_token"),
    vocabSize: integer("vocab_size"),
    contextLength: integer("max_position_embeddings"),
    ropeTheta: number("rope_theta"),
    rmsNormEps: number("rms_norm_eps"),
    slidingWindow: integer("sliding_window"),
    yarn: readYarn(config, path),
    mxfp4Experts: quantMethod(config) === "mxfp4",
  };
  checkLayerTypes(config, path, hp.layers);
  if (hp.hidden % 32 !== 0 || hp.intermediate % 32 !== 0) {
    throw new GgufExportError("bad_config", `${path}: hidden_size (${hp.hidden}) and intermediate_size (${hp.intermediate}) must be multiples of 32 (MXFP4 blocks).`);
  }
  return hp;
}

function quantMethod(config: Record<string, unknown>): unknown {
  const quantization = config["quantization_config"];
  return typeof quantization === "object" && quantization !== null ? (quantization as Record<string, unknown>)["quant_method"] : undefined;
}

function readYarn(config: Record<string, unknown>, path: string): GptOssHyperparameters["yarn"] {
  const scaling = config["rope_scaling"];
  if (scaling === undefined || scaling === null) return undefined;
  const rope = scaling as Record<string, unknown>;
  const type = rope["rope_type"] ?? rope["type"];
  if (type !== "yarn") throw new GgufExportError("bad_config", `${path}: rope_scaling type ${JSON.stringify(type)} is not supported for gpt-oss; llama.cpp's gpt-oss graph expects "yarn".`);
  const factor = rope["factor"];
  const original = rope["original_max_position_embeddings"] ?? config["initial_context_length"];
  if (typeof factor !== "number" || typeof original !== "number") {
    throw new GgufExportError("bad_config", `${path}: rope_scaling needs numeric "factor" and "original_max_position_embeddings".`);
  }
  const yarn: NonNullable<GptOssHyperparameters["yarn"]> = { factor, originalContextLength: original };
  if (typeof rope["beta_fast"] === "number") yarn.betaFast = rope["beta_fast"];
  if (typeof rope["beta_slow"] === "number") yarn.betaSlow = rope["beta_slow"];
  return yarn;
}

/** llama.cpp hard-codes the gpt-oss pattern (layer i sliding iff i is even); refuse anything else. */
function checkLayerTypes(config: Record<string, unknown>, path: string, layers: number): void {
  const layerTypes = config["layer_types"];
  if (layerTypes === undefined) return;
  const expected = Array.from({ length: layers }, (_, i) => (i % 2 === 0 ? "sliding_attention" : "full_attention"));
  if (!Array.isArray(layerTypes) || layerTypes.length !== layers || layerTypes.some((type, i) => type !== expected[i])) {
    throw new GgufExportError("bad_config", `${path}: layer_types must alternate sliding_attention/full_attention starting with sliding (llama.cpp's gpt-oss layout); got ${JSON.stringify(layerTypes)}.`);
  }
}

export type MetadataEntry = readonly [key: string, type: GgufValueType, value: number | string];

/** The `gpt-oss.*` keys (§3.6), in the order convert_hf_to_gguf writes them. */
export function gptOssMetadata(hp: GptOssHyperparameters): MetadataEntry[] {
  const a = GGUF_ARCHITECTURE;
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
    [`${a}.expert_count`, UINT32, hp.experts],
    [`${a}.expert_used_count`, UINT32, hp.expertsPerToken],
    [`${a}.attention.key_length`, UINT32, hp.headDim],
    [`${a}.attention.value_length`, UINT32, hp.headDim],
    [`${a}.attention.sliding_window`, UINT32, hp.slidingWindow],
    [`${a}.expert_feed_forward_length`, UINT32, hp.intermediate],
  ];
  if (hp.yarn) {
    entries.push(
      [`${a}.rope.scaling.type`, STRING, "yarn"],
      [`${a}.rope.scaling.factor`, FLOAT32, hp.yarn.factor],
      [`${a}.rope.scaling.original_context_length`, UINT32, hp.yarn.originalContextLength],
    );
    if (hp.yarn.betaFast !== undefined) entries.push([`${a}.rope.scaling.yarn_beta_fast`, FLOAT32, hp.yarn.betaFast]);
    if (hp.yarn.betaSlow !== undefined) entries.push([`${a}.rope.scaling.yarn_beta_slow`, FLOAT32, hp.yarn.betaSlow]);
  } else {
    entries.push([`${a}.rope.scaling.type`, STRING, "none"]);
  }
  return entries;
}
