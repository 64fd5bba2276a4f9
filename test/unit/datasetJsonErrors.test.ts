import assert from "node:assert/strict";
import { test } from "node:test";
import { findJsonFault, locateJsonError, parseJsonLine } from "../../src/core/datasets/jsonErrors";

function located(text: string): { column: number; reason: string; excerpt: string } {
  const parsed = parseJsonLine(text);
  assert.equal(parsed.ok, false, `${text} should not parse`);
  if (parsed.ok) throw new Error("unreachable");
  return parsed.error;
}

test("names the column and the fault of common mistakes", () => {
  const cases: [string, number, RegExp][] = [
    ['{"a":}', 6, /unexpected '}' where a value should start/],
    ['{"a":1 "b":2}', 8, /expected ',' or '}' after the value of "a", found '"'/],
    ["{'a':1}", 2, /property name in double quotes.*JSON needs double quotes/],
    ["{a:1}", 2, /property names need double quotes/],
    ['{"a":1,}', 7, /trailing comma before '}'/],
    ["[1,2,]", 5, /trailing comma before ']'/],
    ['{"a":"x', 6, /string is never closed/],
    ['{"a":[1,2', 10, /1 object and 1 array still open.*cut off/],
    ['{"a":1}{"b":2}', 8, /after the end of the JSON value \(two records on one line/],
    ['{"a":True}', 6, /JSON spells it true/],
    ['{"a":None}', 6, /JSON spells it null/],
    ['{"a":NaN}', 6, /NaN is not a JSON value/],
    ['{"a":01}', 6, /leading zeros/],
    ['{"a":1.}', 7, /malformed number/],
    ['{"a":"\\x"}', 7, /invalid escape "\\x"/],
    ['{"a":"\\u12"}', 7, /four hex digits/],
    ['{"a":"tab\there"}', 10, /raw control character \(U\+0009\).*\\t/],
    ['{"a" 1}', 6, /expected ':' after the property name "a"/],
    ['\ufeff{"a":1}', 1, /byte order mark/],
    ["{\"a\":'x'}", 6, /JSON strings need double quotes/],
    ['{"a":1]', 7, /expected ',' or '}' after the value of "a", found ']'/],
  ];
  for (const [text, column, reason] of cases) {
    const error = located(text);
    assert.equal(error.column, column, `column for ${text}: ${error.reason}`);
    assert.match(error.reason, reason, text);
  }
});

test("columns count UTF-16 units of the decoded line, like editors", () => {
  // 🎉 is two UTF-16 units, 日 one: the stray quote after the space is at index 11.
  const error = located('{"a":"🎉日" "b":1}');
  assert.equal(error.column, 12);
});

test("the excerpt marks the spot and stays short on long lines", () => {
  const long = `{"a":"${"x".repeat(500)}", "b": tru}`;
  const error = located(long);
  assert.equal(error.column, long.indexOf("tru}") + 1);
  assert.ok(error.excerpt.length <= 64, error.excerpt);
  assert.match(error.excerpt, /^….*", "b": ⟶tru}$/);
});

test("agrees with JSON.parse on validity, and never points past the line", () => {
  // Valid documents of many shapes, then every prefix and single-character deletion of them.
  const documents = [
    { messages: [{ role: "user", content: 'say "hi"\n\t\\ é 🎉' }, { role: "assistant", content: null }] },
    { a: [1, -2.5e-3, 0, true, false, null, { b: [] }, {}], "k\u0001": "\u2028" },
    [[[[]]], "x", 12345678901234567890],
  ];
  let checked = 0;
  for (const document of documents) {
    const text = JSON.stringify(document);
    assert.equal(findJsonFault(text), undefined, text);
    const variants = new Set<string>();
    for (let index = 0; index <= text.length; index++) {
      variants.add(text.slice(0, index));
      variants.add(text.slice(0, index) + text.slice(index + 1));
      variants.add(`${text.slice(0, index)},${text.slice(index)}`);
    }
    for (const variant of variants) {
      let valid = true;
      try {
        JSON.parse(variant);
      } catch {
        valid = false;
      }
      const fault = findJsonFault(variant);
      assert.equal(fault === undefined, valid, `${JSON.stringify(variant)}: scanner says ${fault?.reason ?? "valid"}`);
      if (fault !== undefined) assert.ok(fault.index >= 0 && fault.index <= variant.length);
      checked++;
    }
  }
  assert.ok(checked > 300);
});

test("falls back to V8's position when the scanner finds nothing", () => {
  const error = locateJsonError('{"a":1}', new SyntaxError("Unexpected token in JSON at position 3"));
  assert.equal(error.column, 4);
});

test("agrees with JSON.parse on 20,000 random mutations of random records", () => {
  let seed = 12345;
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const value = (depth: number): unknown => {
    const kind = Math.floor(random() * (depth > 3 ? 4 : 6));
    if (kind === 0) return pick(["", "a b", 'q"\\', "é🎉", "\n\t"]);
    if (kind === 1) return pick([0, -1, 3.25, 1e21, -0.5e-7]);
    if (kind === 2) return pick([true, false, null]);
    if (kind === 3) return "text";
    if (kind === 4) return Array.from({ length: Math.floor(random() * 3) }, () => value(depth + 1));
    return Object.fromEntries(Array.from({ length: Math.floor(random() * 3) }, (_, index) => [`k${index}`, value(depth + 1)]));
  };
  const noise = ['"', "{", "}", "[", "]", ",", ":", "\\", "'", " ", "0", "-", ".", "e", "t", "\u0001", "\ufeff", "u"];
  for (let round = 0; round < 20_000; round++) {
    let text = JSON.stringify({ messages: [value(0)], x: value(0) });
    const edits = 1 + Math.floor(random() * 2);
    for (let edit = 0; edit < edits; edit++) {
      const at = Math.floor(random() * (text.length + 1));
      text = random() < 0.5 ? text.slice(0, at) + pick(noise) + text.slice(at) : text.slice(0, at) + text.slice(at + 1);
    }
    let valid = true;
    try {
      JSON.parse(text);
    } catch {
      valid = false;
    }
    const fault = findJsonFault(text);
    assert.equal(fault === undefined, valid, `${JSON.stringify(text)}: scanner says ${fault?.reason ?? "valid"}`);
  }
});
