import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { resolvePython } from "../../src/core/pythonEnvironment";
import { SafetensorsCheckpoint, SafetensorsError, readSafetensorsHeader } from "../../src/core/safetensors";
import { runSidecarCommand } from "../../src/core/sidecarProcess";

const root = join(__dirname, "..", "..");
const scratch = mkdtempSync(join(tmpdir(), "fts-safetensors-"));
const single = join(scratch, "single");
const sharded = join(scratch, "sharded");
let python = "";

before(async () => {
  const resolution = await resolvePython({ configuredPath: undefined, projectRoot: root, env: process.env });
  assert.ok(resolution.ok, "a Python with torch is installed (npm test bootstraps it)");
  python = resolution.python.path;
  const make = (out: string, shards: number): Promise<unknown> =>
    runSidecarCommand({ python, nativeDir: join(root, "native"), args: ["make-tiny-model", "--arch", "gpt-oss", "--out", out, "--vocab-size", "512", "--seed", "3", "--shards", String(shards)] });
  await Promise.all([make(single, 1), make(sharded, 3)]);
});
after(() => rmSync(scratch, { recursive: true, force: true }));

test("lists every tensor of the tiny gpt-oss with dtype, shape and byte range", async () => {
  const checkpoint = await SafetensorsCheckpoint.open(single);
  try {
    assert.equal(checkpoint.names.length, 3 + 2 * 19);
    const embedding = checkpoint.tensor("model.embed_tokens.weight");
    assert.equal(embedding.dtype, "BF16");
    assert.deepEqual(embedding.shape, [512, 64]);
    assert.equal(embedding.byteLength, 512 * 64 * 2);
    const blocks = checkpoint.tensor("model.layers.1.mlp.experts.gate_up_proj_blocks");
    assert.equal(blocks.dtype, "U8");
    assert.deepEqual(blocks.shape, [4, 128, 2, 16]);
    assert.throws(() => checkpoint.tensor("model.layers.9.mlp.router.weight"), (error: unknown) => error instanceof SafetensorsError && /no tensor "model\.layers\.9\.mlp\.router\.weight"/.test(error.message));
    await assert.rejects(checkpoint.read("model.norm.weight", { offset: 100, length: 100 }), /outside tensor "model\.norm\.weight" \(128 bytes\)/);
  } finally {
    await checkpoint.close();
  }
});

test("reads the same bytes as the Python sidecar's reader, from one file and from shards", async () => {
  const names = ["model.embed_tokens.weight", "model.layers.0.self_attn.sinks", "model.layers.1.mlp.experts.down_proj_scales", "lm_head.weight"];
  const script = [
    "import hashlib, json, sys, torch",
    "from finetune_sidecar.safetensors_io import CheckpointReader",
    "reader = CheckpointReader(sys.argv[1])",
    "out = {}",
    "for name in sys.argv[2:]:",
    "    t = reader.get(name).contiguous()",
    "    raw = t.view(torch.uint8) if t.dtype == torch.uint8 else t.view(torch.int16) if t.element_size() == 2 else t",
    "    out[name] = hashlib.sha256(raw.numpy().tobytes()).hexdigest()",
    "print(json.dumps(out))",
  ].join("\n");
  const { stdout } = await promisify(execFile)(python, ["-c", script, single, ...names], { env: { ...process.env, PYTHONPATH: join(root, "native") } });
  const expected = JSON.parse(stdout) as Record<string, string>;
  const { createHash } = await import("node:crypto");
  for (const folder of [single, sharded]) {
    const checkpoint = await SafetensorsCheckpoint.open(folder);
    try {
      for (const name of names) assert.equal(createHash("sha256").update(await checkpoint.read(name)).digest("hex"), expected[name], `${folder}: ${name}`);
    } finally {
      await checkpoint.close();
    }
  }
  const shardedCheckpoint = await SafetensorsCheckpoint.open(sharded);
  assert.equal(shardedCheckpoint.files.length, 3);
  assert.equal(shardedCheckpoint.names.length, 41);
  await shardedCheckpoint.close();
});

/** A safetensors file with a hand-written header (and `dataBytes` zero bytes of data). */
function craftFile(path: string, header: unknown, dataBytes: number, declaredLength?: bigint): void {
  const json = Buffer.from(typeof header === "string" ? header : JSON.stringify(header), "utf8");
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(declaredLength ?? BigInt(json.length));
  writeFileSync(path, Buffer.concat([length, json, Buffer.alloc(dataBytes)]));
}

test("corrupt headers are refused with the file and tensor named", async () => {
  const entry = (dtype: string, shape: number[], offsets: [number, number]): unknown => ({ dtype, shape, data_offsets: offsets });
  const cases: Array<[string, unknown, number, RegExp, bigint?]> = [
    ["huge-header", {}, 0, /declares a 999999999999-byte header/, 999_999_999_999n],
    ["not-json", "{nope", 0, /header that is not valid JSON/],
    ["bad-dtype", { w: entry("Q4", [2], [0, 2]) }, 2, /tensor "w" has unknown dtype "Q4"/],
    ["size-mismatch", { w: entry("BF16", [2, 3], [0, 10]) }, 10, /tensor "w" \(BF16 \[2,3\]\) needs 12 bytes but data_offsets span 10/],
    ["truncated", { w: entry("F32", [4], [0, 16]) }, 8, /tensor "w" ends at byte \d+ but .* is only \d+ bytes; the file is truncated/],
    ["overlap", { a: entry("U8", [4], [0, 4]), b: entry("U8", [4], [2, 6]) }, 8, /tensor "b" overlaps tensor "a"/],
    ["bad-shape", { w: entry("U8", [-1], [0, 0]) }, 0, /tensor "w" has an invalid shape/],
  ];
  for (const [name, header, dataBytes, pattern, declared] of cases) {
    const path = join(scratch, `${name}.safetensors`);
    craftFile(path, header, dataBytes, declared);
    await assert.rejects(readSafetensorsHeader(path), (error: unknown) => error instanceof SafetensorsError && error.file === path && error.message.includes(path) && pattern.test(error.message), name);
  }
});

test("an index that points outside the folder, to a missing shard or to the wrong shard is refused", async () => {
  const folder = join(scratch, "bad-index");
  mkdirSync(folder);
  const index = join(folder, "model.safetensors.index.json");
  craftFile(join(folder, "a.safetensors"), { w: { dtype: "U8", shape: [1], data_offsets: [0, 1] } }, 1);
  const attempts: Array<[Record<string, string>, RegExp]> = [
    [{ w: "../a.safetensors" }, /maps tensor "w" to "\.\.\/a\.safetensors", which is not a \.safetensors file name in the same folder/],
    [{ w: "b.safetensors" }, /lists shard b\.safetensors, which is missing/],
    [{ v: "a.safetensors" }, /places tensor "v" in a\.safetensors, but that shard does not hold it/],
  ];
  for (const [weightMap, pattern] of attempts) {
    writeFileSync(index, JSON.stringify({ weight_map: weightMap }));
    await assert.rejects(SafetensorsCheckpoint.open(folder), (error: unknown) => error instanceof SafetensorsError && pattern.test(error.message), JSON.stringify(weightMap));
  }
  await assert.rejects(SafetensorsCheckpoint.open(join(scratch, "nothing-here")), /has neither model\.safetensors nor model\.safetensors\.index\.json/);
});
