/**
 * Recognises which dataset format a record is in and converts it to a TrainingSample.
 *
 * Detection looks only at which top-level fields are present, never at their values, so a
 * record with a broken value is still recognised and gets a precise schema error for its
 * own format ("messages[2].role: ...") instead of a vague "unknown format". Only a record
 * none of whose fields belong to any format gets the list of what each format expects.
 */
import { convertChatMessages, convertShareGpt } from "./chatFormats";
import type { DatasetFormat, TrainingSample } from "./conversation";
import { readJsonlLines, type JsonlReaderOptions } from "./jsonlReader";
import type { SchemaIssue } from "./problems";
import { closestWord, describeValue, isJsonObject, IssueList, quote, type JsonObject } from "./recordFields";
import { convertFim, convertInstruction, convertPromptCompletion } from "./textFormats";

export const DATASET_FORMATS: readonly DatasetFormat[] = ["chat-messages", "sharegpt", "instruction", "prompt-completion", "fim"];

/** What each format expects, in the words unknown-shape messages use. */
export const FORMAT_FIELDS: Readonly<Record<DatasetFormat, string>> = {
  "chat-messages": "messages: [{role: system|developer|user|assistant|tool, content}], optional tools",
  sharegpt: "conversations: [{from: human|gpt|system|function_call|observation, value}], optional system, tools",
  instruction: "instruction, optional input, output (Alpaca; optional system, history)",
  "prompt-completion": "prompt, completion",
  fim: "prefix, suffix, middle, optional path",
};

/** Every top-level field a format is recognised by, for "did you mean" hints. */
const FORMAT_KEYS = ["messages", "conversations", "instruction", "input", "output", "response", "prompt", "completion", "prefix", "suffix", "middle"];

const CONVERTERS: Record<DatasetFormat, (record: JsonObject, issues: IssueList) => TrainingSample | undefined> = {
  "chat-messages": convertChatMessages,
  sharegpt: convertShareGpt,
  instruction: convertInstruction,
  "prompt-completion": convertPromptCompletion,
  fim: convertFim,
};

/** The format a record's fields point to, or undefined when they point to none. */
export function detectRecordFormat(record: unknown): DatasetFormat | undefined {
  if (!isJsonObject(record)) return undefined;
  const has = (key: string): boolean => Object.hasOwn(record, key);
  if (has("messages")) return "chat-messages";
  if (has("conversations")) return "sharegpt";
  if (["prefix", "suffix", "middle"].filter(has).length >= 2) return "fim";
  if (has("prompt") || has("completion")) return "prompt-completion";
  if (has("instruction") || ((has("output") || has("response")) && (has("input") || has("context")))) return "instruction";
  return undefined;
}

export interface RecordConversion {
  format: DatasetFormat | undefined;
  /** Present only when no issue is an error. */
  sample: TrainingSample | undefined;
  issues: SchemaIssue[];
}

/**
 * Converts one parsed JSONL record. `fileFormat`, the file's dominant format when known,
 * only sharpens the message for a record of unknown shape.
 */
export function convertRecord(record: unknown, fileFormat?: DatasetFormat): RecordConversion {
  const issues = new IssueList();
  if (!isJsonObject(record)) {
    issues.error("", notAnObject(record));
    return { format: undefined, sample: undefined, issues: issues.issues };
  }
  const format = detectRecordFormat(record);
  if (format === undefined) {
    issues.error("", unknownShape(record, fileFormat), "unknown_format");
    return { format, sample: undefined, issues: issues.issues };
  }
  const sample = CONVERTERS[format](record, issues);
  return { format, sample: issues.hasErrors ? undefined : sample, issues: issues.issues };
}

function notAnObject(value: unknown): string {
  const arrayOfRecords = Array.isArray(value) && value.length > 0 && value.every(isJsonObject);
  const hint = arrayOfRecords ? "; this looks like a JSON array of records: write each record on a line of its own" : "";
  return `the line is ${describeValue(value)}, but each line must be one JSON object (one record)${hint}`;
}

function unknownShape(record: JsonObject, fileFormat: DatasetFormat | undefined): string {
  const keys = Object.keys(record);
  const found = keys.length === 0 ? "The record is an empty object" : `The fields ${keys.slice(0, 8).map((key) => quote(key)).join(", ")} match no dataset format`;
  const typos = keys
    .map((key) => ({ key, known: closestWord(key, FORMAT_KEYS) }))
    .filter((pair): pair is { key: string; known: string } => pair.known !== undefined)
    .map((pair) => `${quote(pair.key)} looks like ${quote(pair.known)}`);
  const parts = [found + "."];
  if (typos.length > 0) parts.push(`${typos.join("; ")}.`);
  if (fileFormat !== undefined) parts.push(`The rest of the file is ${fileFormat} (${FORMAT_FIELDS[fileFormat]}).`);
  if (Object.hasOwn(record, "text")) parts.push(`Plain "text" records are not supported: training needs a prompt and a response to mask the loss.`);
  parts.push(`Each format expects: ${DATASET_FORMATS.map((format) => `${format}: ${FORMAT_FIELDS[format]}`).join("; ")}.`);
  return parts.join(" ");
}

/**
 * Decides a file's dominant format from its first `window` valid records. Later records of
 * another format are still converted, but flagged: a file that mixes formats is usually two
 * files concatenated by mistake.
 */
export class FormatDetector {
  private readonly counts = new Map<DatasetFormat, number>();
  private observed = 0;

  constructor(readonly window: number) {}

  observe(format: DatasetFormat): void {
    if (this.observed >= this.window) return;
    this.observed++;
    this.counts.set(format, (this.counts.get(format) ?? 0) + 1);
  }

  get settled(): boolean {
    return this.observed >= this.window;
  }

  get sampled(): number {
    return this.observed;
  }

  /** The most frequent format so far; on a tie, the one seen first. */
  get dominant(): DatasetFormat | undefined {
    let best: DatasetFormat | undefined;
    let bestCount = 0;
    for (const [format, count] of this.counts) {
      if (count > bestCount) {
        best = format;
        bestCount = count;
      }
    }
    return best;
  }
}

export const DEFAULT_DETECTION_WINDOW = 200;

/** The dominant format of a file, from its first `window` records of a known format. */
export async function detectDatasetFormat(
  file: string,
  options: JsonlReaderOptions & { window?: number } = {},
): Promise<{ dominant: DatasetFormat | undefined; sampled: number }> {
  const detector = new FormatDetector(options.window ?? DEFAULT_DETECTION_WINDOW);
  for await (const line of readJsonlLines(file, options)) {
    if (line.kind !== "text") continue;
    let record: unknown;
    try {
      record = JSON.parse(line.text);
    } catch {
      continue;
    }
    const format = detectRecordFormat(record);
    if (format !== undefined) detector.observe(format);
    if (detector.settled) break;
  }
  return { dominant: detector.dominant, sampled: detector.sampled };
}
