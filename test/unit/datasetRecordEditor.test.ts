import assert from "node:assert/strict";
import { appendFileSync, copyFileSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { DatasetError } from "../../src/core/datasets/problems";
import { readRecordLine, replaceRecord } from "../../src/core/datasets/recordEditor";
import { validateDataset } from "../../src/core/datasets/validate";

const fixtures = join(__dirname, "..", "fixtures", "datasets");

function copyOf(name: string): string {
  const file = join(mkdtempSync(join(tmpdir(), "fts-edit-")), name);
  copyFileSync(join(fixtures, name), file);
  return file;
}

const fixedRecord = { messages: [{ role: "user", content: "hi" }, { role: "assistant", content: "yo" }] };

test("replaces exactly one line; every other byte, CRLF endings and the BOM included, stays identical", async () => {
  const file = copyOf("crlf-bom.jsonl");
  const before = readFileSync(file);
  const line2 = await readRecordLine(file, 2);
  assert.equal(line2.text, '{"instruction":"x","output":"y"}');
  const written = await replaceRecord(file, line2, { instruction: "translate", input: "chat", output: "cat" });
  const after = readFileSync(file);

  const newBytes = Buffer.from(JSON.stringify({ instruction: "translate", input: "chat", output: "cat" }));
  assert.deepEqual(after.subarray(0, line2.byteOffset), before.subarray(0, line2.byteOffset), "everything before the line");
  assert.deepEqual(after.subarray(line2.byteOffset, line2.byteOffset + newBytes.length), newBytes, "the new record");
  assert.deepEqual(after.subarray(line2.byteOffset + newBytes.length), before.subarray(line2.byteOffset + line2.byteLength), "everything after, from its CRLF on");
  assert.equal(written.byteLength, newBytes.length);
  assert.deepEqual(await readRecordLine(file, 2), written, "the returned location is what a fresh read gives");

  // Line 1, right after the BOM, and the last line, which has no newline.
  await replaceRecord(file, await readRecordLine(file, 1), fixedRecord);
  await replaceRecord(file, await readRecordLine(file, 4), { prefix: "p", suffix: "s", middle: "m" });
  const final = readFileSync(file, "latin1");
  assert.ok(final.startsWith(`\u00ef\u00bb\u00bf${JSON.stringify(fixedRecord)}\r\n`));
  assert.ok(final.endsWith('\r\n\r\n{"prefix":"p","suffix":"s","middle":"m"}'));
  assert.equal((await validateDataset(file)).problemCounts.empty_line, 1, "the blank line is still there");
  assert.deepEqual(readdirSync(dirname(file)), ["crlf-bom.jsonl"], "no temporary file left behind");
});

test("fixes a line that was not UTF-8 and one that was not JSON", async () => {
  const file = copyOf("latin1.jsonl");
  const bad = await readRecordLine(file, 2);
  assert.ok(bad.text.includes("\ufffd"), "shown with a replacement character");
  await replaceRecord(file, bad, { instruction: "café", output: "fine" });
  assert.equal((await validateDataset(file)).problems.length, 0);

  const broken = copyOf("broken.jsonl");
  await replaceRecord(broken, await readRecordLine(broken, 2), fixedRecord);
  const report = await validateDataset(broken);
  assert.equal(report.problems.some((problem) => problem.line === 2), false);
  assert.equal(report.problems.length, 14);
});

test("refuses a record that does not validate, and leaves the file untouched", async () => {
  const file = copyOf("chat-messages.jsonl");
  const before = readFileSync(file);
  const line = await readRecordLine(file, 2);
  await assert.rejects(replaceRecord(file, line, { messages: [{ role: "assitant", content: "x" }] }), (error: unknown) => {
    assert.ok(DatasetError.is(error, "invalid_record"));
    assert.match(error.message, /chat-messages\.jsonl:2: the edited record was not saved because it does not validate: messages\[0\]\.role: "assitant" is not one of/);
    return true;
  });
  await assert.rejects(replaceRecord(file, line, { messages: [{ role: "user", content: "x" }, { role: "assistant", content: "" }] }), /empty assistant turn/);
  await assert.rejects(replaceRecord(file, line, { text: "plain" }), /match no dataset format/);
  assert.deepEqual(readFileSync(file), before);
});

test("detects a concurrent edit of the line, of the lines above it, or a shortened file", async () => {
  const file = copyOf("chat-messages.jsonl");
  const line3 = await readRecordLine(file, 3);

  // Someone else rewrote line 3 in place, same length.
  const original = readFileSync(file, "utf8");
  writeFileSync(file, original.replace('"content": "d"', '"content": "D"'));
  const changed = readFileSync(file);
  await assert.rejects(replaceRecord(file, line3, fixedRecord), (error: unknown) => {
    assert.ok(DatasetError.is(error, "edit_conflict"));
    assert.match(error.message, /chat-messages\.jsonl:3 was not saved: line 3 no longer holds the record that was read/);
    return true;
  });
  assert.deepEqual(readFileSync(file), changed, "nothing written on conflict");

  // A line was inserted above: the record moved to line 4, its bytes elsewhere.
  const lines = original.split("\n");
  writeFileSync(file, [lines[0], lines[1], lines[1], lines[2], ""].join("\n"));
  await assert.rejects(replaceRecord(file, line3, fixedRecord), (error: unknown) => DatasetError.is(error, "edit_conflict"));

  // Two lines of the same length swapped: bytes at the offset match, the line number does not.
  const twin = copyOf("chat-messages.jsonl");
  writeFileSync(twin, '{"messages":[{"role":"user","content":"1"},{"role":"assistant","content":"1"}]}\n{"messages":[{"role":"user","content":"2"},{"role":"assistant","content":"2"}]}\n');
  const second = await readRecordLine(twin, 2);
  // The bytes before it become two lines of the same total length: same offset, same bytes, line 3.
  const firstLength = second.byteOffset - 1;
  writeFileSync(twin, `${"x".repeat(10)}\n${"y".repeat(firstLength - 11)}\n${readFileSync(twin, "utf8").split("\n")[1]}\n`);
  await assert.rejects(replaceRecord(twin, second, fixedRecord), /the record is no longer on line 2 \(3 by the file's current contents\)/);

  // The file was truncated.
  const short = copyOf("chat-messages.jsonl");
  const last = await readRecordLine(short, 3);
  writeFileSync(short, original.split("\n")[0] ?? "");
  await assert.rejects(replaceRecord(short, last, fixedRecord), /shorter than where line 3 ended/);
  // Appending after the line does not conflict: the line itself is unchanged.
  const appended = copyOf("chat-messages.jsonl");
  const first = await readRecordLine(appended, 1);
  appendFileSync(appended, `${JSON.stringify(fixedRecord)}\n`);
  await replaceRecord(appended, first, fixedRecord);
  assert.equal((await validateDataset(appended)).lines, 4);
});

test("keeps the file's permissions and reports a missing line by number", async () => {
  const file = copyOf("fim.jsonl");
  chmodSync(file, 0o640);
  await replaceRecord(file, await readRecordLine(file, 1), { prefix: "a", suffix: "b", middle: "c" });
  assert.equal(statSync(file).mode & 0o777, 0o640);
  await assert.rejects(readRecordLine(file, 9), (error: unknown) => DatasetError.is(error, "line_not_found") && /has no line 9/.test(error.message));
});
