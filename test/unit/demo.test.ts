import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

// `npm run demo` is the product's first impression: the whole pipeline, headless, for real.
test("the demo runs every step for real and exits 0", () => {
  const root = join(__dirname, "..", "..");
  const workDir = mkdtempSync(join(tmpdir(), "fts-demo-"));
  try {
    const result = spawnSync(process.execPath, [join(root, "dist", "cli.js"), "demo", "--workdir", workDir], {
      cwd: root,
      encoding: "utf8",
      timeout: 300_000,
    });
    assert.equal(result.status, 0, `${result.stdout}\n${result.stderr}`);
    for (const step of ["environment", "base model", "prepare dataset", "train LoRA", "export GGUF", "load + complete"]) {
      assert.match(result.stdout, new RegExp(`\\] ${step.replace("+", "\\+")}\\s+ok`), `step "${step}" ran`);
    }
    assert.match(result.stdout, /Summary: 6 of 6 steps ran for real/);
    assert.ok(existsSync(join(workDir, "exports", "tiny-gpt-oss-tuned-Q8_0.gguf")));

    // The run's checkpoint also exports as a LoRA-adapter GGUF, the fast way to try a run.
    const runs = readdirSync(join(workDir, "runs"));
    const checkpoint = join(workDir, "runs", runs[0] ?? "", "checkpoints", "step-000012");
    const adapter = spawnSync(
      process.execPath,
      [join(root, "dist", "cli.js"), "export-adapter", "--adapter", checkpoint, "--model", join(workDir, "models", "tiny-gpt-oss"), "--out", join(workDir, "adapter.gguf")],
      { cwd: root, encoding: "utf8" },
    );
    assert.equal(adapter.status, 0, adapter.stderr);
    assert.match(adapter.stdout, /LoRA adapter for gpt-oss, rank 8, alpha 16, 8 tensors/);
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
});
