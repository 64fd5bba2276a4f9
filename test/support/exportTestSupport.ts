/**
 * Shared set-up of the GGUF export tests: the torch-capable Python, tiny checkpoints made by
 * the real sidecar, the PyTorch-only fixtures of export_fixtures.py, and logits on both sides
 * (the sidecar's `logits` command; llama.cpp through node-llama-cpp).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Llama, Token } from "node-llama-cpp";
import { resolvePython } from "../../src/core/pythonEnvironment";
import { runSidecarCommand } from "../../src/core/sidecarProcess";
import { BYTE_TO_UNICODE } from "../../src/core/tokenizers/bytesToUnicode";
import { HARMONY_CHAT_TEMPLATE } from "../../src/core/tokenizers/harmonyChatTemplate";

export const ROOT = join(__dirname, "..", "..");
export const NATIVE_DIR = join(ROOT, "native");
const FIXTURES_SCRIPT = join(__dirname, "export_fixtures.py");

export async function torchPython(): Promise<string> {
  const resolution = await resolvePython({ configuredPath: undefined, projectRoot: ROOT, env: process.env });
  assert.ok(resolution.ok, "a Python with torch is installed (npm test bootstraps it)");
  return resolution.python.path;
}

export async function makeTinyModel(python: string, arch: "qwen2" | "gpt-oss", out: string, extra: string[] = []): Promise<void> {
  await runSidecarCommand({ python, nativeDir: NATIVE_DIR, args: ["make-tiny-model", "--arch", arch, "--out", out, ...extra] });
}

/** Runs test/support/export_fixtures.py; returns its JSON summary line. */
export async function runFixtures(python: string, args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await promisify(execFile)(python, [FIXTURES_SCRIPT, ...args], {
    env: { ...process.env, PYTHONPATH: NATIVE_DIR, OMP_NUM_THREADS: "1" },
    maxBuffer: 64 << 20,
  });
  return JSON.parse(stdout.trim().split("\n").pop() ?? "{}") as Record<string, unknown>;
}

export type FixtureJob =
  | { tiny: { arch: "qwen2" | "gpt-oss"; out: string; seed?: number; vocab_size?: number; tie_word_embeddings?: boolean } }
  | { qwen3: { out: string; vocab_size?: number; seed?: number } }
  | { lora: { model: string; adapter: string; merged: string; targets?: string; rank?: number; alpha?: number; seed?: number; tokens?: string; logits?: string } }
  | { logits: { model: string; tokens: readonly number[]; out: string } };

/**
 * Runs fixture jobs in one Python process (export_fixtures.py batch): importing torch is most
 * of what a fixture costs, and the test budget is seconds. Tiny models come from the sidecar's
 * own write_tiny_model, logits from forward_cli.compute_logits (what `logits` runs).
 */
export async function runFixtureJobs(python: string, scratch: string, jobs: FixtureJob[]): Promise<void> {
  const file = join(scratch, `fixture-jobs-${process.hrtime.bigint()}.json`);
  writeFileSync(file, JSON.stringify(jobs));
  await runFixtures(python, ["batch", "--jobs", file]);
}

/** The sidecar's PyTorch logits (float32, eager) for `tokens`. */
export async function torchLogits(python: string, folder: string, tokens: readonly number[], scratch: string): Promise<number[][]> {
  const out = join(scratch, `torch-logits-${process.hrtime.bigint()}.json`);
  await runSidecarCommand({ python, nativeDir: NATIVE_DIR, args: ["logits", "--model", folder, "--tokens", tokens.join(","), "--out", out] });
  return (JSON.parse(readFileSync(out, "utf8")) as { logits: number[][] }).logits;
}

export function readLogitsFile(path: string): number[][] {
  return (JSON.parse(readFileSync(path, "utf8")) as { logits: number[][] }).logits;
}

export async function loadLlama(): Promise<Llama> {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  return getLlama({ build: "never", gpu: false, logLevel: LlamaLogLevel.error, logger: () => {}, progressLogs: false, skipDownload: true });
}

/** Raw logits after each token, from llama.cpp, optionally with LoRA adapters on the context. */
export async function llamaLogits(llama: Llama, modelPath: string, tokens: readonly number[], lora?: Array<{ filePath: string; scale?: number }>): Promise<Float32Array[]> {
  const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
  try {
    // One thread: ggml's spinning workers otherwise starve the JS thread on small machines.
    const context = await model.createContext({ contextSize: 256, batchSize: 256, threads: 1, ...(lora ? { lora: { adapters: lora } } : {}) });
    try {
      const results = await context.getSequence().controlledEvaluate(tokens.map((token) => [token as Token, { generateNext: { logits: true } }]));
      return results.map((result, position) => {
        const map = result?.next.logits ?? assert.fail(`no logits at position ${position}`);
        const row = new Float32Array(map.size);
        for (const [token, logit] of map) row[token] = logit;
        return row;
      });
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/** Deterministic ids spread over [0, below). */
export function tokenSequence(length: number, below: number, seed = 17): number[] {
  return Array.from({ length }, (_, i) => (i * 389 + seed) % below);
}

/** Harmony's special tokens for a small-vocabulary GPT-OSS (make-tiny-model puts bos/pad/eos on the last three ids). */
export const SMALL_HARMONY_SPECIALS = ["<|constrain|>", "<|channel|>", "<|start|>", "<|end|>", "<|message|>", "<|call|>", "<|startoftext|>", "<|endoftext|>", "<|return|>"] as const;

/**
 * A byte-level tokenizer for a small-vocabulary tiny GPT-OSS: the 256 byte tokens, harmony's
 * special tokens at the top ids, and our harmony chat template, so the chat path (render,
 * tokenize specials, evaluate) runs without the 201088-token vocabulary.
 */
export function writeSmallHarmonyTokenizer(folder: string, vocabSize: number): Record<string, number> {
  const vocab = Object.fromEntries(BYTE_TO_UNICODE.map((char, byte) => [char, byte]));
  const first = vocabSize - SMALL_HARMONY_SPECIALS.length;
  const ids = Object.fromEntries(SMALL_HARMONY_SPECIALS.map((content, i) => [content, first + i]));
  const added = SMALL_HARMONY_SPECIALS.map((content, i) => ({ id: first + i, content, special: true }));
  writeFileSync(join(folder, "tokenizer.json"), JSON.stringify({ added_tokens: added, model: { type: "BPE", vocab, merges: [] } }));
  writeFileSync(join(folder, "tokenizer_config.json"), JSON.stringify({ bos_token: "<|startoftext|>", eos_token: "<|return|>", pad_token: "<|endoftext|>" }));
  writeFileSync(join(folder, "chat_template.jinja"), HARMONY_CHAT_TEMPLATE);
  return ids;
}
