/**
 * Models view: checkpoints and GGUF files in the models folder (setting
 * finetuneStudio.models.folder).
 */
import * as vscode from "vscode";
import { formatBytes } from "../../core/formatBytes";
import { listLocalModels, type LocalModel } from "../../core/localModels";
import type { SettingsAccessor } from "../settings";

export class ModelsView implements vscode.TreeDataProvider<LocalModel>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly subscriptions: vscode.Disposable[] = [this.changed];

  constructor(private readonly settings: SettingsAccessor) {
    this.subscriptions.push(settings.onDidChange(["models.folder"], () => this.refresh()));
  }

  refresh(): void {
    this.changed.fire();
  }

  getChildren(element?: LocalModel): LocalModel[] {
    if (element) return [];
    return listLocalModels(this.settings.modelsFolder());
  }

  getTreeItem(model: LocalModel): vscode.TreeItem {
    const item = new vscode.TreeItem(model.name, vscode.TreeItemCollapsibleState.None);
    item.description = `${model.architecture} · ${formatBytes(model.bytes)}`;
    item.tooltip = model.path;
    item.resourceUri = vscode.Uri.file(model.path);
    item.iconPath = new vscode.ThemeIcon(model.kind === "gguf" ? "package" : "folder-library");
    item.contextValue = `model.${model.kind}`;
    return item;
  }

  dispose(): void {
    this.subscriptions.forEach((disposable) => disposable.dispose());
  }
}
