import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { resolvePython } from "../../src/core/pythonEnvironment";
import { createRun } from "../../src/core/runs/runPresets";
import { readStatus, runPaths, updateStatus } from "../../src/core/runs/runStore";
import { RunSupervisor } from "../../src/core/runs/runSupervisor";
import { createTinyModel } from "../../src/core/tinyModel";

const root = join(__dirname, "..", "..");
const nativeDir = join(root, "native");
const dataset = join(root, "samples", "datasets", "harmony-chat-sample.jsonl");

async function waitUntil(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test("a detached run trains, stops with a checkpoint, resumes the same curve, and a killed run fails with a reason", { timeout: 240_000 }, async () => {
  const resolution = await resolvePython({ configuredPath: undefined, projectRoot: root, env: process.env });
  assert.ok(resolution.ok, "a Python with torch is installed");
  const python = resolution.python.path;
  const workspace = mkdtempSync(join(tmpdir(), "fts-runs-"));
  const modelDir = join(workspace, "models", "tiny");
  await createTinyModel({ python, nativeDir, outDir: modelDir, architecture: "gpt-oss" });
  const runDir = await createRun({ workspaceRoot: workspace, modelDir, datasets: [dataset], preset: "quick", maxSteps: 200, device: "cpu" });
  assert.equal(readStatus(runDir)?.status, "queued");

  const supervisor = new RunSupervisor({ nativeDir, pollMs: 200 });
  try {
    const pid = supervisor.start(runDir, python);
    assert.equal(readStatus(runDir)?.pid, pid);
    await waitUntil(() => supervisor.seriesOf(runDir).step.length >= 3, 120_000, "three steps");
    const stopped = await supervisor.stop(runDir);
    assert.equal(stopped?.status, "stopped", JSON.stringify(stopped));
    const stoppedAt = supervisor.seriesOf(runDir).step.at(-1) ?? 0;
    assert.ok(readdirSync(runPaths(runDir).checkpoints).some((name) => name.startsWith("step-")), "a checkpoint on stop");

    supervisor.start(runDir, python, true);
    await waitUntil(() => (supervisor.seriesOf(runDir).step.at(-1) ?? 0) >= stoppedAt + 2, 120_000, "steps after the resume");
    const steps = supervisor.seriesOf(runDir).step;
    assert.deepEqual(steps.slice(0, stoppedAt + 2), Array.from({ length: stoppedAt + 2 }, (_, index) => index + 1), "one continuous curve");

    const resumedPid = supervisor.pidOf(runDir);
    assert.ok(resumedPid);
    // A window reload: this supervisor goes away, the detached sidecar keeps training, and a
    // new one reattaches from status.json and follows the same events.jsonl.
    supervisor.dispose();
    const reattached = new RunSupervisor({ nativeDir, pollMs: 200 });
    try {
      assert.deepEqual(reattached.reattachAll(workspace), [runDir]);
      const before = reattached.seriesOf(runDir).step.at(-1) ?? 0;
      await waitUntil(() => (reattached.seriesOf(runDir).step.at(-1) ?? 0) > before, 60_000, "steps after reattaching");
      process.kill(resumedPid, "SIGKILL");
      const failed = await reattached.whenEnded(runDir);
      assert.equal(failed?.status, "failed");
      assert.match(failed?.reason ?? "", /exited without finishing/);
    } finally {
      reattached.dispose();
    }

    // A window that reloads finds a "running" run whose process is gone: it is marked failed.
    updateStatus(runDir, { status: "running", pid: resumedPid });
    const fresh = new RunSupervisor({ nativeDir });
    assert.deepEqual(fresh.reattachAll(workspace), []);
    assert.equal(readStatus(runDir)?.status, "failed");
    assert.match(readStatus(runDir)?.reason ?? "", /is gone/);
    fresh.dispose();
    assert.ok(existsSync(runPaths(runDir).log), "sidecar output goes to sidecar.log");
  } finally {
    supervisor.dispose();
  }
});
