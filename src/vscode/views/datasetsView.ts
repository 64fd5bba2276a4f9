/**
 * Datasets view: the workspace's JSONL files with their detected format, usable samples,
 * token statistics and error count, from the validation reports (computed in a worker).
 */
import * as vscode from "vscode";
import { formatBytes } from "../../core/formatBytes";
import type { DatasetReportService } from "../datasets/datasetReports";
import { refreshOnFileChanges } from "./refreshOnFileChanges";

const DATASET_GLOB = "**/*.jsonl";
const EXCLUDED = "{**/node_modules/**,**/.git/**,**/.finetune/runs/**}";

export class DatasetsView implements vscode.TreeDataProvider<vscode.Uri>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<vscode.Uri | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly subscriptions: vscode.Disposable[] = [this.changed, ...refreshOnFileChanges(DATASET_GLOB, () => this.refresh())];
  private readonly requested = new Set<string>();

  constructor(private readonly reports: DatasetReportService) {
    this.subscriptions.push(reports.onDidChangeReport((uri) => this.changed.fire(uri)));
  }

  refresh(): void {
    this.requested.clear();
    this.changed.fire(undefined);
  }

  async getChildren(element?: vscode.Uri): Promise<vscode.Uri[]> {
    if (element) return [];
    const files = await vscode.workspace.findFiles(DATASET_GLOB, EXCLUDED, 500);
    return files.sort((a, b) => a.fsPath.localeCompare(b.fsPath));
  }

  async getTreeItem(uri: vscode.Uri): Promise<vscode.TreeItem> {
    const item = new vscode.TreeItem(uri, vscode.TreeItemCollapsibleState.None);
    item.label = vscode.workspace.asRelativePath(uri, false);
    item.contextValue = "dataset";
    item.command = { command: "vscode.open", title: "Open", arguments: [uri] };
    const report = this.reports.report(uri);
    if (!report && !this.requested.has(uri.fsPath)) {
      // Validate each listed file once per refresh; saves and edits revalidate on their own.
      this.requested.add(uri.fsPath);
      void this.reports.validate(uri);
    }
    if (this.reports.isValidating(uri) || !report) {
      item.description = "validating…";
      item.iconPath = new vscode.ThemeIcon("loading~spin");
      return item;
    }
    const errors = report.linesWithErrors;
    const tokens = report.tokens ? ` · ${Math.round(report.tokens.mean)} tok avg, p95 ${report.tokens.p95}, max ${report.tokens.max}` : "";
    item.description = `${report.format.dominant ?? "unknown format"} · ${report.usableSamples} samples${tokens}${errors > 0 ? ` · ${errors} errors` : ""}`;
    item.tooltip = new vscode.MarkdownString(
      `**${item.label}** (${formatBytes(report.totalBytes)})\n\n` +
        `- format: ${report.format.dominant ?? "unknown"}\n- lines: ${report.lines}, usable samples: ${report.usableSamples}\n` +
        `- lines with errors: ${errors}, with warnings: ${report.linesWithWarnings}\n` +
        (report.tokens ? `- tokens per sample: mean ${report.tokens.mean.toFixed(0)}, p95 ${report.tokens.p95}, max ${report.tokens.max}\n` : ""),
    );
    item.iconPath = new vscode.ThemeIcon(errors > 0 ? "warning" : "database");
    return item;
  }

  dispose(): void {
    this.subscriptions.forEach((disposable) => disposable.dispose());
  }
}
