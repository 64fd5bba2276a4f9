import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { validateDataset } from "../../src/core/datasets/validate";
import { buildFimDataset, FimDatasetError, pickEvalFiles, type FimDatasetReport } from "../../src/core/repoFim/buildFimDataset";
import { EXPECTED_FILES, EXPECTED_SKIPS, FIXTURE_MAX_BYTES, makeFixtureRepo } from "../fixtures/repoFim/fixtureRepo";

interface Row {
  prefix: string;
  suffix: string;
  middle: string;
  path: string;
}

async function readRows(file: string): Promise<Row[]> {
  const text = await readFile(file, "utf8");
  return text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Row);
}

describe("buildFimDataset", () => {
  let root: string;
  let out: string;
  let report: FimDatasetReport;
  const progress: string[] = [];

  before(async () => {
    root = await makeFixtureRepo();
    out = await mkdtemp(join(tmpdir(), "repofim-out-"));
    report = await buildFimDataset({
      root,
      outDir: join(out, "a"),
      seed: 42,
      evalFraction: 0.4,
      samplesPerFile: 12,
      maxFileBytes: FIXTURE_MAX_BYTES,
      onProgress: (p) => progress.push(p.phase),
    });
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
    await rm(out, { recursive: true, force: true });
  });

  it("reports files, skips per reason and samples", async () => {
    assert.equal(report.files.used, EXPECTED_FILES.length);
    assert.equal(report.files.eval, 2);
    assert.equal(report.files.train, EXPECTED_FILES.length - 2);
    assert.equal(report.files.skipped, Object.keys(EXPECTED_SKIPS).length);
    assert.equal(report.skippedByReason["secret-content"], 3);
    assert.equal(report.skippedByReason["lockfile"], 2);
    assert.equal(report.skippedByReason["gitignored"], 3);
    assert.deepEqual(report.languages, { python: 2, typescript: 2, go: 1 });
    const total = Object.values(report.samples.byStrategy).reduce((a, b) => a + b, 0);
    assert.equal(total, report.samples.train + report.samples.eval);
    assert.ok(report.samples.train > 0 && report.samples.eval > 0);
    const onDisk = JSON.parse(await readFile(report.outputs.report, "utf8")) as FimDatasetReport;
    assert.deepEqual(onDisk, report);
    assert.equal(progress.at(-1), "done");
    assert.deepEqual((await readdir(join(out, "a"))).sort(), ["eval.jsonl", "report.json", "train.jsonl"]);
  });

  it("holds out whole files: no path in both splits", async () => {
    const train = await readRows(report.outputs.train);
    const evalRows = await readRows(report.outputs.eval);
    assert.equal(train.length, report.samples.train);
    assert.equal(evalRows.length, report.samples.eval);
    const trainPaths = new Set(train.map((r) => r.path));
    const evalPaths = new Set(evalRows.map((r) => r.path));
    assert.deepEqual([...evalPaths].sort(), report.evalFiles);
    for (const path of evalPaths) assert.ok(!trainPaths.has(path), `${path} only in eval`);
  });

  it("writes rows that reproduce the source exactly", async () => {
    for (const row of [...(await readRows(report.outputs.train)), ...(await readRows(report.outputs.eval))]) {
      const source = await readFile(join(root, row.path), "utf8");
      assert.ok(source.includes(row.prefix + row.middle + row.suffix), `${row.path} slice`);
      assert.deepEqual(Object.keys(row), ["prefix", "suffix", "middle", "path"]);
    }
  });

  it("validates as the fim format with zero errors", async () => {
    for (const file of [report.outputs.train, report.outputs.eval]) {
      const validation = await validateDataset(file);
      assert.equal(validation.format.dominant, "fim");
      assert.equal(validation.samples, validation.lines);
      assert.deepEqual(validation.problems.filter((p) => p.severity === "error"), []);
      assert.equal(validation.linesWithErrors, 0);
    }
  });

  it("is byte-for-byte deterministic for a seed", async () => {
    const again = await buildFimDataset({
      root, outDir: join(out, "b"), seed: 42, evalFraction: 0.4, samplesPerFile: 12, maxFileBytes: FIXTURE_MAX_BYTES,
    });
    assert.equal(await readFile(again.outputs.train, "utf8"), await readFile(report.outputs.train, "utf8"));
    assert.equal(await readFile(again.outputs.eval, "utf8"), await readFile(report.outputs.eval, "utf8"));
    const other = await buildFimDataset({ root, outDir: join(out, "c"), seed: 43, samplesPerFile: 12, maxFileBytes: FIXTURE_MAX_BYTES });
    assert.notEqual(await readFile(other.outputs.train, "utf8"), await readFile(report.outputs.train, "utf8"));
  });

  it("leaves no output and no temp file when aborted", async () => {
    const dir = join(out, "aborted");
    const controller = new AbortController();
    const run = buildFimDataset({
      root, outDir: dir, seed: 1, maxFileBytes: FIXTURE_MAX_BYTES, signal: controller.signal,
      onProgress: (p) => {
        if (p.phase === "cut") controller.abort();
      },
    });
    await assert.rejects(run, { name: "AbortError" });
    assert.deepEqual(await readdir(dir), []);
  });

  it("refuses a repository with no usable file, naming it", async () => {
    const empty = await mkdtemp(join(tmpdir(), "repofim-empty-"));
    try {
      await assert.rejects(buildFimDataset({ root: empty, outDir: join(empty, ".finetune", "fim") }), (error: unknown) => {
        assert.ok(error instanceof FimDatasetError);
        assert.match(error.message, /no usable source files/);
        assert.ok(error.message.includes(empty));
        return true;
      });
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});

describe("pickEvalFiles", () => {
  const files = Array.from({ length: 20 }, (_, i) => ({ path: `f${i}.ts`, absolutePath: `/r/f${i}.ts`, language: "typescript", bytes: 1 }));

  it("holds out the asked share, at least one, never all", () => {
    assert.equal(pickEvalFiles(files, 0.1, 1).size, 2);
    assert.equal(pickEvalFiles(files, 0.001, 1).size, 1);
    assert.equal(pickEvalFiles(files, 1, 1).size, 19);
    assert.equal(pickEvalFiles(files, 0, 1).size, 0);
    assert.equal(pickEvalFiles(files.slice(0, 1), 0.5, 1).size, 0);
  });

  it("keeps a file's split when unrelated files are added", () => {
    const small = pickEvalFiles(files.slice(0, 10), 0.2, 9);
    const big = pickEvalFiles(files, 0.1, 9);
    assert.ok(small.size === 2 && big.size === 2);
    // Ranking is per path: a file held out among 20 that also exists among the first 10 is
    // held out there too, so growing the repository never moves an eval file into training.
    for (const path of big) if (files.slice(0, 10).some((f) => f.path === path)) assert.ok(small.has(path), path);
    assert.notDeepEqual(pickEvalFiles(files, 0.1, 10), big);
  });
});
