/**
 * One pass over a JSONL file that turns every line into either a TrainingSample or the
 * problems that keep it from being one. It checks each line on its own (bytes, JSON,
 * schema, empty turns); checks across lines (duplicates, mixed formats, length) belong to
 * validate.ts. Data preparation can read samples through scanDatasetLines too, so training
 * sees exactly the samples validation accepts.
 */
import { formatBinaryBytes } from "../formatBytes";
import type { DatasetFormat, TrainingSample } from "./conversation";
import { convertRecord } from "./formats";
import { parseJsonLine } from "./jsonErrors";
import { DEFAULT_MAX_LINE_BYTES, readJsonlLineBatches, type JsonlLine, type JsonlReaderOptions } from "./jsonlReader";
import { issueToProblem, type DatasetProblem } from "./problems";

export interface ScannedLine {
  line: number;
  byteOffset: number;
  byteLength: number;
  /** Offset just past the line ending: how far into the file the scan has got. */
  endOffset: number;
  /** The record's format, when it is a JSON object of a known format. */
  format: DatasetFormat | undefined;
  /** Present when the line converted without error; validate.ts may still add errors (too long). */
  sample: TrainingSample | undefined;
  problems: DatasetProblem[];
}

export interface ScanOptions extends JsonlReaderOptions {
  /** The file's dominant format, when already known; sharpens unknown-shape messages. */
  fileFormat?: () => DatasetFormat | undefined;
}

export async function* scanDatasetLines(file: string, options: ScanOptions = {}): AsyncGenerator<ScannedLine> {
  const maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  for await (const batch of readJsonlLineBatches(file, options)) {
    for (const line of batch) yield scanJsonlLine(line, maxLineBytes, options.fileFormat?.());
  }
}

/** Checks one line read by jsonlReader on its own. */
export function scanJsonlLine(line: JsonlLine, maxLineBytes: number, fileFormat: DatasetFormat | undefined): ScannedLine {
  const scanned: ScannedLine = {
    line: line.line,
    byteOffset: line.byteOffset,
    byteLength: line.byteLength,
    endOffset: line.byteOffset + line.byteLength + line.lineEnding.length,
    format: undefined,
    sample: undefined,
    problems: [],
  };
  if (line.kind !== "text") {
    scanned.problems.push(unreadableLineProblem(line, maxLineBytes));
    return scanned;
  }
  const parsed = parseJsonLine(line.text);
  if (!parsed.ok) {
    const { column, reason, excerpt } = parsed.error;
    scanned.problems.push({ line: line.line, column, severity: "error", code: "invalid_json", message: `invalid JSON at column ${column}: ${reason}. Near: ${excerpt}` });
    return scanned;
  }
  const conversion = convertRecord(parsed.value, fileFormat);
  scanned.format = conversion.format;
  scanned.sample = conversion.sample;
  for (const issue of conversion.issues) scanned.problems.push(issueToProblem(issue, line.line));
  return scanned;
}

function unreadableLineProblem(line: Exclude<JsonlLine, { kind: "text" }>, maxLineBytes: number): DatasetProblem {
  switch (line.kind) {
    case "empty":
      return {
        line: line.line,
        severity: "warning",
        code: "empty_line",
        message: "empty line; delete it (most loaders skip blank lines, some stop reading at the first one)",
      };
    case "enormous":
      return {
        line: line.line,
        severity: "error",
        code: "enormous_line",
        message:
          `the line is ${formatBinaryBytes(line.byteLength)}, over the ${formatBinaryBytes(maxLineBytes)} limit, and was not parsed; ` +
          "a record this long is usually several records joined by a lost newline, or a whole file pasted into a field",
      };
    case "invalid_utf8":
      if (line.line === 1 && line.badByteIndex === 0 && (line.badBytes.startsWith("ff fe") || line.badBytes.startsWith("fe ff"))) {
        return {
          line: line.line,
          column: 1,
          severity: "error",
          code: "invalid_utf8",
          message: "the file is UTF-16, not UTF-8 (Windows PowerShell's > and Out-File write UTF-16); re-save it as UTF-8, so every line can be read",
        };
      }
      return {
        line: line.line,
        column: line.column,
        severity: "error",
        code: "invalid_utf8",
        message:
          `invalid UTF-8 at byte ${line.badByteIndex + 1} of the line (column ${line.column}, bytes ${line.badBytes}); ` +
          "the file was probably saved in another encoding (Windows-1252 or Latin-1?): re-save it as UTF-8",
      };
  }
}

