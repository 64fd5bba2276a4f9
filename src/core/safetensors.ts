/**
 * Reads Hugging Face safetensors checkpoints (one `model.safetensors`, or shards listed in
 * `model.safetensors.index.json`) tensor by tensor. A 13 GB checkpoint is never read whole:
 * only the headers are parsed up front, and tensor bytes come from positioned reads, so the
 * GGUF exporter can stream one expert at a time.
 *
 * Format: u64 little-endian header length N, N bytes of JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}`, then the
 * raw little-endian bytes; offsets are relative to the end of the header.
 */
import { existsSync } from "node:fs";
import { open, readFile, type FileHandle } from "node:fs/promises";
import { basename, join } from "node:path";

export const SAFETENSORS_DTYPE_BYTES = {
  F64: 8, F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1,
  I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
} as const;
export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPE_BYTES;

/** The reference implementation refuses headers above 100 MB; a bigger one is a corrupt file. */
export const MAX_SAFETENSORS_HEADER_BYTES = 100_000_000;
export const SAFETENSORS_SINGLE_FILE = "model.safetensors";
export const SAFETENSORS_INDEX_FILE = "model.safetensors.index.json";

export interface SafetensorsTensor {
  name: string;
  dtype: SafetensorsDtype;
  /** Torch order (outermost first). */
  shape: readonly number[];
  /** Absolute path of the file holding the bytes. */
  file: string;
  /** Position of the first byte in `file` (header already added). */
  byteOffset: number;
  byteLength: number;
}

/** The file is missing or not a valid safetensors file; the message names the file (and tensor). */
export class SafetensorsError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(message);
    this.name = "SafetensorsError";
  }
}

export interface SafetensorsHeader {
  tensors: SafetensorsTensor[];
  metadata: Record<string, string>;
}

/** Parses and validates one file's header without reading any tensor bytes. */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  const handle = await openOrExplain(file);
  try {
    const fileSize = (await handle.stat()).size;
    if (fileSize < 8) throw new SafetensorsError(file, `${file} is ${fileSize} bytes, too short to be a safetensors file.`);
    const headerLength = Number((await readExactly(handle, file, 0, 8)).readBigUInt64LE(0));
    if (headerLength > MAX_SAFETENSORS_HEADER_BYTES || 8 + headerLength > fileSize) {
      throw new SafetensorsError(file, `${file} declares a ${headerLength}-byte header but the file is ${fileSize} bytes; it is truncated or not a safetensors file.`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse((await readExactly(handle, file, 8, headerLength)).toString("utf8"));
    } catch (error) {
      throw new SafetensorsError(file, `${file} has a header that is not valid JSON (${(error as Error).message}).`);
    }
    return parseHeader(file, parsed, 8 + headerLength, fileSize);
  } finally {
    await handle.close();
  }
}

function parseHeader(file: string, parsed: unknown, dataStart: number, fileSize: number): SafetensorsHeader {
  if (!isRecord(parsed)) throw new SafetensorsError(file, `${file} has a header that is not a JSON object.`);
  const tensors: SafetensorsTensor[] = [];
  const metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(parsed)) {
    if (name === "__metadata__") {
      if (isRecord(entry)) for (const [key, value] of Object.entries(entry)) if (typeof value === "string") metadata[key] = value;
      continue;
    }
    tensors.push(parseEntry(file, name, entry, dataStart, fileSize));
  }
  // Overlapping tensors mean a corrupt header; writing one tensor would silently change another.
  const byOffset = [...tensors].sort((a, b) => a.byteOffset - b.byteOffset);
  for (let i = 1; i < byOffset.length; i++) {
    const previous = byOffset[i - 1]!;
    const current = byOffset[i]!;
    if (current.byteOffset < previous.byteOffset + previous.byteLength) {
      throw new SafetensorsError(file, `${file}: tensor "${current.name}" overlaps tensor "${previous.name}".`);
    }
  }
  return { tensors, metadata };
}

function parseEntry(file: string, name: string, entry: unknown, dataStart: number, fileSize: number): SafetensorsTensor {
  const where = `${file}: tensor "${name}"`;
  if (!isRecord(entry)) throw new SafetensorsError(file, `${where} has no {dtype, shape, data_offsets} entry.`);
  const { dtype, shape, data_offsets: offsets } = entry;
  if (typeof dtype !== "string" || !(dtype in SAFETENSORS_DTYPE_BYTES)) {
    throw new SafetensorsError(file, `${where} has unknown dtype ${JSON.stringify(dtype)}; known: ${Object.keys(SAFETENSORS_DTYPE_BYTES).join(", ")}.`);
  }
  if (!Array.isArray(shape) || !shape.every((dim) => Number.isSafeInteger(dim) && dim >= 0)) {
    throw new SafetensorsError(file, `${where} has an invalid shape ${JSON.stringify(shape)}.`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]) {
    throw new SafetensorsError(file, `${where} has invalid data_offsets ${JSON.stringify(offsets)}.`);
  }
  const [begin, end] = offsets as [number, number];
  const typed = dtype as SafetensorsDtype;
  const expected = (shape as number[]).reduce((product, dim) => product * dim, 1) * SAFETENSORS_DTYPE_BYTES[typed];
  if (end - begin !== expected) {
    throw new SafetensorsError(file, `${where} (${typed} ${JSON.stringify(shape)}) needs ${expected} bytes but data_offsets span ${end - begin}.`);
  }
  if (dataStart + end > fileSize) {
    throw new SafetensorsError(file, `${where} ends at byte ${dataStart + end} but ${file} is only ${fileSize} bytes; the file is truncated.`);
  }
  return { name, dtype: typed, shape: shape as number[], file, byteOffset: dataStart + begin, byteLength: end - begin };
}

/** All tensors of a checkpoint folder, readable by name. Call close() when done. */
export class SafetensorsCheckpoint {
  private readonly handles = new Map<string, Promise<FileHandle>>();

  private constructor(
    readonly folder: string,
    readonly files: readonly string[],
    private readonly byName: ReadonlyMap<string, SafetensorsTensor>,
  ) {}

  static async open(folder: string): Promise<SafetensorsCheckpoint> {
    const { files, weightMap } = await checkpointFiles(folder);
    const byName = new Map<string, SafetensorsTensor>();
    for (const file of files) {
      for (const tensor of (await readSafetensorsHeader(file)).tensors) {
        const other = byName.get(tensor.name);
        if (other) throw new SafetensorsError(file, `Tensor "${tensor.name}" is in both ${other.file} and ${file}.`);
        byName.set(tensor.name, tensor);
      }
    }
    for (const [name, shard] of weightMap) {
      if (byName.get(name)?.file !== join(folder, shard)) {
        throw new SafetensorsError(join(folder, shard), `${SAFETENSORS_INDEX_FILE} in ${folder} places tensor "${name}" in ${shard}, but that shard does not hold it.`);
      }
    }
    return new SafetensorsCheckpoint(folder, files, byName);
  }

  get names(): string[] {
    return [...this.byName.keys()];
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  tensor(name: string): SafetensorsTensor {
    const tensor = this.byName.get(name);
    if (!tensor) throw new SafetensorsError(this.folder, `The checkpoint in ${this.folder} has no tensor "${name}" (it has ${this.byName.size} tensors in ${this.files.map((f) => basename(f)).join(", ")}).`);
    return tensor;
  }

  /** Reads a tensor's bytes, or `length` bytes from `offset` within it. */
  async read(name: string, range?: { offset: number; length: number }): Promise<Buffer> {
    const tensor = this.tensor(name);
    const offset = range?.offset ?? 0;
    const length = range?.length ?? tensor.byteLength;
    if (offset < 0 || length < 0 || offset + length > tensor.byteLength) {
      throw new SafetensorsError(tensor.file, `Read of bytes ${offset}..${offset + length} is outside tensor "${name}" (${tensor.byteLength} bytes) in ${tensor.file}.`);
    }
    let handle = this.handles.get(tensor.file);
    if (!handle) {
      handle = openOrExplain(tensor.file);
      this.handles.set(tensor.file, handle);
    }
    return readExactly(await handle, tensor.file, tensor.byteOffset + offset, length, name);
  }

  async close(): Promise<void> {
    const handles = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(handles.map(async (handle) => (await handle.catch(() => undefined))?.close()));
  }
}

/** The safetensors files of a folder (the index's shards, or the single file) and the index's map. */
async function checkpointFiles(folder: string): Promise<{ files: string[]; weightMap: Map<string, string> }> {
  const indexPath = join(folder, SAFETENSORS_INDEX_FILE);
  if (existsSync(indexPath)) {
    let index: unknown;
    try {
      index = JSON.parse(await readFile(indexPath, "utf8"));
    } catch (error) {
      throw new SafetensorsError(indexPath, `${indexPath} is not valid JSON (${(error as Error).message}).`);
    }
    const weightMap = isRecord(index) ? index["weight_map"] : undefined;
    if (!isRecord(weightMap)) throw new SafetensorsError(indexPath, `${indexPath} has no "weight_map" object.`);
    const shards = new Set<string>();
    const map = new Map<string, string>();
    for (const [tensor, shard] of Object.entries(weightMap)) {
      // Shard names come from a downloaded file; never let one point outside the folder.
      if (typeof shard !== "string" || shard !== basename(shard) || shard === ".." || !shard.endsWith(".safetensors")) {
        throw new SafetensorsError(indexPath, `${indexPath} maps tensor "${tensor}" to ${JSON.stringify(shard)}, which is not a .safetensors file name in the same folder.`);
      }
      shards.add(shard);
      map.set(tensor, shard);
    }
    const files = [...shards].sort().map((shard) => join(folder, shard));
    for (const file of files) {
      if (!existsSync(file)) throw new SafetensorsError(file, `${indexPath} lists shard ${basename(file)}, which is missing from ${folder}.`);
    }
    return { files, weightMap: map };
  }
  const single = join(folder, SAFETENSORS_SINGLE_FILE);
  if (existsSync(single)) return { files: [single], weightMap: new Map() };
  throw new SafetensorsError(folder, `${folder} has neither ${SAFETENSORS_SINGLE_FILE} nor ${SAFETENSORS_INDEX_FILE}; point to a Hugging Face checkpoint folder.`);
}

async function openOrExplain(file: string): Promise<FileHandle> {
  try {
    return await open(file, "r");
  } catch (error) {
    throw new SafetensorsError(file, `Cannot open ${file}: ${(error as Error).message}`);
  }
}

async function readExactly(handle: FileHandle, file: string, position: number, length: number, tensor?: string): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(buffer, filled, length - filled, position + filled);
    if (bytesRead === 0) {
      const what = tensor ? `tensor "${tensor}"` : "the header";
      throw new SafetensorsError(file, `${file} ended at byte ${position + filled} while reading ${what}; the file is truncated.`);
    }
    filled += bytesRead;
  }
  return buffer;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
