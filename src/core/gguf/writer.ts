/**
 * GGUF v3 writer with an explicit state machine: collect metadata and tensor specs, then
 * write header → key/values → tensor infos → tensor data → finish, in that order only.
 * Tensor bytes come from async producers called one tensor at a time, so a 13 GB model is
 * never in memory at once. The file is written as a temporary file beside the target and
 * renamed at finish, so a crash or cancel never leaves a half-written .gguf that llama.cpp
 * would try to load.
 */
import { randomBytes } from "node:crypto";
import { open, rename, rm, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import {
  GGML_MAX_DIMS,
  GGML_MAX_NAME_BYTES,
  GGML_TYPE_TRAITS,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VERSION,
  GgufValueType,
  alignOffset,
  ggmlTensorByteLength,
  isKnownGgmlType,
  type GgmlType,
} from "./constants";
import { FileSink } from "./fileSink";
import { ByteWriter, encodeKeyValue, encodeTensorInfo, validateKeyValue, type GgufArrayValues, type GgufKeyValue, type GgufScalar, type GgufTensorInfo } from "./encoding";

/** The section the writer expects next; "done" and "aborted" are final. */
export type GgufWriterStep = "header" | "keyValues" | "tensorInfos" | "tensorData" | "finish" | "done" | "aborted";

const STEP_METHOD: Record<GgufWriterStep, string> = {
  header: "writeHeader()",
  keyValues: "writeKeyValues()",
  tensorInfos: "writeTensorInfos()",
  tensorData: "writeTensorData()",
  finish: "finish()",
  done: "nothing (the file is finished)",
  aborted: "nothing (the write was aborted)",
};

export type GgufWriterErrorCode = "out_of_order" | "duplicate" | "invalid_value" | "invalid_tensor" | "tensor_data";

export class GgufWriterError extends Error {
  constructor(
    readonly code: GgufWriterErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "GgufWriterError";
  }
}

export interface GgufTensorSpec {
  name: string;
  /** ne order (ne[0] innermost), i.e. the reverse of the torch shape. */
  dims: readonly number[];
  type: GgmlType;
  /** Called once, when this tensor's turn comes; must yield exactly the tensor's byte size. */
  data: () => AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}

export interface GgufWriteProgress {
  bytesWritten: number;
  totalBytes: number;
  /** Tensor being written; undefined while writing the header sections. */
  tensor: string | undefined;
}

export interface GgufDataOptions {
  signal?: AbortSignal;
  onProgress?: (progress: GgufWriteProgress) => void;
}

interface PlannedTensor extends GgufTensorInfo {
  byteLength: number;
  data: GgufTensorSpec["data"];
}

export class GgufWriter {
  private currentStep: GgufWriterStep = "header";
  private readonly keyValues: GgufKeyValue[] = [];
  private readonly tensors: PlannedTensor[] = [];
  private dataBytes = 0;
  private handle: FileHandle | undefined;
  private sink: FileSink | undefined;
  private readonly tempPath: string;

  constructor(
    readonly path: string,
    readonly alignment: number = GGUF_DEFAULT_ALIGNMENT,
  ) {
    if (!Number.isInteger(alignment) || alignment < 8 || alignment % 8 !== 0 || (alignment & (alignment - 1)) !== 0) {
      throw new GgufWriterError("invalid_value", `GGUF alignment must be a power of two and a multiple of 8, got ${alignment}.`);
    }
    this.tempPath = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.partial`);
  }

  get step(): GgufWriterStep {
    return this.currentStep;
  }

  addKeyValue(key: string, type: GgufValueType, value: GgufScalar | GgufArrayValues, elementType?: GgufValueType): void {
    this.expect("header", `addKeyValue("${key}")`);
    if (key === "general.alignment") throw new GgufWriterError("invalid_value", `"general.alignment" is written by the GgufWriter from its alignment (${this.alignment}); pass the alignment to the constructor instead.`);
    if (this.keyValues.some((kv) => kv.key === key)) throw new GgufWriterError("duplicate", `GGUF key "${key}" was added twice.`);
    const kv: GgufKeyValue = elementType === undefined ? { key, type, value } : { key, type, value, elementType };
    try {
      validateKeyValue(kv);
    } catch (error) {
      throw new GgufWriterError("invalid_value", (error as Error).message);
    }
    this.keyValues.push(kv);
    this.metadataCache = undefined;
  }

  addString(key: string, value: string): void {
    this.addKeyValue(key, GgufValueType.STRING, value);
  }

  addUint32(key: string, value: number): void {
    this.addKeyValue(key, GgufValueType.UINT32, value);
  }

  addFloat32(key: string, value: number): void {
    this.addKeyValue(key, GgufValueType.FLOAT32, value);
  }

  addBool(key: string, value: boolean): void {
    this.addKeyValue(key, GgufValueType.BOOL, value);
  }

  addArray(key: string, elementType: GgufValueType, values: GgufArrayValues): void {
    this.addKeyValue(key, GgufValueType.ARRAY, values, elementType);
  }

  addTensor(spec: GgufTensorSpec): void {
    this.expect("header", `addTensor("${spec.name}")`);
    const { name, dims, type } = spec;
    const invalid = (why: string): GgufWriterError => new GgufWriterError("invalid_tensor", `Tensor "${name}": ${why}.`);
    if (name.length === 0 || Buffer.byteLength(name, "utf8") > GGML_MAX_NAME_BYTES) throw invalid(`the name must be 1 to ${GGML_MAX_NAME_BYTES} bytes`);
    if (this.tensors.some((tensor) => tensor.name === name)) throw new GgufWriterError("duplicate", `Tensor "${name}" was added twice.`);
    if (!isKnownGgmlType(type)) throw invalid(`unknown ggml type ${String(type)}`);
    if (dims.length < 1 || dims.length > GGML_MAX_DIMS) throw invalid(`needs 1 to ${GGML_MAX_DIMS} dims, got [${dims.join(", ")}]`);
    if (!dims.every((dim) => Number.isSafeInteger(dim) && dim > 0)) throw invalid(`dims must be positive integers, got [${dims.join(", ")}]`);
    let byteLength: number;
    try {
      byteLength = ggmlTensorByteLength(type, dims);
    } catch (error) {
      throw invalid((error as Error).message);
    }
    this.tensors.push({ name, dims: [...dims], type, offset: this.dataBytes, byteLength, data: spec.data });
    this.dataBytes = alignOffset(this.dataBytes + byteLength, this.alignment);
  }

  /** Exact size of the finished file; known once everything is added. */
  get plannedFileSize(): number {
    return alignOffset(this.metadataSection().byteLength + this.tensorInfoSection().byteLength + 24, this.alignment) + this.dataBytes;
  }

  async writeHeader(): Promise<void> {
    this.expect("header", "writeHeader()");
    this.keyValues.push({ key: "general.alignment", type: GgufValueType.UINT32, value: this.alignment });
    await this.guard(async () => {
      this.handle = await open(this.tempPath, "wx");
      this.sink = new FileSink(this.handle);
      const header = new ByteWriter(24);
      header.raw(Buffer.from(GGUF_MAGIC, "ascii"));
      header.u32(GGUF_VERSION);
      header.u64(this.tensors.length);
      header.u64(this.keyValues.length);
      await this.sink.write(header.bytes());
    });
    this.currentStep = "keyValues";
  }

  async writeKeyValues(): Promise<void> {
    this.expect("keyValues", "writeKeyValues()");
    await this.guard(() => this.requireSink().write(this.metadataSection().bytes()));
    this.currentStep = "tensorInfos";
  }

  async writeTensorInfos(): Promise<void> {
    this.expect("tensorInfos", "writeTensorInfos()");
    await this.guard(async () => {
      const sink = this.requireSink();
      await sink.write(this.tensorInfoSection().bytes());
      await sink.write(Buffer.alloc(alignOffset(sink.position, this.alignment) - sink.position));
    });
    this.currentStep = "tensorData";
  }

  /** Streams every tensor from its producer. Aborting (or any failure) removes the temporary file. */
  async writeTensorData(options: GgufDataOptions = {}): Promise<void> {
    this.expect("tensorData", "writeTensorData()");
    const { signal, onProgress } = options;
    const totalBytes = this.plannedFileSize;
    await this.guard(async () => {
      const sink = this.requireSink();
      const dataStart = sink.position;
      for (const tensor of this.tensors) {
        signal?.throwIfAborted();
        let produced = 0;
        for await (const chunk of tensor.data()) {
          signal?.throwIfAborted();
          produced += chunk.byteLength;
          if (produced > tensor.byteLength) break;
          await sink.write(chunk);
          onProgress?.({ bytesWritten: sink.position, totalBytes, tensor: tensor.name });
        }
        if (produced !== tensor.byteLength) {
          const { name } = GGML_TYPE_TRAITS[tensor.type as GgmlType];
          throw new GgufWriterError("tensor_data", `Tensor "${tensor.name}" (${name} [${tensor.dims.join(", ")}]) needs ${tensor.byteLength} bytes but its producer gave ${produced > tensor.byteLength ? "more" : produced}.`);
        }
        const end = dataStart + tensor.offset + tensor.byteLength;
        await sink.write(Buffer.alloc(alignOffset(end, this.alignment) - end));
      }
      onProgress?.({ bytesWritten: sink.position, totalBytes, tensor: undefined });
    });
    this.currentStep = "finish";
  }

  /** Flushes, syncs and renames the temporary file onto `path`. */
  async finish(): Promise<{ path: string; bytes: number }> {
    this.expect("finish", "finish()");
    const bytes = this.requireSink().position;
    await this.guard(async () => {
      await this.requireSink().flush();
      await this.handle?.sync();
      await this.handle?.close();
      this.handle = undefined;
      await rename(this.tempPath, this.path);
    });
    this.currentStep = "done";
    return { path: this.path, bytes };
  }

  /** Writes every section in order; the usual way to use the writer. */
  async writeAll(options: GgufDataOptions = {}): Promise<{ path: string; bytes: number }> {
    await this.writeHeader();
    await this.writeKeyValues();
    await this.writeTensorInfos();
    await this.writeTensorData(options);
    return this.finish();
  }

  /** Closes and deletes the temporary file; safe to call in any step. */
  async abort(): Promise<void> {
    if (this.currentStep === "done") return;
    this.currentStep = "aborted";
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close().catch(() => undefined);
    await rm(this.tempPath, { force: true });
  }

  private expect(step: GgufWriterStep, call: string): void {
    if (this.currentStep === step) return;
    throw new GgufWriterError(
      "out_of_order",
      `GgufWriter.${call} is out of order: the writer is at step "${this.currentStep}" and expects ${STEP_METHOD[this.currentStep]} next (order: add keys and tensors, writeHeader, writeKeyValues, writeTensorInfos, writeTensorData, finish).`,
    );
  }

  private async guard(work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (error) {
      await this.abort();
      throw error;
    }
  }

  private requireSink(): FileSink {
    if (!this.sink) throw new GgufWriterError("out_of_order", "GgufWriter has no open file; call writeHeader() first.");
    return this.sink;
  }

  private metadataCache: ByteWriter | undefined;
  private metadataSection(): ByteWriter {
    if (this.metadataCache) return this.metadataCache;
    const out = new ByteWriter();
    for (const kv of this.keyValues) encodeKeyValue(out, kv);
    // writeHeader appends general.alignment last; the planned size must count it before that.
    if (!this.keyValues.some((kv) => kv.key === "general.alignment")) {
      encodeKeyValue(out, { key: "general.alignment", type: GgufValueType.UINT32, value: this.alignment });
    }
    this.metadataCache = out;
    return out;
  }

  private tensorInfoSection(): ByteWriter {
    const out = new ByteWriter();
    for (const tensor of this.tensors) encodeTensorInfo(out, tensor);
    return out;
  }
}
