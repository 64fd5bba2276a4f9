/**
 * Converts a PEFT LoRA adapter folder (adapter_model.safetensors + adapter_config.json, as
 * the trainer's checkpoints and PEFT write them) into a llama.cpp LoRA-adapter GGUF, which
 * llama.cpp applies on top of the base GGUF at run time (node-llama-cpp:
 * `model.createContext({ lora: { adapters: [{ filePath, scale }] } })`). A few MB instead of
 * a full model per fine-tune, and the same base file serves every adapter.
 *
 * Format (llama.cpp's convert_lora_to_gguf.py and llama-adapter.cpp):
 * - metadata: general.architecture = the base's arch (llama.cpp refuses a mismatch),
 *   general.type = "adapter", adapter.type = "lora", adapter.lora.alpha (f32);
 * - per adapted weight `<base tensor>` (e.g. blk.3.attn_q.weight) two tensors:
 *   `<base tensor>.lora_a`, ne [in, r] (torch lora_A [r, in]) and `<base tensor>.lora_b`,
 *   ne [r, out] (torch lora_B [out, r]); llama.cpp adds (alpha / r) · B·(A·x) to W·x, with r
 *   read from lora_b's ne[0], times the scale the caller passes.
 *
 * PEFT scales by lora_alpha / r (or lora_alpha / sqrt(r) with use_rslora), per module with
 * rank_pattern/alpha_pattern. The GGUF records lora_alpha; where PEFT's factor for a module
 * differs from llama.cpp's alpha / r, the difference is folded into that module's lora_b, so
 * the adapter computes exactly what the PEFT model computes. DoRA, bias training,
 * modules_to_save and embedding/lm_head adapters have no llama.cpp equivalent and are refused.
 */
import { existsSync } from "node:fs";
import { open, readFile, type FileHandle } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { readSafetensorsHeader, type SafetensorsTensor } from "../safetensors";
import { GgufValueType, LlamaFileType } from "./constants";
import { GgufExportError } from "./errors";
import { convertFloats, decodeFloats, encodeFloats, type FloatFormat } from "./floats";
import { ensureDiskSpace } from "./gptOssConverter";
import { GGUF_ARCHITECTURE as GPT_OSS_ARCHITECTURE, readGptOssConfig } from "./gptOssConfig";
import { OUTPUT_FORMATS, type GgufOutputType } from "./gptOssTensors";
import { FLOAT_FORMAT_TYPES } from "./hfTensors";
import { isQwenModelType, readQwenConfig } from "./qwen2Config";
import { GgufWriter, type GgufTensorSpec } from "./writer";

export const ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors";
export const ADAPTER_CONFIG_FILE = "adapter_config.json";
const PEFT_PREFIX = "base_model.model.";

export interface LoraAdapterExportOptions {
  /** Folder with adapter_model.safetensors and adapter_config.json. */
  adapterFolder: string;
  /** The base model's Hugging Face folder (only config.json is read: arch and shapes). */
  baseModelFolder: string;
  outFile: string;
  /** Type of lora_a/lora_b; default f32 (adapters are small; llama.cpp's converter defaults to f32 too). */
  outputType?: GgufOutputType;
  /** general.name; default: the adapter folder's name. */
  name?: string;
  signal?: AbortSignal;
}

export interface LoraAdapterExportResult {
  outFile: string;
  bytes: number;
  architecture: string;
  /** adapter.lora.alpha as written. */
  alpha: number;
  /** Ranks found (one unless rank_pattern is used). */
  ranks: number[];
  /** GGUF base tensors that carry an adapter, e.g. blk.0.attn_q.weight. */
  adapted: string[];
  /** Modules whose B was rescaled to express PEFT's scaling (rslora, alpha/rank patterns). */
  rescaled: number;
  seconds: number;
}

interface AdapterConfig {
  rank: number;
  alpha: number;
  rslora: boolean;
  rankPattern: Record<string, number>;
  alphaPattern: Record<string, number>;
}

/** HF module suffix → GGUF tensor and its torch shape [out, in]. */
type ModuleMap = Map<string, { tensor: string; shape: [number, number] }>;

export async function exportLoraAdapterToGguf(options: LoraAdapterExportOptions): Promise<LoraAdapterExportResult> {
  const started = performance.now();
  const adapterFolder = resolve(options.adapterFolder);
  const outFile = resolve(options.outFile);
  const outputType = options.outputType ?? "f32";
  if (!Object.hasOwn(OUTPUT_FORMATS, outputType)) throw new GgufExportError("bad_option", `Adapter output type ${JSON.stringify(outputType)} is not supported; choose f32, f16 or bf16.`);
  if (!existsSync(dirname(outFile))) throw new GgufExportError("bad_option", `The output folder ${dirname(outFile)} does not exist; create it or choose another location for ${basename(outFile)}.`);
  const config = await readAdapterConfig(adapterFolder);
  const { architecture, modules } = await baseModules(resolve(options.baseModelFolder));
  const weightsPath = join(adapterFolder, ADAPTER_WEIGHTS_FILE);
  if (!existsSync(weightsPath)) {
    throw new GgufExportError("missing_file", `${adapterFolder} has no ${ADAPTER_WEIGHTS_FILE}; point the export at a LoRA checkpoint folder (e.g. .finetune/runs/<id>/checkpoints/step-…).`);
  }
  const header = await readSafetensorsHeader(weightsPath);
  const pairs = pairTensors(header.tensors, weightsPath);

  const format = OUTPUT_FORMATS[outputType];
  const tensors: GgufTensorSpec[] = [];
  const ranks = new Set<number>();
  let rescaled = 0;
  const handle = await open(weightsPath, "r");
  try {
    const planned = [...pairs.entries()].map(([module, pair]) => ({ module, pair, target: resolveModule(module, modules, weightsPath) }));
    planned.sort((a, b) => tensorOrder(a.target.tensor) - tensorOrder(b.target.tensor) || a.target.tensor.localeCompare(b.target.tensor));
    for (const { module, pair, target } of planned) {
      const [out, inFeatures] = target.shape;
      const rank = pair.a.shape[0]!;
      if (pair.a.shape.length !== 2 || pair.b.shape.length !== 2 || pair.a.shape[1] !== inFeatures || pair.b.shape[0] !== out || pair.b.shape[1] !== rank) {
        throw new GgufExportError(
          "tensor_shape",
          `${weightsPath}: ${module} has lora_A [${pair.a.shape.join(", ")}] and lora_B [${pair.b.shape.join(", ")}], but the base model's ${target.tensor} is [${out}, ${inFeatures}] (needs lora_A [r, ${inFeatures}], lora_B [${out}, r]); the adapter was trained on another model.`,
        );
      }
      for (const tensor of [pair.a, pair.b]) {
        if (tensor.dtype !== "F32" && tensor.dtype !== "F16" && tensor.dtype !== "BF16") throw new GgufExportError("tensor_dtype", `${weightsPath}: ${tensor.name} is ${tensor.dtype}; LoRA weights must be F32, F16 or BF16.`);
      }
      ranks.add(rank);
      const peftScale = moduleScale(module, rank, config);
      const llamaScale = config.alpha / rank;
      const fold = peftScale / llamaScale;
      const exact = Math.abs(fold - 1) < 1e-12;
      if (!exact) rescaled++;
      const aFormat = pair.a.dtype as FloatFormat;
      const bFormat = pair.b.dtype as FloatFormat;
      tensors.push({ name: `${target.tensor}.lora_a`, dims: [inFeatures, rank], type: FLOAT_FORMAT_TYPES[format], data: () => converted(handle, pair.a, aFormat, format, 1) });
      tensors.push({
        name: `${target.tensor}.lora_b`,
        dims: [rank, out],
        type: FLOAT_FORMAT_TYPES[format],
        data: () => converted(handle, pair.b, bFormat, format, exact ? 1 : fold),
      });
    }

    const writer = new GgufWriter(outFile);
    writer.addString("general.architecture", architecture);
    writer.addString("general.type", "adapter");
    writer.addString("general.name", options.name ?? basename(adapterFolder));
    writer.addUint32("general.file_type", { f32: LlamaFileType.ALL_F32, f16: LlamaFileType.MOSTLY_F16, bf16: LlamaFileType.MOSTLY_BF16 }[outputType]);
    writer.addString("adapter.type", "lora");
    writer.addKeyValue("adapter.lora.alpha", GgufValueType.FLOAT32, config.alpha);
    for (const tensor of tensors) writer.addTensor(tensor);
    await ensureDiskSpace(dirname(outFile), writer.plannedFileSize, outFile);
    options.signal?.throwIfAborted();
    const written = await writer.writeAll(options.signal ? { signal: options.signal } : {});
    return {
      outFile: written.path,
      bytes: written.bytes,
      architecture,
      alpha: config.alpha,
      ranks: [...ranks].sort((a, b) => a - b),
      adapted: planned.map((entry) => entry.target.tensor),
      rescaled,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await handle.close();
  }
}

async function readAdapterConfig(folder: string): Promise<AdapterConfig> {
  const path = join(folder, ADAPTER_CONFIG_FILE);
  if (!existsSync(path)) throw new GgufExportError("missing_file", `${folder} has no ${ADAPTER_CONFIG_FILE}; a LoRA adapter folder holds ${ADAPTER_WEIGHTS_FILE} and ${ADAPTER_CONFIG_FILE}.`);
  let raw: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(await readFile(path, "utf8"));
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not a JSON object");
    raw = parsed as Record<string, unknown>;
  } catch (error) {
    throw new GgufExportError("bad_config", `${path} is not valid JSON (${(error as Error).message}).`);
  }
  const refuse = (why: string): never => {
    throw new GgufExportError("bad_config", `${path}: ${why}`);
  };
  if (raw["peft_type"] !== undefined && raw["peft_type"] !== "LORA") refuse(`peft_type ${JSON.stringify(raw["peft_type"])} is not LORA; only LoRA adapters convert to llama.cpp adapters.`);
  if (raw["use_dora"] === true) refuse("use_dora is true; llama.cpp cannot apply DoRA adapters (merge the adapter and export the merged model instead).");
  if (raw["bias"] !== undefined && raw["bias"] !== "none") refuse(`bias is ${JSON.stringify(raw["bias"])}; llama.cpp adapters carry no bias updates (train with bias "none", or merge and export the merged model).`);
  const toSave = raw["modules_to_save"];
  if (Array.isArray(toSave) && toSave.length > 0) refuse(`modules_to_save ${JSON.stringify(toSave)} are full weights, which a llama.cpp LoRA adapter cannot carry; merge and export the merged model instead.`);
  if (raw["fan_in_fan_out"] === true) refuse("fan_in_fan_out is true (Conv1D-style weights); the supported architectures use nn.Linear.");
  const rank = raw["r"];
  const alpha = raw["lora_alpha"];
  if (typeof rank !== "number" || !Number.isInteger(rank) || rank < 1) refuse(`"r" must be a positive integer, got ${JSON.stringify(rank ?? null)}.`);
  if (typeof alpha !== "number" || !Number.isFinite(alpha) || alpha <= 0) refuse(`"lora_alpha" must be a positive number, got ${JSON.stringify(alpha ?? null)}.`);
  const pattern = (key: string): Record<string, number> => {
    const value = raw[key];
    if (value === undefined || value === null) return {};
    if (typeof value !== "object" || Array.isArray(value) || Object.values(value).some((entry) => typeof entry !== "number")) refuse(`${key} must map module names to numbers.`);
    return value as Record<string, number>;
  };
  return { rank: rank as number, alpha: alpha as number, rslora: raw["use_rslora"] === true, rankPattern: pattern("rank_pattern"), alphaPattern: pattern("alpha_pattern") };
}

/** PEFT's scaling for one module: alpha_pattern/rank_pattern keys match a suffix of the module name. */
function moduleScale(module: string, rank: number, config: AdapterConfig): number {
  const matching = (patterns: Record<string, number>): number | undefined => {
    // PEFT matches these keys as regular expressions against the end of the module name.
    const key = Object.keys(patterns).find((pattern) => {
      if (module === pattern || module.endsWith(`.${pattern}`)) return true;
      try {
        return new RegExp(`(^|\\.)${pattern}$`).test(module);
      } catch {
        return false;
      }
    });
    return key === undefined ? undefined : patterns[key];
  };
  const alpha = matching(config.alphaPattern) ?? config.alpha;
  return config.rslora ? alpha / Math.sqrt(rank) : alpha / rank;
}

/** Architecture and the adaptable modules (name after `model.layers.N.`) with their shapes. */
async function baseModules(folder: string): Promise<{ architecture: string; modules: ModuleMap }> {
  const configPath = join(folder, "config.json");
  if (!existsSync(configPath)) throw new GgufExportError("missing_file", `${folder} has no config.json; the adapter export needs the base model's folder (its config.json gives the architecture and shapes).`);
  const modelType = (JSON.parse(await readFile(configPath, "utf8")) as { model_type?: unknown }).model_type;
  const modules: ModuleMap = new Map();
  if (modelType === "gpt_oss") {
    const hp = await readGptOssConfig(folder);
    const q = hp.heads * hp.headDim;
    const kv = hp.kvHeads * hp.headDim;
    addAttention(modules, hp.layers, hp.hidden, q, kv);
    return { architecture: GPT_OSS_ARCHITECTURE, modules };
  }
  if (isQwenModelType(modelType)) {
    const hp = await readQwenConfig(folder);
    const q = hp.heads * hp.headDim;
    const kv = hp.kvHeads * hp.headDim;
    addAttention(modules, hp.layers, hp.hidden, q, kv);
    for (let layer = 0; layer < hp.layers; layer++) {
      modules.set(`model.layers.${layer}.mlp.gate_proj`, { tensor: `blk.${layer}.ffn_gate.weight`, shape: [hp.intermediate, hp.hidden] });
      modules.set(`model.layers.${layer}.mlp.up_proj`, { tensor: `blk.${layer}.ffn_up.weight`, shape: [hp.intermediate, hp.hidden] });
      modules.set(`model.layers.${layer}.mlp.down_proj`, { tensor: `blk.${layer}.ffn_down.weight`, shape: [hp.hidden, hp.intermediate] });
    }
    return { architecture: hp.architecture, modules };
  }
  throw new GgufExportError("unsupported_architecture", `${configPath}: model_type ${JSON.stringify(modelType ?? null)} has no LoRA-adapter export; supported: gpt_oss, qwen2, qwen3.`);
}

function addAttention(modules: ModuleMap, layers: number, hidden: number, q: number, kv: number): void {
  for (let layer = 0; layer < layers; layer++) {
    const hf = `model.layers.${layer}.self_attn.`;
    modules.set(`${hf}q_proj`, { tensor: `blk.${layer}.attn_q.weight`, shape: [q, hidden] });
    modules.set(`${hf}k_proj`, { tensor: `blk.${layer}.attn_k.weight`, shape: [kv, hidden] });
    modules.set(`${hf}v_proj`, { tensor: `blk.${layer}.attn_v.weight`, shape: [kv, hidden] });
    modules.set(`${hf}o_proj`, { tensor: `blk.${layer}.attn_output.weight`, shape: [hidden, q] });
  }
}

function resolveModule(module: string, modules: ModuleMap, weightsPath: string): { tensor: string; shape: [number, number] } {
  const target = modules.get(module);
  if (target) return target;
  const hint = /embed_tokens|lm_head/.test(module)
    ? "Adapters on the embeddings or lm_head (new tokens) cannot be applied by llama.cpp; merge the adapter and export the merged model."
    : /experts|router/.test(module)
      ? "LoRA on GPT-OSS experts or the router is not supported by the adapter export; merge it and export the merged model."
      : "The adapter export supports attention q/k/v/o projections (and the MLP of Qwen models) of the base model's layers.";
  throw new GgufExportError("missing_tensor", `${weightsPath}: the adapter targets "${module}", which has no llama.cpp counterpart in this base model. ${hint}`);
}

/** Groups lora_A/lora_B tensors by module; refuses anything else. */
function pairTensors(tensors: readonly SafetensorsTensor[], weightsPath: string): Map<string, { a: SafetensorsTensor; b: SafetensorsTensor }> {
  const partial = new Map<string, { a?: SafetensorsTensor; b?: SafetensorsTensor }>();
  for (const tensor of tensors) {
    const match = /^(?:base_model\.model\.)?(.+)\.lora_([AB])(?:\.[^.]+)?\.weight$/.exec(tensor.name);
    if (!match) {
      throw new GgufExportError("missing_tensor", `${weightsPath}: "${tensor.name}" is not a LoRA weight (expected ${PEFT_PREFIX}<module>.lora_A.weight / .lora_B.weight); full weights or embeddings cannot go into a llama.cpp adapter.`);
    }
    const module = match[1]!;
    const entry = partial.get(module) ?? {};
    if (match[2] === "A") entry.a = tensor;
    else entry.b = tensor;
    partial.set(module, entry);
  }
  const pairs = new Map<string, { a: SafetensorsTensor; b: SafetensorsTensor }>();
  for (const [module, entry] of partial) {
    if (!entry.a || !entry.b) throw new GgufExportError("missing_tensor", `${weightsPath}: ${module} has lora_${entry.a ? "A" : "B"} but no lora_${entry.a ? "B" : "A"}; the adapter file is incomplete.`);
    pairs.set(module, { a: entry.a, b: entry.b });
  }
  if (pairs.size === 0) throw new GgufExportError("missing_tensor", `${weightsPath} holds no LoRA weights.`);
  return pairs;
}

/** By layer, the order llama.cpp's own adapter files use. */
function tensorOrder(name: string): number {
  const layer = /^blk\.(\d+)\./.exec(name);
  return layer ? Number(layer[1]) : Number.MAX_SAFE_INTEGER;
}

/** One adapter tensor (they are small: rank × width) converted to `to`, times `factor`. */
async function* converted(handle: FileHandle, tensor: SafetensorsTensor, from: FloatFormat, to: FloatFormat, factor: number): AsyncIterable<Uint8Array> {
  const bytes = Buffer.alloc(tensor.byteLength);
  let filled = 0;
  while (filled < bytes.length) {
    const { bytesRead } = await handle.read(bytes, filled, bytes.length - filled, tensor.byteOffset + filled);
    if (bytesRead === 0) throw new GgufExportError("missing_file", `${tensor.file} ended inside tensor "${tensor.name}"; the adapter file is truncated.`);
    filled += bytesRead;
  }
  if (factor === 1) {
    yield convertFloats(bytes, from, to);
    return;
  }
  const values = decodeFloats(bytes, from);
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i]! * factor;
  yield encodeFloats(out, to);
}
