/**
 * The prepared-dataset folder on disk: shards, prepare-report.json and manifest.json
 * (PreparedDatasetManifest). The manifest is written last, to a temporary name that is renamed
 * into place, and is deleted first when a folder is prepared again: a folder with a manifest
 * is complete, and a folder without one never passes verification.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  TOKEN_SHARD_FORMAT,
  TOKEN_SHARD_MAGIC,
  TOKEN_SHARD_VERSION,
  tokenShardLayout,
  type PreparedDatasetManifest,
  type TokenShardHeader,
} from "../../protocol/tokenShards";
import { PrepareError } from "./errors";

export const MANIFEST_FILE = "manifest.json";
export const REPORT_FILE = "prepare-report.json";
export const PREPARED_DATASET_FORMAT = "finetune-studio.prepared-dataset";
export const PREPARED_DATASET_VERSION = 1;
/** Names this module writes; stale ones from an earlier preparation are removed. */
export const SHARD_NAME_PATTERN = /^(train|eval)-\d{5}\.ftshard$/;

export function shardFileName(split: "train" | "eval", index: number): string {
  return `${split}-${String(index).padStart(5, "0")}.ftshard`;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

export async function writeJsonAtomically(path: string, value: unknown): Promise<void> {
  const temporary = `${path}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`;
  try {
    await writeFile(temporary, `${JSON.stringify(value, null, 2)}\n`, "utf8");
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/** Reads just the header of a shard (the data can be gigabytes). */
export async function readShardHeader(path: string): Promise<{ header: TokenShardHeader; headerBytes: number; size: number }> {
  const handle = await open(path, "r");
  try {
    const { size } = await handle.stat();
    const fixed = Buffer.alloc(12);
    await handle.read(fixed, 0, 12, 0);
    if (size < 12 || fixed.toString("latin1", 0, 8) !== TOKEN_SHARD_MAGIC) throw new Error("not a token shard (bad magic)");
    const headerBytes = fixed.readUInt32LE(8);
    if (headerBytes > 1_000_000 || 12 + headerBytes > size) throw new Error(`header length ${headerBytes} is impossible for a ${size}-byte file`);
    const json = Buffer.alloc(headerBytes);
    await handle.read(json, 0, headerBytes, 12);
    return { header: JSON.parse(json.toString("utf8")) as TokenShardHeader, headerBytes, size };
  } finally {
    await handle.close();
  }
}

function fail(file: string, problem: string): never {
  throw new PrepareError("verify_failed", `${file}: ${problem}`);
}

/**
 * Checks a prepared folder against its manifest: every shard exists, has the recorded sha256,
 * a header that agrees with the manifest (rows, seq_len, tokenizer, template hash) and the
 * size that header implies; document and target counts add up. Returns the manifest, or
 * throws PrepareError("verify_failed") naming the file.
 */
export async function verifyPreparedDataset(outDir: string): Promise<PreparedDatasetManifest> {
  const manifestPath = join(outDir, MANIFEST_FILE);
  let manifest: PreparedDatasetManifest;
  try {
    manifest = JSON.parse(await readFile(manifestPath, "utf8")) as PreparedDatasetManifest;
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === "ENOENT";
    fail(manifestPath, missing ? "missing: the dataset was never prepared here or preparation did not finish." : `unreadable: ${(error as Error).message}`);
  }
  if (manifest.format !== PREPARED_DATASET_FORMAT || manifest.version !== PREPARED_DATASET_VERSION) {
    fail(manifestPath, `format ${String(manifest.format)} v${String(manifest.version)}; this build reads ${PREPARED_DATASET_FORMAT} v${PREPARED_DATASET_VERSION}.`);
  }
  if (!Array.isArray(manifest.shards) || manifest.shards.length === 0) fail(manifestPath, "lists no shards.");
  const documents = { train: 0, eval: 0 };
  let targets = 0;
  for (const shard of manifest.shards) {
    if (typeof shard.file !== "string" || shard.file.includes("/") || shard.file.includes("\\")) fail(manifestPath, `bad shard entry ${JSON.stringify(shard)}.`);
    const path = join(outDir, shard.file);
    try {
      await stat(path);
    } catch {
      fail(path, "listed in manifest.json but missing.");
    }
    let parsed: Awaited<ReturnType<typeof readShardHeader>>;
    try {
      parsed = await readShardHeader(path);
    } catch (error) {
      fail(path, (error as Error).message);
    }
    const { header, headerBytes, size } = parsed;
    if (header.format !== TOKEN_SHARD_FORMAT || header.version !== TOKEN_SHARD_VERSION) fail(path, `format ${header.format} v${header.version} is not ${TOKEN_SHARD_FORMAT} v${TOKEN_SHARD_VERSION}.`);
    if (header.rows !== shard.rows) fail(path, `header has ${header.rows} rows; manifest.json says ${shard.rows}.`);
    if (header.seq_len !== manifest.seq_len) fail(path, `header seq_len ${header.seq_len}; manifest.json says ${manifest.seq_len}.`);
    if (header.tokenizer !== manifest.tokenizer) fail(path, `tokenizer ${header.tokenizer}; manifest.json says ${manifest.tokenizer}.`);
    if (header.template_hash !== manifest.template_hash) fail(path, `template hash ${header.template_hash}; manifest.json says ${manifest.template_hash}.`);
    const expectedSize = tokenShardLayout(header.rows, header.seq_len, headerBytes).totalBytes;
    if (size !== expectedSize) fail(path, `${size} bytes; its header needs ${expectedSize} (truncated or padded).`);
    const digest = await sha256File(path);
    if (digest !== shard.sha256) fail(path, `sha256 ${digest} differs from manifest.json's ${shard.sha256} (the file changed or is corrupt).`);
    documents[shard.split] += header.documents;
    targets += header.target_tokens;
  }
  if (documents.train !== manifest.counts.train_documents || documents.eval !== manifest.counts.eval_documents) {
    fail(manifestPath, `shards hold ${documents.train} train / ${documents.eval} eval documents; counts say ${manifest.counts.train_documents} / ${manifest.counts.eval_documents}.`);
  }
  if (targets !== manifest.counts.target_tokens) fail(manifestPath, `shards hold ${targets} target tokens; counts say ${manifest.counts.target_tokens}.`);
  return manifest;
}
