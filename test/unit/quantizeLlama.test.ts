import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Llama } from "node-llama-cpp";
import { GgmlType, GgufValueType } from "../../src/core/gguf/constants";
import { readGgufFile } from "../../src/core/gguf/reader";
import { GgufWriter } from "../../src/core/gguf/writer";
import { GGML_TYPE_IDS, type GgmlTypeName } from "../../src/core/quantize/llamaQuantizeAbi";
import { estimateQuantizedFile } from "../../src/core/quantize/quantizeEstimate";
import { quantizeGguf, type QuantizeProgress, type QuantizeResult } from "../../src/core/quantize/quantizeGguf";
import { QUANTIZE_TYPES, QuantizeError, SUPPORTED_QUANTIZE_TYPES, type QuantizeType } from "../../src/core/quantize/quantizeTypes";

// llama.cpp's quantizer on a tiny llama-architecture GGUF (random F32 weights, SPM vocabulary
// with byte fallback) whose rows are multiples of 256, so the K-quant mixtures of §4.1 apply
// without shape fallbacks. 4 layers: use_more_bits(i, 4) holds for layers 2 and 3.

const SHAPE = { hidden: 256, ffn: 768, layers: 4, heads: 4, kvHeads: 2, vocab: 320 };
const MORE_BITS_LAYERS = new Set([2, 3]);

let folder: string;
let input: string;
let llama: Llama;
const results = new Map<QuantizeType, QuantizeResult>();

async function writeTinyLlama(path: string): Promise<void> {
  const { hidden, ffn, layers, heads, kvHeads, vocab } = SHAPE;
  const writer = new GgufWriter(path);
  writer.addString("general.architecture", "llama");
  writer.addString("general.name", "tiny-llama");
  writer.addUint32("general.file_type", 0);
  writer.addUint32("llama.context_length", 256);
  writer.addUint32("llama.embedding_length", hidden);
  writer.addUint32("llama.block_count", layers);
  writer.addUint32("llama.feed_forward_length", ffn);
  writer.addUint32("llama.attention.head_count", heads);
  writer.addUint32("llama.attention.head_count_kv", kvHeads);
  writer.addUint32("llama.rope.dimension_count", hidden / heads);
  writer.addFloat32("llama.attention.layer_norm_rms_epsilon", 1e-5);
  const tokens = ["<unk>", "<s>", "</s>"];
  const types = [2, 3, 3]; // UNKNOWN, CONTROL, CONTROL
  for (let byte = 0; byte < 256; byte++) {
    tokens.push(`<0x${byte.toString(16).toUpperCase().padStart(2, "0")}>`);
    types.push(6); // BYTE
  }
  const words = "the a of to and in is it that for on with as was at by be this are or from".split(" ");
  for (let i = 0; tokens.length < vocab; i++) {
    tokens.push(`▁${words[i % words.length]}${i >= words.length ? String(i) : ""}`);
    types.push(1); // NORMAL
  }
  writer.addString("tokenizer.ggml.model", "llama");
  writer.addArray("tokenizer.ggml.tokens", GgufValueType.STRING, tokens);
  writer.addArray("tokenizer.ggml.scores", GgufValueType.FLOAT32, new Float32Array(tokens.map((_, id) => -id)));
  writer.addArray("tokenizer.ggml.token_type", GgufValueType.INT32, new Int32Array(types));
  writer.addUint32("tokenizer.ggml.bos_token_id", 1);
  writer.addUint32("tokenizer.ggml.eos_token_id", 2);
  writer.addUint32("tokenizer.ggml.unknown_token_id", 0);
  let seed = 7;
  const random = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32 - 0.5;
  };
  const tensor = (name: string, dims: number[], fill?: number): void => {
    writer.addTensor({
      name,
      dims,
      type: GgmlType.F32,
      data: () => {
        const values = new Float32Array(dims.reduce((product, dim) => product * dim, 1));
        for (let i = 0; i < values.length; i++) values[i] = fill ?? random() * 0.1;
        return [new Uint8Array(values.buffer)];
      },
    });
  };
  const kv = kvHeads * (hidden / heads);
  tensor("token_embd.weight", [hidden, vocab]);
  for (let layer = 0; layer < layers; layer++) {
    tensor(`blk.${layer}.attn_norm.weight`, [hidden], 1);
    tensor(`blk.${layer}.attn_q.weight`, [hidden, hidden]);
    tensor(`blk.${layer}.attn_k.weight`, [hidden, kv]);
    tensor(`blk.${layer}.attn_v.weight`, [hidden, kv]);
    tensor(`blk.${layer}.attn_output.weight`, [hidden, hidden]);
    tensor(`blk.${layer}.ffn_norm.weight`, [hidden], 1);
    tensor(`blk.${layer}.ffn_gate.weight`, [hidden, ffn]);
    tensor(`blk.${layer}.ffn_up.weight`, [hidden, ffn]);
    tensor(`blk.${layer}.ffn_down.weight`, [ffn, hidden]);
  }
  tensor("output_norm.weight", [hidden], 1);
  tensor("output.weight", [hidden, vocab]);
  await writer.writeAll();
}

/** §4.1 applied to this model: the type llama-quantize gives each tensor. */
function expectedType(type: QuantizeType, name: string): GgmlTypeName {
  if (name.endsWith("_norm.weight")) return "F32";
  const layer = /^blk\.(\d+)\./.exec(name)?.[1];
  const moreBits = layer !== undefined && MORE_BITS_LAYERS.has(Number(layer)) && /attn_v|ffn_down/.test(name);
  switch (type) {
    case "F16":
    case "BF16":
    case "Q8_0":
      return QUANTIZE_TYPES[type].defaultTensorType;
    case "MXFP4_MOE":
      return "Q8_0"; // no 3-D expert tensors in a dense model
    case "Q6_K":
      return "Q6_K";
    case "Q4_0":
      return name === "output.weight" ? "Q6_K" : "Q4_0";
    case "Q5_K_M":
    case "Q4_K_M":
      if (name === "output.weight" || moreBits) return "Q6_K";
      return type === "Q5_K_M" ? "Q5_K" : "Q4_K";
  }
}

const typeName = (id: number): string => (Object.keys(GGML_TYPE_IDS) as GgmlTypeName[]).find((name) => GGML_TYPE_IDS[name] === id) ?? `type ${id}`;
const partialFiles = (): string[] => readdirSync(folder).filter((name) => name.endsWith(".partial"));

before(async () => {
  folder = await mkdtemp(join(tmpdir(), "fts-quantize-llama-"));
  input = join(folder, "tiny-llama-f32.gguf");
  await writeTinyLlama(input);
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  llama = await getLlama({ build: "never", gpu: false, logLevel: LlamaLogLevel.error, logger: () => {}, progressLogs: false, skipDownload: true });
});

after(async () => {
  await llama?.dispose();
  await rm(folder, { recursive: true, force: true });
});

for (const type of SUPPORTED_QUANTIZE_TYPES) {
  test(`${type}: general.file_type and every tensor's type follow llama.cpp's mixture (§4.1)`, async (t) => {
    const result = await quantizeGguf({ input, output: join(folder, `tiny-${type}.gguf`), type, threads: 2 });
    results.set(type, result);
    t.diagnostic(`${type}: ${result.bytes} bytes in ${result.seconds.toFixed(2)} s`);
    const { readGgufFileInfo } = await import("node-llama-cpp");
    const info = await readGgufFileInfo(result.output, { readTensorInfo: true, ignoreKeys: ["tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"] });
    assert.equal(info.metadata.general.file_type, QUANTIZE_TYPES[type].ftype);
    assert.equal(result.fileType, QUANTIZE_TYPES[type].ftype);
    const tensors = info.fullTensorInfo ?? [];
    assert.equal(tensors.length, 3 + 9 * SHAPE.layers);
    for (const tensor of tensors) {
      assert.equal(typeName(tensor.ggmlType), expectedType(type, tensor.name), `${type}: ${tensor.name}`);
    }
    assert.deepEqual(partialFiles(), []);
  });
}

test("file sizes shrink with the bits: F16 > Q8_0 > Q6_K > Q5_K_M > Q4_K_M ≈ Q4_0", () => {
  const size = (type: QuantizeType): number => {
    const result = results.get(type);
    assert.ok(result, `${type} was quantized by an earlier test`);
    return result.bytes;
  };
  assert.equal(size("F16"), size("BF16"));
  assert.ok(size("F16") > size("Q8_0"));
  assert.ok(size("Q8_0") > size("Q6_K"));
  assert.ok(size("Q6_K") > size("Q5_K_M"));
  assert.ok(size("Q5_K_M") > size("Q4_K_M"));
  assert.ok(Math.abs(size("Q4_K_M") - size("Q4_0")) / size("Q4_0") < 0.15, `Q4_K_M ${size("Q4_K_M")} vs Q4_0 ${size("Q4_0")}`);
});

test("every quantized file loads in node-llama-cpp, and fewer bits drift further from the F32 model", async (t) => {
  const nextTokenProbabilities = async (modelPath: string): Promise<Map<number, number>> => {
    const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
    try {
      const context = await model.createContext({ contextSize: 64 });
      try {
        const tokens = model.tokenize("the of and it is", false);
        const last = tokens.at(-1);
        assert.ok(last !== undefined && tokens.length > 3);
        const output = await context.getSequence().controlledEvaluate([...tokens.slice(0, -1), [last, { generateNext: { token: true, probabilities: true } }]]);
        const next = output.at(-1)?.next;
        assert.equal(typeof next?.token, "number");
        return next?.probabilities ?? new Map();
      } finally {
        await context.dispose();
      }
    } finally {
      await model.dispose();
    }
  };
  const reference = await nextTokenProbabilities(input);
  const drift = new Map<QuantizeType, number>();
  for (const [type, result] of results) {
    const probabilities = await nextTokenProbabilities(result.output);
    let total = 0;
    let worst = 0;
    for (const [token, p] of reference) {
      const q = probabilities.get(token) ?? 0;
      assert.ok(Number.isFinite(q));
      total += q;
      worst = Math.max(worst, Math.abs(p - q));
    }
    assert.ok(Math.abs(total - 1) < 1e-3, `${type}: probabilities sum to ${total}`);
    drift.set(type, worst);
  }
  t.diagnostic(`largest next-token probability change vs F32: ${[...drift].map(([type, worst]) => `${type} ${worst.toExponential(1)}`).join(", ")}`);
  const of = (type: QuantizeType): number => drift.get(type) ?? Number.NaN;
  assert.ok(of("F16") < of("Q8_0") && of("Q8_0") < of("Q4_K_M") && of("Q8_0") < of("Q4_0"));
  for (const [type, worst] of drift) assert.ok(worst < 0.01, `${type} changed a probability by ${worst}`);
});

test("progress rises to 1 with the file's bytes, and the size estimate is close", async () => {
  const seen: QuantizeProgress[] = [];
  const result = await quantizeGguf({ input, output: join(folder, "progress-Q8_0.gguf"), type: "Q8_0", threads: 1, onProgress: (progress) => seen.push(progress) });
  assert.ok(seen.length >= 2);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.fraction >= seen[i - 1]!.fraction);
  const last = seen.at(-1)!;
  assert.equal(last.fraction, 1);
  assert.equal(last.bytesWritten, result.bytes);
  assert.ok(seen.slice(0, -1).every((progress) => progress.fraction < 1));

  const estimate = estimateQuantizedFile(await readGgufFile(input), "Q8_0");
  assert.ok(Math.abs(estimate.bytes - result.bytes) / result.bytes < 0.02, `estimate ${estimate.bytes} vs ${result.bytes}`);
  for (const type of ["F16", "Q8_0", "Q6_K", "Q4_0", "MXFP4_MOE"] as const) {
    for (const [name, estimated] of estimateQuantizedFile(await readGgufFile(input), type).tensorTypes) {
      assert.equal(estimated, expectedType(type, name), `${type} estimate for ${name}`);
    }
  }
});

test("cancelling kills llama.cpp and leaves neither the output nor a temporary file", async () => {
  const output = join(folder, "cancelled.gguf");
  const controller = new AbortController();
  const pending = quantizeGguf({
    input,
    output,
    type: "Q4_K_M",
    threads: 1,
    signal: controller.signal,
    onLog: (line) => {
      if (line.startsWith("[")) controller.abort();
    },
  });
  await assert.rejects(pending, (error: unknown) => error instanceof Error && error.name === "AbortError");
  assert.equal(existsSync(output), false);
  assert.deepEqual(partialFiles(), []);

  const already = AbortSignal.abort();
  await assert.rejects(quantizeGguf({ input, output, type: "Q8_0", signal: already }), (error: unknown) => error instanceof Error && error.name === "AbortError");
  assert.equal(existsSync(output), false);
});

test("clear errors: missing input, unsupported type, bad override, not a GGUF", async () => {
  const missing = join(folder, "nope.gguf");
  await assert.rejects(quantizeGguf({ input: missing, output: join(folder, "x.gguf"), type: "Q8_0" }), (error: unknown) => {
    assert.ok(QuantizeError.is(error, "input_missing"));
    assert.match(error.message, /nope\.gguf: the file does not exist/);
    return true;
  });
  await assert.rejects(quantizeGguf({ input, output: join(folder, "x.gguf"), type: "Q3_K_S" as QuantizeType }), (error: unknown) => {
    assert.ok(QuantizeError.is(error, "bad_option"));
    assert.match(error.message, /"Q3_K_S" is not supported; choose one of F16, BF16, Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q4_0, MXFP4_MOE/);
    return true;
  });
  await assert.rejects(quantizeGguf({ input, output: join(folder, "x.gguf"), type: "Q8_0", tensorTypeOverrides: [{ pattern: "ffn_(", type: "Q8_0" }] }), /not a valid regular expression/);
  await assert.rejects(quantizeGguf({ input, output: input, type: "Q8_0" }), /different file from the input/);
  await assert.rejects(quantizeGguf({ input, output: join(folder, "no-folder", "x.gguf"), type: "Q8_0" }), /output folder .*no-folder does not exist/);

  const garbage = join(folder, "garbage.gguf");
  await writeFile(garbage, Buffer.alloc(4096, 7));
  await assert.rejects(quantizeGguf({ input: garbage, output: join(folder, "x.gguf"), type: "Q8_0" }), (error: unknown) => {
    assert.ok(QuantizeError.is(error, "quantize_failed"), String(error));
    assert.ok(error.message.includes(`llama_model_quantize returned 1 for ${garbage}`), error.message);
    return true;
  });
  assert.equal(existsSync(join(folder, "x.gguf")), false);
  assert.deepEqual(partialFiles(), []);
});
