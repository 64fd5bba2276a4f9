/**
 * The vocabulary every dataset module reports in. A per-line problem is data (it goes into
 * the validation report, crosses the worker boundary and lands in the Problems panel); a
 * DatasetError is thrown when an operation as a whole cannot go on (missing file, edit
 * conflict, cancelled run).
 *
 * Severity has one meaning everywhere: an error means the line yields no usable training
 * sample; a warning means it does, but probably not the one the user intended.
 */

export type ProblemSeverity = "error" | "warning";

export type DatasetProblemCode =
  /** The line is not JSON; `column` points at the offending character. */
  | "invalid_json"
  /** The line's bytes are not UTF-8; `column` is where the first bad byte sits. */
  | "invalid_utf8"
  /** Blank or whitespace-only line. Most loaders skip it, some stop at it. */
  | "empty_line"
  /** Longer than the line limit; not parsed at all. */
  | "enormous_line"
  /** Valid JSON whose shape does not fit the detected format; `field` names the path. */
  | "schema"
  /** Valid JSON of no known format; the message lists the fields each format expects. */
  | "unknown_format"
  /** A record of a known format other than the file's dominant one. */
  | "mixed_format"
  /** The same sample (after normalisation) as an earlier line. */
  | "duplicate"
  /** An assistant turn with no content, reasoning or tool call: it teaches silence. */
  | "empty_assistant"
  /** Nothing for the loss to learn from: no assistant turn at all. */
  | "no_trainable_turn"
  /** More tokens than the chosen model's maximum length. */
  | "too_long"
  /** The token counter threw for this sample. */
  | "token_count_failed";

export interface DatasetProblem {
  /** 1-based line in the JSONL file. */
  line: number;
  /** 1-based column in UTF-16 code units of the decoded line, as editors count (VS Code's Position.character + 1). */
  column?: number;
  severity: ProblemSeverity;
  code: DatasetProblemCode;
  /** Complete on its own: starts with the field path when there is one. */
  message: string;
  /** Field path inside the record, e.g. `messages[2].role`. */
  field?: string;
}

/** A shape problem inside one record, before it has a line number. */
export interface SchemaIssue {
  severity: ProblemSeverity;
  code: Extract<DatasetProblemCode, "schema" | "unknown_format" | "empty_assistant" | "no_trainable_turn">;
  /** Path of the offending field; empty for the record as a whole. */
  field: string;
  message: string;
}

export function issueToProblem(issue: SchemaIssue, line: number): DatasetProblem {
  const problem: DatasetProblem = { line, severity: issue.severity, code: issue.code, message: issue.message };
  if (issue.field !== "") problem.field = issue.field;
  return problem;
}

/** `data.jsonl:3:17: error [invalid_json] ...`, the shape compilers print and editors link. */
export function formatProblem(file: string, problem: DatasetProblem): string {
  const where = problem.column === undefined ? `${file}:${problem.line}` : `${file}:${problem.line}:${problem.column}`;
  return `${where}: ${problem.severity} [${problem.code}] ${problem.message}`;
}

export type DatasetErrorCode =
  | "not_found"
  | "read_failed"
  | "line_not_found"
  | "edit_conflict"
  | "invalid_record"
  | "worker_failed"
  | "bad_option";

export class DatasetError extends Error {
  constructor(
    readonly code: DatasetErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "DatasetError";
  }

  static is(error: unknown, code?: DatasetErrorCode): error is DatasetError {
    return error instanceof DatasetError && (code === undefined || error.code === code);
  }
}

/** Turns a failed fs call into a DatasetError that names the file and says what went wrong. */
export function fileError(file: string, error: unknown): DatasetError {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ENOENT") return new DatasetError("not_found", `${file}: no such file.`);
  if (code === "EISDIR") return new DatasetError("read_failed", `${file} is a folder, not a JSONL file.`);
  if (code === "EACCES" || code === "EPERM") return new DatasetError("read_failed", `${file}: permission denied.`);
  return new DatasetError("read_failed", `${file}: ${error instanceof Error ? error.message : String(error)}`);
}
