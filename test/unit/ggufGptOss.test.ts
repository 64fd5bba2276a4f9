import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { GgmlType, GgufTokenType, LlamaFileType } from "../../src/core/gguf/constants";
import { GgufExportError } from "../../src/core/gguf/errors";
import { decodeFloats } from "../../src/core/gguf/floats";
import { ensureDiskSpace, exportGptOssToGguf, type GgufOutputType } from "../../src/core/gguf/gptOssConverter";
import { dequantizeGgmlBlock } from "../../src/core/gguf/mxfp4";
import { readGgufFile, readGgufTensorBytes, type GgufFileContents } from "../../src/core/gguf/reader";
import { resolvePython } from "../../src/core/pythonEnvironment";
import { runSidecarCommand } from "../../src/core/sidecarProcess";
import { BYTE_TO_UNICODE } from "../../src/core/tokenizers/bytesToUnicode";

// Exports a tiny GPT-OSS (2 layers, hidden 64, 4 experts, MXFP4 experts in the HF layout) and
// checks the GGUF against independent expectations computed by the Python sidecar's own
// MXFP4 / safetensors code and numpy. The small-vocabulary model (1024 rows) keeps these
// checks fast; ggufGptOssInference.test.ts loads full-vocabulary exports in llama.cpp.

const root = join(__dirname, "..", "..");
const scratch = mkdtempSync(join(tmpdir(), "fts-gguf-gptoss-"));
const model = join(scratch, "tiny");
const sharded = join(scratch, "tiny-sharded");
const dense = join(scratch, "tiny-dense");
const expected = join(scratch, "expected");
const VOCAB = 1024;
const EXPERTS = 4;
const HIDDEN = 64;
const INTERMEDIATE = 64;
let python = "";
const exports = new Map<string, GgufFileContents>();
const seconds = new Map<string, number>();

/** A byte-level BPE tokenizer over the 256 byte tokens, a few merges and the three specials. */
function writeSmallTokenizer(folder: string): void {
  const vocab: Record<string, number> = {};
  BYTE_TO_UNICODE.forEach((char, byte) => (vocab[char] = byte));
  const merges: Array<[string, string]> = [["h", "e"], ["l", "l"], ["Ġ", "t"], ["Ġt", "he"], ["o", "r"]];
  merges.forEach(([a, b], i) => (vocab[a + b] = 256 + i));
  const added = ["<|startoftext|>", "<|endoftext|>", "<|return|>"].map((content, i) => ({ id: VOCAB - 3 + i, content, special: true }));
  added.push({ id: 300, content: "<tool>", special: false });
  writeFileSync(join(folder, "tokenizer.json"), JSON.stringify({ version: "1.0", added_tokens: added, model: { type: "BPE", vocab, merges } }));
  writeFileSync(join(folder, "tokenizer_config.json"), JSON.stringify({ bos_token: "<|startoftext|>", eos_token: { content: "<|return|>" }, pad_token: "<|endoftext|>", chat_template: "{{ messages }}" }));
}

/** Writes what the GGUF must contain, computed with the sidecar's code (not ours). */
const EXPECTATIONS_SCRIPT = String.raw`
import json, os, sys, numpy as np, torch
from finetune_sidecar import mxfp4
from finetune_sidecar.safetensors_io import CheckpointReader, write_safetensors
src, out, dense = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(out, exist_ok=True)
r = CheckpointReader(src)
def save(name, t): t.detach().to(torch.float32).contiguous().numpy().tofile(os.path.join(out, name))
emb = r.get("model.embed_tokens.weight").to(torch.float32)
save("token_embd.f32", emb)
emb.numpy().astype(np.float16).tofile(os.path.join(out, "token_embd.f16"))
p = "model.layers.1.mlp.experts."
gate_up = mxfp4.dequantize(r.get(p + "gate_up_proj_blocks"), r.get(p + "gate_up_proj_scales"))
down = mxfp4.dequantize(r.get(p + "down_proj_blocks"), r.get(p + "down_proj_scales"))
save("gate", gate_up[:, 0::2, :]); save("up", gate_up[:, 1::2, :]); save("down", down)
bias = r.get(p + "gate_up_proj_bias")
save("gate_bias", bias[:, 0::2]); save("up_bias", bias[:, 1::2]); save("down_bias", r.get(p + "down_proj_bias"))
tensors = {}
for name in r.keys():
    if name.endswith("_blocks") or name.endswith("_scales"):
        continue
    tensors[name] = r.get(name)
for layer in range(2):
    q = "model.layers.%d.mlp.experts." % layer
    for proj in ("gate_up_proj", "down_proj"):
        w = mxfp4.dequantize(r.get(q + proj + "_blocks"), r.get(q + proj + "_scales"), torch.bfloat16)
        tensors[q + proj] = w.transpose(1, 2).contiguous()  # HF dense layout [E, in, out]
os.makedirs(dense, exist_ok=True)
write_safetensors(os.path.join(dense, "model.safetensors"), tensors, {"format": "pt"})
config = json.load(open(os.path.join(src, "config.json")))
config.pop("quantization_config")
json.dump(config, open(os.path.join(dense, "config.json"), "w"))
`;

before(async () => {
  const resolution = await resolvePython({ configuredPath: undefined, projectRoot: root, env: process.env });
  assert.ok(resolution.ok, "a Python with torch is installed (npm test bootstraps it)");
  python = resolution.python.path;
  const make = (out: string, shards: number): Promise<unknown> =>
    runSidecarCommand({ python, nativeDir: join(root, "native"), args: ["make-tiny-model", "--arch", "gpt-oss", "--out", out, "--vocab-size", String(VOCAB), "--seed", "5", "--shards", String(shards)] });
  await Promise.all([make(model, 1), make(sharded, 3)]);
  writeSmallTokenizer(model);
  writeSmallTokenizer(sharded);
  await promisify(execFile)(python, ["-c", EXPECTATIONS_SCRIPT, model, expected, dense], { env: { ...process.env, PYTHONPATH: join(root, "native") } });
  writeSmallTokenizer(dense);
  const variants: Array<[string, string, GgufOutputType, "mxfp4" | "same" | undefined]> = [
    ["f32", model, "f32", undefined],
    ["f16", model, "f16", undefined],
    ["bf16", model, "bf16", undefined],
    ["f32-same", model, "f32", "same"],
    ["f16-same", model, "f16", "same"],
    ["dense-f32", dense, "f32", undefined],
    ["dense-mxfp4", dense, "bf16", "mxfp4"],
    ["sharded-f16", sharded, "f16", undefined],
  ];
  for (const [name, folder, outputType, expertsAs] of variants) {
    const outFile = join(scratch, `${name}.gguf`);
    const result = await exportGptOssToGguf({ modelFolder: folder, outFile, outputType, modelName: "tiny", ...(expertsAs ? { expertsAs } : {}) });
    seconds.set(name, result.seconds);
    exports.set(name, await readGgufFile(outFile));
  }
});
after(() => rmSync(scratch, { recursive: true, force: true }));

const file = (name: string): GgufFileContents => exports.get(name) ?? assert.fail(`no export ${name}`);
const meta = (name: string, key: string): unknown => file(name).metadata.get(key)?.value;
const expectedFloats = (name: string): Float32Array => {
  const bytes = readFileSync(join(expected, name));
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
};
async function tensorFloats(name: string, tensor: string): Promise<Float32Array> {
  const contents = file(name);
  const record = contents.tensors.find((t) => t.name === tensor) ?? assert.fail(`${name} has no ${tensor}`);
  const bytes = await readGgufTensorBytes(contents, tensor);
  if (record.type === GgmlType.MXFP4) {
    const values = new Float32Array((bytes.length / 17) * 32);
    for (let b = 0; b < bytes.length / 17; b++) dequantizeGgmlBlock(bytes, b * 17, values, b * 32);
    return values;
  }
  return decodeFloats(bytes, record.type === GgmlType.F32 ? "F32" : record.type === GgmlType.F16 ? "F16" : "BF16");
}
const sameNumbers = (actual: Float32Array, wanted: Float32Array, what: string): void => {
  assert.equal(actual.length, wanted.length, `${what}: length`);
  for (let i = 0; i < wanted.length; i++) if (actual[i] !== wanted[i] && !(actual[i] === 0 && wanted[i] === 0)) assert.fail(`${what}[${i}] = ${actual[i]}, expected ${wanted[i]}`);
};

test("writes the gpt-oss hyperparameters llama.cpp reads, with the right types", () => {
  const expectedValues: Record<string, unknown> = {
    "general.architecture": "gpt-oss",
    "general.name": "tiny",
    "general.quantization_version": 2,
    "general.alignment": 32,
    "gpt-oss.block_count": 2,
    "gpt-oss.context_length": 131072,
    "gpt-oss.embedding_length": HIDDEN,
    "gpt-oss.feed_forward_length": INTERMEDIATE,
    "gpt-oss.expert_feed_forward_length": INTERMEDIATE,
    "gpt-oss.attention.head_count": 4,
    "gpt-oss.attention.head_count_kv": 2,
    "gpt-oss.attention.key_length": 16,
    "gpt-oss.attention.value_length": 16,
    "gpt-oss.attention.sliding_window": 128,
    "gpt-oss.attention.layer_norm_rms_epsilon": Math.fround(1e-5),
    "gpt-oss.rope.freq_base": 150000,
    "gpt-oss.expert_count": EXPERTS,
    "gpt-oss.expert_used_count": 2,
    "gpt-oss.rope.scaling.type": "yarn",
    "gpt-oss.rope.scaling.factor": 32,
    "gpt-oss.rope.scaling.original_context_length": 4096,
    "gpt-oss.rope.scaling.yarn_beta_fast": 32,
    "gpt-oss.rope.scaling.yarn_beta_slow": 1,
  };
  for (const [key, value] of Object.entries(expectedValues)) assert.equal(meta("f32", key), value, key);
  assert.equal(file("f32").metadata.get("gpt-oss.attention.key_length")?.type, 4, "key_length is UINT32");
  assert.equal(file("f32").metadata.get("gpt-oss.rope.freq_base")?.type, 6, "freq_base is FLOAT32");
});

test("node-llama-cpp's GGUF parser reads the same metadata and tensor infos as our reader", async () => {
  const { readGgufFileInfo } = await import("node-llama-cpp");
  const contents = file("f16");
  const info = await readGgufFileInfo(contents.path, { logWarnings: false });
  assert.equal(info.version, 3);
  const flat = info.metadata as unknown as Record<string, unknown>;
  const lookup = (key: string): unknown => key.split(".").reduce<unknown>((node, part) => (node as Record<string, unknown> | undefined)?.[part], flat);
  for (const [key, entry] of contents.metadata) {
    const theirs = lookup(key);
    if (Array.isArray(entry.value)) assert.deepEqual([...(theirs as unknown[])], entry.value, key);
    else assert.equal(theirs, entry.value, key);
  }
  assert.equal(lookup("gpt-oss.attention.key_length"), 16);
  assert.deepEqual(
    info.tensorInfo?.map((t) => ({ name: t.name, dims: t.dimensions.map(Number), type: t.ggmlType as number, at: Number(t.fileOffset) })),
    contents.tensors.map((t) => ({ name: t.name, dims: t.dims, type: t.type as number, at: t.fileOffset })),
  );
});

test("a sharded checkpoint exports to the same bytes as the single-file one", () => {
  assert.ok(readFileSync(file("sharded-f16").path).equals(readFileSync(file("f16").path)));
});

test("general.file_type follows §3.6: MXFP4 experts → MXFP4_MOE, otherwise the output type", () => {
  assert.equal(meta("f32", "general.file_type"), LlamaFileType.MOSTLY_MXFP4_MOE);
  assert.equal(meta("f16", "general.file_type"), LlamaFileType.MOSTLY_MXFP4_MOE);
  assert.equal(meta("f32-same", "general.file_type"), LlamaFileType.ALL_F32);
  assert.equal(meta("f16-same", "general.file_type"), LlamaFileType.MOSTLY_F16);
  assert.equal(meta("dense-f32", "general.file_type"), LlamaFileType.ALL_F32, "a dense (merged) checkpoint is not labelled MXFP4");
  assert.equal(meta("dense-mxfp4", "general.file_type"), LlamaFileType.MOSTLY_MXFP4_MOE);
});

test("tensor names, dims (reversed torch shapes) and types follow the dtype rules", () => {
  const byName = new Map(file("f16").tensors.map((t) => [t.name, t]));
  assert.equal(byName.size, 3 + 2 * 19);
  const F32 = GgmlType.F32;
  const F16 = GgmlType.F16;
  const want: Array<[string, number[], number]> = [
    ["token_embd.weight", [HIDDEN, VOCAB], F16],
    ["output.weight", [HIDDEN, VOCAB], F16],
    ["output_norm.weight", [HIDDEN], F32],
    ["blk.0.attn_norm.weight", [HIDDEN], F32],
    ["blk.0.post_attention_norm.weight", [HIDDEN], F32],
    ["blk.0.attn_q.weight", [HIDDEN, 64], F16],
    ["blk.0.attn_q.bias", [64], F32],
    ["blk.0.attn_k.weight", [HIDDEN, 32], F16],
    ["blk.0.attn_v.bias", [32], F32],
    ["blk.1.attn_output.weight", [64, HIDDEN], F16],
    ["blk.1.attn_output.bias", [HIDDEN], F32],
    ["blk.1.attn_sinks.weight", [4], F32],
    ["blk.1.ffn_gate_inp.weight", [HIDDEN, EXPERTS], F32],
    ["blk.1.ffn_gate_inp.bias", [EXPERTS], F32],
    ["blk.1.ffn_gate_exps.weight", [HIDDEN, INTERMEDIATE, EXPERTS], GgmlType.MXFP4],
    ["blk.1.ffn_up_exps.weight", [HIDDEN, INTERMEDIATE, EXPERTS], GgmlType.MXFP4],
    ["blk.1.ffn_down_exps.weight", [INTERMEDIATE, HIDDEN, EXPERTS], GgmlType.MXFP4],
    ["blk.1.ffn_gate_exps.bias", [INTERMEDIATE, EXPERTS], F32],
    ["blk.1.ffn_down_exps.bias", [HIDDEN, EXPERTS], F32],
  ];
  for (const [name, dims, type] of want) {
    const tensor = byName.get(name) ?? assert.fail(`missing ${name}`);
    assert.deepEqual([tensor.dims, tensor.type], [dims, type], name);
  }
  assert.equal(file("f16-same").tensors.find((t) => t.name === "blk.0.ffn_up_exps.weight")?.type, F16);
  assert.equal(file("bf16").tensors.find((t) => t.name === "blk.0.attn_v.weight")?.type, GgmlType.BF16);
});

test("float tensors: F32 is the exact bf16 value, F16 matches numpy's rounding", async () => {
  sameNumbers(await tensorFloats("f32", "token_embd.weight"), expectedFloats("token_embd.f32"), "F32 token_embd");
  const f16 = await readGgufTensorBytes(file("f16"), "token_embd.weight");
  assert.ok(f16.equals(readFileSync(join(expected, "token_embd.f16"))), "F16 token_embd differs from numpy astype(float16)");
});

test("MXFP4 experts: repacked blocks dequantize (ggml order) to the sidecar's HF dequantization; gate = even rows, up = odd rows", async () => {
  for (const [tensor, reference] of [["gate_exps", "gate"], ["up_exps", "up"], ["down_exps", "down"]] as const) {
    const wanted = expectedFloats(reference);
    sameNumbers(await tensorFloats("f32", `blk.1.ffn_${tensor}.weight`), wanted, `MXFP4 ${tensor}`);
    sameNumbers(await tensorFloats("f32-same", `blk.1.ffn_${tensor}.weight`), wanted, `dequantized F32 ${tensor}`);
    sameNumbers(await tensorFloats("dense-f32", `blk.1.ffn_${tensor}.weight`), wanted, `dense-source F32 ${tensor}`);
  }
  for (const [tensor, reference] of [["gate_exps", "gate_bias"], ["up_exps", "up_bias"], ["down_exps", "down_bias"]] as const) {
    sameNumbers(await tensorFloats("f16", `blk.1.ffn_${tensor}.bias`), expectedFloats(reference), `${tensor} bias`);
  }
});

test("dense (merged) experts re-quantized to MXFP4 give the original blocks byte for byte", async () => {
  for (const layer of [0, 1]) {
    for (const tensor of ["gate_exps", "up_exps", "down_exps"]) {
      const name = `blk.${layer}.ffn_${tensor}.weight`;
      assert.ok((await readGgufTensorBytes(file("dense-mxfp4"), name)).equals(await readGgufTensorBytes(file("bf16"), name)), name);
    }
  }
});

test("file size is the aligned header plus each tensor's size for its type, padded to 32", () => {
  for (const [name, contents] of exports) {
    const data = contents.tensors.reduce((sum, t) => sum + Math.ceil(t.byteLength / 32) * 32, 0);
    assert.equal(contents.fileSize, contents.dataOffset + data, name);
    const mxfp4 = contents.tensors.filter((t) => t.type === GgmlType.MXFP4);
    for (const t of mxfp4) assert.equal(t.byteLength, (t.dims[0]! / 32) * 17 * t.dims[1]! * t.dims[2]!, `${name} ${t.name}`);
  }
  assert.ok(file("f32").fileSize > file("f16").fileSize && file("f16").fileSize === file("bf16").fileSize);
  console.log(`export seconds: ${[...seconds].map(([name, s]) => `${name} ${s.toFixed(3)}`).join(", ")}`);
  console.log(`file bytes: ${[...exports].map(([name, c]) => `${name} ${c.fileSize}`).join(", ")}`);
});

test("tokenizer metadata: tokens by id, control/user-defined/unused types, merges, special ids, template", () => {
  const tokens = meta("f16", "tokenizer.ggml.tokens") as string[];
  const types = meta("f16", "tokenizer.ggml.token_type") as number[];
  assert.equal(meta("f16", "tokenizer.ggml.model"), "gpt2");
  assert.equal(meta("f16", "tokenizer.ggml.pre"), "gpt-4o");
  assert.equal(tokens.length, VOCAB);
  assert.deepEqual([tokens[65], types[65]], ["A", GgufTokenType.NORMAL]);
  assert.deepEqual([tokens[32], types[32]], ["Ġ", GgufTokenType.NORMAL], "bytes use GPT-2's byte-to-unicode alphabet");
  assert.deepEqual([tokens[259], types[259]], ["Ġthe", GgufTokenType.NORMAL]);
  assert.deepEqual([tokens[300], types[300]], ["<tool>", GgufTokenType.USER_DEFINED]);
  assert.deepEqual([tokens[500], types[500]], ["[PAD500]", GgufTokenType.UNUSED]);
  assert.deepEqual([tokens[VOCAB - 1], types[VOCAB - 1]], ["<|return|>", GgufTokenType.CONTROL]);
  assert.deepEqual(meta("f16", "tokenizer.ggml.merges"), ["h e", "l l", "Ġ t", "Ġt he", "o r"]);
  assert.equal(meta("f16", "tokenizer.ggml.bos_token_id"), VOCAB - 3);
  assert.equal(meta("f16", "tokenizer.ggml.eos_token_id"), VOCAB - 1);
  assert.equal(meta("f16", "tokenizer.ggml.padding_token_id"), VOCAB - 2);
  assert.equal(meta("f16", "tokenizer.chat_template"), "{{ messages }}");
});

test("refuses other architectures, missing tokenizers and tensors that disagree with config.json", async () => {
  const variant = (name: string, edit: (config: Record<string, unknown>) => void, withTokenizer = true): string => {
    const folder = join(scratch, name);
    cpSync(model, folder, { recursive: true });
    const config = JSON.parse(readFileSync(join(folder, "config.json"), "utf8")) as Record<string, unknown>;
    edit(config);
    writeFileSync(join(folder, "config.json"), JSON.stringify(config));
    if (!withTokenizer) rmSync(join(folder, "tokenizer.json"));
    return folder;
  };
  const attempt = (folder: string): Promise<unknown> => exportGptOssToGguf({ modelFolder: folder, outFile: join(folder, "out.gguf"), outputType: "f16" });
  await assert.rejects(
    attempt(variant("llama", (c) => (c["model_type"] = "llama"))),
    (e: unknown) => GgufExportError.is(e, "unsupported_architecture") && /model_type "llama"/.test(e.message) && /supported: gpt_oss \(GptOssForCausalLM\)/.test(e.message),
  );
  await assert.rejects(attempt(variant("no-tokenizer", () => undefined, false)), (e: unknown) => GgufExportError.is(e, "missing_file") && /has no tokenizer\.json/.test(e.message));
  await assert.rejects(
    attempt(variant("heads", (c) => (c["num_attention_heads"] = 8))),
    (e: unknown) => GgufExportError.is(e, "tensor_shape") && /"model\.layers\.0\.self_attn\.q_proj\.weight" in .*model\.safetensors has shape \[64, 64\], but config\.json implies \[128, 64\]/.test(e.message),
  );
  await assert.rejects(attempt(variant("vocab", (c) => (c["vocab_size"] = 512))), (e: unknown) => GgufExportError.is(e, "tokenizer") && /id 1021.*512 embedding rows/.test(e.message));
  await assert.rejects(
    attempt(variant("layers", (c) => (c["layer_types"] = ["full_attention", "sliding_attention"]))),
    (e: unknown) => GgufExportError.is(e, "bad_config") && /layer_types must alternate/.test(e.message),
  );
  await assert.rejects(
    exportGptOssToGguf({ modelFolder: model, outFile: join(scratch, "x.gguf"), outputType: "q4" as GgufOutputType }),
    (e: unknown) => GgufExportError.is(e, "bad_option") && /choose one of f32, f16, bf16/.test(e.message),
  );
  assert.equal(existsSync(join(scratch, "llama", "out.gguf")), false);
});

test("the disk-space preflight names the bytes needed and free", async () => {
  await assert.rejects(
    ensureDiskSpace(scratch, Number.MAX_SAFE_INTEGER, join(scratch, "huge.gguf")),
    (e: unknown) => GgufExportError.is(e, "disk_space") && /needs .* \(9007199254740991 bytes\) but .* has only .* \(\d+ bytes\) free/.test(e.message),
  );
  await ensureDiskSpace(scratch, 1);
});

test("progress runs to the file size; cancelling removes the temporary file", async () => {
  const outFile = join(scratch, "progress.gguf");
  const seen: number[] = [];
  const result = await exportGptOssToGguf({ modelFolder: model, outFile, outputType: "f16", onProgress: (p) => seen.push(p.bytesWritten) });
  assert.equal(seen.at(-1), result.bytes);
  assert.ok(seen.length > 10);

  const controller = new AbortController();
  const cancelled = join(scratch, "cancelled.gguf");
  await assert.rejects(
    exportGptOssToGguf({ modelFolder: model, outFile: cancelled, outputType: "f32", signal: controller.signal, onProgress: (p) => p.tensor?.startsWith("blk.1") && controller.abort() }),
    (e: unknown) => (e as Error).name === "AbortError",
  );
  assert.equal(existsSync(cancelled), false);
  assert.deepEqual(readdirSync(scratch).filter((name) => name.includes(".partial")), []);
});
