/**
 * Line offsets and a language-agnostic block finder for FIM cutting. A parser per language
 * would find better blocks, but braces and indentation cover the languages people fine-tune on,
 * and a wrong guess only costs one less-than-ideal middle, never a wrong sample: every block is
 * still an exact slice of the file.
 */

export interface LineTable {
  /** Offset of each line's first character. */
  starts: number[];
  /** Offset just past each line's content (before "\r\n" or "\n"). */
  ends: number[];
  /** The line holding `offset` (an offset at a line's end belongs to that line). */
  lineAt(offset: number): number;
}

export function lineTable(text: string): LineTable {
  const starts: number[] = [0];
  const ends: number[] = [];
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) {
    ends.push(i > 0 && text[i - 1] === "\r" ? i - 1 : i);
    starts.push(i + 1);
  }
  ends.push(text.length);
  // A file ending in a newline has no last, empty line worth cutting.
  if (starts.length > 1 && starts[starts.length - 1] === text.length) {
    starts.pop();
    ends.pop();
  }
  return {
    starts,
    ends,
    lineAt(offset: number): number {
      let low = 0;
      let high = starts.length - 1;
      while (low < high) {
        const mid = (low + high + 1) >> 1;
        if (starts[mid]! <= offset) low = mid;
        else high = mid - 1;
      }
      return low;
    },
  };
}

/** A block body: whole lines, from the start of the first to just past the last one's newline. */
export interface TextBlock {
  start: number;
  end: number;
}

/** How far a brace block may run before we stop looking for its end (keeps the scan linear-ish). */
const MAX_BLOCK_LINES = 200;

export function findBlocks(text: string, lines: LineTable): TextBlock[] {
  const blocks: TextBlock[] = [];
  const count = lines.starts.length;
  const lineText = (i: number): string => text.slice(lines.starts[i], lines.ends[i]);
  const indent = (s: string): number => s.length - s.trimStart().length;
  const startOf = (i: number): number => (i < count ? lines.starts[i]! : text.length);
  for (let i = 0; i < count - 1; i++) {
    const header = stripLineComment(lineText(i)).trimEnd();
    if (header.endsWith("{")) {
      const close = matchingBraceLine(text, lines.starts[i]! + header.length - 1, lines, i);
      // Only bodies whose closing brace starts its own line: then the body is whole lines.
      if (close !== undefined && close > i + 1 && /^\s*\}/.test(lineText(close))) {
        blocks.push({ start: lines.starts[i + 1]!, end: lines.starts[close]! });
      }
    } else if (header.endsWith(":") && !header.trimStart().startsWith("#")) {
      const base = indent(lineText(i));
      let last = i;
      for (let j = i + 1; j < count; j++) {
        const body = lineText(j);
        if (body.trim() === "") continue;
        if (indent(body) <= base) break;
        last = j;
      }
      if (last > i) blocks.push({ start: lines.starts[i + 1]!, end: startOf(last + 1) });
    }
  }
  return blocks;
}

/** Drops a trailing `//` or `#` comment, roughly: good enough to see a line's last real character. */
function stripLineComment(line: string): string {
  const slashes = line.indexOf("//");
  const cut = slashes >= 0 && !/["'`]/.test(line.slice(slashes)) ? slashes : line.length;
  return line.slice(0, cut);
}

/** The line of the brace that closes the one at `open`, skipping braces inside strings. */
function matchingBraceLine(text: string, open: number, lines: LineTable, fromLine: number): number | undefined {
  const limit = lines.starts[Math.min(lines.starts.length - 1, fromLine + MAX_BLOCK_LINES)]!;
  const stop = Math.max(limit, lines.ends[Math.min(lines.starts.length - 1, fromLine + MAX_BLOCK_LINES)]!);
  let depth = 0;
  let quote: string | undefined;
  for (let p = open; p < stop; p++) {
    const c = text[p]!;
    if (quote !== undefined) {
      if (c === "\\") p++;
      else if (c === quote || (c === "\n" && quote !== "`")) quote = undefined;
      continue;
    }
    if (c === '"' || c === "'" || c === "`") quote = c;
    else if (c === "/" && text[p + 1] === "/") {
      const newline = text.indexOf("\n", p);
      if (newline === -1) return undefined;
      p = newline;
    } else if (c === "{") depth++;
    else if (c === "}") {
      depth--;
      if (depth === 0) return lines.lineAt(p);
    }
  }
  return undefined;
}
