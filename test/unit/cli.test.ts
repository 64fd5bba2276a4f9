import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

// The CLI as users run it: the built bundle, a real process, real files.
const root = join(__dirname, "..", "..");
const cli = join(root, "dist", "cli.js");

function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: "utf8" });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

test("validate passes the shipped sample and reports its token statistics", () => {
  assert.ok(existsSync(cli), "dist/cli.js is built");
  const result = run("validate", "samples/datasets/harmony-chat-sample.jsonl");
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /chat-messages, 16 lines, 16 usable samples, 0 lines with errors/);
  assert.match(result.stdout, /tokens per sample: mean \d+, p95 \d+, max \d+/);
});

test("validate names file, line and column of each broken record and exits 1", () => {
  const result = run("validate", "test/fixtures/datasets/broken.jsonl");
  assert.equal(result.status, 1);
  assert.match(result.stdout, /broken\.jsonl:15:86: error \[invalid_json\] .*trailing comma/);
  assert.match(result.stdout, /broken\.jsonl:12: error \[schema\] messages\[0\]\.content/);
});

test("prepare writes shards and a manifest the trainer can verify", () => {
  const out = join(mkdtempSync(join(tmpdir(), "fts-cli-prepare-")), "prepared");
  const result = run("prepare", "samples/datasets/harmony-chat-sample.jsonl", "--out", out, "--seq-len", "512");
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /Prepared 14 train and 2 eval samples/);
  assert.ok(existsSync(join(out, "manifest.json")));
});

test("usage errors exit 2 and name the offending option", () => {
  const unknown = run("prepare", "x.jsonl", "--ouput", "y");
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /Unknown option --ouput/);
  const badType = run("export", "--model", "m", "--out", "o.gguf", "--type", "Q3_K_S");
  assert.equal(badType.status, 2);
  assert.match(badType.stderr, /--type must be one of F32, F16, BF16, Q8_0/);
});

test("export verifies the file against PyTorch and writes an Ollama Modelfile", () => {
  const scratch = mkdtempSync(join(tmpdir(), "fts-cli-export-"));
  const model = join(scratch, "tiny");
  const made = run("make-tiny-model", "--out", model, "--seed", "9");
  assert.equal(made.status, 0, made.stderr);
  const out = join(scratch, "out", "tiny-Q8_0.gguf");
  const result = run("export", "--model", model, "--out", out, "--type", "q8_0");
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /Q8_0, gpt-oss, [\d.]+ MB, [\d.]+ s; verified against PyTorch on \d+ positions: KL mean/);
  assert.match(result.stdout, /Ollama: ollama create tiny-q8_0 -f tiny-Q8_0\.Modelfile/);
  assert.ok(existsSync(join(scratch, "out", "tiny-Q8_0.Modelfile")));
});

test("build-fim turns a repository into FIM JSONL that validates cleanly", () => {
  const out = join(mkdtempSync(join(tmpdir(), "fts-cli-fim-")), "fim");
  const result = run("build-fim", "src/core/datasets", "--out", out, "--samples-per-file", "3");
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /Built \d+ train and \d+ eval FIM samples from \d+ files \(\d+ held out whole/);
  const validated = run("validate", join(out, "train.jsonl"));
  assert.equal(validated.status, 0, validated.stdout);
  assert.match(validated.stdout, /: fim, \d+ lines, \d+ usable samples, 0 lines with errors/);
});
