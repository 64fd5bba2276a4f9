/**
 * The run folder .finetune/runs/<id>/: run.json (the RunSpec, exactly what the sidecar's
 * `train --spec` reads: it rejects unknown keys, so our own metadata lives beside it in
 * meta.json), status.json (written atomically by the supervisor, so a reader never sees half a
 * file), events.jsonl (appended by the sidecar) and sidecar.log (its stdout and stderr).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RunSpec } from "../../protocol/runSpec";
import { RUNS_FOLDER } from "../runFolders";

export type RunState = "queued" | "running" | "stopped" | "failed" | "done";

export interface RunStatusFile {
  status: RunState;
  reason?: string;
  pid?: number;
  /** ISO time the current (or last) session started. */
  started: string;
  ended?: string;
  best_eval?: number;
}

export interface RunMeta {
  base_model: string;
  datasets: string[];
  preset: string;
  created: string;
}

export interface RunPaths {
  dir: string;
  spec: string;
  meta: string;
  status: string;
  events: string;
  log: string;
  prepared: string;
  checkpoints: string;
}

export function runsRoot(workspaceRoot: string): string {
  return join(workspaceRoot, RUNS_FOLDER);
}

export function runPaths(runDir: string): RunPaths {
  return {
    dir: runDir,
    spec: join(runDir, "run.json"),
    meta: join(runDir, "meta.json"),
    status: join(runDir, "status.json"),
    events: join(runDir, "events.jsonl"),
    log: join(runDir, "sidecar.log"),
    prepared: join(runDir, "prepared"),
    checkpoints: join(runDir, "checkpoints"),
  };
}

/** A sortable, readable id: the model's folder name and a UTC timestamp. */
export function newRunId(modelName: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace(/\..*$/, "").replace("T", "-");
  const base = modelName.replace(/[^A-Za-z0-9._-]+/g, "-").slice(0, 40) || "run";
  return `${stamp}-${base}`;
}

/** Temporary file + rename: readers (the Runs view, a second window) never see a torn file. */
export function writeJsonAtomic(path: string, value: unknown): void {
  const temporary = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  writeFileSync(temporary, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(temporary, path);
}

export function readJson<T>(path: string): T | undefined {
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, "utf8")) as T;
  } catch {
    return undefined;
  }
}

export function createRunFolder(runDir: string, spec: RunSpec, meta: RunMeta): RunPaths {
  const paths = runPaths(runDir);
  mkdirSync(runDir, { recursive: true });
  writeJsonAtomic(paths.spec, spec);
  writeJsonAtomic(paths.meta, meta);
  writeJsonAtomic(paths.status, { status: "queued", started: meta.created } satisfies RunStatusFile);
  return paths;
}

export function readStatus(runDir: string): RunStatusFile | undefined {
  return readJson<RunStatusFile>(runPaths(runDir).status);
}

export function writeStatus(runDir: string, status: RunStatusFile): void {
  writeJsonAtomic(runPaths(runDir).status, status);
}

/** `undefined` in `change` removes the key (pid once the process is gone). */
export function updateStatus(runDir: string, change: { [K in keyof RunStatusFile]?: RunStatusFile[K] | undefined }): RunStatusFile {
  const current = readStatus(runDir) ?? { status: "queued", started: new Date().toISOString() };
  const merged: Record<string, unknown> = { ...current, ...change };
  for (const key of Object.keys(merged)) if (merged[key] === undefined) delete merged[key];
  const next = merged as unknown as RunStatusFile;
  writeStatus(runDir, next);
  return next;
}

export function readSpec(runDir: string): RunSpec | undefined {
  return readJson<RunSpec>(runPaths(runDir).spec);
}

export function readMeta(runDir: string): RunMeta | undefined {
  return readJson<RunMeta>(runPaths(runDir).meta);
}

/** The last `lines` lines of a text file (sidecar.log), for failure reasons and the panel. */
export function tailLines(path: string, lines: number): string[] {
  if (!existsSync(path)) return [];
  const text = readFileSync(path, "utf8");
  return text.split(/\r?\n/).filter((line) => line.trim().length > 0).slice(-lines);
}
