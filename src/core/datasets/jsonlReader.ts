/**
 * Streams a JSONL file line by line and says, per line, whether it can be parsed at all:
 * text, blank, not UTF-8, or too long to try. Memory is one read chunk plus one line of at
 * most `maxLineBytes`, whatever the file's size; a longer line is counted, not kept.
 *
 * Every line carries the byte offset and length of its content (line ending excluded), so
 * the record editor can later replace exactly those bytes and nothing else. Line 1's byte
 * offset is 3 when the file starts with a UTF-8 byte order mark: the BOM stays part of the
 * file, it is just not part of the record.
 */
import { createReadStream } from "node:fs";
import { fileError } from "./problems";

/** Lines above this are reported without being decoded or parsed (8 MiB). */
export const DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024;
const DEFAULT_CHUNK_BYTES = 1024 * 1024;
const UTF8_BOM = [0xef, 0xbb, 0xbf] as const;

export type LineEnding = "\n" | "\r\n" | "";

interface LinePosition {
  /** 1-based line number. */
  line: number;
  /** Offset of the line's first content byte in the file. */
  byteOffset: number;
  /** Content bytes, without the line ending. */
  byteLength: number;
  /** The line's own ending; "" only for a last line without a newline. */
  lineEnding: LineEnding;
}

export type JsonlLine =
  | (LinePosition & { kind: "text"; text: string })
  /** Nothing but whitespace. */
  | (LinePosition & { kind: "empty"; text: string })
  | (LinePosition & {
      kind: "invalid_utf8";
      /** 0-based index of the first bad byte within the line's content. */
      badByteIndex: number;
      /** 1-based column (UTF-16 units) where the bad byte sits, counting the valid text before it. */
      column: number;
      /** The bad byte and up to three after it, in hex (e.g. "e9 74 e9"). */
      badBytes: string;
    })
  /** Longer than the limit: neither decoded nor kept in memory. */
  | (LinePosition & { kind: "enormous" });

export interface JsonlReaderOptions {
  maxLineBytes?: number;
  /** Read size; tests make it tiny to split lines and characters across chunks. */
  chunkBytes?: number;
}

export async function* readJsonlLines(file: string, options: JsonlReaderOptions = {}): AsyncGenerator<JsonlLine> {
  for await (const batch of readJsonlLineBatches(file, options)) yield* batch;
}

/**
 * The same lines, as one array per read chunk (about 1 MiB of text): one await per chunk
 * instead of per line, which is most of the cost of a per-line async generator on short lines.
 */
export async function* readJsonlLineBatches(file: string, options: JsonlReaderOptions = {}): AsyncGenerator<JsonlLine[]> {
  const maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  const stream = createReadStream(file, { highWaterMark: options.chunkBytes ?? DEFAULT_CHUNK_BYTES });
  const line = new LineAccumulator(maxLineBytes);
  let chunkStart = 0;
  let head: Buffer | undefined = Buffer.alloc(0);
  try {
    for await (const data of stream as AsyncIterable<Buffer>) {
      let chunk = data;
      if (head !== undefined) {
        // The BOM check needs the first three bytes, which a tiny first chunk may not hold.
        head = Buffer.concat([head, chunk]);
        if (head.length < UTF8_BOM.length) continue;
        chunk = head;
        head = undefined;
        if (startsWithBom(chunk)) {
          chunk = chunk.subarray(UTF8_BOM.length);
          chunkStart = UTF8_BOM.length;
          line.startAt(chunkStart);
        }
      }
      const batch: JsonlLine[] = [];
      let from = 0;
      for (;;) {
        const newline = chunk.indexOf(0x0a, from);
        line.append(chunk.subarray(from, newline === -1 ? chunk.length : newline));
        if (newline === -1) break;
        batch.push(line.finish(true));
        line.startAt(chunkStart + newline + 1);
        from = newline + 1;
      }
      chunkStart += chunk.length;
      if (batch.length > 0) yield batch;
    }
  } catch (error) {
    throw fileError(file, error);
  }
  if (head !== undefined && head.length > 0) {
    // A file shorter than a BOM.
    line.append(head);
  }
  if (line.hasContent) yield [line.finish(false)];
}

export function startsWithBom(bytes: Uint8Array): boolean {
  return bytes[0] === UTF8_BOM[0] && bytes[1] === UTF8_BOM[1] && bytes[2] === UTF8_BOM[2];
}

/** Collects one line's pieces across chunks, dropping them once the line is over the limit. */
class LineAccumulator {
  private readonly decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  private pieces: Buffer[] = [];
  private bytes = 0;
  private tooLong = false;
  private lastByte = -1;
  private lineNumber = 1;
  private offset = 0;

  constructor(private readonly maxLineBytes: number) {}

  get hasContent(): boolean {
    return this.bytes > 0;
  }

  startAt(offset: number): void {
    this.offset = offset;
  }

  append(piece: Buffer): void {
    if (piece.length === 0) return;
    this.bytes += piece.length;
    this.lastByte = piece[piece.length - 1] ?? -1;
    if (this.tooLong) return;
    // One byte of slack: a CR before the newline is not part of the content.
    if (this.bytes > this.maxLineBytes + 1) {
      this.tooLong = true;
      this.pieces = [];
      return;
    }
    this.pieces.push(piece);
  }

  finish(endsWithNewline: boolean): JsonlLine {
    const carriageReturn = endsWithNewline && this.lastByte === 0x0d;
    const byteLength = carriageReturn ? this.bytes - 1 : this.bytes;
    const position: LinePosition = {
      line: this.lineNumber,
      byteOffset: this.offset,
      byteLength,
      lineEnding: carriageReturn ? "\r\n" : endsWithNewline ? "\n" : "",
    };
    let result: JsonlLine;
    if (this.tooLong || byteLength > this.maxLineBytes) {
      result = { ...position, kind: "enormous" };
    } else {
      // Pieces still share memory with the read chunk; one piece needs no copy.
      const joined = this.pieces.length === 1 ? (this.pieces[0] as Buffer) : Buffer.concat(this.pieces);
      result = this.decode(joined.subarray(0, byteLength), position);
    }
    this.lineNumber++;
    this.pieces = [];
    this.bytes = 0;
    this.tooLong = false;
    this.lastByte = -1;
    return result;
  }

  private decode(content: Buffer, position: LinePosition): JsonlLine {
    let text: string;
    try {
      text = this.decoder.decode(content);
    } catch {
      const badByteIndex = Math.max(0, firstInvalidUtf8Byte(content));
      const before = new TextDecoder("utf-8", { ignoreBOM: true }).decode(content.subarray(0, badByteIndex));
      const badBytes = [...content.subarray(badByteIndex, badByteIndex + 4)].map((byte) => byte.toString(16).padStart(2, "0")).join(" ");
      return { ...position, kind: "invalid_utf8", badByteIndex, column: before.length + 1, badBytes };
    }
    return isBlank(text) ? { ...position, kind: "empty", text } : { ...position, kind: "text", text };
  }
}

function isBlank(text: string): boolean {
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code !== 0x20 && code !== 0x09 && code !== 0x0d) return false;
  }
  return true;
}

/**
 * Index of the first byte that breaks UTF-8 (RFC 3629: no overlongs, no surrogates, nothing
 * above U+10FFFF), or -1. TextDecoder only says *that* a line is bad; users need *where*.
 */
export function firstInvalidUtf8Byte(bytes: Uint8Array): number {
  let index = 0;
  while (index < bytes.length) {
    const lead = bytes[index] as number;
    if (lead < 0x80) {
      index++;
      continue;
    }
    let continuation: number;
    let low = 0x80;
    let high = 0xbf;
    if (lead >= 0xc2 && lead <= 0xdf) continuation = 1;
    else if (lead >= 0xe0 && lead <= 0xef) {
      continuation = 2;
      if (lead === 0xe0) low = 0xa0;
      if (lead === 0xed) high = 0x9f;
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      continuation = 3;
      if (lead === 0xf0) low = 0x90;
      if (lead === 0xf4) high = 0x8f;
    } else return index;
    for (let offset = 1; offset <= continuation; offset++) {
      const byte = bytes[index + offset];
      const [min, max] = offset === 1 ? [low, high] : [0x80, 0xbf];
      if (byte === undefined || byte < min || byte > max) return index;
    }
    index += continuation + 1;
  }
  return -1;
}
