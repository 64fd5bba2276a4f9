import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Llama } from "node-llama-cpp";
import { compareDistributions, createNodeLlamaCppEvaluator, describeComparison, verifyLoraAdapterGguf, type DistributionComparison } from "../../src/core/exportVerify";
import { GgmlType, GgufValueType } from "../../src/core/gguf/constants";
import { GgufExportError } from "../../src/core/gguf/errors";
import { exportGptOssToGguf } from "../../src/core/gguf/gptOssConverter";
import { exportLoraAdapterToGguf } from "../../src/core/gguf/loraAdapterGguf";
import { exportQwenToGguf } from "../../src/core/gguf/qwen2Converter";
import { readGgufFile } from "../../src/core/gguf/reader";
import { readSafetensorsHeader } from "../../src/core/safetensors";
import { llamaLogits, loadLlama, readLogitsFile, runFixtureJobs, tokenSequence, torchPython, writeSmallHarmonyTokenizer } from "../support/exportTestSupport";
import { writeQwenTokenizerFiles } from "../support/qwenTokenizer";

// The test: a LoRA-adapter GGUF applied by llama.cpp over the base GGUF changes the
// model's outputs exactly as merging the same adapter into the weights does, and as the
// PyTorch LoRA model computes. The adapter is random and non-zero (B ~ N(0, 0.05²)), made by
// the sidecar's own lora.py (apply_lora, lora_state_dict, merge_lora) in export_fixtures.py.

const scratch = mkdtempSync(join(tmpdir(), "fts-lora-gguf-"));
const SEQUENCE = tokenSequence(64, 500, 29);
let python = "";
let llama: Llama;

interface Case {
  name: string;
  base: string;
  adapter: string;
  merged: string;
  torchLoraLogits: string;
  targets: string;
}
const cases: Case[] = [
  { name: "qwen2", base: join(scratch, "qwen2"), adapter: join(scratch, "qwen2-adapter"), merged: join(scratch, "qwen2-merged"), torchLoraLogits: join(scratch, "qwen2-lora-logits.json"), targets: "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj" },
  { name: "gpt-oss", base: join(scratch, "gpt-oss"), adapter: join(scratch, "gpt-oss-adapter"), merged: join(scratch, "gpt-oss-merged"), torchLoraLogits: join(scratch, "gpt-oss-lora-logits.json"), targets: "q_proj,k_proj,v_proj,o_proj" },
];

before(async () => {
  python = await torchPython();
  const [, loaded] = await Promise.all([
    runFixtureJobs(python, scratch, [
      { tiny: { arch: "qwen2", out: cases[0]!.base, seed: 31, vocab_size: 512, tie_word_embeddings: false } },
      { tiny: { arch: "gpt-oss", out: cases[1]!.base, seed: 32, vocab_size: 512 } },
      ...cases.map((c, i) => ({
        lora: { model: c.base, adapter: c.adapter, merged: c.merged, targets: c.targets, rank: 8, alpha: 16, seed: 40 + i, tokens: SEQUENCE.join(","), logits: c.torchLoraLogits },
      })),
    ]),
    loadLlama(),
  ]);
  llama = loaded;
  // Tokenizers for the bases and their merged copies (the converters need one; the LoRA math does not).
  for (const folder of [cases[0]!.base, cases[0]!.merged]) writeQwenTokenizerFiles(folder, 512);
  for (const folder of [cases[1]!.base, cases[1]!.merged]) writeSmallHarmonyTokenizer(folder, 512);
});
after(async () => {
  await llama?.dispose();
  rmSync(scratch, { recursive: true, force: true });
});

/** F32 everywhere (GPT-OSS experts dequantized to F32 too), so only summation order differs. */
async function exportFull(c: Case, folder: string, name: string): Promise<string> {
  const outFile = join(scratch, `${name}.gguf`);
  if (c.name === "gpt-oss") await exportGptOssToGguf({ modelFolder: folder, outFile, outputType: "f32", expertsAs: "same" });
  else await exportQwenToGguf({ modelFolder: folder, outFile, outputType: "f32" });
  return outFile;
}

for (const [index, c] of cases.entries()) {
  test(`${c.name}: base + adapter GGUF computes what the merged export and the PyTorch LoRA model compute`, async () => {
    const adapterFile = join(scratch, `${c.name}-adapter.gguf`);
    const adapter = await exportLoraAdapterToGguf({ adapterFolder: c.adapter, baseModelFolder: c.base, outFile: adapterFile });
    const modules = c.targets.split(",").length;
    assert.equal(adapter.adapted.length, 2 * modules);
    assert.deepEqual(adapter.ranks, [8]);
    assert.equal(adapter.rescaled, 0, "alpha / r is llama.cpp's scale too: B is copied as is");
    const contents = await readGgufFile(adapterFile);
    const value = (key: string): unknown => contents.metadata.get(key)?.value;
    assert.equal(value("general.type"), "adapter");
    assert.equal(value("general.architecture"), c.name);
    assert.equal(value("adapter.type"), "lora");
    assert.equal(contents.metadata.get("adapter.lora.alpha")?.type, GgufValueType.FLOAT32);
    assert.equal(value("adapter.lora.alpha"), 16);
    const loraA = contents.tensors.find((tensor) => tensor.name === "blk.1.attn_q.weight.lora_a");
    const loraB = contents.tensors.find((tensor) => tensor.name === "blk.1.attn_q.weight.lora_b");
    const q = c.name === "gpt-oss" ? 64 : 64;
    assert.deepEqual(loraA?.dims, [64, 8], "lora_a: ne [in, r]");
    assert.deepEqual(loraB?.dims, [8, q], "lora_b: ne [r, out]");
    assert.equal(loraA?.type, GgmlType.F32);

    const base = await exportFull(c, c.base, `${c.name}-base`);
    const merged = await exportFull(c, c.merged, `${c.name}-merged`);
    const baseLogits = await llamaLogits(llama, base, SEQUENCE);
    const withAdapter = await llamaLogits(llama, base, SEQUENCE, [{ filePath: adapterFile, scale: 1 }]);
    const mergedLogits = await llamaLogits(llama, merged, SEQUENCE);
    const torchLora = readLogitsFile(c.torchLoraLogits);

    const effect = compareDistributions(mergedLogits, baseLogits);
    const vsMerged = compareDistributions(mergedLogits, withAdapter);
    const vsTorch = compareDistributions(torchLora, withAdapter);
    const line = (label: string, d: DistributionComparison): string => `${c.name} ${label}: ${describeComparison(d)}`;
    console.log(line("base alone vs merged (the adapter's effect)", effect));
    console.log(line("base + adapter vs merged", vsMerged));
    console.log(line("base + adapter vs PyTorch LoRA", vsTorch));
    assert.ok(effect.maxAbsDiff > 50 * vsMerged.maxAbsDiff && effect.klMax > 1e3 * vsMerged.klMax, "the adapter changes the outputs far more than the two ways of applying it differ");
    assert.ok(vsMerged.relativeMaxAbsDiff < 1e-3 && vsMerged.top1 === 1 && vsMerged.klMax < 1e-7, line("vs merged", vsMerged));
    assert.ok(vsTorch.relativeMaxAbsDiff < 2e-3 && vsTorch.top1 === 1 && vsTorch.klMax < 1e-6, line("vs PyTorch", vsTorch));

    // Scale is per context: 0 gives back the base model, 0.5 lands in between.
    const off = compareDistributions(baseLogits, await llamaLogits(llama, base, SEQUENCE, [{ filePath: adapterFile, scale: 0 }]));
    assert.ok(off.maxAbsDiff < 1e-4, `scale 0: ${describeComparison(off)}`);
    if (index === 0) {
      const f16File = join(scratch, `${c.name}-adapter-f16.gguf`);
      await exportLoraAdapterToGguf({ adapterFolder: c.adapter, baseModelFolder: c.base, outFile: f16File, outputType: "f16" });
      const f16 = compareDistributions(mergedLogits, await llamaLogits(llama, base, SEQUENCE, [{ filePath: f16File }]));
      console.log(line("base + F16 adapter vs merged", f16));
      assert.ok(f16.klMax < 1e-5 && f16.top1 >= 0.95, line("F16 adapter", f16));
    }
  });
}

test("PEFT scaling that differs from alpha / r (rslora, alpha_pattern) is folded into lora_b", async () => {
  const c = cases[0]!;
  const folder = join(scratch, "rslora");
  cpSync(c.adapter, folder, { recursive: true });
  const config = JSON.parse(readFileSync(join(folder, "adapter_config.json"), "utf8")) as Record<string, unknown>;
  writeFileSync(join(folder, "adapter_config.json"), JSON.stringify({ ...config, use_rslora: true, alpha_pattern: { down_proj: 4 } }));
  const outFile = join(scratch, "rslora.gguf");
  const result = await exportLoraAdapterToGguf({ adapterFolder: folder, baseModelFolder: c.base, outFile });
  assert.equal(result.rescaled, 7 * 2, "every module of both layers (PEFT: alpha/sqrt(r) instead of alpha/r)");
  const contents = await readGgufFile(outFile);
  const plain = await readGgufFile(join(scratch, "qwen2-adapter.gguf"));
  const { readGgufTensorBytes } = await import("../../src/core/gguf/reader");
  const ratio = async (name: string): Promise<number> => {
    const a = new Float32Array(new Uint8Array(await readGgufTensorBytes(contents, name)).buffer);
    const b = new Float32Array(new Uint8Array(await readGgufTensorBytes(plain, name)).buffer);
    const at = b.findIndex((v) => Math.abs(v) > 1e-3);
    return a[at]! / b[at]!;
  };
  // PEFT rslora: alpha/sqrt(8); llama.cpp: alpha/8 → B × sqrt(8). down_proj: alpha 4 instead of 16.
  assert.ok(Math.abs((await ratio("blk.0.attn_q.weight.lora_b")) - Math.sqrt(8)) < 1e-5);
  assert.ok(Math.abs((await ratio("blk.1.ffn_down.weight.lora_b")) - Math.sqrt(8) / 4) < 1e-5);
  assert.equal(await ratio("blk.0.attn_q.weight.lora_a"), 1, "lora_a is never touched");
});

test("refuses adapters llama.cpp cannot apply, saying why and what to do", async () => {
  const c = cases[0]!;
  const variant = (name: string, patch: Record<string, unknown>): string => {
    const folder = join(scratch, name);
    cpSync(c.adapter, folder, { recursive: true });
    const config = JSON.parse(readFileSync(join(folder, "adapter_config.json"), "utf8")) as Record<string, unknown>;
    writeFileSync(join(folder, "adapter_config.json"), JSON.stringify({ ...config, ...patch }));
    return folder;
  };
  const out = join(scratch, "refused.gguf");
  await assert.rejects(exportLoraAdapterToGguf({ adapterFolder: variant("dora", { use_dora: true }), baseModelFolder: c.base, outFile: out }), /use_dora is true; llama\.cpp cannot apply DoRA/);
  await assert.rejects(exportLoraAdapterToGguf({ adapterFolder: variant("bias", { bias: "all" }), baseModelFolder: c.base, outFile: out }), /carry no bias updates/);
  await assert.rejects(
    exportLoraAdapterToGguf({ adapterFolder: c.adapter, baseModelFolder: cases[1]!.base, outFile: out }),
    (error: unknown) => GgufExportError.is(error, "missing_tensor") && /mlp\.(gate|up|down)_proj/.test(error.message),
    "a Qwen adapter on the GPT-OSS base names the module it cannot map",
  );
  const otherShape = join(scratch, "other-shape");
  mkdirSync(otherShape);
  const baseConfig = JSON.parse(readFileSync(join(c.base, "config.json"), "utf8")) as Record<string, unknown>;
  writeFileSync(join(otherShape, "config.json"), JSON.stringify({ ...baseConfig, hidden_size: 128 }));
  await assert.rejects(exportLoraAdapterToGguf({ adapterFolder: c.adapter, baseModelFolder: otherShape, outFile: out }), (error: unknown) => GgufExportError.is(error, "tensor_shape"));
});

test("adapter verification: pairs fit the base, llama.cpp applies it, it changes the outputs like PyTorch's LoRA", async () => {
  const c = cases[0]!;
  const evaluator = createNodeLlamaCppEvaluator();
  try {
    const base = join(scratch, "qwen2-base.gguf");
    const report = await verifyLoraAdapterGguf({ adapterPath: join(scratch, "qwen2-adapter.gguf"), baseGgufPath: base, evaluator, tokens: SEQUENCE, reference: async () => readLogitsFile(c.torchLoraLogits) });
    console.log(`adapter verification: effect ${describeComparison(report.effect!)}; vs PyTorch LoRA ${describeComparison(report.distribution!)}`);
    assert.ok(report.ok, report.failures.join("; "));
    assert.deepEqual(report.checks.map((check) => check.name), ["adapter metadata", "architecture", "tensors", "load", "effect", "distribution"]);

    // An adapter exported before any training step (B = 0) changes nothing: flagged.
    const zero = join(scratch, "zero-adapter");
    cpSync(c.adapter, zero, { recursive: true });
    const weights = join(zero, "adapter_model.safetensors");
    const bytes = readFileSync(weights);
    for (const tensor of (await readSafetensorsHeader(weights)).tensors) if (tensor.name.includes("lora_B")) bytes.fill(0, tensor.byteOffset, tensor.byteOffset + tensor.byteLength);
    writeFileSync(weights, bytes);
    const zeroFile = join(scratch, "zero-adapter.gguf");
    await exportLoraAdapterToGguf({ adapterFolder: zero, baseModelFolder: c.base, outFile: zeroFile });
    const untrained = await verifyLoraAdapterGguf({ adapterPath: zeroFile, baseGgufPath: base, evaluator, tokens: SEQUENCE.slice(0, 8) });
    assert.deepEqual(untrained.failures.map((failure) => failure.split(":")[0]), ["effect"]);

    const wrongBase = await verifyLoraAdapterGguf({ adapterPath: join(scratch, "qwen2-adapter.gguf"), baseGgufPath: join(scratch, "gpt-oss-base.gguf"), evaluator });
    assert.equal(wrongBase.ok, false);
    assert.match(wrongBase.failures.join("; "), /architecture: adapter for "qwen2", base is "gpt-oss"/);
  } finally {
    await evaluator.dispose();
  }
});
