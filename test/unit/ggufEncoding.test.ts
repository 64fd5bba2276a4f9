import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { resolvePython } from "../../src/core/pythonEnvironment";
import { convertFloats, f16BitsToF32, f32BitsToBf16Bits, f32BitsToF16Bits, float32Bits, float32FromBits } from "../../src/core/gguf/floats";
import {
  E2M1_VALUES,
  dequantizeGgmlBlock,
  dequantizeHfBlock,
  quantizeGgmlBlock,
  repackHfBlockToGgml,
} from "../../src/core/gguf/mxfp4";

const root = join(__dirname, "..", "..");
const scratch = mkdtempSync(join(tmpdir(), "fts-gguf-encoding-"));
let python = "";

before(async () => {
  const resolution = await resolvePython({ configuredPath: undefined, projectRoot: root, env: process.env });
  assert.ok(resolution.ok, "a Python with torch and numpy is installed (npm test bootstraps it)");
  python = resolution.python.path;
});
after(() => rmSync(scratch, { recursive: true, force: true }));

const half = (value: number): number => f32BitsToF16Bits(float32Bits(value));

test("f32 → f16 rounds to nearest, ties to even, at every boundary", () => {
  const cases: Array<[string, number, number]> = [
    ["+0", 0, 0x0000],
    ["-0", -0, 0x8000],
    ["1", 1, 0x3c00],
    ["-2", -2, 0xc000],
    ["largest half", 65504, 0x7bff],
    ["just below the overflow tie", 65519.99, 0x7bff],
    ["overflow tie rounds to even = infinity", 65520, 0x7c00],
    ["far overflow", 1e10, 0x7c00],
    ["1 + half an ulp ties to even (down)", 1 + 2 ** -11, 0x3c00],
    ["1 + 3 half ulps ties to even (up)", 1 + 3 * 2 ** -11, 0x3c02],
    ["1 + just over half an ulp rounds up", 1 + 2 ** -11 + 2 ** -23, 0x3c01],
    ["smallest subnormal", 2 ** -24, 0x0001],
    ["half the smallest subnormal ties to zero", 2 ** -25, 0x0000],
    ["just over half the smallest subnormal", float32FromBits(float32Bits(2 ** -25) + 1), 0x0001],
    ["1.5 subnormal ulps ties to even (2)", 3 * 2 ** -25, 0x0002],
    ["largest subnormal", 1023 * 2 ** -24, 0x03ff],
    ["subnormal rounding carries into the smallest normal", 1023.5 * 2 ** -24, 0x0400],
    ["smallest normal", 2 ** -14, 0x0400],
    ["far underflow", 1e-9, 0x0000],
    ["negative far underflow keeps the sign", -1e-9, 0x8000],
    ["+inf", Infinity, 0x7c00],
    ["-inf", -Infinity, 0xfc00],
  ];
  for (const [what, value, expected] of cases) assert.equal(half(value).toString(16), expected.toString(16), what);
  assert.equal(f32BitsToF16Bits(0x7fc00000), 0x7e00, "NaN stays a quiet NaN");
  assert.ok(Number.isNaN(f16BitsToF32(0x7e00)));
});

test("bf16 → f16 goes through the exact f32 value, and f32 → bf16 rounds like ggml", () => {
  // bf16 0x3f81 = 1.0078125, exactly representable in half.
  assert.equal(convertFloats(Buffer.from([0x81, 0x3f]), "BF16", "F16").readUInt16LE(0), 0x3c08);
  // bf16 0x4780 = 65536 overflows half.
  assert.equal(convertFloats(Buffer.from([0x80, 0x47]), "BF16", "F16").readUInt16LE(0), 0x7c00);
  assert.equal(f32BitsToBf16Bits(0x3f808000), 0x3f80, "tie rounds to even (down)");
  assert.equal(f32BitsToBf16Bits(0x3f818000), 0x3f82, "tie rounds to even (up)");
  assert.equal(f32BitsToBf16Bits(0x3f808001), 0x3f81, "above the tie rounds up");
  assert.equal(f32BitsToBf16Bits(0x7f7fffff), 0x7f80, "largest float rounds to infinity");
  assert.equal(convertFloats(Buffer.from([0x34, 0x12]), "BF16", "F32").readUInt32LE(0), 0x12340000, "widening is a shift");
});

test("f32 → f16 and f32 → bf16 match numpy / torch bit for bit on 200k values near rounding ties", async () => {
  const count = 200_000;
  const bits = new Uint32Array(count);
  let seed = 12345;
  const random = (): number => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed;
  };
  for (let i = 0; i < count; i++) {
    // Exponents across the whole half range (subnormals, normals, overflow) and low mantissa
    // bits that often sit exactly on or next to a tie.
    const exponent = 127 - 30 + (random() % 50);
    const tieBits = [0x1000, 0x0fff, 0x1001, 0x8000, 0x7fff, 0x8001, random() & 0x1fff][random() % 7]!;
    const mantissa = (random() & 0x7fe000) | tieBits;
    bits[i] = (((random() & 1) << 31) | (exponent << 23) | (mantissa & 0x7fffff)) >>> 0;
  }
  const input = join(scratch, "floats.bin");
  writeFileSync(input, Buffer.from(bits.buffer));
  const script = [
    "import sys, numpy as np, torch",
    "x = np.fromfile(sys.argv[1], dtype=np.float32)",
    "x.astype(np.float16).tofile(sys.argv[1] + '.f16')",
    "torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().tofile(sys.argv[1] + '.bf16')",
  ].join("\n");
  await promisify(execFile)(python, ["-c", script, input]);
  const f32 = Buffer.from(bits.buffer);
  assert.ok(convertFloats(f32, "F32", "F16").equals(readFileSync(`${input}.f16`)), "f16 differs from numpy");
  assert.ok(convertFloats(f32, "F32", "BF16").equals(readFileSync(`${input}.bf16`)), "bf16 differs from torch");
});

test("MXFP4: a repacked ggml block dequantizes to the same 32 numbers as the HF block, for every scale", () => {
  const hf = new Uint8Array(16);
  const ggml = new Uint8Array(17);
  const fromHf = new Float32Array(32);
  const fromGgml = new Float32Array(32);
  let seed = 7;
  for (let scale = 0; scale < 256; scale++) {
    for (let trial = 0; trial < 8; trial++) {
      for (let b = 0; b < 16; b++) {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        hf[b] = seed >>> 24;
      }
      repackHfBlockToGgml(hf, 0, scale, ggml, 0);
      assert.equal(ggml[0], scale, "the scale byte is copied unchanged");
      dequantizeHfBlock(hf, 0, scale, fromHf, 0);
      dequantizeGgmlBlock(ggml, 0, fromGgml, 0);
      // ggml's table has +0 where HF's has -0 (code 8); the numbers are equal.
      assert.deepEqual([...fromGgml].map((v) => v + 0), [...fromHf].map((v) => v + 0), `scale ${scale}`);
    }
  }
});

test("MXFP4: element i of the HF block lands in ggml byte i % 16, low nibble for i < 16", () => {
  const hf = new Uint8Array(16);
  const ggml = new Uint8Array(17);
  for (let element = 0; element < 32; element++) {
    hf.fill(0);
    hf[element >> 1] = element % 2 === 0 ? 0x07 : 0x70; // code 7 (= 6.0) at this element only
    repackHfBlockToGgml(hf, 0, 127, ggml, 0);
    const expected = new Uint8Array(17);
    expected[0] = 127;
    expected[1 + (element % 16)] = element < 16 ? 0x07 : 0x70;
    assert.deepEqual([...ggml], [...expected], `element ${element}`);
  }
});

test("MXFP4 reference quantizer: exact MXFP4 values come back with the same codes and scale", () => {
  const values = new Float32Array(32);
  const block = new Uint8Array(17);
  const back = new Float32Array(32);
  for (const scale of [100, 127, 140]) {
    for (let i = 0; i < 32; i++) values[i] = E2M1_VALUES[(i * 5) % 16]! * 2 ** (scale - 127);
    values[3] = 6 * 2 ** (scale - 127); // amax in [4, 8) · 2^(e-127) fixes the exponent
    quantizeGgmlBlock(values, 0, block, 0);
    assert.equal(block[0], scale);
    dequantizeGgmlBlock(block, 0, back, 0);
    assert.deepEqual([...back].map((v) => v + 0), [...values].map((v) => v + 0));
  }
  values.fill(0);
  quantizeGgmlBlock(values, 0, block, 0);
  assert.deepEqual([...block], new Array<number>(17).fill(0), "an all-zero block has scale 0 and +0 codes");
});
