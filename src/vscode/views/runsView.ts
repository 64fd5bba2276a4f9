/**
 * Runs view: every run folder under .finetune/runs in the workspace, with its status.
 */
import * as vscode from "vscode";
import { refreshOnFileChanges } from "./refreshOnFileChanges";
import { RUNS_FOLDER, listRuns, type RunSummary } from "../../core/runFolders";

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

  refresh(): void {
    this.changed.fire();
  }

  getChildren(element?: RunSummary): RunSummary[] {
    if (element) return [];
    return (vscode.workspace.workspaceFolders ?? []).flatMap((folder) => listRuns(folder.uri.fsPath));
  }

  getTreeItem(run: RunSummary): vscode.TreeItem {
    const item = new vscode.TreeItem(run.id, vscode.TreeItemCollapsibleState.None);
    item.description = run.status;
    item.tooltip = run.reason ? `${run.status}: ${run.reason}` : run.status;
    item.iconPath = new vscode.ThemeIcon(STATUS_ICONS[run.status]);
    item.contextValue = `run.${run.status}`;
    item.command = { command: "finetuneStudio.openTrainingPanel", title: "Open Training Panel", arguments: [run.id] };
    return item;
  }

  dispose(): void {
    this.subscriptions.forEach((disposable) => disposable.dispose());
  }
}
