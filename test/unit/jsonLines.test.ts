import assert from "node:assert/strict";
import { test } from "node:test";
import { LineSplitter } from "../../src/core/jsonLines";

test("joins a line split across chunks, including inside a multi-byte character", () => {
  const lines: string[] = [];
  const splitter = new LineSplitter((line) => lines.push(line));
  const bytes = Buffer.from('{"message":"héllo ✓"}\n{"b":2}\r\n\n{"c":', "utf8");
  // Cut in the middle of "✓" (3 bytes) to prove the decoder waits for the rest.
  const cut = bytes.indexOf(Buffer.from("✓")) + 1;
  splitter.push(bytes.subarray(0, cut));
  splitter.push(bytes.subarray(cut));
  splitter.push(Buffer.from("3}", "utf8"));
  splitter.end();
  assert.deepEqual(lines, ['{"message":"héllo ✓"}', '{"b":2}', '{"c":3}']);
});

test("emits nothing for blank input", () => {
  const lines: string[] = [];
  const splitter = new LineSplitter((line) => lines.push(line));
  splitter.push(Buffer.from("\n\n  \n"));
  splitter.end();
  assert.deepEqual(lines, []);
});
