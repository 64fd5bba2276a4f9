/**
 * Replaces one record of a user's JSONL file and nothing else. Every other byte (other
 * records, their spacing, CRLF or LF endings, the BOM) is copied as it was; the new file is
 * written beside the old one and renamed over it, so a crash leaves either the old file or
 * the new one, never half of each. The edit is refused when the line on disk is no longer
 * what the editor was showing (someone else wrote to the file), or when the new record
 * would not validate: the editor must never make a dataset worse.
 */
import { createHash, randomBytes } from "node:crypto";
import { open, rename, rm, stat, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { DatasetFormat } from "./conversation";
import { convertRecord } from "./formats";
import { DEFAULT_MAX_LINE_BYTES, readJsonlLines } from "./jsonlReader";
import { DatasetError, fileError } from "./problems";

const COPY_CHUNK_BYTES = 1024 * 1024;

/** A line as it was read: where it sits and what it held. */
export interface RecordLocation {
  /** 1-based line number. */
  line: number;
  byteOffset: number;
  byteLength: number;
  /** The line's text; invalid UTF-8 shows as U+FFFD. */
  text: string;
  /** SHA-256 (hex) of the line's bytes: what the conflict check compares. */
  contentHash: string;
}

export interface ReplaceRecordOptions {
  /** The file's dominant format, for sharper messages about an edited record of unknown shape. */
  fileFormat?: DatasetFormat;
  maxLineBytes?: number;
}

/** Reads one line for editing; the result is what replaceRecord needs to write it back. */
export async function readRecordLine(file: string, line: number): Promise<RecordLocation> {
  // A limit of 0 makes every line "enormous": nothing before the wanted line is decoded or kept.
  for await (const read of readJsonlLines(file, { maxLineBytes: 0 })) {
    if (read.line < line) continue;
    // The raw bytes, read once more: the conflict check compares bytes, even for a non-UTF-8 line.
    const bytes = await readBytes(file, read.byteOffset, read.byteLength);
    return { line, byteOffset: read.byteOffset, byteLength: read.byteLength, text: bytes.toString("utf8"), contentHash: sha256(bytes) };
  }
  throw new DatasetError("line_not_found", `${file} has no line ${line}.`);
}

export async function replaceRecord(file: string, original: RecordLocation, newRecord: unknown, options: ReplaceRecordOptions = {}): Promise<RecordLocation> {
  const where = `${file}:${original.line}`;
  const conversion = convertRecord(newRecord, options.fileFormat);
  const errors = conversion.issues.filter((issue) => issue.severity === "error");
  if (errors.length > 0) {
    throw new DatasetError("invalid_record", `${where}: the edited record was not saved because it does not validate: ${errors.map((issue) => issue.message).join("; ")}`);
  }
  const text = JSON.stringify(newRecord);
  const replacement = Buffer.from(text, "utf8");
  const maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  if (replacement.length > maxLineBytes) throw new DatasetError("invalid_record", `${where}: the edited record is ${replacement.length} bytes, over the ${maxLineBytes}-byte line limit.`);

  const conflict = (why: string): DatasetError =>
    new DatasetError("edit_conflict", `${where} was not saved: ${why}. Another program changed the file since the line was read; reload it and edit again.`);
  const before = await stat(file).catch((error: unknown) => {
    throw fileError(file, error);
  });
  const end = original.byteOffset + original.byteLength;
  if (end > before.size) throw conflict(`the file is now ${before.size} bytes, shorter than where line ${original.line} ended (${end})`);

  const temporary = join(dirname(file), `.${basename(file)}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`);
  let source: FileHandle | undefined;
  let target: FileHandle | undefined;
  try {
    source = await open(file, "r");
    const current = await readAt(source, original.byteOffset, original.byteLength);
    if (sha256(current) !== original.contentHash) throw conflict(`line ${original.line} no longer holds the record that was read`);
    const next = await readAt(source, end, 1);
    if (next.length === 1 && next[0] !== 0x0a && next[0] !== 0x0d) throw conflict(`line ${original.line} now continues past the record that was read`);

    target = await open(temporary, "wx", before.mode & 0o7777);
    const newlines = await copyRange(source, target, 0, original.byteOffset);
    if (newlines.count !== original.line - 1 || (original.byteOffset > 0 && newlines.lastByte !== 0x0a && !isBomOnly(original))) {
      throw conflict(`the record is no longer on line ${original.line} (${newlines.count + 1} by the file's current contents)`);
    }
    await target.write(replacement);
    await copyRange(source, target, end, before.size);
    await target.sync();
    await target.close();
    target = undefined;

    const after = await stat(file);
    if (after.size !== before.size || after.mtimeMs !== before.mtimeMs) throw conflict("the file was written to while the edit was being saved");
    await rename(temporary, file);
  } catch (error) {
    await target?.close().catch(() => undefined);
    await rm(temporary, { force: true });
    throw DatasetError.is(error) ? error : fileError(file, error);
  } finally {
    await source?.close();
  }
  return { line: original.line, byteOffset: original.byteOffset, byteLength: replacement.length, text, contentHash: sha256(replacement) };
}

/** Line 1 of a file with a BOM starts at byte 3, after no newline at all. */
function isBomOnly(location: RecordLocation): boolean {
  return location.line === 1 && location.byteOffset === 3;
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

async function readBytes(file: string, offset: number, length: number): Promise<Buffer> {
  const handle = await open(file, "r");
  try {
    return await readAt(handle, offset, length);
  } finally {
    await handle.close();
  }
}

async function readAt(handle: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(buffer, filled, length - filled, offset + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return buffer.subarray(0, filled);
}

/** Copies bytes [from, to) and counts the newlines among them (the prefix must hold line - 1). */
async function copyRange(source: FileHandle, target: FileHandle, from: number, to: number): Promise<{ count: number; lastByte: number }> {
  const buffer = Buffer.alloc(Math.min(COPY_CHUNK_BYTES, Math.max(1, to - from)));
  let count = 0;
  let lastByte = -1;
  for (let position = from; position < to; ) {
    const { bytesRead } = await source.read(buffer, 0, Math.min(buffer.length, to - position), position);
    if (bytesRead === 0) throw new DatasetError("edit_conflict", "The file got shorter while the edit was being saved.");
    const chunk = buffer.subarray(0, bytesRead);
    for (let at = chunk.indexOf(0x0a); at !== -1; at = chunk.indexOf(0x0a, at + 1)) count++;
    lastByte = chunk[bytesRead - 1] ?? lastByte;
    await target.write(chunk);
    position += bytesRead;
  }
  return { count, lastByte };
}
