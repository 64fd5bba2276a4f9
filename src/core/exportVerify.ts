/**
 * Verification of an exported GGUF, run after every export (exportModel.ts, option `verify`):
 *
 * 1. Metadata, read with our own GGUF reader: architecture, general.file_type, a complete
 *    tokenizer (model, tokens for every embedding row, merges, eos), the chat template present
 *    and byte-equal to the source folder's, and the FIM token ids where the vocabulary has them.
 * 2. Load: the GGUF is opened by llama.cpp through an evaluator the caller provides (in-process
 *    node-llama-cpp by default, see createNodeLlamaCppEvaluator; the extension can route it
 *    through the inference host so a native crash never reaches the editor).
 * 3. Chat: a short conversation is rendered with the *embedded* chat template (harmony for
 *    GPT-OSS, ChatML for Qwen) by @huggingface/jinja, tokenized by the GGUF's own tokenizer
 *    (every special token in the text must become exactly one token), and evaluated.
 * 4. Distributions: the same token ids go through the PyTorch model (the sidecar's `logits`
 *    command, float32); at every compared position we take KL(PyTorch ‖ GGUF) in nats and
 *    whether the top-1 tokens agree. Thresholds per export type are below.
 *
 * A verification that fails is reported as a failed export: the file is kept for inspection
 * but renamed to `<name>.gguf.unverified` (so no loader, LM Studio or Ollama picks it up as a
 * model), with the report beside it as `<name>.gguf.verification.json`; see markUnverified.
 */
import { existsSync } from "node:fs";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import type { ExportType } from "./exportModel";
import { readGgufFile, type GgufFileContents, type GgufMetadataEntry } from "./gguf/reader";
import { runSidecarCommand } from "./sidecarProcess";

// ---------------------------------------------------------------------------------------------
// Distribution comparison

export interface DistributionComparison {
  positions: number;
  /** Mean and max over positions of KL(reference ‖ actual), nats. */
  klMean: number;
  klMax: number;
  /** Fraction of positions whose argmax agrees. */
  top1: number;
  /**
   * Agreement over the positions where the reference has a clear winner (top-1 probability
   * at least DECISIVE_MARGIN above the runner-up); NaN when there is none. Near-uniform rows
   * (random test weights, genuinely open continuations) make raw top-1 a coin toss between
   * near-equal tokens, which says nothing about the file; thresholds use this figure.
   */
  top1Decisive: number;
  decisivePositions: number;
  maxAbsDiff: number;
  /** maxAbsDiff over the largest |reference logit|. */
  relativeMaxAbsDiff: number;
  /** KL at each compared position, nats. */
  kl: number[];
}

export const DECISIVE_MARGIN = 0.05;

function logSoftmax(row: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]!);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  const log = Math.log(sum);
  const out = new Float64Array(row.length);
  for (let i = 0; i < row.length; i++) out[i] = row[i]! - max - log;
  return out;
}

export function compareDistributions(reference: ReadonlyArray<ArrayLike<number>>, actual: ReadonlyArray<ArrayLike<number>>): DistributionComparison {
  if (reference.length !== actual.length || reference.length === 0) {
    throw new Error(`compareDistributions needs the same, non-zero number of rows (reference ${reference.length}, actual ${actual.length}).`);
  }
  let klSum = 0;
  let klMax = 0;
  let agree = 0;
  let decisive = 0;
  let decisiveAgree = 0;
  let maxAbsDiff = 0;
  let maxAbsLogit = 0;
  const perPosition: number[] = [];
  for (let position = 0; position < reference.length; position++) {
    const p = reference[position]!;
    const q = actual[position]!;
    if (p.length !== q.length) throw new Error(`Row ${position}: the reference has ${p.length} logits, the GGUF ${q.length}; the vocabularies differ.`);
    const lp = logSoftmax(p);
    const lq = logSoftmax(q);
    let kl = 0;
    let pBest = 0;
    let pSecond = -1;
    let qBest = 0;
    for (let i = 0; i < p.length; i++) {
      if (!Number.isFinite(q[i]!)) return { positions: reference.length, klMean: Infinity, klMax: Infinity, top1: 0, top1Decisive: 0, decisivePositions: 0, maxAbsDiff: Infinity, relativeMaxAbsDiff: Infinity, kl: reference.map(() => Infinity) };
      const prob = Math.exp(lp[i]!);
      kl += prob * (lp[i]! - lq[i]!);
      maxAbsDiff = Math.max(maxAbsDiff, Math.abs(p[i]! - q[i]!));
      maxAbsLogit = Math.max(maxAbsLogit, Math.abs(p[i]!));
      if (p[i]! > p[pBest]!) {
        pSecond = pBest;
        pBest = i;
      } else if (i !== pBest && (pSecond < 0 || p[i]! > p[pSecond]!)) {
        pSecond = i;
      }
      if (q[i]! > q[qBest]!) qBest = i;
    }
    kl = Math.max(0, kl);
    perPosition.push(kl);
    klSum += kl;
    klMax = Math.max(klMax, kl);
    if (pBest === qBest) agree++;
    const margin = Math.exp(lp[pBest]!) - (pSecond >= 0 ? Math.exp(lp[pSecond]!) : 0);
    if (margin >= DECISIVE_MARGIN) {
      decisive++;
      if (pBest === qBest) decisiveAgree++;
    }
  }
  return {
    positions: reference.length,
    klMean: klSum / reference.length,
    klMax,
    top1: agree / reference.length,
    top1Decisive: decisive > 0 ? decisiveAgree / decisive : NaN,
    decisivePositions: decisive,
    maxAbsDiff,
    relativeMaxAbsDiff: maxAbsLogit > 0 ? maxAbsDiff / maxAbsLogit : maxAbsDiff,
    kl: perPosition,
  };
}

/**
 * Share of positions a mixture-of-experts model may leave out of the KL bounds. Top-k routing
 * is discontinuous: where two experts' router logits nearly tie, float rounding (llama.cpp's
 * summation order, F16 weights, Q8_0 activations) picks the other expert, and that one token's
 * distribution jumps, while every other position agrees. Measured on the tiny GPT-OSS: one of
 * 348 positions at KL 4e-3 even with F32 weights, all others below 2e-8. A broken file
 * shifts every position, which the bounds on the remaining positions still catch.
 */
export const MOE_ROUTING_OUTLIER_SHARE = 0.02;

/** Mean and max KL without the `drop` worst positions. */
export function trimmedKl(kl: readonly number[], drop: number): { klMean: number; klMax: number; dropped: number } {
  const sorted = [...kl].sort((a, b) => a - b);
  const kept = sorted.slice(0, Math.max(1, sorted.length - drop));
  return { klMean: kept.reduce((sum, value) => sum + value, 0) / kept.length, klMax: kept.at(-1) ?? 0, dropped: sorted.length - kept.length };
}

export function describeComparison(c: DistributionComparison): string {
  const decisive = c.decisivePositions > 0 ? `${(c.top1Decisive * 100).toFixed(1)}% of ${c.decisivePositions} decisive` : "no decisive positions";
  return `KL mean ${c.klMean.toExponential(2)} max ${c.klMax.toExponential(2)} nats, top-1 ${(c.top1 * 100).toFixed(1)}% (${decisive}) over ${c.positions} positions, max |Δlogit| ${c.maxAbsDiff.toExponential(2)} (relative ${c.relativeMaxAbsDiff.toExponential(2)})`;
}

// ---------------------------------------------------------------------------------------------
// Thresholds

export interface VerifyThresholds {
  /** Upper bounds on the mean and the max over positions of KL(PyTorch ‖ GGUF), nats. */
  klMean: number;
  klMax: number;
  /** Lower bound on top-1 agreement over decisive positions (see DistributionComparison). */
  top1: number;
}

/**
 * Per export type. The reference is PyTorch in float32, so these bound the loss of the file's
 * weight format plus llama.cpp's own rounding (F16/BF16 activations in matmuls, Q8_0
 * activations for quantized weights). Orders of magnitude follow llama.cpp's published
 * KL-divergence statistics for its quantization types (mean KLD roughly 1e-3 for Q8_0, 1e-2
 * for Q5_K_M, 3e-2 for Q4_K_M, 6e-2 for Q4_0 on 7-8B models), with headroom because a short
 * prompt gives few positions, and a max bound that catches a broken file (a wrong tensor
 * layout gives KL of whole nats) rather than an unlucky token. Measured max KL on the tiny
 * Qwen2 test model (ggufQwen2Inference, exportVerify tests): F32 6e-10, F16 2e-9, BF16 1.3e-7,
 * Q8_0 3.3e-6, Q4_K_M 8.5e-5; a GGUF of other weights: 2.8e-2.
 */
export const VERIFY_THRESHOLDS: Readonly<Record<ExportType, VerifyThresholds>> = {
  F32: { klMean: 1e-5, klMax: 1e-4, top1: 0.99 },
  F16: { klMean: 1e-3, klMax: 2e-2, top1: 0.97 },
  BF16: { klMean: 3e-3, klMax: 5e-2, top1: 0.95 },
  Q8_0: { klMean: 5e-3, klMax: 0.1, top1: 0.93 },
  Q6_K: { klMean: 1.5e-2, klMax: 0.25, top1: 0.9 },
  Q5_K_M: { klMean: 3e-2, klMax: 0.4, top1: 0.87 },
  Q4_K_M: { klMean: 6e-2, klMax: 0.8, top1: 0.82 },
  Q4_0: { klMean: 0.1, klMax: 1.2, top1: 0.78 },
  MXFP4_MOE: { klMean: 6e-2, klMax: 0.8, top1: 0.82 },
};

// ---------------------------------------------------------------------------------------------
// Evaluators: llama.cpp on the GGUF, PyTorch on the checkpoint

export interface LoraAdapterSpec {
  filePath: string;
  scale?: number;
}

export interface GgufEvaluatorSession {
  /** general.architecture as llama.cpp loaded it. */
  readonly architecture: string;
  /** Tokenizes with the GGUF's tokenizer; special-token texts become their tokens; no BOS added. */
  tokenize(text: string): Promise<number[]>;
  /** Raw next-token logits after each token of `tokens`, for the positions asked (default all). */
  logits(tokens: readonly number[], positions?: readonly number[]): Promise<Float32Array[]>;
  close(): Promise<void>;
}

export interface GgufEvaluator {
  open(modelPath: string, options?: { lora?: readonly LoraAdapterSpec[] }): Promise<GgufEvaluatorSession>;
  dispose(): Promise<void>;
}

/** Logit floats requested per llama.cpp call (each row arrives as a vocabulary-sized Map). */
const MAX_ROW_FLOATS_PER_CALL = 4_000_000;

/**
 * llama.cpp through node-llama-cpp in this process, CPU only (verification must not fight the
 * chat model for VRAM, and CPU results do not depend on the GPU backend). Run it where a
 * native crash is acceptable: the CLI, a test, or the inference host.
 */
export function createNodeLlamaCppEvaluator(options: { threads?: number } = {}): GgufEvaluator {
  // One core stays free: ggml's worker threads spin while they wait, and on a machine where
  // they take every core the JavaScript thread that feeds them starves (measured on 2 cores:
  // 64 tokens of a tiny model take 0.36 s with node-llama-cpp's default threads, 0.013 s with 1).
  const threads = options.threads ?? Math.max(1, availableParallelism() - 1);
  type Llama = Awaited<ReturnType<(typeof import("node-llama-cpp"))["getLlama"]>>;
  let llamaPromise: Promise<Llama> | undefined;
  const llama = (): Promise<Llama> => {
    llamaPromise ??= import("node-llama-cpp").then(({ getLlama, LlamaLogLevel }) =>
      getLlama({ build: "never", gpu: false, logLevel: LlamaLogLevel.error, logger: () => {}, progressLogs: false, skipDownload: true }),
    );
    return llamaPromise;
  };
  return {
    async open(modelPath, openOptions = {}) {
      const model = await (await llama()).loadModel({ modelPath, gpuLayers: 0 });
      const lora = openOptions.lora ?? [];
      const contextFor = (size: number) =>
        model.createContext({
          contextSize: size,
          batchSize: Math.min(size, 512),
          threads,
          ...(lora.length > 0 ? { lora: { adapters: lora.map((adapter) => ({ filePath: adapter.filePath, scale: adapter.scale ?? 1 })) } } : {}),
        });
      const architecture = String(model.fileInfo.metadata.general.architecture);
      const tokenList = (model.fileInfo.metadata as { tokenizer?: { ggml?: { tokens?: unknown } } }).tokenizer?.ggml?.tokens;
      const vocabularySize = Array.isArray(tokenList) ? tokenList.length : 0;
      return {
        architecture,
        async tokenize(text) {
          return [...model.tokenize(text, true)];
        },
        async logits(tokens, positions) {
          const wanted = [...new Set(positions ?? tokens.map((_, i) => i))].filter((i) => i >= 0 && i < tokens.length).sort((a, b) => a - b);
          const context = await contextFor(Math.max(64, Math.ceil((tokens.length + 1) / 64) * 64));
          try {
            const sequence = context.getSequence();
            const rows: Float32Array[] = [];
            // Each requested row arrives as a vocabulary-sized Map (201088 entries for GPT-OSS)
            // until we copy it out, so rows are requested in bounded groups, in one call each.
            const rowsFor = (vocabulary: number): number => Math.max(1, Math.min(256, Math.floor(MAX_ROW_FLOATS_PER_CALL / Math.max(1, vocabulary))));
            let rowsPerCall = vocabularySize > 0 ? rowsFor(vocabularySize) : 1;
            let next = 0;
            let evaluated = 0;
            while (next < wanted.length) {
              const batch = new Set(wanted.slice(next, next + rowsPerCall));
              const end = Math.max(...batch) + 1;
              const items = tokens.slice(evaluated, end).map((token, offset) =>
                batch.has(evaluated + offset) ? ([token, { generateNext: { logits: true } }] as const) : token,
              );
              const results = await sequence.controlledEvaluate(items as Parameters<typeof sequence.controlledEvaluate>[0]);
              results.forEach((result, offset) => {
                if (!batch.has(evaluated + offset)) return;
                const map = result?.next?.logits;
                if (!map) throw new Error(`llama.cpp returned no logits at position ${evaluated + offset}.`);
                const row = new Float32Array(map.size);
                for (const [token, logit] of map) row[token] = logit;
                rows.push(row);
              });
              evaluated = end;
              next += batch.size;
              rowsPerCall = rowsFor(rows[0]?.length ?? 1);
            }
            return rows;
          } finally {
            await context.dispose();
          }
        },
        async close() {
          await model.dispose();
        },
      };
    },
    async dispose() {
      if (llamaPromise) await (await llamaPromise).dispose();
    },
  };
}

/** Full logits rows (vocabulary order) of the PyTorch model for `tokens`, one per position. */
export type ReferenceLogits = (tokens: readonly number[], signal?: AbortSignal) => Promise<ArrayLike<number>[]>;

export interface SidecarReferenceOptions {
  python: string;
  nativeDir: string;
  modelFolder: string;
  /** Temporary file for the sidecar's JSON (removed after reading). */
  scratchFile: string;
  device?: "cpu" | "cuda";
  onLog?: (line: string) => void;
}

/** The sidecar's `logits` command (float32, eager attention) as a ReferenceLogits. */
export function sidecarReferenceLogits(options: SidecarReferenceOptions): ReferenceLogits {
  return async (tokens) => {
    const args = ["logits", "--model", options.modelFolder, "--tokens", tokens.join(","), "--out", options.scratchFile, "--device", options.device ?? "cpu"];
    try {
      await runSidecarCommand({ python: options.python, nativeDir: options.nativeDir, args }, options.onLog ? { onLog: options.onLog } : {});
      const document = JSON.parse(await readFile(options.scratchFile, "utf8")) as { logits?: unknown };
      if (!Array.isArray(document.logits) || document.logits.length !== tokens.length) throw new Error(`${options.scratchFile} does not hold ${tokens.length} logits rows.`);
      return document.logits as number[][];
    } finally {
      await rm(options.scratchFile, { force: true });
    }
  };
}

// ---------------------------------------------------------------------------------------------
// The verification

export interface ChatMessage {
  role: "system" | "developer" | "user" | "assistant";
  content: string;
}

/** One multi-turn conversation with a system message: every role the templates render, kept short. */
export const DEFAULT_VERIFY_CONVERSATION: readonly ChatMessage[] = [
  { role: "system", content: "You are a concise coding assistant." },
  { role: "user", content: "What is 2+2?" },
  { role: "assistant", content: "4" },
  { role: "user", content: "Write add(a, b) in Python." },
];

/** Rows compared at most: each is a vocabulary-sized float array on both sides. */
const MAX_COMPARED_FLOATS = 16_000_000;

export interface VerifyRequest {
  ggufPath: string;
  /** The Hugging Face folder the GGUF was made from: chat template and PyTorch reference. */
  modelFolder: string;
  /** The requested export type (thresholds). */
  type: ExportType;
  /** general.file_type the export reported writing. */
  expectedFileType?: number;
  evaluator: GgufEvaluator;
  /** PyTorch logits; when absent the distribution check is skipped (and says so). */
  reference?: ReferenceLogits;
  conversation?: readonly ChatMessage[];
  thresholds?: VerifyThresholds;
  signal?: AbortSignal;
}

export interface VerifyCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface VerifyReport {
  ok: boolean;
  ggufPath: string;
  type: ExportType;
  checks: VerifyCheck[];
  /** The failed checks' details, in order. */
  failures: string[];
  architecture: string | undefined;
  fileType: number | undefined;
  prompt: { text: string; tokens: number } | undefined;
  distribution: (DistributionComparison & { thresholds: VerifyThresholds; checked: { klMean: number; klMax: number; dropped: number } }) | undefined;
  seconds: number;
}

const GGUF_ARCHITECTURES: Readonly<Record<string, string>> = { gpt_oss: "gpt-oss", qwen2: "qwen2", qwen3: "qwen3" };

function scalar(metadata: Map<string, GgufMetadataEntry>, key: string): string | number | bigint | boolean | undefined {
  const value = metadata.get(key)?.value;
  return Array.isArray(value) ? undefined : value;
}

/** The chat template a source folder declares (chat_template.jinja wins, like transformers). */
export async function sourceChatTemplate(folder: string): Promise<string | undefined> {
  const jinja = join(folder, "chat_template.jinja");
  if (existsSync(jinja)) return readFile(jinja, "utf8");
  const configPath = join(folder, "tokenizer_config.json");
  if (!existsSync(configPath)) return undefined;
  const config = JSON.parse(await readFile(configPath, "utf8")) as { chat_template?: unknown };
  const template = config.chat_template;
  if (typeof template === "string") return template;
  if (Array.isArray(template)) {
    const named = template as Array<{ name?: unknown; template?: unknown }>;
    const chosen = named.find((entry) => entry.name === "default") ?? named[0];
    if (typeof chosen?.template === "string") return chosen.template;
  }
  return undefined;
}

/** Renders `conversation` with a GGUF's chat template, as llama.cpp-based apps and transformers do. */
export function renderChatTemplate(template: string, conversation: readonly ChatMessage[], tokens: readonly string[], metadata: Map<string, GgufMetadataEntry>): string {
  const tokenText = (key: string): string => {
    const id = scalar(metadata, key);
    return typeof id === "number" && id < tokens.length ? tokens[id]! : "";
  };
  return new Template(template).render({
    messages: conversation.map((message) => ({ ...message })),
    add_generation_prompt: true,
    bos_token: tokenText("tokenizer.ggml.bos_token_id"),
    eos_token: tokenText("tokenizer.ggml.eos_token_id"),
  });
}

export async function verifyGguf(request: VerifyRequest): Promise<VerifyReport> {
  const started = performance.now();
  const checks: VerifyCheck[] = [];
  const check = (name: string, ok: boolean, detail: string): boolean => {
    checks.push({ name, ok, detail });
    return ok;
  };
  const report = (extra: Partial<VerifyReport>): VerifyReport => {
    const failures = checks.filter((entry) => !entry.ok).map((entry) => `${entry.name}: ${entry.detail}`);
    return {
      ok: failures.length === 0,
      ggufPath: request.ggufPath,
      type: request.type,
      checks,
      failures,
      architecture: undefined,
      fileType: undefined,
      prompt: undefined,
      distribution: undefined,
      ...extra,
      seconds: (performance.now() - started) / 1000,
    };
  };

  // 1. Metadata.
  let contents: GgufFileContents;
  try {
    contents = await readGgufFile(request.ggufPath);
  } catch (error) {
    check("file", false, (error as Error).message);
    return report({});
  }
  const { metadata } = contents;
  const architecture = scalar(metadata, "general.architecture");
  const fileType = scalar(metadata, "general.file_type");
  const config = JSON.parse(await readFile(join(request.modelFolder, "config.json"), "utf8")) as { model_type?: unknown };
  const expectedArchitecture = GGUF_ARCHITECTURES[String(config.model_type)];
  check("architecture", architecture === expectedArchitecture, `general.architecture is ${JSON.stringify(architecture)}, the source's model_type ${JSON.stringify(config.model_type)} needs ${JSON.stringify(expectedArchitecture)}`);
  if (request.expectedFileType !== undefined) {
    check("file type", fileType === request.expectedFileType, `general.file_type is ${String(fileType)}, the export wrote ${request.expectedFileType}`);
  }
  const tokenEntry = metadata.get("tokenizer.ggml.tokens")?.value;
  const tokens = Array.isArray(tokenEntry) ? (tokenEntry as string[]) : [];
  const embedding = contents.tensors.find((tensor) => tensor.name === "token_embd.weight");
  const rows = embedding?.dims[1];
  check("tokenizer", scalar(metadata, "tokenizer.ggml.model") === "gpt2" && tokens.length > 0 && tokens.length === rows && Array.isArray(metadata.get("tokenizer.ggml.merges")?.value),
    `tokenizer.ggml.model ${JSON.stringify(scalar(metadata, "tokenizer.ggml.model"))}, ${tokens.length} tokens for ${String(rows)} embedding rows, merges ${metadata.has("tokenizer.ggml.merges") ? "present" : "missing"}`);
  const eos = scalar(metadata, "tokenizer.ggml.eos_token_id");
  check("end-of-sequence token", typeof eos === "number" && eos < tokens.length, `tokenizer.ggml.eos_token_id is ${String(eos)} (${typeof eos === "number" ? JSON.stringify(tokens[eos]) : "missing"})`);
  const embedded = scalar(metadata, "tokenizer.chat_template");
  const source = await sourceChatTemplate(request.modelFolder);
  if (source === undefined) {
    check("chat template", embedded === undefined, embedded === undefined ? "the source has none, and neither has the GGUF" : "the GGUF has a chat template the source folder does not");
  } else {
    check("chat template", embedded === source, embedded === undefined ? "missing from the GGUF (the source folder has one)" : embedded === source ? `embedded, ${source.length} characters, equal to the source's` : "differs from the source folder's template");
  }
  const fimTexts = ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"];
  if (fimTexts.every((text) => tokens.includes(text))) {
    const keys = ["tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.fim_mid_token_id"];
    const ids = keys.map((key) => scalar(metadata, key));
    check("FIM tokens", ids.every((id, i) => typeof id === "number" && tokens[id] === fimTexts[i]), `fim_pre/suf/mid ids ${ids.map(String).join(", ")}`);
  }
  const base = { architecture: typeof architecture === "string" ? architecture : undefined, fileType: typeof fileType === "number" ? fileType : undefined };
  if (checks.some((entry) => !entry.ok)) return report(base);

  // 2.-4. Load, chat prompt, distributions.
  request.signal?.throwIfAborted();
  let session: GgufEvaluatorSession;
  try {
    session = await request.evaluator.open(request.ggufPath);
  } catch (error) {
    check("load", false, `llama.cpp could not load the file: ${(error as Error).message}`);
    return report(base);
  }
  try {
    check("load", session.architecture === architecture, `llama.cpp loaded it as ${JSON.stringify(session.architecture)}`);
    const conversation = request.conversation ?? DEFAULT_VERIFY_CONVERSATION;
    let text: string;
    try {
      text = renderChatTemplate(String(embedded ?? ""), conversation, tokens, metadata);
    } catch (error) {
      check("chat template renders", false, `the embedded template fails on a ${conversation.length}-message conversation: ${(error as Error).message}`);
      return report(base);
    }
    check("chat template renders", text.length > 0, `${text.length} characters`);
    const ids = await session.tokenize(text);
    const specials = [...new Set(text.match(/<\|[^|\s]{1,40}\|>/g) ?? [])].filter((special) => tokens.includes(special));
    const broken: string[] = [];
    for (const special of specials) {
      const tokenized = await session.tokenize(special);
      if (tokenized.length !== 1 || tokens[tokenized[0]!] !== special) broken.push(special);
    }
    check("special tokens", broken.length === 0, broken.length === 0 ? `${specials.length} special tokens of the template (${specials.join(" ")}) are single tokens` : `${broken.join(", ")} do not tokenize to their single token`);
    const prompt = { text, tokens: ids.length };
    if (!request.reference) {
      check("distribution", true, "skipped: no PyTorch reference was given");
      return report({ ...base, prompt });
    }
    const positions = chooseComparedPositions(ids.length, tokens.length);
    const reference = await request.reference(ids, request.signal);
    const actual = await session.logits(ids, positions);
    const comparison = compareDistributions(positions.map((position) => reference[position]!), actual);
    const thresholds = request.thresholds ?? VERIFY_THRESHOLDS[request.type];
    const expertCount = scalar(metadata, `${String(architecture)}.expert_count`);
    const moe = typeof expertCount === "number" && expertCount > 1;
    const bounded = trimmedKl(comparison.kl, moe ? Math.ceil(MOE_ROUTING_OUTLIER_SHARE * comparison.positions) : 0);
    const decisiveOk = comparison.decisivePositions === 0 || comparison.top1Decisive >= thresholds.top1;
    const trimmedText = bounded.dropped > 0 ? `; without the ${bounded.dropped} worst position(s) (the MoE allowance for routing flips): KL mean ${bounded.klMean.toExponential(2)} max ${bounded.klMax.toExponential(2)}` : "";
    check(
      "distribution",
      bounded.klMean <= thresholds.klMean && bounded.klMax <= thresholds.klMax && decisiveOk,
      `${describeComparison(comparison)}${trimmedText}; ${request.type} allows KL mean ≤ ${thresholds.klMean}, max ≤ ${thresholds.klMax}, decisive top-1 ≥ ${thresholds.top1}`,
    );
    return report({ ...base, prompt, distribution: { ...comparison, thresholds, checked: bounded } });
  } finally {
    await session.close();
  }
}

/** Every position when small enough, else an even spread that always includes the last one. */
export function chooseComparedPositions(length: number, vocabulary: number): number[] {
  const budget = Math.max(1, Math.floor(MAX_COMPARED_FLOATS / Math.max(1, vocabulary)));
  if (length <= budget) return Array.from({ length }, (_, i) => i);
  const picked = new Set<number>();
  for (let i = 0; i < budget; i++) picked.add(Math.round(((i + 1) * (length - 1)) / budget));
  return [...picked].sort((a, b) => a - b);
}

export class ExportVerificationError extends Error {
  readonly code = "verification_failed";
  constructor(
    readonly report: VerifyReport,
    /** Where the unverified file now is. */
    readonly keptFile: string,
    readonly reportFile: string,
  ) {
    super(
      `The exported GGUF failed verification (${report.failures.join("; ")}). The file was kept as ${keptFile} for inspection, with the full report in ${reportFile}; it is not offered as a model.`,
    );
    this.name = "ExportVerificationError";
  }

  static is(error: unknown): error is ExportVerificationError {
    return error instanceof ExportVerificationError;
  }
}

/** Renames a failed file out of every loader's way and writes its report beside it. */
export async function markUnverified(report: VerifyReport): Promise<ExportVerificationError> {
  const keptFile = `${report.ggufPath}.unverified`;
  const reportFile = `${report.ggufPath}.verification.json`;
  if (existsSync(report.ggufPath)) await rename(report.ggufPath, keptFile);
  await writeFile(reportFile, `${JSON.stringify(report, null, 2)}\n`);
  return new ExportVerificationError(report, keptFile, reportFile);
}

// ---------------------------------------------------------------------------------------------
// LoRA-adapter GGUFs

export interface VerifyAdapterRequest {
  adapterPath: string;
  /** The base model's GGUF the adapter is meant for. */
  baseGgufPath: string;
  evaluator: GgufEvaluator;
  /** Token ids to evaluate; default: the base's chat template on DEFAULT_VERIFY_CONVERSATION. */
  tokens?: readonly number[];
  /** Logits of the PyTorch model with the adapter for `tokens` (optional, like `reference` above). */
  reference?: ReferenceLogits;
  thresholds?: VerifyThresholds;
}

export interface AdapterVerifyReport {
  ok: boolean;
  checks: VerifyCheck[];
  failures: string[];
  /** Base alone vs base + adapter: how much the adapter changes the model. */
  effect: DistributionComparison | undefined;
  /** Base + adapter vs the reference, when one was given. */
  distribution: DistributionComparison | undefined;
  seconds: number;
}

/**
 * Checks an adapter GGUF against its base GGUF: adapter metadata, the architecture, every
 * lora_a/lora_b pair against the base tensor it adapts (ne [in, r] / [r, out]), a load with
 * the adapter on a llama.cpp context, finite outputs that differ from the base's (an adapter
 * with B = 0, e.g. exported before any training step, changes nothing and fails), and, with a
 * reference, KL against PyTorch's LoRA model under the F32 thresholds.
 */
export async function verifyLoraAdapterGguf(request: VerifyAdapterRequest): Promise<AdapterVerifyReport> {
  const started = performance.now();
  const checks: VerifyCheck[] = [];
  const check = (name: string, ok: boolean, detail: string): void => void checks.push({ name, ok, detail });
  const finish = (effect?: DistributionComparison, distribution?: DistributionComparison): AdapterVerifyReport => {
    const failures = checks.filter((entry) => !entry.ok).map((entry) => `${entry.name}: ${entry.detail}`);
    return { ok: failures.length === 0, checks, failures, effect, distribution, seconds: (performance.now() - started) / 1000 };
  };
  const [adapter, base] = await Promise.all([readGgufFile(request.adapterPath), readGgufFile(request.baseGgufPath)]);
  const type = scalar(adapter.metadata, "general.type");
  const alpha = scalar(adapter.metadata, "adapter.lora.alpha");
  check("adapter metadata", type === "adapter" && scalar(adapter.metadata, "adapter.type") === "lora" && typeof alpha === "number" && Number.isFinite(alpha) && alpha > 0,
    `general.type ${JSON.stringify(type)}, adapter.type ${JSON.stringify(scalar(adapter.metadata, "adapter.type"))}, adapter.lora.alpha ${String(alpha)}`);
  const architecture = scalar(adapter.metadata, "general.architecture");
  const baseArchitecture = scalar(base.metadata, "general.architecture");
  check("architecture", architecture === baseArchitecture, `adapter for ${JSON.stringify(architecture)}, base is ${JSON.stringify(baseArchitecture)}`);
  const baseTensors = new Map(base.tensors.map((tensor) => [tensor.name, tensor]));
  const adapterTensors = new Map(adapter.tensors.map((tensor) => [tensor.name, tensor]));
  const problems: string[] = [];
  let pairs = 0;
  for (const [name, a] of adapterTensors) {
    if (!name.endsWith(".lora_a")) {
      if (!name.endsWith(".lora_b")) problems.push(`${name} is not a lora_a/lora_b tensor`);
      continue;
    }
    const target = name.slice(0, -".lora_a".length);
    const b = adapterTensors.get(`${target}.lora_b`);
    const weight = baseTensors.get(target);
    if (!b) problems.push(`${name} has no lora_b`);
    else if (!weight) problems.push(`${target} is not a tensor of the base model`);
    else if (a.dims[0] !== weight.dims[0] || b.dims[1] !== weight.dims[1] || a.dims[1] !== b.dims[0]) problems.push(`${target}: lora_a [${a.dims.join(", ")}], lora_b [${b.dims.join(", ")}] do not fit the base's [${weight.dims.join(", ")}]`);
    else pairs++;
  }
  for (const name of adapterTensors.keys()) if (name.endsWith(".lora_b") && !adapterTensors.has(`${name.slice(0, -".lora_b".length)}.lora_a`)) problems.push(`${name} has no lora_a`);
  check("tensors", problems.length === 0 && pairs > 0, problems.length > 0 ? problems.slice(0, 5).join("; ") : `${pairs} adapted weights, each matching its base tensor`);
  if (checks.some((entry) => !entry.ok)) return finish();

  const plain = await request.evaluator.open(request.baseGgufPath);
  let tokens: number[];
  let baseLogits: Float32Array[];
  try {
    const template = scalar(base.metadata, "tokenizer.chat_template");
    const vocabulary = base.metadata.get("tokenizer.ggml.tokens")?.value;
    tokens = request.tokens
      ? [...request.tokens]
      : typeof template === "string" && Array.isArray(vocabulary)
        ? await plain.tokenize(renderChatTemplate(template, DEFAULT_VERIFY_CONVERSATION, vocabulary as string[], base.metadata))
        : await plain.tokenize("def add(a, b):\n    return a + b\n");
    baseLogits = await plain.logits(tokens);
  } finally {
    await plain.close();
  }
  let adapted: GgufEvaluatorSession;
  try {
    adapted = await request.evaluator.open(request.baseGgufPath, { lora: [{ filePath: request.adapterPath, scale: 1 }] });
  } catch (error) {
    check("load", false, `llama.cpp could not apply the adapter: ${(error as Error).message}`);
    return finish();
  }
  try {
    let withAdapter: Float32Array[];
    try {
      withAdapter = await adapted.logits(tokens);
    } catch (error) {
      check("load", false, `llama.cpp could not apply the adapter: ${(error as Error).message}`);
      return finish();
    }
    check("load", true, `base + adapter evaluated ${tokens.length} tokens`);
    const effect = compareDistributions(baseLogits, withAdapter);
    check("effect", Number.isFinite(effect.klMax) && effect.maxAbsDiff > 1e-6, Number.isFinite(effect.klMax) ? `the adapter moves the logits by up to ${effect.maxAbsDiff.toExponential(2)} (KL mean ${effect.klMean.toExponential(2)} nats from the base)` : "the outputs with the adapter are not finite");
    let distribution: DistributionComparison | undefined;
    if (request.reference) {
      distribution = compareDistributions(await request.reference(tokens), withAdapter);
      const thresholds = request.thresholds ?? VERIFY_THRESHOLDS.F32;
      check("distribution", distribution.klMean <= thresholds.klMean && distribution.klMax <= thresholds.klMax, `${describeComparison(distribution)}; allowed KL mean ≤ ${thresholds.klMean}, max ≤ ${thresholds.klMax}`);
    }
    return finish(effect, distribution);
  } finally {
    await adapted.close();
  }
}
