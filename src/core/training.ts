/**
 * Starts a training run: writes the run spec into the run folder (atomically, so a run
 * folder never holds half a spec) and launches the sidecar's `train` on it. The caller gets
 * the live session: typed events, stop(), and the final `done` or a SidecarError.
 */
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RunSpec } from "../protocol/runSpec";
import { startSidecar, type SidecarHandlers, type SidecarSession } from "./sidecarProcess";

export interface TrainingLaunch {
  python: string;
  nativeDir: string;
  spec: RunSpec;
}

export function startTraining(launch: TrainingLaunch, handlers: SidecarHandlers = {}): { session: SidecarSession; specPath: string } {
  mkdirSync(launch.spec.run_dir, { recursive: true });
  const specPath = join(launch.spec.run_dir, "run.json");
  const temporary = `${specPath}.tmp-${process.pid}`;
  writeFileSync(temporary, `${JSON.stringify(launch.spec, null, 2)}\n`);
  renameSync(temporary, specPath);
  const session = startSidecar({ python: launch.python, nativeDir: launch.nativeDir, args: ["train", "--spec", specPath] }, handlers);
  return { session, specPath };
}
