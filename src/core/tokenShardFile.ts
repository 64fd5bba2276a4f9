/**
 * Writes and reads token shards (format in src/protocol/tokenShards.ts). Writing goes to a
 * temporary file that is renamed into place, so a crash never leaves a half shard that a
 * training run could pick up.
 */
import { closeSync, openSync, readSync, renameSync, rmSync, writeSync, fstatSync } from "node:fs";
import {
  TOKEN_SHARD_FORMAT,
  TOKEN_SHARD_MAGIC,
  TOKEN_SHARD_VERSION,
  tokenShardLayout,
  type TokenShardHeader,
} from "../protocol/tokenShards";

export interface PackedRows {
  rows: number;
  seqLen: number;
  tokens: Uint32Array;
  documentIds: Uint16Array;
  lossMask: Uint8Array;
}

export class TokenShardError extends Error {
  override name = "TokenShardError";
}

export function writeTokenShard(
  path: string,
  packed: PackedRows,
  meta: Pick<TokenShardHeader, "vocab_size" | "tokenizer" | "template_hash">,
): TokenShardHeader {
  const count = packed.rows * packed.seqLen;
  for (const [name, array] of [["tokens", packed.tokens], ["documentIds", packed.documentIds], ["lossMask", packed.lossMask]] as const) {
    if (array.length !== count) throw new TokenShardError(`${name} has ${array.length} entries; ${packed.rows} rows x ${packed.seqLen} needs ${count}.`);
  }
  let documents = 0;
  let targets = 0;
  for (let row = 0; row < packed.rows; row++) {
    let maxDocument = 0;
    for (let column = 0; column < packed.seqLen; column++) {
      const index = row * packed.seqLen + column;
      const token = packed.tokens[index] ?? 0;
      if (token >= meta.vocab_size) throw new TokenShardError(`Token ${token} at row ${row}, column ${column} is outside the vocabulary (${meta.vocab_size}).`);
      maxDocument = Math.max(maxDocument, packed.documentIds[index] ?? 0);
      targets += packed.lossMask[index] ?? 0;
    }
    documents += maxDocument;
  }
  const header: TokenShardHeader = {
    format: TOKEN_SHARD_FORMAT,
    version: TOKEN_SHARD_VERSION,
    rows: packed.rows,
    seq_len: packed.seqLen,
    vocab_size: meta.vocab_size,
    tokenizer: meta.tokenizer,
    template_hash: meta.template_hash,
    documents,
    target_tokens: targets,
  };
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const layout = tokenShardLayout(packed.rows, packed.seqLen, json.length);
  const prefix = Buffer.alloc(layout.dataStart, 0x20);
  prefix.write(TOKEN_SHARD_MAGIC, 0, "latin1");
  prefix.writeUInt32LE(json.length, 8);
  json.copy(prefix, 12);

  const temporary = `${path}.tmp-${process.pid}`;
  const fd = openSync(temporary, "w");
  try {
    writeSync(fd, prefix);
    writeSync(fd, toLittleEndianBytes(packed.tokens));
    writeSync(fd, toLittleEndianBytes(packed.documentIds));
    writeSync(fd, packed.lossMask);
    closeSync(fd);
    renameSync(temporary, path);
  } catch (error) {
    try {
      closeSync(fd);
    } catch {
      // Already closed.
    }
    rmSync(temporary, { force: true });
    throw error;
  }
  return header;
}

export function readTokenShard(path: string): { header: TokenShardHeader; packed: PackedRows } {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    const fixed = Buffer.alloc(12);
    readSync(fd, fixed, 0, 12, 0);
    if (fixed.toString("latin1", 0, 8) !== TOKEN_SHARD_MAGIC) throw new TokenShardError(`${path} is not a token shard (bad magic).`);
    const headerBytes = fixed.readUInt32LE(8);
    if (headerBytes > 1_000_000 || 12 + headerBytes > size) throw new TokenShardError(`${path}: header length ${headerBytes} is impossible for a ${size}-byte file.`);
    const json = Buffer.alloc(headerBytes);
    readSync(fd, json, 0, headerBytes, 12);
    const header = JSON.parse(json.toString("utf8")) as TokenShardHeader;
    if (header.format !== TOKEN_SHARD_FORMAT || header.version !== TOKEN_SHARD_VERSION) {
      throw new TokenShardError(`${path}: format ${header.format} v${header.version}; this build reads ${TOKEN_SHARD_FORMAT} v${TOKEN_SHARD_VERSION}.`);
    }
    const layout = tokenShardLayout(header.rows, header.seq_len, headerBytes);
    if (layout.totalBytes !== size) throw new TokenShardError(`${path}: ${size} bytes, but ${header.rows}x${header.seq_len} rows need ${layout.totalBytes} (truncated or corrupt).`);
    const data = Buffer.alloc(size - layout.dataStart);
    readSync(fd, data, 0, data.length, layout.dataStart);
    const tokens = new Uint32Array(layout.count);
    const documentIds = new Uint16Array(layout.count);
    for (let index = 0; index < layout.count; index++) {
      tokens[index] = data.readUInt32LE(4 * index);
      documentIds[index] = data.readUInt16LE(4 * layout.count + 2 * index);
    }
    const lossMask = new Uint8Array(data.subarray(6 * layout.count, 7 * layout.count));
    return { header, packed: { rows: header.rows, seqLen: header.seq_len, tokens, documentIds, lossMask } };
  } finally {
    closeSync(fd);
  }
}

/** Typed arrays use the platform's byte order; the format is little-endian everywhere. */
function toLittleEndianBytes(array: Uint32Array | Uint16Array): Buffer {
  const bytes = Buffer.alloc(array.byteLength);
  array.forEach((value, index) => {
    if (array.BYTES_PER_ELEMENT === 4) bytes.writeUInt32LE(value, 4 * index);
    else bytes.writeUInt16LE(value, 2 * index);
  });
  return bytes;
}
