/**
 * Small typed readers for the fields of one JSON record. Each reader either returns the
 * value or records an issue whose message starts with the field's full path
 * (`messages[2].content: must be text, found a number (3)`), so every converter reports
 * in the same words and the user can find the spot without reading our code.
 */
import type { ProblemSeverity, SchemaIssue } from "./problems";

export type JsonObject = Record<string, unknown>;

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export class IssueList {
  readonly issues: SchemaIssue[] = [];

  error(field: string, text: string, code: SchemaIssue["code"] = "schema"): void {
    this.add("error", code, field, text);
  }

  warn(field: string, text: string, code: SchemaIssue["code"] = "schema"): void {
    this.add("warning", code, field, text);
  }

  get hasErrors(): boolean {
    return this.issues.some((issue) => issue.severity === "error");
  }

  private add(severity: ProblemSeverity, code: SchemaIssue["code"], field: string, text: string): void {
    this.issues.push({ severity, code, field, message: field === "" ? text : `${field}: ${text}` });
  }
}

/** `a number (3)`, `null`, `an array`: what was found where something else was expected. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === "string") return `the text ${quote(value)}`;
  if (typeof value === "number" || typeof value === "boolean") return `a ${typeof value} (${String(value)})`;
  if (isJsonObject(value)) return `an object with ${listKeys(value)}`;
  return typeof value;
}

export function listKeys(object: JsonObject): string {
  const keys = Object.keys(object);
  if (keys.length === 0) return "no fields";
  const shown = keys.slice(0, 8).map((key) => quote(key)).join(", ");
  return keys.length > 8 ? `fields ${shown} and ${keys.length - 8} more` : `fields ${shown}`;
}

/** JSON-quoted and shortened, so a 5 MB string never ends up in a message. */
export function quote(text: string, max = 40): string {
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text);
}

export interface TextOptions {
  /** Missing or null reads as "" (assistant content next to tool calls, tool output). */
  optional?: boolean;
}

/**
 * Message content: a string, or OpenAI-style content parts of type "text" (joined without a
 * separator, as chat templates that iterate parts do). Other part types (images, audio) are
 * rejected: nothing downstream can train on them, and dropping them silently changes the sample.
 */
export function readText(value: unknown, field: string, issues: IssueList, options: TextOptions = {}): string | undefined {
  if (typeof value === "string") return value;
  if (value === undefined || value === null) {
    if (options.optional) return "";
    issues.error(field, value === null ? "is null; it must be text" : "is missing; it must be text");
    return undefined;
  }
  if (Array.isArray(value)) return readContentParts(value, field, issues);
  issues.error(field, `must be text, found ${describeValue(value)}`);
  return undefined;
}

function readContentParts(parts: unknown[], field: string, issues: IssueList): string | undefined {
  let text = "";
  let failed = false;
  parts.forEach((part, index) => {
    const partField = `${field}[${index}]`;
    if (typeof part === "string") {
      text += part;
    } else if (isJsonObject(part) && (part["type"] === "text" || part["type"] === undefined) && typeof part["text"] === "string") {
      text += part["text"];
    } else if (isJsonObject(part) && typeof part["type"] === "string" && part["type"] !== "text") {
      issues.error(`${partField}.type`, `${quote(part["type"])} content is not supported; only text parts ({"type": "text", "text": ...}) can be trained on`);
      failed = true;
    } else {
      issues.error(partField, `must be a text part {"type": "text", "text": "..."}, found ${describeValue(part)}`);
      failed = true;
    }
  });
  return failed ? undefined : text;
}

/** An optional string field: absent or null gives undefined, anything else but text is an issue. */
export function readOptionalString(value: unknown, field: string, issues: IssueList): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") return value;
  issues.error(field, `must be text, found ${describeValue(value)}`);
  return undefined;
}

/** "assistant" for "assitant": a known word at edit distance 1 or 2, or undefined. */
export function closestWord(word: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best === word ? undefined : best;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] as number;
}

/** `"assitant" is not one of system, user (did you mean "assistant"?)` */
export function notOneOf(value: string, allowed: readonly string[], alsoAccepted: readonly string[] = []): string {
  const suggestion = closestWord(value, [...allowed, ...alsoAccepted]);
  const hint = suggestion === undefined ? "" : ` (did you mean ${quote(suggestion)}?)`;
  return `${quote(value)} is not one of ${allowed.join(", ")}${hint}`;
}
