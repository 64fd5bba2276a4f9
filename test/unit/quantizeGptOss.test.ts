import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { GgufFileInfo, Llama } from "node-llama-cpp";
import { exportGptOssToGguf } from "../../src/core/gguf/gptOssConverter";
import { resolvePython } from "../../src/core/pythonEnvironment";
import { GGML_TYPE_IDS, type GgmlTypeName } from "../../src/core/quantize/llamaQuantizeAbi";
import { tensorBytes } from "../../src/core/quantize/quantizeEstimate";
import { quantizeGguf, type QuantizeOptions, type QuantizeResult } from "../../src/core/quantize/quantizeGguf";
import { KEEP_MXFP4_EXPERTS, QUANTIZE_TYPES, QuantizeError, type QuantizeType } from "../../src/core/quantize/quantizeTypes";
import { runSidecarCommand } from "../../src/core/sidecarProcess";
import { writeHarmonyTokenizerFiles } from "../../src/core/tokenizers/huggingFaceTokenizerJson";

// The GPT-OSS path end to end: the sidecar's tiny gpt-oss checkpoint (real architecture and
// tokenizer, 2 layers, hidden 64, 4 experts) → our converter (F16, experts MXFP4 or F16) →
// llama.cpp's quantizer → node-llama-cpp. Every row is 64 wide: like the real model's 2880,
// not a multiple of 256, so the K-quants take the shape fallbacks of §4.2. With 2 layers,
// use_more_bits holds for layer 1 only.

const root = join(__dirname, "..", "..");
let folder: string;
let mxfp4Input: string; // experts kept MXFP4 by the converter (what the official checkpoint gives)
let f16Input: string; // experts dequantized to F16
let llama: Llama;

before(async () => {
  folder = await mkdtemp(join(tmpdir(), "fts-quantize-gptoss-"));
  const resolution = await resolvePython({ configuredPath: undefined, projectRoot: root, env: process.env });
  assert.ok(resolution.ok, "a Python with torch is installed (npm test bootstraps it)");
  const model = join(folder, "tiny-gpt-oss");
  await runSidecarCommand({ python: resolution.python.path, nativeDir: join(root, "native"), args: ["make-tiny-model", "--arch", "gpt-oss", "--out", model, "--seed", "5"] });
  await writeHarmonyTokenizerFiles(model);
  const [mxfp4, f16] = await Promise.all([
    exportGptOssToGguf({ modelFolder: model, outFile: join(folder, "gpt-oss-f16-mxfp4.gguf"), outputType: "f16", expertsAs: "mxfp4" }),
    exportGptOssToGguf({ modelFolder: model, outFile: join(folder, "gpt-oss-f16.gguf"), outputType: "f16", expertsAs: "same" }),
  ]);
  mxfp4Input = mxfp4.outFile;
  f16Input = f16.outFile;
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  llama = await getLlama({ build: "never", gpu: false, logLevel: LlamaLogLevel.error, logger: () => {}, progressLogs: false, skipDownload: true });
});

after(async () => {
  await llama?.dispose();
  await rm(folder, { recursive: true, force: true });
});

/** §4.2's table for this model; `mxfp4Experts`: experts end up MXFP4 (override or MXFP4_MOE). */
function expectedType(type: QuantizeType, name: string, mxfp4Experts: boolean): GgmlTypeName {
  if (!name.endsWith(".weight") || name.includes("_norm.") || name.includes("ffn_gate_inp") || name.includes("attn_sinks")) return "F32";
  if (name.includes("_exps.") && mxfp4Experts) return "MXFP4";
  if (type === "MXFP4_MOE" || type === "Q8_0" || type === "Q6_K" || name === "output.weight") return "Q8_0";
  const layerOne = name.startsWith("blk.1.") && /attn_v|ffn_down/.test(name);
  if (type === "Q4_0") return "Q4_0";
  if (layerOne) return "Q8_0"; // Q6_K by use_more_bits, then the Q6_K → Q8_0 fallback
  return type === "Q5_K_M" ? "Q5_1" : "Q5_0"; // Q5_K → Q5_1, Q4_K → Q5_0
}

const typeName = (id: number): string => (Object.keys(GGML_TYPE_IDS) as GgmlTypeName[]).find((name) => GGML_TYPE_IDS[name] === id) ?? `type ${id}`;

async function readInfo(path: string): Promise<GgufFileInfo> {
  const { readGgufFileInfo } = await import("node-llama-cpp");
  return readGgufFileInfo(path, { readTensorInfo: true, ignoreKeys: ["tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type"] });
}

/** One tensor's raw bytes, located through node-llama-cpp's parser (an independent reader). */
async function tensorData(path: string, info: GgufFileInfo, name: string): Promise<Buffer> {
  const tensor = info.fullTensorInfo?.find((candidate) => candidate.name === name);
  assert.ok(tensor, `${path} has ${name}`);
  const length = tensorBytes(tensor.ggmlType, tensor.dimensions.map(Number));
  assert.ok(length !== undefined);
  const handle = await open(path, "r");
  try {
    const bytes = Buffer.alloc(length);
    await handle.read(bytes, 0, length, Number(tensor.fileOffset));
    return bytes;
  } finally {
    await handle.close();
  }
}

async function quantizeAndCheck(options: Omit<QuantizeOptions, "output">, mxfp4Experts: boolean): Promise<QuantizeResult> {
  const suffix = options.tensorTypeOverrides ? "-keep" : options.allowRequantize ? "-requant" : "";
  const result = await quantizeGguf({ ...options, output: join(folder, `gpt-oss-${options.type}${suffix}.gguf`), threads: 2 });
  const info = await readInfo(result.output);
  assert.equal(info.metadata.general.architecture, "gpt-oss");
  assert.equal(info.metadata.general.file_type, QUANTIZE_TYPES[options.type].ftype);
  const tensors = info.fullTensorInfo ?? [];
  assert.equal(tensors.length, 3 + 19 * 2);
  for (const tensor of tensors) assert.equal(typeName(tensor.ggmlType), expectedType(options.type, tensor.name, mxfp4Experts), `${options.type}: ${tensor.name}`);
  assert.deepEqual(readdirSync(folder).filter((name) => name.endsWith(".partial")), []);
  return result;
}

async function evaluates(modelPath: string): Promise<void> {
  const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
  try {
    const context = await model.createContext({ contextSize: 64 });
    try {
      const tokens = model.tokenize("Hello, world! The quick brown fox", false);
      const last = tokens.at(-1);
      assert.ok(last !== undefined && tokens.length > 4);
      const output = await context.getSequence().controlledEvaluate([...tokens.slice(0, -1), [last, { generateNext: { token: true, probabilities: true } }]]);
      const probabilities = [...(output.at(-1)?.next.probabilities?.values() ?? [])];
      assert.ok(probabilities.length > 1000, `${probabilities.length} candidate tokens`);
      assert.ok(probabilities.every(Number.isFinite));
      const total = probabilities.reduce((sum, p) => sum + p, 0);
      assert.ok(Math.abs(total - 1) < 1e-3, `probabilities sum to ${total}`);
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}

test("Q4_K_M refuses to requantize MXFP4 experts and says how to keep or convert them", async () => {
  await assert.rejects(quantizeGguf({ input: mxfp4Input, output: join(folder, "refused.gguf"), type: "Q4_K_M" }), (error: unknown) => {
    assert.ok(QuantizeError.is(error, "quantize_failed"), String(error));
    assert.ok(error.message.includes(mxfp4Input), error.message);
    assert.match(error.message, /requantizing from type mxfp4 is disabled/);
    assert.match(error.message, /KEEP_MXFP4_EXPERTS .* allowRequantize/);
    return true;
  });
  assert.equal(existsSync(join(folder, "refused.gguf")), false);
});

test("Q4_K_M with KEEP_MXFP4_EXPERTS copies the experts byte for byte, §4.2 for the rest, and loads", async (t) => {
  const result = await quantizeAndCheck({ input: mxfp4Input, type: "Q4_K_M", tensorTypeOverrides: KEEP_MXFP4_EXPERTS }, true);
  t.diagnostic(`Q4_K_M + MXFP4 experts: ${result.bytes} bytes in ${result.seconds.toFixed(2)} s`);
  const [source, quantized] = await Promise.all([readInfo(mxfp4Input), readInfo(result.output)]);
  for (const name of ["blk.0.ffn_gate_exps.weight", "blk.1.ffn_up_exps.weight", "blk.1.ffn_down_exps.weight"]) {
    const [before, after] = await Promise.all([tensorData(mxfp4Input, source, name), tensorData(result.output, quantized, name)]);
    assert.equal(before.length, 2 * 17 * 64 * 4);
    assert.ok(before.equals(after), name);
  }
  await evaluates(result.output);
});

test("MXFP4_MOE from F16 experts: experts MXFP4, every other matrix Q8_0, and it loads", async (t) => {
  const result = await quantizeAndCheck({ input: f16Input, type: "MXFP4_MOE" }, true);
  t.diagnostic(`MXFP4_MOE: ${result.bytes} bytes in ${result.seconds.toFixed(2)} s`);
  await evaluates(result.output);
});

test("allowRequantize turns MXFP4 experts into Q8_0", async (t) => {
  const result = await quantizeAndCheck({ input: mxfp4Input, type: "Q8_0", allowRequantize: true }, false);
  t.diagnostic(`Q8_0 (requantized experts): ${result.bytes} bytes in ${result.seconds.toFixed(2)} s`);
});

test("K-quants and Q4_0 from F16 experts take §4.2's shape fallbacks", async (t) => {
  for (const type of ["Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0"] as const) {
    const result = await quantizeAndCheck({ input: f16Input, type }, false);
    t.diagnostic(`${type}: ${result.bytes} bytes in ${result.seconds.toFixed(2)} s`);
  }
});
