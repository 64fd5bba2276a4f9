import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { firstInvalidUtf8Byte, readJsonlLines, type JsonlLine } from "../../src/core/datasets/jsonlReader";

const fixtures = join(__dirname, "..", "fixtures", "datasets");

async function readAll(file: string, options: Parameters<typeof readJsonlLines>[1] = {}): Promise<JsonlLine[]> {
  const lines: JsonlLine[] = [];
  for await (const line of readJsonlLines(file, options)) lines.push(line);
  return lines;
}

function temporaryFile(name: string, bytes: Buffer | string): string {
  const file = join(mkdtempSync(join(tmpdir(), "fts-reader-")), name);
  writeFileSync(file, bytes);
  return file;
}

test("reads CRLF lines, skips the BOM of line 1, keeps a last line without newline", async () => {
  const file = join(fixtures, "crlf-bom.jsonl");
  const bytes = readFileSync(file);
  const lines = await readAll(file);
  assert.deepEqual(
    lines.map((line) => [line.line, line.kind, line.lineEnding]),
    [
      [1, "text", "\r\n"],
      [2, "text", "\r\n"],
      [3, "empty", "\r\n"],
      [4, "text", ""],
    ],
  );
  assert.equal(lines[0]?.byteOffset, 3, "line 1 starts after the BOM");
  for (const line of lines) {
    // Offsets and lengths address exactly the content bytes, without the line ending.
    const content = bytes.subarray(line.byteOffset, line.byteOffset + line.byteLength).toString("utf8");
    if (line.kind === "text" || line.kind === "empty") assert.equal(content, line.text);
    const after = bytes.subarray(line.byteOffset + line.byteLength, line.byteOffset + line.byteLength + line.lineEnding.length).toString("latin1");
    assert.equal(after, line.lineEnding);
  }
  assert.equal(lines[0]?.kind === "text" && lines[0].text.startsWith('{"messages"'), true, "no U+FEFF in the text");
  const last = lines[3];
  assert.equal((last?.byteOffset ?? 0) + (last?.byteLength ?? 0), bytes.length);
});

test("splits identically whatever the chunk size, even inside multi-byte characters and CRLF", async () => {
  const text = '\ufeff{"a":"é"}\r\n\r\n{"b":"日本語 🎉"}\n   \n{"c":1}';
  const file = temporaryFile("chunks.jsonl", text);
  const reference = await readAll(file);
  assert.equal(reference.length, 5);
  for (const chunkBytes of [1, 2, 3, 4, 5, 7, 11]) {
    assert.deepEqual(await readAll(file, { chunkBytes }), reference, `chunk size ${chunkBytes}`);
  }
  assert.deepEqual(
    reference.map((line) => (line.kind === "text" ? line.text : line.kind)),
    ['{"a":"é"}', "empty", '{"b":"日本語 🎉"}', "empty", '{"c":1}'],
  );
});

test("a file ending in a newline has no extra empty line; a trailing blank line is reported", async () => {
  assert.equal((await readAll(temporaryFile("a.jsonl", '{"a":1}\n'))).length, 1);
  const lines = await readAll(temporaryFile("b.jsonl", '{"a":1}\n\n'));
  assert.deepEqual(lines.map((line) => line.kind), ["text", "empty"]);
  assert.equal((await readAll(temporaryFile("c.jsonl", ""))).length, 0);
  assert.deepEqual((await readAll(temporaryFile("d.jsonl", "\ufeff"))).length, 0, "a BOM alone is no line");
});

test("reports invalid UTF-8 with line, byte and character column", async () => {
  const lines = await readAll(join(fixtures, "latin1.jsonl"));
  const bad = lines[1];
  assert.equal(bad?.kind, "invalid_utf8");
  if (bad?.kind !== "invalid_utf8") return;
  assert.equal(bad.line, 2);
  assert.equal(bad.badByteIndex, 19);
  assert.equal(bad.column, 20);
  assert.equal(bad.badBytes, "e9 22 2c 22");
  assert.deepEqual(lines.map((line) => line.kind), ["text", "invalid_utf8", "text"]);

  // The column counts characters (UTF-16 units) before the bad byte, not bytes.
  const multiByte = Buffer.concat([Buffer.from('{"x":"日本🎉'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
  const [line] = await readAll(temporaryFile("m.jsonl", multiByte));
  assert.equal(line?.kind, "invalid_utf8");
  if (line?.kind === "invalid_utf8") {
    assert.equal(line.badByteIndex, 16);
    assert.equal(line.column, 11);
  }
});

test("finds the first invalid UTF-8 byte per RFC 3629", () => {
  assert.equal(firstInvalidUtf8Byte(Buffer.from("plain ascii é 日 🎉")), -1);
  assert.equal(firstInvalidUtf8Byte(Buffer.from([0x61, 0xc0, 0xaf])), 1, "overlong");
  assert.equal(firstInvalidUtf8Byte(Buffer.from([0x61, 0xed, 0xa0, 0x80])), 1, "UTF-16 surrogate");
  assert.equal(firstInvalidUtf8Byte(Buffer.from([0xf4, 0x90, 0x80, 0x80])), 0, "above U+10FFFF");
  assert.equal(firstInvalidUtf8Byte(Buffer.from([0x61, 0x62, 0xe6, 0x97])), 2, "truncated sequence");
  assert.equal(firstInvalidUtf8Byte(Buffer.from([0x80])), 0, "lone continuation byte");
});

test("a 20 MB line is reported as enormous without being kept, and reading goes on", async () => {
  const huge = `{"messages":[{"role":"user","content":"${"x".repeat(20 * 1024 * 1024)}"}]}`;
  const file = temporaryFile("huge.jsonl", `{"a":1}\n${huge}\r\n{"b":2}\n`);
  const lines = await readAll(file);
  rmSync(dirname(file), { recursive: true });
  assert.deepEqual(lines.map((line) => [line.line, line.kind]), [
    [1, "text"],
    [2, "enormous"],
    [3, "text"],
  ]);
  assert.equal(lines[1]?.byteLength, Buffer.byteLength(huge));
  assert.equal(lines[1]?.lineEnding, "\r\n");
  assert.equal(lines[2]?.byteOffset, 8 + Buffer.byteLength(huge) + 2);
  // A custom limit applies the same way; exactly at the limit is still read.
  const limited = await readAll(temporaryFile("limit.jsonl", '{"a":1}\r\n{"ab":1}\n'), { maxLineBytes: 7 });
  assert.deepEqual(limited.map((line) => line.kind), ["text", "enormous"]);
});
