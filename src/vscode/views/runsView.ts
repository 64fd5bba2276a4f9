/**
 * Runs view: every run folder under .finetune/runs in the workspace, with its status, best
 * eval loss and duration. Context actions: open panel, stop, resume, delete (package.json).
 */
import * as vscode from "vscode";
import { refreshOnFileChanges } from "./refreshOnFileChanges";
import { RUNS_FOLDER, listRuns, type RunSummary } from "../../core/runFolders";
import type { RunSupervisor } from "../../core/runs/runSupervisor";

const STATUS_ICONS: Record<RunSummary["status"], string> = {
  queued: "clock",
  running: "sync~spin",
  stopped: "debug-pause",
  failed: "error",
  done: "pass",
  unknown: "question",
};

export class RunsView implements vscode.TreeDataProvider<RunSummary>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly subscriptions: vscode.Disposable[] = [this.changed, ...refreshOnFileChanges(`**/${RUNS_FOLDER}/*/{run,status}.json`, () => this.refresh())];

  constructor(supervisor: RunSupervisor) {
    // Status changes arrive through status.json too, but not every file system reports them.
    const listener = supervisor.onDidChange((_runDir, events) => {
      if (events.length === 0 || events.some((event) => event.type !== "step")) this.refresh();
    });
    this.subscriptions.push(new vscode.Disposable(() => listener.dispose()));
  }

  refresh(): void {
    this.changed.fire();
  }

  getChildren(element?: RunSummary): RunSummary[] {
    if (element) return [];
    return (vscode.workspace.workspaceFolders ?? []).flatMap((folder) => listRuns(folder.uri.fsPath));
  }

  getTreeItem(run: RunSummary): vscode.TreeItem {
    const item = new vscode.TreeItem(run.id, vscode.TreeItemCollapsibleState.None);
    const details: string[] = [run.status];
    if (run.bestEval !== undefined) details.push(`eval ${run.bestEval.toFixed(3)}`);
    const seconds = runSeconds(run);
    if (seconds !== undefined) details.push(formatDuration(seconds));
    item.description = details.join(" · ");
    item.tooltip = run.reason ? `${run.status}: ${run.reason}` : details.join(" · ");
    item.iconPath = new vscode.ThemeIcon(STATUS_ICONS[run.status]);
    item.contextValue = `run.${run.status}`;
    item.command = { command: "finetuneStudio.openTrainingPanel", title: "Open Training Panel", arguments: [run.id] };
    return item;
  }

  dispose(): void {
    this.subscriptions.forEach((disposable) => disposable.dispose());
  }
}

function runSeconds(run: RunSummary): number | undefined {
  if (run.started === undefined) return undefined;
  const end = run.ended !== undefined ? Date.parse(run.ended) : run.status === "running" ? Date.now() : undefined;
  const start = Date.parse(run.started);
  return end === undefined || Number.isNaN(start) || Number.isNaN(end) ? undefined : Math.max(0, (end - start) / 1000);
}

function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}
