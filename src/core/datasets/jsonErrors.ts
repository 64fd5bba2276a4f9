/**
 * Says where and why a JSONL line is not JSON. V8's messages are no help on their own: their
 * wording and whether they carry a position change between Node releases (Node 20 reports
 * `Unexpected token '}', "{"a":}" is not valid JSON` with no position at all, and quotes the
 * whole line). So on failure the line is re-scanned by a small JSON grammar checker that
 * finds the first offending character and names the fault in words; V8's position is the
 * fallback should the two ever disagree about the line being invalid. Only failing lines pay
 * for the scan; valid lines go through JSON.parse alone.
 */

export interface JsonErrorLocation {
  /** 0-based index into the line's text. */
  index: number;
  /** 1-based column in UTF-16 code units, as editors count. */
  column: number;
  /** The fault in words, e.g. `expected ',' or '}' after the value of "role"`. */
  reason: string;
  /** Up to 60 characters around the spot, with ⟶ right before the offending character. */
  excerpt: string;
}

export type JsonLineParse = { ok: true; value: unknown } | { ok: false; error: JsonErrorLocation };

export function parseJsonLine(text: string): JsonLineParse {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (error) {
    return { ok: false, error: locateJsonError(text, error) };
  }
}

/** Locates the fault of a line JSON.parse rejected; `error` is what it threw. */
export function locateJsonError(text: string, error?: unknown): JsonErrorLocation {
  const found = findJsonFault(text);
  if (found !== undefined) return at(text, found.index, found.reason);
  const message = error instanceof Error ? error.message : String(error);
  const position = /at position (\d+)/.exec(message)?.[1];
  return at(text, position === undefined ? 0 : Number(position), message);
}

function at(text: string, index: number, reason: string): JsonErrorLocation {
  return { index, column: index + 1, reason, excerpt: excerptAround(text, index) };
}

const EXCERPT_RADIUS = 30;

export function excerptAround(text: string, index: number): string {
  const start = Math.max(0, index - EXCERPT_RADIUS);
  const end = Math.min(text.length, index + EXCERPT_RADIUS);
  const visible = (part: string): string => part.replace(/[\u0000-\u001f]/g, (c) => String.fromCharCode(0x2400 + c.charCodeAt(0)));
  return `${start > 0 ? "…" : ""}${visible(text.slice(start, index))}⟶${visible(text.slice(index, end))}${end < text.length ? "…" : ""}`;
}

interface Fault {
  index: number;
  reason: string;
}

interface OpenContainer {
  kind: "object" | "array";
  /** The property whose value is being read, for messages. */
  key?: string;
}

/** The first grammar fault in `text` (RFC 8259), or undefined when it is valid JSON. */
export function findJsonFault(text: string): Fault | undefined {
  const stack: OpenContainer[] = [];
  let index = skipSpace(text, 0);
  for (;;) {
    // A value starts at `index`.
    const char = text[index];
    if (char === undefined) return { index, reason: stack.length === 0 ? "the line holds no JSON value" : `${cutOff(stack)}` };
    if (char === "{" || char === "[") {
      const kind = char === "{" ? "object" : "array";
      index = skipSpace(text, index + 1);
      if (text[index] === (kind === "object" ? "}" : "]")) {
        index++;
      } else {
        stack.push({ kind });
        if (kind === "object") {
          const key = readKey(text, index, stack);
          if ("reason" in key) return key;
          index = key.next;
        }
        continue;
      }
    } else {
      const scalar = char === '"' ? scanString(text, index) : scanBareValue(text, index);
      if ("reason" in scalar) return scalar;
      index = scalar.next;
    }
    // After a value: close containers, or a comma leads to the next value.
    for (;;) {
      index = skipSpace(text, index);
      const top = stack[stack.length - 1];
      const next = text[index];
      if (top === undefined) {
        if (next === undefined) return undefined;
        const twoRecords = next === "{" ? " (two records on one line? each record needs a line of its own)" : "";
        return { index, reason: `unexpected ${describeChar(next)} after the end of the JSON value${twoRecords}` };
      }
      const closer = top.kind === "object" ? "}" : "]";
      if (next === closer) {
        stack.pop();
        index++;
        continue;
      }
      if (next === ",") {
        const comma = index;
        index = skipSpace(text, index + 1);
        if (text[index] === closer) return { index: comma, reason: `a trailing comma before '${closer}' is not allowed in JSON` };
        if (top.kind === "object") {
          const key = readKey(text, index, stack);
          if ("reason" in key) return key;
          index = key.next;
        }
        break;
      }
      if (next === undefined) return { index, reason: cutOff(stack) };
      const after = top.kind === "object" ? `the value of "${top.key ?? ""}"` : "an array element";
      return { index, reason: `expected ',' or '${closer}' after ${after}, found ${describeChar(next)}` };
    }
  }
}

function cutOff(stack: OpenContainer[]): string {
  const objects = stack.filter((open) => open.kind === "object").length;
  const arrays = stack.length - objects;
  const open = [objects > 0 ? `${objects} object${objects > 1 ? "s" : ""}` : "", arrays > 0 ? `${arrays} array${arrays > 1 ? "s" : ""}` : ""]
    .filter((part) => part !== "")
    .join(" and ");
  return `the line ends before the JSON is complete (${open} still open; was the record cut off?)`;
}

/** Reads `"key" :` at `index` inside an object and records the key for later messages. */
function readKey(text: string, index: number, stack: OpenContainer[]): { next: number } | Fault {
  const char = text[index];
  if (char !== '"') {
    if (char === undefined) return { index, reason: cutOff(stack) };
    const hint = char === "'" ? " (JSON needs double quotes)" : /[A-Za-z_$]/.test(char) ? " (property names need double quotes)" : "";
    return { index, reason: `expected a property name in double quotes, found ${describeChar(char)}${hint}` };
  }
  const key = scanString(text, index);
  if ("reason" in key) return key;
  const name = text.slice(index + 1, key.next - 1);
  const colon = skipSpace(text, key.next);
  if (text[colon] !== ":") {
    return { index: colon, reason: `expected ':' after the property name "${name}", found ${describeChar(text[colon])}` };
  }
  const top = stack[stack.length - 1];
  if (top !== undefined) top.key = name;
  return { next: skipSpace(text, colon + 1) };
}

function scanString(text: string, start: number): { next: number } | Fault {
  let index = start + 1;
  for (;;) {
    const code = text.charCodeAt(index);
    if (Number.isNaN(code)) return { index: start, reason: "this string is never closed (no closing double quote before the end of the line)" };
    if (code === 0x22) return { next: index + 1 };
    if (code < 0x20) {
      const escape = code === 0x09 ? "\\t" : code === 0x0d ? "\\r" : `\\u${code.toString(16).padStart(4, "0")}`;
      return { index, reason: `a raw control character (U+${code.toString(16).toUpperCase().padStart(4, "0")}) inside a string; write it as ${escape}` };
    }
    if (code === 0x5c) {
      const escaped = text[index + 1];
      if (escaped === "u") {
        if (!/^[0-9a-fA-F]{4}$/.test(text.slice(index + 2, index + 6))) return { index, reason: "\\u in a string needs exactly four hex digits" };
        index += 6;
        continue;
      }
      if (escaped === undefined || !'"\\/bfnrt'.includes(escaped)) {
        return { index, reason: `invalid escape "\\${escaped ?? ""}" in a string (valid: \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)` };
      }
      index += 2;
      continue;
    }
    index++;
  }
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const WORD = /[A-Za-z_$][\w$]*/y;
const WORD_HINTS: Record<string, string> = {
  True: "JSON spells it true",
  False: "JSON spells it false",
  None: "JSON spells it null",
  Null: "JSON spells it null",
  NaN: "NaN is not a JSON value; use null or a string",
  Infinity: "Infinity is not a JSON value; use null or a string",
  undefined: "undefined is not a JSON value; use null or leave the field out",
};

function scanBareValue(text: string, start: number): { next: number } | Fault {
  for (const literal of ["true", "false", "null"]) {
    if (text.startsWith(literal, start) && !/[\w$]/.test(text[start + literal.length] ?? "")) return { next: start + literal.length };
  }
  const char = text[start] as string;
  if (char === "-" || (char >= "0" && char <= "9")) {
    NUMBER.lastIndex = start;
    const match = NUMBER.exec(text);
    const end = match === null ? start : start + match[0].length;
    if (match === null || /[\d.eE]/.test(text[end] ?? "")) {
      if (/^-?0\d/.test(text.slice(start, start + 3))) return { index: start, reason: "numbers cannot have leading zeros" };
      return { index: match === null ? start : end, reason: "malformed number" };
    }
    return { next: end };
  }
  WORD.lastIndex = start;
  const word = WORD.exec(text)?.[0];
  if (word !== undefined) {
    const hint = WORD_HINTS[word] ?? "text values need double quotes";
    return { index: start, reason: `unexpected word ${word} where a value should start (${hint})` };
  }
  if (char === "\ufeff") {
    return { index: start, reason: "a byte order mark (U+FEFF) in the middle of the file, often left by concatenating files; delete it" };
  }
  const hint = char === "'" ? " (JSON strings need double quotes)" : "";
  return { index: start, reason: `unexpected ${describeChar(char)} where a value should start${hint}` };
}

function skipSpace(text: string, index: number): number {
  let at = index;
  for (;;) {
    const code = text.charCodeAt(at);
    if (code !== 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d) return at;
    at++;
  }
}

function describeChar(char: string | undefined): string {
  if (char === undefined) return "the end of the line";
  const code = char.codePointAt(0) ?? 0;
  if (code < 0x20 || code === 0x7f || (code >= 0x80 && code <= 0xa0) || code === 0xfeff || /\s/.test(char)) {
    return `character U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
  }
  return `'${char}'`;
}
