import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { formatBytes } from "../../src/core/formatBytes";
import { listLocalModels } from "../../src/core/localModels";
import { RUNS_FOLDER, listRuns } from "../../src/core/runFolders";

test("lists checkpoint folders and GGUF files in the models folder, nothing else", () => {
  const folder = mkdtempSync(join(tmpdir(), "fts-models-"));
  mkdirSync(join(folder, "tiny-gpt-oss"));
  writeFileSync(join(folder, "tiny-gpt-oss", "config.json"), JSON.stringify({ model_type: "gpt_oss" }));
  writeFileSync(join(folder, "tiny-gpt-oss", "model.safetensors"), Buffer.alloc(1000));
  writeFileSync(join(folder, "tuned-Q4_K_M.gguf"), Buffer.alloc(2500));
  mkdirSync(join(folder, "not-a-model"));
  writeFileSync(join(folder, "notes.txt"), "x");
  const models = listLocalModels(folder);
  assert.deepEqual(
    models.map((model) => [model.name, model.kind, model.architecture]),
    [
      ["tiny-gpt-oss", "hf-checkpoint", "gpt_oss"],
      ["tuned-Q4_K_M.gguf", "gguf", "gguf"],
    ],
  );
  assert.ok((models[0]?.bytes ?? 0) > 1000);
  assert.deepEqual(listLocalModels(join(folder, "missing")), []);
});

test("reads run folders with their status, newest first, tolerating a broken status file", () => {
  const workspace = mkdtempSync(join(tmpdir(), "fts-runs-"));
  const runs = join(workspace, RUNS_FOLDER);
  for (const [id, status] of [["20261124-a", '{"status":"done"}'], ["20261125-b", '{"status":"failed","reason":"CUDA out of memory"}'], ["20261125-c", "{oops"]] as const) {
    mkdirSync(join(runs, id), { recursive: true });
    writeFileSync(join(runs, id, "run.json"), "{}");
    writeFileSync(join(runs, id, "status.json"), status);
  }
  mkdirSync(join(runs, "no-run-json"));
  const listed = listRuns(workspace);
  assert.deepEqual(listed.map((run) => [run.id, run.status]), [
    ["20261125-c", "unknown"],
    ["20261125-b", "failed"],
    ["20261124-a", "done"],
  ]);
  assert.equal(listed[1]?.reason, "CUDA out of memory");
  assert.match(listed[0]?.reason ?? "", /not valid JSON/);
});

test("formats byte counts for people", () => {
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(51_591_245), "51.6 MB");
  assert.equal(formatBytes(12_100_000_000), "12.1 GB");
});
