import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { DatasetError, formatProblem, type DatasetProblem } from "../../src/core/datasets/problems";
import { validateDataset, type ValidationProgress } from "../../src/core/datasets/validate";
import { countWords } from "../fixtures/datasets/wordTokenCounter";

const fixtures = join(__dirname, "..", "fixtures", "datasets");

function temporaryFile(name: string, content: string | Buffer): string {
  const file = join(mkdtempSync(join(tmpdir(), "fts-validate-")), name);
  writeFileSync(file, content);
  return file;
}

/** line:column code field — the parts a user navigates by. */
function where(problems: readonly DatasetProblem[]): string[] {
  return problems.map((problem) => `${problem.line}:${problem.column ?? "-"} ${problem.severity} ${problem.code} ${problem.field ?? ""}`.trimEnd());
}

const chat = (question: string, answer: string): string => JSON.stringify({ messages: [{ role: "user", content: question }, { role: "assistant", content: answer }] });

test("reports every broken line with line, column and field, and keeps going to the end", async () => {
  const report = await validateDataset(join(fixtures, "broken.jsonl"));
  assert.deepEqual(where(report.problems), [
    "2:49 error invalid_json",
    "3:- error schema messages[1].role",
    "4:- warning empty_line",
    "5:- warning empty_line",
    "6:52 error invalid_json",
    "7:2 error invalid_json",
    "8:- error empty_assistant messages[1].content",
    "9:- error no_trainable_turn messages",
    "10:- error schema",
    "11:- error unknown_format",
    "12:- error schema messages[0].content",
    "13:89 error invalid_json",
    "14:47 error invalid_json",
    "15:86 error invalid_json",
    "16:82 error invalid_json",
  ]);
  assert.equal(report.lines, 17);
  assert.equal(report.samples, 2, "lines 1 and 17, before and after all the broken ones");
  assert.equal(report.usableSamples, 2);
  assert.equal(report.linesWithErrors, 13);
  assert.equal(report.linesWithWarnings, 2);
  assert.equal(report.problemCounts.invalid_json, 7);
  assert.equal(report.format.dominant, "chat-messages");
  assert.equal(
    formatProblem("broken.jsonl", report.problems[0] as DatasetProblem),
    `broken.jsonl:2:49: error [invalid_json] invalid JSON at column 49: expected ',' or ']' after an array element, found '{'. Near: …le": "user", "content": "hi"} ⟶{"role": "assistant", "content…`,
  );
  assert.equal(
    report.problems[1]?.message,
    'messages[1].role: "assitant" is not one of system, developer, user, assistant, tool (did you mean "assistant"?)',
  );
});

test("CRLF and a BOM read cleanly; formats other than the dominant one are flagged", async () => {
  const report = await validateDataset(join(fixtures, "crlf-bom.jsonl"));
  assert.deepEqual(where(report.problems), ["2:- warning mixed_format", "3:- warning empty_line", "4:- warning mixed_format"]);
  assert.equal(report.usableSamples, 3);
  assert.deepEqual(report.format.counts, { "chat-messages": 1, sharegpt: 0, instruction: 1, "prompt-completion": 0, fim: 1 });

  const mixed = await validateDataset(join(fixtures, "mixed.jsonl"));
  assert.deepEqual(where(mixed.problems), ["2:- warning mixed_format", "5:- warning mixed_format"]);
  assert.match(mixed.problems[0]?.message ?? "", /this record is instruction, but the file is chat-messages \(the most common of its first 6 records\)/);
});

test("a mixed-format record after the detection window is flagged as it is read", async () => {
  const lines = [chat("a", "1"), chat("b", "2"), JSON.stringify({ prompt: "c", completion: "3" }), chat("d", "4")];
  const report = await validateDataset(temporaryFile("late.jsonl", lines.join("\n")), { detectionWindow: 2 });
  assert.deepEqual(where(report.problems), ["3:- warning mixed_format"]);
  assert.equal(report.format.sampledRecords, 2);
});

test("non-UTF-8 bytes are an error at their line and column; the lines around still count", async () => {
  const report = await validateDataset(join(fixtures, "latin1.jsonl"));
  assert.deepEqual(where(report.problems), ["2:20 error invalid_utf8"]);
  assert.match(report.problems[0]?.message ?? "", /invalid UTF-8 at byte 20 of the line \(column 20, bytes e9 22 2c 22\).*re-save it as UTF-8/);
  assert.equal(report.usableSamples, 2);
});

test("duplicates are found across key order, whitespace and formats, naming the first line", async () => {
  const report = await validateDataset(join(fixtures, "duplicates.jsonl"));
  const duplicates = report.problems.filter((problem) => problem.code === "duplicate");
  assert.deepEqual(where(duplicates), ["2:- warning duplicate", "3:- warning duplicate"]);
  assert.match(duplicates[0]?.message ?? "", /^duplicate of line 1 /);
  assert.equal(report.usableSamples, 4, "a duplicate is a warning: the sample is still usable");
});

test("token statistics and too-long samples, with a counter and a maximum length", async () => {
  const lines = [chat("one", "two"), chat("one two three", "four five"), chat("a b c d e f", "g h i j"), chat("x", "y z")];
  const report = await validateDataset(temporaryFile("tokens.jsonl", `${lines.join("\n")}\n`), { countTokens: countWords, maxTokens: 5 });
  assert.deepEqual(report.tokens, { count: 4, total: 20, mean: 5, min: 2, p95: 10, max: 10, overLimit: 1, maxTokens: 5 });
  assert.deepEqual(where(report.problems), ["3:- error too_long"]);
  assert.equal(report.problems[0]?.message, "10 tokens, over the chosen model's maximum length of 5; shorten or split the sample, or pick a longer maximum length");
  assert.equal(report.usableSamples, 3);

  const noCounter = await validateDataset(temporaryFile("no-counter.jsonl", lines.join("\n")), { maxTokens: 1 });
  assert.equal(noCounter.tokens, undefined, "no counter, no length check");
  assert.equal(noCounter.problems.length, 0);

  const failing = await validateDataset(temporaryFile("failing.jsonl", lines[0] ?? ""), {
    countTokens: () => {
      throw new Error("tokenizer not loaded");
    },
  });
  assert.deepEqual(where(failing.problems), ["1:- error token_count_failed"]);
  assert.match(failing.problems[0]?.message ?? "", /tokenizer not loaded/);
});

test("a 20 MB line is reported without being parsed, between lines that validate", async () => {
  const huge = JSON.stringify({ messages: [{ role: "user", content: "x".repeat(20 * 1024 * 1024) }, { role: "assistant", content: "ok" }] });
  const file = temporaryFile("huge.jsonl", [chat("a", "1"), huge, chat("b", "2")].join("\n"));
  const report = await validateDataset(file);
  rmSync(dirname(file), { recursive: true });
  assert.deepEqual(where(report.problems), ["2:- error enormous_line"]);
  assert.match(report.problems[0]?.message ?? "", /the line is 20\.0 MiB, over the 8\.0 MiB limit, and was not parsed/);
  assert.equal(report.usableSamples, 2);
});

test("the problem list is capped; counts stay exact", async () => {
  const file = temporaryFile("many.jsonl", `${Array.from({ length: 50 }, () => "{bad").join("\n")}\n${chat("a", "b")}\n`);
  const report = await validateDataset(file, { maxProblems: 10 });
  assert.equal(report.problems.length, 10);
  assert.equal(report.problemsOmitted, 40);
  assert.equal(report.problemCounts.invalid_json, 50);
  assert.equal(report.linesWithErrors, 50);
  assert.equal(report.usableSamples, 1);
});

test("progress rises to the file size; an abort stops the pass", async () => {
  const file = temporaryFile("progress.jsonl", Array.from({ length: 20_000 }, (_, index) => chat(`q${index}`, `a${index}`)).join("\n"));
  const progress: ValidationProgress[] = [];
  const report = await validateDataset(file, { progressIntervalMs: 0, onProgress: (update) => progress.push(update) });
  assert.ok(progress.length > 100);
  assert.ok(progress.every((update, index) => index === 0 || update.bytesRead >= (progress[index - 1]?.bytesRead ?? 0)));
  assert.deepEqual(progress[progress.length - 1], { bytesRead: report.totalBytes, totalBytes: report.totalBytes, lines: 20_000 });

  const controller = new AbortController();
  await assert.rejects(
    validateDataset(file, { progressIntervalMs: 0, signal: controller.signal, onProgress: (update) => update.lines >= 100 && controller.abort() }),
    { name: "AbortError" },
  );
});

test("a missing file is a typed error naming it", async () => {
  await assert.rejects(validateDataset("/nonexistent/data.jsonl"), (error: unknown) => {
    assert.ok(DatasetError.is(error, "not_found"));
    assert.match(error.message, /\/nonexistent\/data\.jsonl/);
    return true;
  });
});

test("a UTF-16 file is named as such on line 1", async () => {
  const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`${chat("a", "b")}\n`, "utf16le")]);
  const report = await validateDataset(temporaryFile("utf16.jsonl", utf16));
  assert.equal(report.problems[0]?.line, 1);
  assert.match(report.problems[0]?.message ?? "", /the file is UTF-16, not UTF-8/);
  assert.equal(report.usableSamples, 0);
});

test("OpenAI's per-turn weight is flagged, not silently dropped", async () => {
  const record = { messages: [{ role: "user", content: "a" }, { role: "assistant", content: "b", weight: 0 }, { role: "user", content: "c" }, { role: "assistant", content: "d" }] };
  const report = await validateDataset(temporaryFile("weight.jsonl", JSON.stringify(record)));
  assert.deepEqual(where(report.problems), ["1:- warning schema messages[1].weight"]);
  assert.match(report.problems[0]?.message ?? "", /a number \(0\) is not supported yet: this assistant turn is trained on like any other/);
});
