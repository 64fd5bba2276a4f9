/**
 * The token-shard format: what the TypeScript data preparation writes and the Python trainer
 * reads (native/finetune_sidecar/shards.py mirrors this file). A shard holds packed rows of
 * a fixed sequence length, so the trainer can memory-map it and view it as tensors.
 *
 * Layout (all little-endian):
 *   0   8 bytes  magic "FTSHARD\0"
 *   8   u32      header length H in bytes
 *   12  H bytes  header JSON (UTF-8), padded with spaces so that the data starts at a
 *                multiple of 64 bytes
 *   D   u32[N]   token ids, N = rows * seq_len, row-major
 *   D+4N u16[N]  document ids: 0 = padding, 1.. = the document's index within its row.
 *                Attention never crosses documents and positions restart at each document.
 *   D+6N u8[N]   loss mask: 1 where the token is a training target (the assistant's output),
 *                0 elsewhere (prompt, padding). The trainer predicts token t from tokens < t,
 *                so the mask of token t says whether that prediction counts.
 */

export const TOKEN_SHARD_MAGIC = "FTSHARD\0";
export const TOKEN_SHARD_VERSION = 1;
export const TOKEN_SHARD_ALIGNMENT = 64;
export const TOKEN_SHARD_FORMAT = "finetune-studio.token-shard";

export interface TokenShardHeader {
  format: typeof TOKEN_SHARD_FORMAT;
  version: number;
  /** Number of packed rows. */
  rows: number;
  /** Tokens per row. */
  seq_len: number;
  /** Size of the tokenizer's vocabulary; every token id is below it. */
  vocab_size: number;
  /** Tokenizer identity, e.g. "o200k_harmony" or a tokenizer.json sha256. */
  tokenizer: string;
  /** sha256 of the chat template text the samples were rendered with. */
  template_hash: string;
  /** Documents (samples) packed into this shard. */
  documents: number;
  /** Tokens whose loss mask is 1. */
  target_tokens: number;
}

/** Byte offsets of the three arrays for a header of `headerBytes` bytes. */
export function tokenShardLayout(rows: number, seqLen: number, headerBytes: number) {
  const count = rows * seqLen;
  const unpaddedDataStart = 12 + headerBytes;
  const dataStart = Math.ceil(unpaddedDataStart / TOKEN_SHARD_ALIGNMENT) * TOKEN_SHARD_ALIGNMENT;
  return {
    count,
    dataStart,
    tokensOffset: dataStart,
    documentIdsOffset: dataStart + 4 * count,
    lossMaskOffset: dataStart + 6 * count,
    totalBytes: dataStart + 7 * count,
  };
}

/** The prepared-dataset folder's manifest.json: lets a run verify it trains on what it thinks. */
export interface PreparedDatasetManifest {
  format: "finetune-studio.prepared-dataset";
  version: number;
  tokenizer: string;
  template_hash: string;
  seq_len: number;
  shards: Array<{ file: string; split: "train" | "eval"; rows: number; sha256: string }>;
  counts: { train_documents: number; eval_documents: number; target_tokens: number };
}
