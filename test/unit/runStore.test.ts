import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { EventTailer } from "../../src/core/runs/eventTailer";
import { readRunSeries } from "../../src/core/runs/runEvents";
import { createRunFolder, readStatus, runPaths, updateStatus } from "../../src/core/runs/runStore";
import type { SidecarEvent } from "../../src/protocol/sidecar";

const started = (resumedFrom: number): string =>
  JSON.stringify({ type: "started", run_id: "r", total_steps: 10, tokens_per_step: 512, resumed_from_step: resumedFrom, trainable_params: 100 });
const step = (n: number, loss: number): string =>
  JSON.stringify({ type: "step", step: n, total_steps: 10, loss, lr: 0.001, grad_norm: 1.5, tokens_per_s: 900, mem_gb: 0.5, eta_s: 10 - n });

test("a run folder holds the spec, metadata and an atomically written status", () => {
  const dir = join(mkdtempSync(join(tmpdir(), "fts-runstore-")), "run-1");
  const paths = createRunFolder(dir, { run_id: "run-1", model_dir: "/m", run_dir: dir, train_shards: [] }, {
    base_model: "/m",
    datasets: ["a.jsonl"],
    preset: "quick",
    created: "2026-01-01T00:00:00.000Z",
  });
  assert.equal(JSON.parse(readFileSync(paths.spec, "utf8")).run_id, "run-1");
  assert.equal(readStatus(dir)?.status, "queued");
  updateStatus(dir, { status: "running", pid: 42 });
  updateStatus(dir, { status: "failed", pid: undefined, reason: "boom" });
  const status = readStatus(dir);
  assert.deepEqual({ status: status?.status, pid: status?.pid, reason: status?.reason }, { status: "failed", pid: undefined, reason: "boom" });
  assert.ok(!readdirSync(dir).some((name) => name.includes(".tmp-")), "no temporary files are left behind");
});

test("events.jsonl becomes chart series; a partial last line waits; a resume after a crash drops replayed steps", () => {
  const dir = mkdtempSync(join(tmpdir(), "fts-runevents-"));
  const events = runPaths(dir).events;
  const evalLine = JSON.stringify({ type: "eval", step: 2, loss: 1.2 });
  writeFileSync(events, [started(0), step(1, 3), step(2, 2.5), evalLine, step(3, 2.4), '{"type":"st'].join("\n"));
  let series = readRunSeries(events);
  assert.deepEqual(series.step, [1, 2, 3]);
  assert.deepEqual(series.evalLoss, [1.2]);
  assert.equal(series.bestEval, 1.2);
  assert.equal(series.totalSteps, 10);
  // The torn line is completed by the writer, then a resume from the step-2 checkpoint follows.
  appendFileSync(events, `ep","step":4}\n${started(2)}\n${step(3, 2.3)}\n`);
  series = readRunSeries(events);
  assert.deepEqual(series.step, [1, 2, 3]);
  assert.deepEqual(series.loss, [3, 2.5, 2.3]);
  assert.equal(series.sessions, 2);
});

test("the tailer follows a growing file, including lines written in pieces", async () => {
  const dir = mkdtempSync(join(tmpdir(), "fts-tailer-"));
  const path = join(dir, "events.jsonl");
  const seen: SidecarEvent[] = [];
  const tailer = new EventTailer(path, (events) => seen.push(...events), 50).start();
  try {
    writeFileSync(path, `${started(0)}\n`);
    const line = step(1, 2);
    appendFileSync(path, line.slice(0, 20));
    await waitUntil(() => seen.length === 1);
    appendFileSync(path, `${line.slice(20)}\n${step(2, 1.9)}\n`);
    await waitUntil(() => seen.length === 3);
    assert.deepEqual(seen.map((event) => event.type), ["started", "step", "step"]);
  } finally {
    tailer.close();
  }
});

async function waitUntil(condition: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
