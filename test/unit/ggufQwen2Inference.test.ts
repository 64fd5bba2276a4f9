import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Template } from "@huggingface/jinja";
import type { Llama } from "node-llama-cpp";
import { exportModelToGguf, quantizedExportNeeds } from "../../src/core/exportModel";
import type { GgufWritePlan } from "../../src/core/gguf/exportPlan";
import { compareDistributions, describeComparison } from "../../src/core/exportVerify";
import { GgmlType, GgufValueType, LlamaFileType } from "../../src/core/gguf/constants";
import { exportQwenToGguf } from "../../src/core/gguf/qwen2Converter";
import { readGgufFile } from "../../src/core/gguf/reader";
import { llamaLogits, loadLlama, readLogitsFile, runFixtureJobs, tokenSequence, torchLogits, torchPython } from "../support/exportTestSupport";
import { QWEN_CHATML_TEMPLATE, encodeQwenReference, writeQwenTokenizerFiles, type QwenTokenizer } from "../support/qwenTokenizer";

// The Qwen2/Qwen3 exporter end to end: tiny checkpoints with a real architecture (made by the
// sidecar) and a small real BPE tokenizer → our GGUF → llama.cpp (node-llama-cpp) computes the
// same next-token distribution as the sidecar's PyTorch model at every position.

const VOCAB = 512;
const scratch = mkdtempSync(join(tmpdir(), "fts-qwen-gguf-"));
const tied = join(scratch, "qwen2-tied");
const untied = join(scratch, "qwen2-untied");
const qwen3 = join(scratch, "qwen3");
const SEQUENCE = tokenSequence(96, VOCAB - 9);
let python = "";
let llama: Llama;
let tokenizer: QwenTokenizer;
let references: Record<"tied" | "untied" | "qwen3", number[][]>;

before(async () => {
  python = await torchPython();
  const logitsFile = (name: string): string => join(scratch, `${name}-torch-logits.json`);
  await runFixtureJobs(python, scratch, [
    { tiny: { arch: "qwen2", out: tied, seed: 21, vocab_size: VOCAB } },
    { tiny: { arch: "qwen2", out: untied, seed: 22, vocab_size: VOCAB, tie_word_embeddings: false } },
    { qwen3: { out: qwen3, vocab_size: VOCAB, seed: 23 } },
    { logits: { model: untied, tokens: SEQUENCE, out: logitsFile("untied") } },
    { logits: { model: qwen3, tokens: SEQUENCE, out: logitsFile("qwen3") } },
  ]);
  tokenizer = writeQwenTokenizerFiles(tied, VOCAB);
  writeQwenTokenizerFiles(untied, VOCAB);
  writeQwenTokenizerFiles(qwen3, VOCAB);
  // The tied model's reference goes through the sidecar's real `logits` command (a process, the protocol).
  const [tiedLogits, loaded] = await Promise.all([torchLogits(python, tied, SEQUENCE, scratch), loadLlama()]);
  references = { tied: tiedLogits, untied: readLogitsFile(logitsFile("untied")), qwen3: readLogitsFile(logitsFile("qwen3")) };
  llama = loaded;
});
after(async () => {
  await llama?.dispose();
  rmSync(scratch, { recursive: true, force: true });
});

test("a tied Qwen2 exports with qwen2 metadata, no output tensor, the chat template and the FIM token ids", async () => {
  const outFile = join(scratch, "tied-f32.gguf");
  const result = await exportQwenToGguf({ modelFolder: tied, outFile, outputType: "f32" });
  assert.equal(result.architecture, "qwen2");
  const contents = await readGgufFile(outFile);
  const value = (key: string): unknown => contents.metadata.get(key)?.value;
  assert.equal(value("general.architecture"), "qwen2");
  assert.equal(value("general.file_type"), LlamaFileType.ALL_F32);
  assert.equal(value("qwen2.block_count"), 2);
  assert.equal(value("qwen2.embedding_length"), 64);
  assert.equal(value("qwen2.attention.head_count_kv"), 2);
  assert.equal(value("qwen2.rope.freq_base"), 1_000_000);
  assert.equal(value("tokenizer.ggml.pre"), "qwen2");
  assert.equal(value("tokenizer.chat_template"), QWEN_CHATML_TEMPLATE);
  assert.equal(value("tokenizer.ggml.eos_token_id"), tokenizer.special["<|im_end|>"]);
  assert.equal(value("tokenizer.ggml.padding_token_id"), tokenizer.special["<|endoftext|>"]);
  assert.equal(contents.metadata.get("tokenizer.ggml.fim_pre_token_id")?.type, GgufValueType.UINT32);
  assert.equal(value("tokenizer.ggml.fim_pre_token_id"), tokenizer.special["<|fim_prefix|>"]);
  assert.equal(value("tokenizer.ggml.fim_suf_token_id"), tokenizer.special["<|fim_suffix|>"]);
  assert.equal(value("tokenizer.ggml.fim_mid_token_id"), tokenizer.special["<|fim_middle|>"]);
  assert.equal(value("tokenizer.ggml.fim_pad_token_id"), tokenizer.special["<|fim_pad|>"]);
  assert.equal(value("tokenizer.ggml.fim_rep_token_id"), tokenizer.special["<|repo_name|>"]);
  assert.equal(value("tokenizer.ggml.fim_sep_token_id"), tokenizer.special["<|file_sep|>"]);
  const names = contents.tensors.map((tensor) => tensor.name);
  assert.ok(!names.includes("output.weight"), "tied: llama.cpp reuses token_embd");
  assert.equal(names.length, 2 + 2 * 12, "token_embd, output_norm and 12 per layer (q/k/v weight+bias, o, 2 norms, gate/up/down)");
  assert.deepEqual(contents.tensors.find((t) => t.name === "blk.0.attn_k.bias")?.dims, [32]);
  assert.equal(contents.tensors.find((t) => t.name === "blk.1.attn_q.bias")?.type, GgmlType.F32);

  const model = await llama.loadModel({ modelPath: outFile, gpuLayers: 0 });
  try {
    for (const text of ["def add(a, b):\n    return a + b\n", "Hello world! The quick brown fox.", "x = [i * 2 for i in range(10)]  # déjà vu"]) {
      assert.deepEqual([...model.tokenize(text)], encodeQwenReference(tokenizer, text), `llama.cpp's qwen2 pre-tokenizer + our merges tokenize ${JSON.stringify(text)} like the BPE reference`);
    }
    const chat = new Template(String(value("tokenizer.chat_template"))).render({ messages: [{ role: "user", content: "Hi" }], add_generation_prompt: true });
    const ids = model.tokenize(chat, true);
    assert.equal(ids[0], tokenizer.special["<|im_start|>"]);
    assert.equal(ids.filter((id) => id === tokenizer.special["<|im_end|>"]).length, 2, "system and user turns end with <|im_end|>");
    assert.equal(model.tokens.eos, tokenizer.special["<|im_end|>"]);
    assert.equal(model.tokens.infill.prefix, tokenizer.special["<|fim_prefix|>"]);
    assert.equal(model.tokens.infill.suffix, tokenizer.special["<|fim_suffix|>"]);
    assert.equal(model.tokens.infill.middle, tokenizer.special["<|fim_middle|>"]);
    const context = await model.createContext({ contextSize: 256, threads: 1 });
    try {
      const { LlamaCompletion } = await import("node-llama-cpp");
      const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
      assert.ok(completion.infillSupported, "node-llama-cpp's infill sees the FIM tokens");
      const infill = await completion.generateInfillCompletionWithMeta("def add(a, b):\n    return ", "\n", { maxTokens: 2 });
      assert.ok(infill.metadata.stopReason === "maxTokens" || infill.metadata.stopReason === "eogToken", `infill ran (${infill.metadata.stopReason})`);
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
});

test("llama.cpp's logits on the Qwen2 GGUF equal PyTorch's at every position (F32, tied and untied)", async () => {
  for (const [name, folder, reference] of [["tied", tied, references.tied], ["untied", untied, references.untied]] as const) {
    const outFile = join(scratch, `${name}-exact.gguf`);
    await exportQwenToGguf({ modelFolder: folder, outFile, outputType: "f32" });
    const names = (await readGgufFile(outFile)).tensors.map((tensor) => tensor.name);
    assert.equal(names.includes("output.weight"), name === "untied");
    const agreement = compareDistributions(reference, await llamaLogits(llama, outFile, SEQUENCE));
    console.log(`qwen2 ${name} F32 vs PyTorch: ${describeComparison(agreement)}`);
    assert.ok(agreement.relativeMaxAbsDiff < 1e-3 && agreement.top1 === 1 && agreement.klMax < 1e-6, describeComparison(agreement));
  }
});

test("F16, BF16 and quantized Qwen2 exports load and stay close to PyTorch; the disk preflight's size estimate holds", async () => {
  let plan: GgufWritePlan | undefined;
  await exportQwenToGguf({ modelFolder: untied, outFile: join(scratch, "plan-only.gguf"), outputType: "f16", beforeWrite: (planned) => void (plan = planned) });
  const bounds = { F16: [1e-5, 0.99], BF16: [1e-4, 0.95], Q8_0: [1e-3, 0.9], Q4_K_M: [2e-2, 0.6] } as const;
  for (const [type, [klBound, top1Bound]] of Object.entries(bounds)) {
    const outFile = join(scratch, `untied-${type}.gguf`);
    const result = await exportModelToGguf({ modelFolder: untied, outFile, type: type as keyof typeof bounds });
    assert.equal(result.architecture, "qwen2");
    const agreement = compareDistributions(references.untied, await llamaLogits(llama, outFile, SEQUENCE));
    console.log(`qwen2 untied ${type} (${result.bytes} bytes, file type ${result.fileType}) vs PyTorch: ${describeComparison(agreement)}`);
    if (type === "Q8_0" || type === "Q4_K_M") {
      const needs = quantizedExportNeeds(plan!, type, []);
      assert.equal(needs.intermediate, plan!.fileBytes);
      assert.ok(Math.abs(needs.output - result.bytes) / result.bytes < 0.1, `${type}: estimated ${needs.output} bytes, llama.cpp wrote ${result.bytes}`);
    }
    assert.ok(agreement.klMax < klBound && agreement.top1 >= top1Bound, `${type}: ${describeComparison(agreement)}`);
  }
});

test("a Qwen3 (q/k norms, head_dim ≠ hidden/heads, no biases) exports as qwen3 and matches PyTorch", async () => {
  const outFile = join(scratch, "qwen3-f32.gguf");
  const result = await exportQwenToGguf({ modelFolder: qwen3, outFile, outputType: "f32" });
  assert.equal(result.architecture, "qwen3");
  const contents = await readGgufFile(outFile);
  assert.equal(contents.metadata.get("qwen3.attention.key_length")?.value, 32);
  const names = contents.tensors.map((tensor) => tensor.name);
  assert.ok(names.includes("blk.0.attn_q_norm.weight") && names.includes("blk.1.attn_k_norm.weight"));
  assert.ok(!names.some((name) => name.endsWith(".bias")));
  const agreement = compareDistributions(references.qwen3, await llamaLogits(llama, outFile, SEQUENCE));
  console.log(`qwen3 F32 vs PyTorch: ${describeComparison(agreement)}`);
  assert.ok(agreement.relativeMaxAbsDiff < 1e-3 && agreement.top1 === 1 && agreement.klMax < 1e-6, describeComparison(agreement));
});

test("refuses what llama.cpp would compute differently, naming the key", async () => {
  const { cpSync, readFileSync, writeFileSync } = await import("node:fs");
  const folder = join(scratch, "sliding");
  cpSync(tied, folder, { recursive: true });
  const config = JSON.parse(readFileSync(join(folder, "config.json"), "utf8")) as Record<string, unknown>;
  writeFileSync(join(folder, "config.json"), JSON.stringify({ ...config, use_sliding_window: true }));
  await assert.rejects(exportQwenToGguf({ modelFolder: folder, outFile: join(scratch, "x.gguf"), outputType: "f16" }), /use_sliding_window is true/);
});
