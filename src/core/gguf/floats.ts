/**
 * Conversions between the float formats a checkpoint stores (BF16, F16, F32) and the ones a
 * GGUF holds, bit-exact with ggml and numpy: widening is exact, narrowing rounds to nearest
 * with ties to even, overflow becomes infinity and NaN stays NaN. Everything works on raw
 * little-endian bytes so the exporter can convert row chunks without a tensor library.
 */

export type FloatFormat = "F32" | "F16" | "BF16";

export const FLOAT_BYTES: Readonly<Record<FloatFormat, number>> = { F32: 4, F16: 2, BF16: 2 };

const f32 = new Float32Array(1);
const f32Bits = new Uint32Array(f32.buffer);

export function float32Bits(value: number): number {
  f32[0] = value;
  return f32Bits[0]!;
}

export function float32FromBits(bits: number): number {
  f32Bits[0] = bits >>> 0;
  return f32[0]!;
}

/** IEEE binary16 bits of a float32 (given as bits), round-to-nearest-even like numpy's astype(float16). */
export function f32BitsToF16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return mantissa === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mantissa >>> 13);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    // Subnormal half: value = m * 2^-24. Drop `shift` bits of the 24-bit significand.
    const shift = 14 - halfExponent;
    if (shift > 24) return sign;
    const significand = mantissa | 0x800000;
    const kept = significand >>> shift;
    const rest = significand & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    return sign | (rest > halfway || (rest === halfway && (kept & 1) === 1) ? kept + 1 : kept);
  }
  const kept = (halfExponent << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa bumps the exponent, and out of the top exponent gives inf: both correct.
  return sign | (rest > 0x1000 || (rest === 0x1000 && (kept & 1) === 1) ? kept + 1 : kept);
}

let f16Table: Float32Array | undefined;

/** float32 value of IEEE binary16 bits (exact). */
export function f16BitsToF32(bits: number): number {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const sign = h & 0x8000 ? -1 : 1;
      const exponent = (h >>> 10) & 0x1f;
      const mantissa = h & 0x3ff;
      f16Table[h] =
        exponent === 0 ? sign * mantissa * 2 ** -24
        : exponent === 0x1f ? (mantissa === 0 ? sign * Infinity : NaN)
        : sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
    }
  }
  return f16Table[bits & 0xffff]!;
}

/** bfloat16 bits of a float32 (as bits), like ggml_compute_fp32_to_bf16: RNE, NaN kept quiet. */
export function f32BitsToBf16Bits(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 64) & 0xffff;
  return ((bits + (0x7fff + ((bits >>> 16) & 1))) >>> 16) & 0xffff;
}

/** Little-endian bytes of `source` (format `from`) re-encoded as `to`. Returns a new buffer. */
export function convertFloats(source: Uint8Array, from: FloatFormat, to: FloatFormat): Buffer {
  const count = source.byteLength / FLOAT_BYTES[from];
  if (!Number.isInteger(count)) throw new Error(`${source.byteLength} bytes is not a whole number of ${from} values`);
  if (from === to) return Buffer.from(source);
  const bits = readBits(source, from);
  const out = Buffer.allocUnsafe(count * FLOAT_BYTES[to]);
  if (to === "F32") {
    const view = new Uint32Array(out.buffer, out.byteOffset, count);
    if (from === "BF16") for (let i = 0; i < count; i++) view[i] = bits[i]! << 16;
    else for (let i = 0; i < count; i++) view[i] = float32Bits(f16BitsToF32(bits[i]!));
    return out;
  }
  const view = new Uint16Array(out.buffer, out.byteOffset, count);
  const narrow = to === "F16" ? f32BitsToF16Bits : f32BitsToBf16Bits;
  if (from === "F32") for (let i = 0; i < count; i++) view[i] = narrow(bits[i]!);
  else if (from === "BF16") for (let i = 0; i < count; i++) view[i] = narrow(bits[i]! << 16);
  else for (let i = 0; i < count; i++) view[i] = narrow(float32Bits(f16BitsToF32(bits[i]!)));
  return out;
}

/** float32 values of `source` (format `from`). */
export function decodeFloats(source: Uint8Array, from: FloatFormat): Float32Array {
  const converted = convertFloats(source, from, "F32");
  return new Float32Array(converted.buffer, converted.byteOffset, converted.byteLength / 4);
}

/** Encodes float32 values as `to`. */
export function encodeFloats(values: Float32Array, to: FloatFormat): Buffer {
  return convertFloats(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), "F32", to);
}

/** The raw little-endian words of `source`, copied first when it is not aligned for a typed view. */
function readBits(source: Uint8Array, format: FloatFormat): Uint32Array | Uint16Array {
  const width = FLOAT_BYTES[format];
  const aligned = source.byteOffset % width === 0 ? source : new Uint8Array(source);
  return width === 4
    ? new Uint32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4)
    : new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2);
}
