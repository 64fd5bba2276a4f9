import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { exportModelToGguf } from "../../src/core/exportModel";
import {
  ExportVerificationError,
  chooseComparedPositions,
  compareDistributions,
  createNodeLlamaCppEvaluator,
  describeComparison,
  sidecarReferenceLogits,
  verifyGguf,
  type GgufEvaluator,
  type VerifyReport,
} from "../../src/core/exportVerify";
import { LlamaFileType } from "../../src/core/gguf/constants";
import { exportQwenToGguf } from "../../src/core/gguf/qwen2Converter";
import { NATIVE_DIR, runFixtureJobs, torchPython, writeSmallHarmonyTokenizer } from "../support/exportTestSupport";
import { writeQwenTokenizerFiles } from "../support/qwenTokenizer";

// Verification after export, for real: llama.cpp (node-llama-cpp, in process) loads the file,
// the embedded chat template renders a conversation, and the next-token distributions are
// compared with the sidecar's PyTorch model through its `logits` command.

const scratch = mkdtempSync(join(tmpdir(), "fts-export-verify-"));
const qwen = join(scratch, "qwen2");
const other = join(scratch, "qwen2-other-seed");
const gptOss = join(scratch, "gpt-oss");
let python = "";
let evaluator: GgufEvaluator;

before(async () => {
  python = await torchPython();
  await runFixtureJobs(python, scratch, [
    { tiny: { arch: "qwen2", out: qwen, seed: 51, vocab_size: 512 } },
    { tiny: { arch: "qwen2", out: other, seed: 52, vocab_size: 512 } },
    { tiny: { arch: "gpt-oss", out: gptOss, seed: 53, vocab_size: 512 } },
  ]);
  writeQwenTokenizerFiles(qwen, 512);
  writeQwenTokenizerFiles(other, 512);
  writeSmallHarmonyTokenizer(gptOss, 512);
  evaluator = createNodeLlamaCppEvaluator();
});
after(async () => {
  await evaluator?.dispose();
  rmSync(scratch, { recursive: true, force: true });
});

function out(name: string): string {
  const folder = join(scratch, name);
  mkdirSync(folder, { recursive: true });
  return join(folder, `${name}.gguf`);
}

function summary(report: VerifyReport): string {
  const d = report.distribution;
  const trimmed = d && d.checked.dropped > 0 ? `; checked without the ${d.checked.dropped} worst positions (MoE allowance): KL mean ${d.checked.klMean.toExponential(2)} max ${d.checked.klMax.toExponential(2)}` : "";
  return `${report.type} ${report.architecture}: ${d ? describeComparison(d) : "no distribution"}${trimmed} (${report.prompt?.tokens} prompt tokens, ${report.seconds.toFixed(2)} s)`;
}

test("Qwen2 F32 and Q8_0 exports pass verification: metadata, load, ChatML prompt, distributions vs PyTorch", async () => {
  for (const type of ["F32", "Q8_0"] as const) {
    const outFile = out(`qwen2-${type}`);
    const logs: string[] = [];
    const result = await exportModelToGguf({ modelFolder: qwen, outFile, type, verify: { python, nativeDir: NATIVE_DIR, evaluator }, onLog: (line) => logs.push(line) });
    const report = result.verification ?? assert.fail("verified");
    console.log(`verify ${summary(report)}`);
    assert.ok(report.ok, report.failures.join("; "));
    assert.deepEqual(report.checks.map((check) => check.name), ["architecture", "file type", "tokenizer", "end-of-sequence token", "chat template", "FIM tokens", "load", "chat template renders", "special tokens", "distribution"]);
    assert.ok(report.prompt!.text.startsWith("<|im_start|>system\nYou are a concise coding assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?"));
    assert.ok(report.prompt!.text.endsWith("<|im_start|>assistant\n"));
    assert.equal(report.distribution!.positions, report.prompt!.tokens, "every position is compared for a small vocabulary");
    if (type === "F32") assert.ok(report.distribution!.klMax < 1e-6 && report.distribution!.top1 === 1, summary(report));
    assert.ok(logs.some((line) => line.startsWith("verify ok   distribution:")), "each check is logged");
    assert.deepEqual(readdirSync(join(scratch, `qwen2-${type}`)), [`qwen2-${type}.gguf`], "nothing but the model is left behind");
  }
});

test("GPT-OSS (MXFP4 experts, F32 elsewhere) passes F32 verification through the harmony template", async () => {
  const outFile = out("gpt-oss-F32");
  const result = await exportModelToGguf({ modelFolder: gptOss, outFile, type: "F32", verify: { python, nativeDir: NATIVE_DIR, evaluator } });
  const report = result.verification!;
  console.log(`verify ${summary(report)}`);
  assert.ok(report.ok, report.failures.join("; "));
  assert.equal(result.fileType, LlamaFileType.MOSTLY_MXFP4_MOE, "MXFP4 experts label the file MXFP4_MOE, and verification expects exactly that");
  assert.ok(report.prompt!.text.startsWith("<|start|>system<|message|>You are ChatGPT"));
  assert.ok(report.prompt!.text.includes("<|start|>developer<|message|># Instructions\n\nYou are a concise coding assistant.<|end|>"));
  assert.ok(report.prompt!.text.endsWith("<|start|>assistant"));
  assert.match(report.checks.find((check) => check.name === "special tokens")!.detail, /<\|start\|>.*<\|message\|>.*<\|end\|>/);
  assert.ok(report.distribution!.checked.dropped <= Math.ceil(0.02 * report.distribution!.positions), "at most 2% of positions are set aside as routing flips");
});

test("a GGUF that computes another model fails verification with the KL that shows it", async () => {
  const outFile = out("mismatch");
  await exportQwenToGguf({ modelFolder: other, outFile, outputType: "f32" });
  const report = await verifyGguf({
    ggufPath: outFile,
    modelFolder: qwen,
    type: "F32",
    evaluator,
    reference: sidecarReferenceLogits({ python, nativeDir: NATIVE_DIR, modelFolder: qwen, scratchFile: join(scratch, "mismatch-reference.json") }),
  });
  console.log(`mismatched weights: ${summary(report)}`);
  assert.equal(report.ok, false);
  assert.deepEqual(report.failures.map((failure) => failure.split(":")[0]), ["distribution"]);
  assert.ok(report.distribution!.klMax > 1e-3, "different weights are caught by orders of magnitude");
});

test("a failed verification fails the export and keeps the file as .unverified with its report", async () => {
  const outFile = out("forced-failure");
  // llama.cpp refusing the file (here simulated: the evaluator cannot open it) is one way to fail.
  const refusing: GgufEvaluator = { open: async () => Promise.reject(new Error("llama_model_load: tensor 'blk.0.attn_q.weight' has wrong shape")), dispose: async () => {} };
  await assert.rejects(
    exportModelToGguf({ modelFolder: qwen, outFile, type: "F16", verify: { python, nativeDir: NATIVE_DIR, evaluator: refusing } }),
    (error: unknown) => {
      assert.ok(ExportVerificationError.is(error));
      assert.equal(error.keptFile, `${outFile}.unverified`);
      assert.match(error.message, /failed verification \(load: llama\.cpp could not load the file: llama_model_load: tensor 'blk\.0\.attn_q\.weight' has wrong shape\)/);
      return true;
    },
  );
  assert.ok(!existsSync(outFile), "no loader can pick the failed file up under its .gguf name");
  assert.ok(existsSync(`${outFile}.unverified`));
  const saved = JSON.parse(readFileSync(`${outFile}.verification.json`, "utf8")) as VerifyReport;
  assert.equal(saved.ok, false);
  assert.equal(saved.type, "F16");
});

test("a chat template that differs from the source's fails before anything is loaded", async () => {
  const outFile = out("template-drift");
  await exportQwenToGguf({ modelFolder: other, outFile, outputType: "f16" });
  const config = JSON.parse(readFileSync(join(other, "tokenizer_config.json"), "utf8")) as Record<string, unknown>;
  writeFileSync(join(other, "tokenizer_config.json"), JSON.stringify({ ...config, chat_template: "{{ messages[0].content }}" }));
  let opened = false;
  const spy: GgufEvaluator = { open: async (...args) => ((opened = true), evaluator.open(...args)), dispose: async () => {} };
  const report = await verifyGguf({ ggufPath: outFile, modelFolder: other, type: "F16", evaluator: spy });
  assert.deepEqual(report.failures, ["chat template: differs from the source folder's template"]);
  assert.equal(opened, false);
});

test("distribution figures: identical rows agree exactly, decisive top-1 ignores coin tosses, big vocabularies are subsampled", () => {
  const row = [0.1, 2, -1, 0.3];
  const same = compareDistributions([row, row], [Float32Array.from(row), Float32Array.from(row)]);
  assert.ok(same.klMax < 1e-15);
  assert.equal(same.top1, 1);
  // Near-uniform reference: a flip of the argmax is not decisive, a confident one is.
  const flat = compareDistributions([[0.001, 0, 0, 0]], [[0, 0.001, 0, 0]]);
  assert.equal(flat.top1, 0);
  assert.equal(flat.decisivePositions, 0);
  const sharp = compareDistributions([[5, 0, 0, 0]], [[0, 5, 0, 0]]);
  assert.equal(sharp.decisivePositions, 1);
  assert.equal(sharp.top1Decisive, 0);
  assert.ok(sharp.klMax > 4);
  assert.deepEqual(chooseComparedPositions(5, 512), [0, 1, 2, 3, 4]);
  const picked = chooseComparedPositions(120, 201088);
  assert.equal(picked.length, 79);
  assert.equal(picked.at(-1), 119, "the last position (the reply's first token) is always compared");
});
