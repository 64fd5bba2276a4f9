import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { GGML_TYPE_TRAITS, GgmlType, GgufValueType, alignOffset, ggmlTensorByteLength } from "../../src/core/gguf/constants";
import { ByteWriter, encodeKeyValue, encodeTensorInfo } from "../../src/core/gguf/encoding";
import { GgufFormatError, readGgufFile, readGgufTensorBytes } from "../../src/core/gguf/reader";
import { GgufWriter, GgufWriterError, type GgufTensorSpec } from "../../src/core/gguf/writer";

const scratch = mkdtempSync(join(tmpdir(), "fts-gguf-writer-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
let fileCounter = 0;
const freshPath = (): string => join(scratch, `file-${++fileCounter}.gguf`);

function patterned(length: number, salt: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + salt * 7) & 0xff;
  return bytes;
}

function tensor(name: string, type: GgmlType, dims: number[], salt = 0): GgufTensorSpec & { bytes: Buffer } {
  const bytes = patterned(ggmlTensorByteLength(type, dims), salt);
  // Several chunks per tensor, as real producers yield one expert or row block at a time.
  const half = Math.floor(bytes.length / 2);
  return { name, type, dims, bytes, data: async function* () { yield bytes.subarray(0, half); yield bytes.subarray(half); } };
}

function isWriterError(code: GgufWriterError["code"], pattern: RegExp): (error: unknown) => boolean {
  return (error) => error instanceof GgufWriterError && error.code === code && pattern.test(error.message);
}

test("calls out of order are refused with the step the writer is at and the call it expects", async () => {
  const writer = new GgufWriter(freshPath());
  await assert.rejects(writer.writeKeyValues(), isWriterError("out_of_order", /writeKeyValues\(\).*step "header".*expects writeHeader\(\)/));
  await assert.rejects(writer.finish(), isWriterError("out_of_order", /expects writeHeader\(\)/));
  writer.addString("general.architecture", "test");
  await writer.writeHeader();
  assert.equal(writer.step, "keyValues");
  assert.throws(() => writer.addUint32("late.key", 1), isWriterError("out_of_order", /addKeyValue\("late.key"\).*expects writeKeyValues\(\)/));
  assert.throws(() => writer.addTensor(tensor("late", GgmlType.F32, [4])), isWriterError("out_of_order", /addTensor\("late"\)/));
  await assert.rejects(writer.writeTensorData(), isWriterError("out_of_order", /expects writeKeyValues\(\)/));
  await writer.writeKeyValues();
  await assert.rejects(writer.writeHeader(), isWriterError("out_of_order", /step "tensorInfos".*expects writeTensorInfos\(\)/));
  await writer.abort();
  assert.equal(writer.step, "aborted");
  await assert.rejects(writer.writeTensorInfos(), isWriterError("out_of_order", /aborted/));
  assert.deepEqual(readdirSync(scratch).filter((name) => name.endsWith(".partial")), [], "abort removed the temporary file");
});

test("duplicate keys and tensor names, and the writer-owned general.alignment, are rejected", () => {
  const writer = new GgufWriter(freshPath());
  writer.addUint32("a.b", 1);
  assert.throws(() => writer.addString("a.b", "again"), isWriterError("duplicate", /"a\.b" was added twice/));
  writer.addTensor(tensor("t", GgmlType.F32, [2]));
  assert.throws(() => writer.addTensor(tensor("t", GgmlType.F16, [2])), isWriterError("duplicate", /Tensor "t" was added twice/));
  assert.throws(() => writer.addUint32("general.alignment", 64), isWriterError("invalid_value", /pass the alignment to the constructor/));
  assert.throws(() => new GgufWriter(freshPath(), 24), isWriterError("invalid_value", /power of two/));
});

test("values must fit their declared type; the error names the key (and array index)", () => {
  const writer = new GgufWriter(freshPath());
  const { UINT8, INT8, UINT32, INT32, UINT64, INT64, FLOAT32, BOOL, STRING, ARRAY } = GgufValueType;
  const refusals: Array<[GgufValueType, unknown, RegExp]> = [
    [UINT32, 2880.5, /"k": UINT32 needs an integer, got 2880\.5/],
    [UINT32, -1, /-1 is outside the UINT32 range/],
    [UINT32, 2 ** 32, /outside the UINT32 range/],
    [INT8, 200, /outside the INT8 range/],
    [UINT8, "7", /UINT8 needs an integer, got "7"/],
    [INT32, 1n << 40n, /outside the INT32 range/],
    [UINT64, -5n, /outside the UINT64 range/],
    [FLOAT32, Number.NaN, /FLOAT32 needs a finite number/],
    [FLOAT32, 1e39, /overflows FLOAT32/],
    [BOOL, 1, /BOOL needs true or false/],
    [STRING, 42, /STRING needs a string/],
  ];
  for (const [type, value, pattern] of refusals) {
    assert.throws(() => writer.addKeyValue("k", type, value as never), isWriterError("invalid_value", pattern), `${type} ${String(value)}`);
  }
  assert.throws(() => writer.addArray("list", UINT32, [1, 2, 3.5]), isWriterError("invalid_value", /"list"\[2\]: UINT32 needs an integer/));
  assert.throws(() => writer.addArray("nested", ARRAY, []), isWriterError("invalid_value", /nested arrays are not supported/));
  assert.throws(() => writer.addKeyValue("notarray", ARRAY, 5 as never, UINT8), isWriterError("invalid_value", /not an array/));
  writer.addKeyValue("big", INT64, -(1n << 62n));
  writer.addKeyValue("u64", UINT64, 2 ** 40);
});

test("tensor specs are checked: name length, dims, block size", () => {
  const writer = new GgufWriter(freshPath());
  assert.throws(() => writer.addTensor(tensor("x".repeat(64), GgmlType.F32, [1])), isWriterError("invalid_tensor", /1 to 63 bytes/));
  assert.throws(() => writer.addTensor({ ...tensor("five", GgmlType.F32, [1]), dims: [1, 1, 1, 1, 1] }), isWriterError("invalid_tensor", /"five": needs 1 to 4 dims/));
  assert.throws(() => writer.addTensor({ ...tensor("zero", GgmlType.F32, [1]), dims: [4, 0] }), isWriterError("invalid_tensor", /positive integers/));
  assert.throws(() => writer.addTensor({ ...tensor("odd", GgmlType.F32, [1]), type: GgmlType.MXFP4, dims: [48, 2] }), isWriterError("invalid_tensor", /"odd": ne\[0\] = 48 is not a multiple of MXFP4's block size 32/));
});

test("round trip: every value type and tensor type reads back with our reader and with node-llama-cpp", async () => {
  const path = freshPath();
  const writer = new GgufWriter(path);
  const T = GgufValueType;
  writer.addString("general.architecture", "llama");
  writer.addString("general.name", "round trip ✓");
  const scalars: Array<[string, GgufValueType, number | bigint | boolean]> = [
    ["test.u8", T.UINT8, 255], ["test.i8", T.INT8, -128], ["test.u16", T.UINT16, 65535], ["test.i16", T.INT16, -32768],
    ["test.u32", T.UINT32, 4294967295], ["test.i32", T.INT32, -2147483648], ["test.f32", T.FLOAT32, 0.5],
    ["test.bool", T.BOOL, true], ["test.u64", T.UINT64, 1n << 60n], ["test.i64", T.INT64, -(1n << 60n)], ["test.f64", T.FLOAT64, Math.PI],
  ];
  for (const [key, type, value] of scalars) writer.addKeyValue(key, type, value);
  writer.addArray("test.strings", T.STRING, ["a", "", "Ġthe", "<|return|>"]);
  writer.addArray("test.i32s", T.INT32, Int32Array.from([1, -3, 5]));
  const tensors = [
    tensor("f32.weight", GgmlType.F32, [3, 5], 1),
    tensor("f16.weight", GgmlType.F16, [7], 2),
    tensor("bf16.weight", GgmlType.BF16, [4, 2, 3], 3),
    tensor("mxfp4.weight", GgmlType.MXFP4, [64, 3, 2], 4),
    tensor("q8.weight", GgmlType.Q8_0, [32, 5], 5),
  ];
  for (const spec of tensors) writer.addTensor(spec);
  const planned = writer.plannedFileSize;
  const progress: number[] = [];
  const result = await writer.writeAll({ onProgress: (p) => progress.push(p.bytesWritten) });
  assert.equal(writer.step, "done");

  assert.equal(result.bytes, planned);
  assert.equal(statSync(path).size, planned);
  assert.equal(progress.at(-1), planned, "progress ends at the file size");
  assert.ok(progress.every((value, i) => i === 0 || value >= progress[i - 1]!), "progress never goes back");

  const contents = await readGgufFile(path);
  assert.equal(contents.alignment, 32);
  assert.equal(contents.dataOffset % 32, 0);
  const get = (key: string): unknown => contents.metadata.get(key)?.value;
  assert.equal(get("general.name"), "round trip ✓");
  for (const [key, , value] of scalars) assert.equal(get(key), key === "test.f64" ? Math.PI : value, key);
  assert.deepEqual(get("test.strings"), ["a", "", "Ġthe", "<|return|>"]);
  assert.deepEqual(get("test.i32s"), [1, -3, 5]);
  assert.equal(get("general.alignment"), 32);
  // Size = header up to the aligned data start + every tensor padded to the alignment.
  const dataBytes = tensors.reduce((sum, spec) => sum + alignOffset(spec.bytes.length, 32), 0);
  assert.equal(contents.fileSize, contents.dataOffset + dataBytes);
  for (const spec of tensors) {
    const record = contents.tensors.find((candidate) => candidate.name === spec.name);
    assert.ok(record, spec.name);
    assert.deepEqual(record.dims, spec.dims);
    assert.equal(record.type, spec.type);
    assert.ok((await readGgufTensorBytes(contents, spec.name)).equals(spec.bytes), `${spec.name} bytes`);
  }

  const { readGgufFileInfo } = await import("node-llama-cpp");
  const info = await readGgufFileInfo(path, { logWarnings: false });
  assert.equal(info.version, 3);
  const metadata = info.metadata as unknown as Record<string, Record<string, unknown>>;
  assert.equal(metadata["general"]?.["name"], "round trip ✓");
  assert.equal(metadata["test"]?.["u32"], 4294967295);
  assert.deepEqual(metadata["test"]?.["strings"], ["a", "", "Ġthe", "<|return|>"]);
  assert.deepEqual(
    info.tensorInfo?.map((t) => [t.name, t.dimensions.map(Number), t.ggmlType, Number(t.fileOffset)]),
    contents.tensors.map((t) => [t.name, t.dims, t.type, t.fileOffset]),
  );
});

test("a producer that yields the wrong number of bytes fails the write and leaves no file", async () => {
  const path = freshPath();
  const writer = new GgufWriter(path);
  writer.addTensor({ name: "short.weight", type: GgmlType.F16, dims: [8], data: function* () { yield new Uint8Array(10); } });
  await assert.rejects(writer.writeAll(), isWriterError("tensor_data", /"short\.weight" \(F16 \[8\]\) needs 16 bytes but its producer gave 10/));
  assert.equal(existsSync(path), false);
  assert.deepEqual(readdirSync(scratch).filter((name) => name.endsWith(".partial")), []);
});

test("aborting mid-write removes the temporary file and keeps the previous file intact", async () => {
  const path = freshPath();
  writeFileSync(path, "previous export");
  const controller = new AbortController();
  const writer = new GgufWriter(path);
  for (let i = 0; i < 4; i++) {
    writer.addTensor({
      name: `t${i}`,
      type: GgmlType.F32,
      dims: [1024],
      data: async function* () {
        if (i === 2) controller.abort();
        yield new Uint8Array(4096);
      },
    });
  }
  await assert.rejects(writer.writeAll({ signal: controller.signal }), (error: unknown) => (error as Error).name === "AbortError");
  assert.equal(writer.step, "aborted");
  assert.equal(readFileSync(path, "utf8"), "previous export");
  assert.deepEqual(readdirSync(scratch).filter((name) => name.endsWith(".partial")), []);
});

/** A hand-made file; each field can be set to something a writer would never produce. */
function craft(options: { magic?: string; version?: number; tensorCount?: bigint; kvCount?: bigint; tensors?: Array<{ name: string; dims: number[]; type: number; offset: number }>; dataBytes?: number; stringLength?: bigint }): Buffer {
  const out = new ByteWriter();
  out.raw(Buffer.from(options.magic ?? "GGUF", "latin1"));
  out.u32(options.version ?? 3);
  const tensors = options.tensors ?? [];
  out.u64(options.tensorCount ?? BigInt(tensors.length));
  out.u64(options.kvCount ?? 1n);
  if (options.stringLength !== undefined) out.u64(options.stringLength);
  else encodeKeyValue(out, { key: "general.architecture", type: GgufValueType.STRING, value: "llama" });
  for (const info of tensors) encodeTensorInfo(out, info);
  const header = out.bytes();
  return Buffer.concat([header, Buffer.alloc(alignOffset(header.length, 32) - header.length), Buffer.alloc(options.dataBytes ?? 0)]);
}

test("the reader rejects corrupt files with a message naming the file and the problem", async () => {
  const cases: Array<[string, Buffer, RegExp]> = [
    ["bad magic", craft({ magic: "GGML" }), /is not a GGUF file \(magic "GGML"/],
    ["old version", craft({ version: 2 }), /GGUF version 2; only version 3/],
    ["absurd tensor count", craft({ tensorCount: 1n << 40n }), /the tensor count is 1099511627776, more than this file can hold/],
    ["absurd metadata count", craft({ kvCount: 1n << 50n }), /the metadata count is \d+, more than this file can hold/],
    ["absurd string length", craft({ stringLength: 1n << 33n }), /length of the key of metadata entry 0 is 8589934592/],
    ["tensor past the end", craft({ tensors: [{ name: "w", dims: [16], type: GgmlType.F32, offset: 0 }], dataBytes: 32 }), /"w" \(64 bytes at \d+\) ends past the end of the file/],
    ["misaligned offset", craft({ tensors: [{ name: "w", dims: [4], type: GgmlType.F32, offset: 8 }], dataBytes: 64 }), /"w" starts at data offset 8, not a multiple of the alignment 32/],
    ["unknown type", craft({ tensors: [{ name: "w", dims: [4], type: 4, offset: 0 }], dataBytes: 64 }), /"w" has unknown ggml type 4/],
    ["too many dims", craft({ tensors: [{ name: "w", dims: [1, 1, 1, 1, 1], type: 0, offset: 0 }], dataBytes: 64 }), /"w" has 5 dims/],
    ["block size", craft({ tensors: [{ name: "w", dims: [40], type: GgmlType.Q8_0, offset: 0 }], dataBytes: 64 }), /"w" \(Q8_0\): ne\[0\] = 40 is not a multiple/],
    ["overlap", craft({ tensors: [{ name: "a", dims: [16], type: 0, offset: 0 }, { name: "b", dims: [16], type: 0, offset: 32 }], dataBytes: 128 }), /"b" overlaps tensor "a"/],
    ["truncated header", craft({}).subarray(0, 30), /truncated or corrupt/],
  ];
  for (const [what, bytes, pattern] of cases) {
    const path = join(scratch, `${what.replace(/ /g, "-")}.gguf`);
    writeFileSync(path, bytes);
    await assert.rejects(readGgufFile(path), (error: unknown) => error instanceof GgufFormatError && error.message.includes(path) && pattern.test(error.message), what);
  }
  assert.equal(GGML_TYPE_TRAITS[GgmlType.MXFP4].bytesPerBlock, 17);
});
