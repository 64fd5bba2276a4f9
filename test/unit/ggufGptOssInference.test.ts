import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Llama, Token } from "node-llama-cpp";
import { exportGptOssToGguf, type ExpertStorage, type GgufOutputType } from "../../src/core/gguf/gptOssConverter";
import { resolvePython } from "../../src/core/pythonEnvironment";
import { runSidecarCommand } from "../../src/core/sidecarProcess";
import { BYTE_TO_UNICODE } from "../../src/core/tokenizers/bytesToUnicode";
import { HarmonyTokenId } from "../../src/core/tokenizers/harmonyVocabulary";
import { writeHarmonyTokenizerFiles } from "../../src/core/tokenizers/huggingFaceTokenizerJson";
import { llamaLogits } from "../support/exportTestSupport";

// The end-to-end check of the exporter: llama.cpp (through node-llama-cpp) loads our GGUF and
// computes the same next-token distribution as the sidecar's PyTorch GPT-OSS at every position.
//
// Logits come from LlamaContextSequence.controlledEvaluate with `generateNext: { logits: true }`
// on every input token. With no sampling options node-llama-cpp's sampler chain is greedy only,
// so the returned map holds the raw logits of the whole vocabulary.

const root = join(__dirname, "..", "..");
const scratch = mkdtempSync(join(tmpdir(), "fts-gguf-inference-"));
const harmonyModel = join(scratch, "harmony");
const smallModel = join(scratch, "small");
const SMALL_VOCAB = 1024;
/** Longer than the 128-token sliding window, so the window mask and YaRN at far positions count. */
const SEQUENCE_LENGTH = 160;
let python = "";
let llama: Llama;

before(async () => {
  const resolution = await resolvePython({ configuredPath: undefined, projectRoot: root, env: process.env });
  assert.ok(resolution.ok, "a Python with torch is installed (npm test bootstraps it)");
  python = resolution.python.path;
  const make = (out: string, extra: string[]): Promise<unknown> =>
    runSidecarCommand({ python, nativeDir: join(root, "native"), args: ["make-tiny-model", "--arch", "gpt-oss", "--out", out, ...extra] });
  await Promise.all([make(harmonyModel, ["--seed", "11"]), make(smallModel, ["--seed", "12", "--vocab-size", String(SMALL_VOCAB)])]);
  // make-tiny-model writes the folder atomically, so the tokenizer files go in afterwards.
  await writeHarmonyTokenizerFiles(harmonyModel);
  writeByteTokenizer(smallModel);
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  llama = await getLlama({ build: "never", gpu: false, logLevel: LlamaLogLevel.error });
});
after(async () => {
  await llama?.dispose();
  rmSync(scratch, { recursive: true, force: true });
});

/** 256 byte tokens and the three specials at the top: enough for llama.cpp's BPE loader. */
function writeByteTokenizer(folder: string): void {
  const vocab = Object.fromEntries(BYTE_TO_UNICODE.map((char, byte) => [char, byte]));
  const added = ["<|startoftext|>", "<|endoftext|>", "<|return|>"].map((content, i) => ({ id: SMALL_VOCAB - 3 + i, content, special: true }));
  writeFileSync(join(folder, "tokenizer.json"), JSON.stringify({ added_tokens: added, model: { type: "BPE", vocab, merges: [] } }));
}

async function exportModel(folder: string, name: string, outputType: GgufOutputType, expertsAs?: ExpertStorage): Promise<string> {
  const outFile = join(scratch, `${name}.gguf`);
  const result = await exportGptOssToGguf({ modelFolder: folder, outFile, outputType, ...(expertsAs ? { expertsAs } : {}) });
  console.log(`exported ${name}: ${result.bytes} bytes in ${result.seconds.toFixed(2)} s`);
  return outFile;
}

/** Raw logits (vocabulary order) after each token, from llama.cpp. */
/** Logits of the sidecar's PyTorch GPT-OSS for the same tokens. */
async function torchLogits(folder: string, tokens: readonly number[]): Promise<number[][]> {
  const out = join(scratch, "torch-logits.json");
  await runSidecarCommand({ python, nativeDir: join(root, "native"), args: ["logits", "--model", folder, "--tokens", tokens.join(","), "--out", out] });
  return (JSON.parse(readFileSync(out, "utf8")) as { logits: number[][] }).logits;
}

interface Agreement {
  maxAbsDiff: number;
  /** maxAbsDiff divided by the largest |logit| of the reference. */
  relative: number;
  top1Agreement: number;
  /** Largest KL(reference ‖ llama.cpp) over positions, in nats. */
  maxKl: number;
}

function compare(reference: ArrayLike<number>[], actual: Float32Array[]): Agreement {
  assert.equal(actual.length, reference.length);
  let maxAbsDiff = 0;
  let maxAbsLogit = 0;
  let top1 = 0;
  let maxKl = 0;
  for (let position = 0; position < reference.length; position++) {
    const p = reference[position]!;
    const q = actual[position]!;
    assert.equal(q.length, p.length, `vocabulary size at position ${position}`);
    let pBest = 0;
    let qBest = 0;
    for (let i = 0; i < p.length; i++) {
      assert.ok(Number.isFinite(q[i]), `llama.cpp logit ${i} at position ${position} is ${q[i]}`);
      maxAbsDiff = Math.max(maxAbsDiff, Math.abs(p[i]! - q[i]!));
      maxAbsLogit = Math.max(maxAbsLogit, Math.abs(p[i]!));
      if (p[i]! > p[pBest]!) pBest = i;
      if (q[i]! > q[qBest]!) qBest = i;
    }
    if (pBest === qBest) top1++;
    maxKl = Math.max(maxKl, klDivergence(p, q));
  }
  return { maxAbsDiff, relative: maxAbsDiff / maxAbsLogit, top1Agreement: top1 / reference.length, maxKl };
}

function klDivergence(p: ArrayLike<number>, q: ArrayLike<number>): number {
  const logSoftmax = (x: ArrayLike<number>): Float64Array => {
    let max = -Infinity;
    for (let i = 0; i < x.length; i++) max = Math.max(max, x[i]!);
    let sum = 0;
    for (let i = 0; i < x.length; i++) sum += Math.exp(x[i]! - max);
    const out = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = x[i]! - max - Math.log(sum);
    return out;
  };
  const lp = logSoftmax(p);
  const lq = logSoftmax(q);
  let kl = 0;
  for (let i = 0; i < lp.length; i++) kl += Math.exp(lp[i]!) * (lp[i]! - lq[i]!);
  return kl;
}

const describe = (a: Agreement): string =>
  `max |Δlogit| ${a.maxAbsDiff.toExponential(2)} (relative ${a.relative.toExponential(2)}), top-1 ${(a.top1Agreement * 100).toFixed(1)}%, max KL ${a.maxKl.toExponential(2)}`;

test("llama.cpp loads the exported GPT-OSS with its real o200k_harmony vocabulary and evaluates a harmony prompt", async () => {
  const path = await exportModel(harmonyModel, "harmony-f16", "f16");
  const model = await llama.loadModel({ modelPath: path });
  try {
    assert.equal(String(model.fileInfo.metadata.general.architecture), "gpt-oss");
    assert.equal(model.tokens.bos, HarmonyTokenId.startOfText);
    assert.equal(model.tokens.eos, HarmonyTokenId.return);
    assert.deepEqual(model.tokenize("Hello world"), [13225, 2375], "o200k ids");
    const prompt = model.tokenize("<|start|>user<|message|>What is 2+2?<|end|><|start|>assistant", true);
    assert.equal(prompt[0], HarmonyTokenId.start);
    assert.ok(prompt.includes(HarmonyTokenId.message as Token) && prompt.includes(HarmonyTokenId.end as Token));
    const context = await model.createContext({ contextSize: 256 });
    try {
      const results = await context.getSequence().controlledEvaluate([...prompt.slice(0, -1), [prompt.at(-1)!, { generateNext: { logits: true, token: true } }]]);
      const last = results.at(-1)?.next ?? assert.fail("no output for the last token");
      assert.equal(last.logits?.size, 201088);
      assert.ok([...last.logits!.values()].every(Number.isFinite));
      assert.equal(last.token, [...last.logits!.keys()][0], "greedy picks the top logit");
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
});

/** Deterministic ids below the three special tokens of the small model. */
const SEQUENCE = Array.from({ length: SEQUENCE_LENGTH }, (_, i) => (i * 389 + 17) % (SMALL_VOCAB - 3));

test("llama.cpp's next-token distribution matches the sidecar's PyTorch GPT-OSS at every position", async () => {
  const reference = await torchLogits(smallModel, SEQUENCE);
  assert.equal(reference.length, SEQUENCE_LENGTH);
  // F32 weights with dequantized F32 experts: the same numbers as the checkpoint, so only
  // float32 summation order (and llama.cpp's rounded YaRN bounds) separate the two.
  const exact = compare(reference, await llamaLogits(llama, await exportModel(smallModel, "torch-f32-same", "f32", "same"), SEQUENCE));
  console.log(`llama.cpp F32 (F32 experts) vs PyTorch: ${describe(exact)}`);
  assert.ok(exact.relative < 1e-3 && exact.top1Agreement === 1 && exact.maxKl < 1e-6, describe(exact));
  // MXFP4 experts: ggml's CPU kernel multiplies MXFP4 blocks by Q8_0-quantized activations;
  // F16/BF16 weights are rounded and their matmuls round activations too. Looser bounds; the
  // measured figures (max |Δ| ~2e-3 of logits up to ~0.8, KL ~2e-7) are in the log.
  const variants = [
    ["torch-f32-mxfp4", "f32", "mxfp4"],
    ["torch-f16-mxfp4", "f16", "mxfp4"],
    ["torch-bf16-mxfp4", "bf16", "mxfp4"],
    ["torch-f16-same", "f16", "same"],
    ["torch-bf16-same", "bf16", "same"],
  ] as const;
  for (const [name, type, experts] of variants) {
    const agreement = compare(reference, await llamaLogits(llama, await exportModel(smallModel, name, type, experts), SEQUENCE));
    console.log(`llama.cpp ${name} vs PyTorch: ${describe(agreement)}`);
    assert.ok(agreement.relative < 2e-2 && agreement.top1Agreement >= 0.95 && agreement.maxKl < 1e-4, `${name}: ${describe(agreement)}`);
  }
});
