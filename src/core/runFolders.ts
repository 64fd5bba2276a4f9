/**
 * Training runs live in the workspace under .finetune/runs/<id>/ so they are reproducible and
 * reviewable in git. This module only reads them; the run supervisor writes them.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** Forward slashes: used both in paths (join accepts them everywhere) and in watcher globs. */
export const RUNS_FOLDER = ".finetune/runs";

export type RunStatus = "queued" | "running" | "stopped" | "failed" | "done" | "unknown";

export interface RunSummary {
  id: string;
  path: string;
  status: RunStatus;
  /** Reason for a failed run, when recorded. */
  reason: string | undefined;
  bestEval: number | undefined;
  /** ISO times of the current (or last) session. */
  started: string | undefined;
  ended: string | undefined;
}

export function listRuns(workspaceRoot: string): RunSummary[] {
  const folder = join(workspaceRoot, RUNS_FOLDER);
  if (!existsSync(folder)) return [];
  return readdirSync(folder, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(folder, entry.name, "run.json")))
    .map((entry) => readRun(join(folder, entry.name), entry.name))
    .sort((a, b) => b.id.localeCompare(a.id));
}

function readRun(path: string, id: string): RunSummary {
  const statusPath = join(path, "status.json");
  const none = { bestEval: undefined, started: undefined, ended: undefined };
  if (!existsSync(statusPath)) return { id, path, status: "unknown", reason: undefined, ...none };
  try {
    const parsed = JSON.parse(readFileSync(statusPath, "utf8")) as Record<string, unknown>;
    const known: RunStatus[] = ["queued", "running", "stopped", "failed", "done"];
    const status = known.includes(parsed["status"] as RunStatus) ? (parsed["status"] as RunStatus) : "unknown";
    const text = (key: string): string | undefined => (typeof parsed[key] === "string" ? parsed[key] : undefined);
    return {
      id,
      path,
      status,
      reason: text("reason"),
      bestEval: typeof parsed["best_eval"] === "number" ? parsed["best_eval"] : undefined,
      started: text("started"),
      ended: text("ended"),
    };
  } catch {
    return { id, path, status: "unknown", reason: "status.json is not valid JSON", ...none };
  }
}
