import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
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
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
});
