/**
 * Byte encoding of GGUF metadata values and tensor infos, with the value checks that keep a
 * wrong type from reaching a file: llama.cpp reads keys by their declared type, so a u32
 * written as f32 (or 2880.5 truncated to 2880) would load as garbage or be refused late.
 */
import { GGUF_SCALAR_BYTES, GgufValueType, ggufValueTypeName } from "./constants";

export type GgufScalar = number | bigint | boolean | string;
/** Arrays may be plain arrays or typed arrays (token types, large numeric tables). */
export type GgufArrayValues = readonly GgufScalar[] | ArrayLike<number>;

export interface GgufKeyValue {
  key: string;
  type: GgufValueType;
  value: GgufScalar | GgufArrayValues;
  /** Element type when `type` is ARRAY. */
  elementType?: GgufValueType;
}

export class GgufValueError extends Error {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(message);
    this.name = "GgufValueError";
  }
}

const INTEGER_RANGES: Readonly<Partial<Record<GgufValueType, readonly [bigint, bigint]>>> = {
  [GgufValueType.UINT8]: [0n, 0xffn],
  [GgufValueType.INT8]: [-0x80n, 0x7fn],
  [GgufValueType.UINT16]: [0n, 0xffffn],
  [GgufValueType.INT16]: [-0x8000n, 0x7fffn],
  [GgufValueType.UINT32]: [0n, 0xffff_ffffn],
  [GgufValueType.INT32]: [-0x8000_0000n, 0x7fff_ffffn],
  [GgufValueType.UINT64]: [0n, 0xffff_ffff_ffff_ffffn],
  [GgufValueType.INT64]: [-0x8000_0000_0000_0000n, 0x7fff_ffff_ffff_ffffn],
};
const FLOAT32_MAX = 3.4028234663852886e38;

/** Throws a GgufValueError naming the key (and element index) when `value` does not fit `type`. */
export function validateKeyValue(kv: GgufKeyValue): void {
  const { key, type } = kv;
  if (key.length === 0 || Buffer.byteLength(key, "utf8") > 65535) throw new GgufValueError(key, `GGUF key ${JSON.stringify(key)} must be 1 to 65535 bytes long.`);
  if (type === GgufValueType.ARRAY) {
    const elementType = kv.elementType;
    if (elementType === undefined || elementType === GgufValueType.ARRAY || !(elementType in GGUF_SCALAR_BYTES || elementType === GgufValueType.STRING)) {
      throw new GgufValueError(key, `GGUF key "${key}" is an array with element type ${elementType === undefined ? "missing" : ggufValueTypeName(elementType)}; use a scalar or string element type (nested arrays are not supported).`);
    }
    const values = kv.value;
    if (typeof values !== "object" || values === null || typeof (values as ArrayLike<unknown>).length !== "number") {
      throw new GgufValueError(key, `GGUF key "${key}" is declared ARRAY but its value is not an array.`);
    }
    const list = values as ArrayLike<GgufScalar>;
    for (let i = 0; i < list.length; i++) {
      const problem = scalarProblem(elementType, list[i]);
      if (problem) throw new GgufValueError(key, `GGUF key "${key}"[${i}]: ${problem}.`);
    }
    return;
  }
  const problem = scalarProblem(type, kv.value);
  if (problem) throw new GgufValueError(key, `GGUF key "${key}": ${problem}.`);
}

function scalarProblem(type: GgufValueType, value: unknown): string | undefined {
  // Hot path for 200k-entry token arrays: plain checks first, messages only on failure.
  if (type === GgufValueType.STRING && typeof value === "string") return undefined;
  if ((type === GgufValueType.INT32 || type === GgufValueType.UINT32) && typeof value === "number" && Number.isInteger(value)) {
    const fits = type === GgufValueType.INT32 ? (value | 0) === value : value >>> 0 === value;
    if (fits) return undefined;
  }
  const typeName = ggufValueTypeName(type);
  const range = INTEGER_RANGES[type];
  if (range) {
    const asBigInt = typeof value === "bigint" ? value : typeof value === "number" && Number.isSafeInteger(value) ? BigInt(value) : undefined;
    if (asBigInt === undefined) return `${typeName} needs an integer, got ${describe(value)}`;
    if (asBigInt < range[0] || asBigInt > range[1]) return `${String(value)} is outside the ${typeName} range ${range[0]}..${range[1]}`;
    return undefined;
  }
  switch (type) {
    case GgufValueType.FLOAT32:
    case GgufValueType.FLOAT64:
      if (typeof value !== "number" || !Number.isFinite(value)) return `${typeName} needs a finite number, got ${describe(value)}`;
      if (type === GgufValueType.FLOAT32 && Math.abs(value) > FLOAT32_MAX) return `${value} overflows FLOAT32`;
      return undefined;
    case GgufValueType.BOOL:
      return typeof value === "boolean" ? undefined : `BOOL needs true or false, got ${describe(value)}`;
    case GgufValueType.STRING:
      return typeof value === "string" ? undefined : `STRING needs a string, got ${describe(value)}`;
    default:
      return `unknown value type ${typeName}`;
  }
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === "bigint") return `${value}n`;
  return value === undefined ? "undefined" : typeof value === "object" ? (Array.isArray(value) ? "an array" : "an object") : String(value);
}

/** A growable little-endian byte buffer for the header sections (metadata, tensor infos). */
export class ByteWriter {
  private buffer: Buffer;
  private length = 0;

  constructor(initialCapacity = 1 << 16) {
    this.buffer = Buffer.alloc(initialCapacity);
  }

  get byteLength(): number {
    return this.length;
  }

  bytes(): Buffer {
    return this.buffer.subarray(0, this.length);
  }

  private reserve(bytes: number): number {
    const at = this.length;
    if (at + bytes > this.buffer.length) {
      const grown = Buffer.alloc(Math.max(this.buffer.length * 2, at + bytes));
      this.buffer.copy(grown, 0, 0, at);
      this.buffer = grown;
    }
    this.length += bytes;
    return at;
  }

  // Each write reserves first: reserve() may replace this.buffer, so the buffer must be read after it.
  u32(value: number): void {
    const at = this.reserve(4);
    this.buffer.writeUInt32LE(value, at);
  }

  i32(value: number): void {
    const at = this.reserve(4);
    this.buffer.writeInt32LE(value, at);
  }

  u64(value: number | bigint): void {
    const at = this.reserve(8);
    this.buffer.writeBigUInt64LE(BigInt(value), at);
  }

  string(value: string): void {
    const byteLength = Buffer.byteLength(value, "utf8");
    this.u64(byteLength);
    const at = this.reserve(byteLength);
    this.buffer.write(value, at, byteLength, "utf8");
  }

  raw(bytes: Uint8Array): void {
    const at = this.reserve(bytes.length);
    this.buffer.set(bytes, at);
  }

  scalar(type: GgufValueType, value: GgufScalar): void {
    if (type === GgufValueType.STRING) {
      this.string(String(value));
      return;
    }
    const size = GGUF_SCALAR_BYTES[type];
    if (size === undefined) throw new Error(`cannot encode GGUF value type ${ggufValueTypeName(type)} as a scalar`);
    const at = this.reserve(size);
    const buffer = this.buffer;
    switch (type) {
      case GgufValueType.UINT8: buffer.writeUInt8(Number(value), at); break;
      case GgufValueType.INT8: buffer.writeInt8(Number(value), at); break;
      case GgufValueType.UINT16: buffer.writeUInt16LE(Number(value), at); break;
      case GgufValueType.INT16: buffer.writeInt16LE(Number(value), at); break;
      case GgufValueType.UINT32: buffer.writeUInt32LE(Number(value), at); break;
      case GgufValueType.INT32: buffer.writeInt32LE(Number(value), at); break;
      case GgufValueType.FLOAT32: buffer.writeFloatLE(Number(value), at); break;
      case GgufValueType.BOOL: buffer.writeUInt8(value === true ? 1 : 0, at); break;
      case GgufValueType.UINT64: buffer.writeBigUInt64LE(BigInt(value), at); break;
      case GgufValueType.INT64: buffer.writeBigInt64LE(BigInt(value), at); break;
      default: buffer.writeDoubleLE(Number(value), at); break;
    }
  }
}

/** Appends one validated key/value pair in GGUF v3 layout. */
export function encodeKeyValue(out: ByteWriter, kv: GgufKeyValue): void {
  out.string(kv.key);
  out.i32(kv.type);
  if (kv.type !== GgufValueType.ARRAY) {
    out.scalar(kv.type, kv.value as GgufScalar);
    return;
  }
  const elementType = kv.elementType as GgufValueType;
  const values = kv.value as ArrayLike<GgufScalar>;
  out.i32(elementType);
  out.u64(values.length);
  for (let i = 0; i < values.length; i++) out.scalar(elementType, values[i] as GgufScalar);
}

export interface GgufTensorInfo {
  name: string;
  /** ne order: ne[0] is the innermost (contiguous) dimension, the reverse of a torch shape. */
  dims: readonly number[];
  type: number;
  /** Offset of the data relative to the start of the data section (aligned). */
  offset: number;
}

export function encodeTensorInfo(out: ByteWriter, info: GgufTensorInfo): void {
  out.string(info.name);
  out.u32(info.dims.length);
  for (const dim of info.dims) out.u64(dim);
  out.i32(info.type);
  out.u64(info.offset);
}
