import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { buildSync } from "esbuild";
import { DatasetError } from "../../src/core/datasets/problems";
import { validateDataset, type DatasetReport, type ValidationProgress } from "../../src/core/datasets/validate";
import { defaultValidationWorker, runValidationInWorker, VALIDATION_WORKER_BUNDLE } from "../../src/core/datasets/validationInWorker";
import { countWords } from "../fixtures/datasets/wordTokenCounter";

const fixtures = join(__dirname, "..", "fixtures", "datasets");
const tokenCounterModule = join(fixtures, "wordTokenCounter.ts");

function withoutTiming(report: DatasetReport): Omit<DatasetReport, "durationMs"> {
  const { durationMs: _durationMs, ...rest } = report;
  return rest;
}

function largeFile(lines: number): string {
  const file = join(mkdtempSync(join(tmpdir(), "fts-worker-")), "large.jsonl");
  const records = Array.from({ length: lines }, (_, index) => JSON.stringify({ messages: [{ role: "user", content: `question ${index}` }, { role: "assistant", content: `answer ${index}` }] }));
  writeFileSync(file, `${records.join("\n")}\n`);
  return file;
}

test("from source the worker is the .ts entry behind tsx's require hook; bundled, the sibling bundle", () => {
  assert.deepEqual(defaultValidationWorker(), { script: join(__dirname, "..", "..", "src", "core", "datasets", "validationWorker.ts"), register: "tsx/cjs" });
  assert.equal(VALIDATION_WORKER_BUNDLE, "dataset-validation-worker.js");
});

test("the worker returns the same report as validating in-process, token counter included", async () => {
  const file = join(fixtures, "broken.jsonl");
  const inWorker = await runValidationInWorker(file, { maxTokens: 3, tokenCounter: { module: tokenCounterModule } });
  const inProcess = await validateDataset(file, { maxTokens: 3, countTokens: countWords });
  assert.deepEqual(withoutTiming(inWorker), withoutTiming(inProcess));
  assert.equal(inWorker.problemCounts.invalid_json, 7);
  assert.equal(inWorker.tokens?.count, 2);
});

test("progress arrives from the worker while the host stays free", async () => {
  const file = largeFile(50_000);
  const progress: ValidationProgress[] = [];
  let hostTicks = 0;
  const ticker = setInterval(() => hostTicks++, 5);
  try {
    const report = await runValidationInWorker(file, { progressIntervalMs: 10 }, { onProgress: (update) => progress.push(update) });
    assert.equal(report.usableSamples, 50_000);
    assert.ok(progress.length >= 2, `${progress.length} progress messages`);
    assert.equal(progress[progress.length - 1]?.bytesRead, report.totalBytes);
    assert.ok(hostTicks >= 3, `the host's timers kept running (${hostTicks} ticks)`);
  } finally {
    clearInterval(ticker);
  }
});

test("aborting terminates the worker, even inside a busy token counter", async () => {
  const file = largeFile(2_000);
  const controller = new AbortController();
  const started = Date.now();
  const run = runValidationInWorker(
    file,
    { progressIntervalMs: 0, tokenCounter: { module: tokenCounterModule, config: { spinMs: 5 } } },
    { signal: controller.signal, onProgress: (update) => update.lines >= 20 && controller.abort() },
  );
  await assert.rejects(run, { name: "AbortError" });
  // 2,000 samples at 5 ms each would take 10 s.
  assert.ok(Date.now() - started < 5_000, `stopped after ${Date.now() - started} ms`);
  await assert.rejects(runValidationInWorker(file, {}, { signal: AbortSignal.abort() }), { name: "AbortError" });
});

test("failures inside the worker come back as typed errors", async () => {
  await assert.rejects(runValidationInWorker("/nonexistent/data.jsonl"), (error: unknown) => DatasetError.is(error, "not_found"));
  await assert.rejects(
    runValidationInWorker(join(fixtures, "fim.jsonl"), { tokenCounter: { module: tokenCounterModule, exportName: "missing" } }),
    (error: unknown) => DatasetError.is(error, "bad_option") && /no function export "missing"/.test(error.message),
  );
  await assert.rejects(
    runValidationInWorker(join(fixtures, "fim.jsonl"), {}, { worker: { script: "/nonexistent/worker.js" } }),
    (error: unknown) => DatasetError.is(error, "worker_failed"),
  );
  // The heap cap protects the extension host's process; hitting it is an error, not a crash.
  await assert.rejects(
    runValidationInWorker(largeFile(20_000), {}, { maxHeapMb: 4 }),
    (error: unknown) => DatasetError.is(error, "worker_failed") && /ran out of memory \(heap cap 4 MB\)/.test(error.message),
  );
});

test("bundled like the extension, the host finds dist/dataset-validation-worker.js beside itself", () => {
  // The same esbuild settings as scripts/build.mjs: CommonJS bundles for node20.
  const dist = mkdtempSync(join(tmpdir(), "fts-worker-dist-"));
  const host = join(dist, "host-entry.ts");
  writeFileSync(
    host,
    `import { runValidationInWorker } from ${JSON.stringify(join(__dirname, "..", "..", "src", "core", "datasets", "validationInWorker.ts"))};\n` +
      `runValidationInWorker(process.argv[2] as string).then((report) => console.log(JSON.stringify(report)));\n`,
  );
  const common = { bundle: true, platform: "node", format: "cjs", target: "node20", logLevel: "silent" } as const;
  buildSync({ ...common, entryPoints: [host], outfile: join(dist, "extension.js") });
  buildSync({ ...common, entryPoints: [join(__dirname, "..", "..", "src", "core", "datasets", "validationWorker.ts")], outfile: join(dist, VALIDATION_WORKER_BUNDLE) });
  const output = execFileSync(process.execPath, [join(dist, "extension.js"), join(fixtures, "sharegpt.jsonl")], { encoding: "utf8" });
  const report = JSON.parse(output) as DatasetReport;
  assert.equal(report.format.dominant, "sharegpt");
  assert.equal(report.usableSamples, 3);
});
