/**
 * Datasets view: the workspace's JSONL files. Format detection, statistics and diagnostics
 * arrive with the dataset issue; today each file shows its size and opens on click.
 */
import * as vscode from "vscode";
import { refreshOnFileChanges } from "./refreshOnFileChanges";
import { formatBytes } from "../../core/localModels";

const DATASET_GLOB = "**/*.jsonl";
const EXCLUDED = "{**/node_modules/**,**/.git/**,**/.finetune/runs/**}";

export class DatasetsView implements vscode.TreeDataProvider<vscode.Uri>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly subscriptions: vscode.Disposable[] = [this.changed, ...refreshOnFileChanges(DATASET_GLOB, () => this.refresh())];

  refresh(): void {
    this.changed.fire();
  }

  async getChildren(element?: vscode.Uri): Promise<vscode.Uri[]> {
    if (element) return [];
    const files = await vscode.workspace.findFiles(DATASET_GLOB, EXCLUDED, 500);
    return files.sort((a, b) => a.fsPath.localeCompare(b.fsPath));
  }

  async getTreeItem(uri: vscode.Uri): Promise<vscode.TreeItem> {
    const item = new vscode.TreeItem(uri, vscode.TreeItemCollapsibleState.None);
    item.label = vscode.workspace.asRelativePath(uri, false);
    try {
      const stat = await vscode.workspace.fs.stat(uri);
      item.description = formatBytes(stat.size);
    } catch {
      item.description = "unreadable";
    }
    item.contextValue = "dataset";
    item.iconPath = new vscode.ThemeIcon("database");
    item.command = { command: "vscode.open", title: "Open", arguments: [uri] };
    return item;
  }

  dispose(): void {
    this.subscriptions.forEach((disposable) => disposable.dispose());
  }
}
