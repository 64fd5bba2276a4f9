import * as assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as vscode from "vscode";
import { screenshot, waitFor } from "./harness";
import { activatedApi } from "./support";

suite("Training runs", () => {
  test("starts, stops, resumes, charts and fails a run from the editor", async function () {
    this.timeout(240_000);
    const api = await activatedApi();
    const root = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    assert.ok(root, "the suite opens a workspace");
    const model = join(mkdtempSync(join(tmpdir(), "fts-run-model-")), "tiny");
    assert.equal(await vscode.commands.executeCommand("finetuneStudio.createTinyModel", { outDir: model }), model);

    const runId = await vscode.commands.executeCommand<string | undefined>("finetuneStudio.newTrainingRun", {
      model,
      datasets: [join(root, "data", "sample-chat.jsonl")],
      preset: "quick",
      // Long enough that the run is still training when the test kills it (the kill ends it early).
      maxSteps: 80,
    });
    assert.ok(runId, "the command returned the run id");
    const runDir = join(root, ".finetune", "runs", runId);
    const steps = (): number[] => api.runs.seriesOf(runDir).step;
    await waitFor(() => steps().length >= 3, 90_000, "three step events");
    assert.match(api.runStatusBar.text ?? "", /step \d+\/80 · loss/);

    const stopped = await vscode.commands.executeCommand<string | undefined>("finetuneStudio.stopTrainingRun", runId);
    assert.equal(stopped, "stopped");
    assert.ok(readdirSync(join(runDir, "checkpoints")).some((name) => name.startsWith("step-")), "stop wrote a checkpoint");
    const stoppedAt = steps().at(-1) ?? 0;

    assert.equal(await vscode.commands.executeCommand("finetuneStudio.resumeTrainingRun", { id: runId }), runId);
    await waitFor(() => (steps().at(-1) ?? 0) >= stoppedAt + 3, 90_000, "steps after the resume");
    assert.deepEqual(steps().slice(0, stoppedAt + 1), Array.from({ length: stoppedAt + 1 }, (_, index) => index + 1), "one continuous curve");

    await vscode.commands.executeCommand("finetuneStudio.openTrainingPanel", runId);
    await api.webviews.whenReady("training");
    assert.equal(api.trainingPanel.currentRun, runId);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await screenshot("training-run");

    const pid = api.runs.pidOf(runDir);
    assert.ok(pid, "the resumed run has a pid");
    process.kill(pid, "SIGKILL");
    const failed = await api.runs.whenEnded(runDir);
    assert.equal(failed?.status, "failed");
    assert.match(failed?.reason ?? "", /exited without finishing/);
    assert.ok(existsSync(join(runDir, "sidecar.log")));

    assert.equal(await vscode.commands.executeCommand("finetuneStudio.deleteTrainingRun", { runId, confirmed: true }), true);
    assert.ok(!existsSync(runDir));
  });
});
