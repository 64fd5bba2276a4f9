/**
 * A small GGUF reader for verifying what we wrote (and refusing files that would crash a
 * loader): header, metadata and tensor infos, with every count, length and offset checked
 * against the file size before anything is allocated. Tensor bytes are read on request.
 */
import { open, type FileHandle } from "node:fs/promises";
import {
  GGML_MAX_DIMS,
  GGML_TYPE_TRAITS,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_SCALAR_BYTES,
  GGUF_VERSION,
  GgufValueType,
  alignOffset,
  ggmlTensorByteLength,
  ggufValueTypeName,
  isKnownGgmlType,
  type GgmlType,
} from "./constants";
import type { GgufScalar } from "./encoding";

export class GgufFormatError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(message);
    this.name = "GgufFormatError";
  }
}

export interface GgufMetadataEntry {
  type: GgufValueType;
  value: GgufScalar | GgufScalar[];
  elementType?: GgufValueType;
}

export interface GgufTensorRecord {
  name: string;
  dims: number[];
  type: GgmlType;
  /** Relative to the data section. */
  offset: number;
  /** Absolute position in the file. */
  fileOffset: number;
  byteLength: number;
}

export interface GgufFileContents {
  path: string;
  version: number;
  fileSize: number;
  alignment: number;
  /** Absolute position of the data section. */
  dataOffset: number;
  metadata: Map<string, GgufMetadataEntry>;
  tensors: GgufTensorRecord[];
}

/** Far above any real model (a 120b GGUF has ~700 tensors and ~40 keys) and cheap to reject. */
const MAX_COUNT = 1_000_000;

/** Reads forward through the file in windows, never past its end. */
class Cursor {
  private window = Buffer.alloc(0);
  private windowStart = 0;
  position = 0;

  constructor(
    private readonly handle: FileHandle,
    private readonly file: string,
    readonly fileSize: number,
  ) {}

  get remaining(): number {
    return this.fileSize - this.position;
  }

  async take(length: number, what: string): Promise<Buffer> {
    if (length > this.remaining) {
      throw new GgufFormatError(this.file, `${this.file}: ${what} needs ${length} bytes at offset ${this.position} but the file is ${this.fileSize} bytes; it is truncated or corrupt.`);
    }
    const relative = this.position - this.windowStart;
    if (relative < 0 || relative + length > this.window.length) {
      const size = Math.min(Math.max(length, 1 << 20), this.remaining);
      const window = Buffer.allocUnsafe(size);
      let filled = 0;
      while (filled < size) {
        const { bytesRead } = await this.handle.read(window, filled, size - filled, this.position + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      this.window = window.subarray(0, filled);
      this.windowStart = this.position;
      if (filled < length) throw new GgufFormatError(this.file, `${this.file} ended while reading ${what}.`);
    }
    const start = this.position - this.windowStart;
    this.position += length;
    return this.window.subarray(start, start + length);
  }

  async u32(what: string): Promise<number> {
    return (await this.take(4, what)).readUInt32LE(0);
  }

  async i32(what: string): Promise<number> {
    return (await this.take(4, what)).readInt32LE(0);
  }

  /** A u64 that must fit a JS number and not exceed `limit` (a count or a byte length). */
  async count(what: string, limit: number): Promise<number> {
    const value = (await this.take(8, what)).readBigUInt64LE(0);
    if (value > BigInt(limit)) {
      throw new GgufFormatError(this.file, `${this.file}: ${what} is ${value}, more than this file can hold (limit ${limit} at offset ${this.position - 8}).`);
    }
    return Number(value);
  }

  async string(what: string): Promise<string> {
    const length = await this.count(`length of ${what}`, this.remaining - 8);
    return (await this.take(length, what)).toString("utf8");
  }

  async scalar(type: GgufValueType, what: string): Promise<GgufScalar> {
    if (type === GgufValueType.STRING) return this.string(what);
    const size = GGUF_SCALAR_BYTES[type];
    if (size === undefined) throw new GgufFormatError(this.file, `${this.file}: ${what} has unknown value type ${type}.`);
    const bytes = await this.take(size, what);
    switch (type) {
      case GgufValueType.UINT8: return bytes.readUInt8(0);
      case GgufValueType.INT8: return bytes.readInt8(0);
      case GgufValueType.UINT16: return bytes.readUInt16LE(0);
      case GgufValueType.INT16: return bytes.readInt16LE(0);
      case GgufValueType.UINT32: return bytes.readUInt32LE(0);
      case GgufValueType.INT32: return bytes.readInt32LE(0);
      case GgufValueType.FLOAT32: return bytes.readFloatLE(0);
      case GgufValueType.BOOL: return bytes.readUInt8(0) !== 0;
      case GgufValueType.UINT64: return bytes.readBigUInt64LE(0);
      case GgufValueType.INT64: return bytes.readBigInt64LE(0);
      default: return bytes.readDoubleLE(0);
    }
  }
}

export async function readGgufFile(path: string): Promise<GgufFileContents> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    throw new GgufFormatError(path, `Cannot open ${path}: ${(error as Error).message}`);
  }
  try {
    const cursor = new Cursor(handle, path, (await handle.stat()).size);
    const magic = (await cursor.take(4, "the magic")).toString("latin1");
    if (magic !== GGUF_MAGIC) throw new GgufFormatError(path, `${path} is not a GGUF file (magic ${JSON.stringify(magic)}, expected "GGUF").`);
    const version = await cursor.u32("the version");
    if (version !== GGUF_VERSION) throw new GgufFormatError(path, `${path} is GGUF version ${version}; only version ${GGUF_VERSION} is supported.`);
    // Each tensor info takes at least 8+4+8+4+8 bytes, each key/value at least 8+4+1.
    const tensorCount = await cursor.count("the tensor count", Math.min(MAX_COUNT, Math.floor(cursor.remaining / 32)));
    const kvCount = await cursor.count("the metadata count", Math.min(MAX_COUNT, Math.floor(cursor.remaining / 13)));
    const metadata = await readMetadata(cursor, path, kvCount);
    const alignment = readAlignment(metadata, path);
    const infos: Array<Omit<GgufTensorRecord, "fileOffset">> = [];
    const names = new Set<string>();
    for (let i = 0; i < tensorCount; i++) {
      const info = await readTensorInfo(cursor, path, i);
      if (names.has(info.name)) throw new GgufFormatError(path, `${path}: tensor "${info.name}" appears twice.`);
      names.add(info.name);
      infos.push(info);
    }
    const dataOffset = alignOffset(cursor.position, alignment);
    const tensors = infos.map((info) => ({ ...info, fileOffset: dataOffset + info.offset }));
    checkTensorPlacement(tensors, path, alignment, cursor.fileSize);
    return { path, version, fileSize: cursor.fileSize, alignment, dataOffset, metadata, tensors };
  } finally {
    await handle.close();
  }
}

async function readMetadata(cursor: Cursor, path: string, kvCount: number): Promise<Map<string, GgufMetadataEntry>> {
  const metadata = new Map<string, GgufMetadataEntry>();
  for (let i = 0; i < kvCount; i++) {
    const key = await cursor.string(`the key of metadata entry ${i}`);
    if (metadata.has(key)) throw new GgufFormatError(path, `${path}: metadata key "${key}" appears twice.`);
    const type = (await cursor.i32(`the type of "${key}"`)) as GgufValueType;
    if (type !== GgufValueType.ARRAY) {
      metadata.set(key, { type, value: await cursor.scalar(type, `the value of "${key}"`) });
      continue;
    }
    const elementType = (await cursor.i32(`the element type of "${key}"`)) as GgufValueType;
    const elementSize = elementType === GgufValueType.STRING ? 8 : GGUF_SCALAR_BYTES[elementType];
    if (elementSize === undefined) throw new GgufFormatError(path, `${path}: array "${key}" has unsupported element type ${ggufValueTypeName(elementType)}.`);
    const length = await cursor.count(`the length of array "${key}"`, Math.floor(cursor.remaining / elementSize));
    const values: GgufScalar[] = new Array<GgufScalar>(length);
    for (let j = 0; j < length; j++) values[j] = await cursor.scalar(elementType, `"${key}"[${j}]`);
    metadata.set(key, { type, value: values, elementType });
  }
  return metadata;
}

function readAlignment(metadata: Map<string, GgufMetadataEntry>, path: string): number {
  const entry = metadata.get("general.alignment");
  if (!entry) return GGUF_DEFAULT_ALIGNMENT;
  const value = entry.value;
  if (entry.type !== GgufValueType.UINT32 || typeof value !== "number" || value === 0 || (value & (value - 1)) !== 0) {
    throw new GgufFormatError(path, `${path}: general.alignment must be a UINT32 power of two, got ${String(value)} (${ggufValueTypeName(entry.type)}).`);
  }
  return value;
}

async function readTensorInfo(cursor: Cursor, path: string, index: number): Promise<Omit<GgufTensorRecord, "fileOffset">> {
  const name = await cursor.string(`the name of tensor ${index}`);
  const nDims = await cursor.u32(`the dimension count of "${name}"`);
  if (nDims < 1 || nDims > GGML_MAX_DIMS) throw new GgufFormatError(path, `${path}: tensor "${name}" has ${nDims} dims; 1 to ${GGML_MAX_DIMS} are allowed.`);
  const dims: number[] = [];
  for (let d = 0; d < nDims; d++) dims.push(await cursor.count(`ne[${d}] of "${name}"`, Number.MAX_SAFE_INTEGER));
  const type = await cursor.i32(`the type of "${name}"`);
  if (!isKnownGgmlType(type)) throw new GgufFormatError(path, `${path}: tensor "${name}" has unknown ggml type ${type}.`);
  const offset = await cursor.count(`the data offset of "${name}"`, cursor.fileSize);
  let byteLength: number;
  try {
    byteLength = ggmlTensorByteLength(type, dims);
  } catch (error) {
    throw new GgufFormatError(path, `${path}: tensor "${name}" (${GGML_TYPE_TRAITS[type].name}): ${(error as Error).message}.`);
  }
  return { name, dims, type, offset, byteLength };
}

function checkTensorPlacement(tensors: GgufTensorRecord[], path: string, alignment: number, fileSize: number): void {
  for (const tensor of tensors) {
    if (tensor.offset % alignment !== 0) throw new GgufFormatError(path, `${path}: tensor "${tensor.name}" starts at data offset ${tensor.offset}, not a multiple of the alignment ${alignment}.`);
    if (tensor.fileOffset + tensor.byteLength > fileSize) {
      throw new GgufFormatError(path, `${path}: tensor "${tensor.name}" (${tensor.byteLength} bytes at ${tensor.fileOffset}) ends past the end of the file (${fileSize} bytes); the file is truncated.`);
    }
  }
  const sorted = [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const previous = sorted[i - 1]!;
    const current = sorted[i]!;
    if (current.offset < previous.offset + previous.byteLength) throw new GgufFormatError(path, `${path}: tensor "${current.name}" overlaps tensor "${previous.name}".`);
  }
}

/** Reads one tensor's raw bytes (tests, verification). */
export async function readGgufTensorBytes(contents: GgufFileContents, name: string): Promise<Buffer> {
  const tensor = contents.tensors.find((candidate) => candidate.name === name);
  if (!tensor) throw new GgufFormatError(contents.path, `${contents.path} has no tensor "${name}".`);
  const handle = await open(contents.path, "r");
  try {
    const buffer = Buffer.alloc(tensor.byteLength);
    let filled = 0;
    while (filled < buffer.length) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, tensor.fileOffset + filled);
      if (bytesRead === 0) throw new GgufFormatError(contents.path, `${contents.path} ended inside tensor "${name}".`);
      filled += bytesRead;
    }
    return buffer;
  } finally {
    await handle.close();
  }
}
