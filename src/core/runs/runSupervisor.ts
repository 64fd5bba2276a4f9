/**
 * Starts, follows, stops and resumes training runs. The sidecar is spawned detached (its own
 * process group, output to <run>/sidecar.log, stdin /dev/null) so reloading the window does
 * not kill a run; progress therefore comes from tailing events.jsonl, never from pipes, and
 * the same code follows a run this process started and one it reattached to after a reload.
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, readdirSync, statSync } from "node:fs";
import { delimiter, join } from "node:path";
import type { SidecarEvent } from "../../protocol/sidecar";
import { EventTailer } from "./eventTailer";
import { applyEvent, readRunSeries, type RunSeries } from "./runEvents";
import { readSpec, readStatus, runPaths, runsRoot, tailLines, updateStatus, writeJsonAtomic, type RunStatusFile } from "./runStore";

export interface SupervisorOptions {
  nativeDir: string;
  /** How often a pid is checked for liveness. */
  pollMs?: number;
  onLog?: (line: string) => void;
}

interface ActiveRun {
  runDir: string;
  pid: number;
  tailer: EventTailer;
  timer: NodeJS.Timeout;
  /** Terminal event of the session this process follows (not of an earlier one). */
  terminal: Extract<SidecarEvent, { type: "done" | "error" }> | undefined;
  exited: Promise<void>;
  markExited: () => void;
  signal: string | null;
  /** Spawned by this process: its exit event (with the signal) settles it, not the pid poll. */
  ownChild: boolean;
}

export type RunChangeListener = (runDir: string, events: SidecarEvent[]) => void;

export class RunSupervisor {
  private readonly active = new Map<string, ActiveRun>();
  private readonly series = new Map<string, RunSeries>();
  private readonly listeners = new Set<RunChangeListener>();

  constructor(private readonly options: SupervisorOptions) {}

  onDidChange(listener: RunChangeListener): { dispose(): void } {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  /** The run's chart series, rebuilt from events.jsonl on first use and live afterwards. */
  seriesOf(runDir: string): RunSeries {
    let series = this.series.get(runDir);
    if (!series) {
      series = readRunSeries(runPaths(runDir).events);
      this.series.set(runDir, series);
    }
    return series;
  }

  /** Re-reads a run that is not being followed (another window may have trained it). */
  reload(runDir: string): RunSeries {
    if (this.active.has(runDir)) return this.seriesOf(runDir);
    const series = readRunSeries(runPaths(runDir).events);
    this.series.set(runDir, series);
    return series;
  }

  isActive(runDir: string): boolean {
    return this.active.has(runDir);
  }

  pidOf(runDir: string): number | undefined {
    return this.active.get(runDir)?.pid;
  }

  /** Spawns `train --spec run.json`; `resume` continues from the newest checkpoint. */
  start(runDir: string, python: string, resume = false): number {
    if (this.active.has(runDir)) throw new Error("This run is already training.");
    const paths = runPaths(runDir);
    const spec = readSpec(runDir);
    if (!spec) throw new Error(`${paths.spec} is missing or not valid JSON.`);
    writeJsonAtomic(paths.spec, { ...spec, resume });
    this.series.set(runDir, readRunSeries(paths.events));
    const startOffset = existsSync(paths.events) ? statSync(paths.events).size : 0;
    const log = openSync(paths.log, "a");
    const pythonPath = [this.options.nativeDir, process.env["PYTHONPATH"]].filter(Boolean).join(delimiter);
    const child = spawn(python, ["-m", "finetune_sidecar", "train", "--spec", paths.spec], {
      cwd: runDir,
      detached: true,
      stdio: ["ignore", log, log],
      env: { ...process.env, PYTHONPATH: pythonPath, PYTHONUNBUFFERED: "1", PYTHONIOENCODING: "utf-8" },
    });
    closeSync(log);
    child.unref();
    if (child.pid === undefined) throw new Error(`Could not start ${python}.`);
    updateStatus(runDir, { status: "running", pid: child.pid, started: new Date().toISOString(), ended: undefined, reason: undefined });
    const run = this.follow(runDir, child.pid, startOffset, true);
    // As the parent we learn about the exit at once (and reap the process); the pid poll
    // covers runs we only reattached to.
    child.on("exit", (code, signal) => {
      run.signal = signal ?? (code === null ? null : `exit code ${code}`);
      this.finish(run);
    });
    child.on("error", (error) => {
      run.signal = error.message;
      this.finish(run);
    });
    return child.pid;
  }

  /** Follows every run of the workspace whose status says running; marks dead ones failed. */
  reattachAll(workspaceRoot: string): string[] {
    const root = runsRoot(workspaceRoot);
    if (!existsSync(root)) return [];
    const reattached: string[] = [];
    for (const entry of readdirSync(root, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const runDir = join(root, entry.name);
      const status = readStatus(runDir);
      if (status?.status !== "running" || this.active.has(runDir)) continue;
      if (status.pid !== undefined && isSidecarAlive(status.pid)) {
        const events = runPaths(runDir).events;
        this.seriesOf(runDir);
        this.follow(runDir, status.pid, existsSync(events) ? statSync(events).size : 0);
        reattached.push(runDir);
      } else {
        const series = readRunSeries(runPaths(runDir).events);
        this.settle(runDir, series.terminal ?? undefined, `the training process (pid ${status.pid ?? "unknown"}) is gone; it ended while no editor was watching`);
      }
    }
    return reattached;
  }

  /** SIGTERM: the sidecar checkpoints and exits 0. SIGKILL to its group after `timeoutMs`. */
  async stop(runDir: string, timeoutMs = 60_000): Promise<RunStatusFile | undefined> {
    const run = this.active.get(runDir);
    if (!run) return readStatus(runDir);
    signal(run.pid, "SIGTERM");
    const timer = setTimeout(() => signal(-run.pid, "SIGKILL"), timeoutMs);
    await run.exited;
    clearTimeout(timer);
    return readStatus(runDir);
  }

  /** Resolves when the followed session has ended and its status is written. */
  async whenEnded(runDir: string): Promise<RunStatusFile | undefined> {
    await this.active.get(runDir)?.exited;
    return readStatus(runDir);
  }

  private follow(runDir: string, pid: number, startOffset: number, ownChild = false): ActiveRun {
    let markExited = (): void => undefined;
    const exited = new Promise<void>((resolve) => (markExited = resolve));
    const run: ActiveRun = {
      runDir,
      pid,
      terminal: undefined,
      exited,
      markExited,
      signal: null,
      ownChild,
      tailer: new EventTailer(runPaths(runDir).events, (events) => this.deliver(run, events), 300, startOffset),
      timer: setInterval(() => {
        if (!run.ownChild && !isSidecarAlive(pid)) this.finish(run);
      }, this.options.pollMs ?? 1000),
    };
    run.timer.unref?.();
    this.active.set(runDir, run);
    run.tailer.start();
    return run;
  }

  private deliver(run: ActiveRun, events: SidecarEvent[]): void {
    const series = this.seriesOf(run.runDir);
    let bestChanged = false;
    for (const event of events) {
      applyEvent(series, event);
      if (event.type === "done" || event.type === "error") run.terminal = event;
      if (event.type === "eval") bestChanged = true;
    }
    if (bestChanged && series.bestEval !== null) updateStatus(run.runDir, { best_eval: series.bestEval });
    this.emit(run.runDir, events);
  }

  private finish(run: ActiveRun): void {
    if (this.active.get(run.runDir) !== run) return;
    this.active.delete(run.runDir);
    clearInterval(run.timer);
    run.tailer.poll();
    run.tailer.close();
    const how = run.signal ? ` (${run.signal})` : "";
    this.settle(run.runDir, run.terminal, `the training process (pid ${run.pid}) exited without finishing${how}`);
    run.markExited();
    this.emit(run.runDir, []);
  }

  /** Writes the final status from the session's terminal event, or a failure with evidence. */
  private settle(runDir: string, terminal: RunSeries["terminal"] | undefined, unexpected: string): void {
    const ended = new Date().toISOString();
    const best = this.seriesOf(runDir).bestEval ?? undefined;
    if (terminal?.type === "done") {
      updateStatus(runDir, { status: terminal.reason === "stopped" ? "stopped" : "done", pid: undefined, ended, best_eval: best });
    } else if (terminal?.type === "error") {
      updateStatus(runDir, { status: "failed", reason: `${terminal.code}: ${terminal.message} ${terminal.hint}`.trim(), pid: undefined, ended, best_eval: best });
    } else {
      const log = tailLines(runPaths(runDir).log, 5).filter((line) => !line.startsWith("{"));
      const evidence = log.length > 0 ? `; last log lines: ${log.join(" | ")}` : "";
      updateStatus(runDir, { status: "failed", reason: `${unexpected}${evidence}`, pid: undefined, ended, best_eval: best });
    }
  }

  private emit(runDir: string, events: SidecarEvent[]): void {
    for (const listener of this.listeners) {
      try {
        listener(runDir, events);
      } catch (error) {
        this.options.onLog?.(`run listener failed: ${String(error)}`);
      }
    }
  }

  /** Stops following (the runs keep training, detached); a later window reattaches. */
  dispose(): void {
    for (const run of this.active.values()) {
      clearInterval(run.timer);
      run.tailer.close();
    }
    this.active.clear();
    this.listeners.clear();
  }
}

/** Alive and still our sidecar: a recycled pid of an unrelated process does not count. */
export function isSidecarAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const cmdline = `/proc/${pid}/cmdline`;
  if (!existsSync(cmdline)) return true;
  try {
    const text = readFileSync(cmdline, "utf8");
    if (text.length === 0) return false; // a zombie waiting to be reaped
    return text.includes("finetune_sidecar");
  } catch {
    return false;
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}
