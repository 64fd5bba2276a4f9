/**
 * What a converter is about to write, handed to a caller's `beforeWrite` hook once every
 * tensor is planned and before the first byte is written: the export orchestrator uses it
 * to check disk space for the whole job (an F16 intermediate plus the quantized output).
 */
export interface GgufWritePlan {
  outFile: string;
  /** Exact size of the file the converter writes. */
  fileBytes: number;
  tensors: ReadonlyArray<{ name: string; dims: readonly number[]; type: number }>;
}

export type BeforeWriteHook = (plan: GgufWritePlan) => void | Promise<void>;
