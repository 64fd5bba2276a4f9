/**
 * Validation reports for the workspace's JSONL files, computed in a worker thread and kept
 * current: on open, on save, and (debounced) while the user edits, so the Problems panel
 * and the Datasets view always describe what training would see.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as vscode from "vscode";
import type { DatasetProblem } from "../../core/datasets/problems";
import type { DatasetReport } from "../../core/datasets/validate";
import { runValidationInWorker } from "../../core/datasets/validationInWorker";
import type { Logger } from "../logger";
import type { SettingsAccessor } from "../settings";

const EDIT_DEBOUNCE_MS = 400;

export class DatasetReportService implements vscode.Disposable {
  private readonly reports = new Map<string, DatasetReport>();
  private readonly running = new Map<string, AbortController>();
  private readonly debounce = new Map<string, NodeJS.Timeout>();
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChangeReport = this.changed.event;
  readonly diagnostics = vscode.languages.createDiagnosticCollection("finetuneStudio.datasets");
  private readonly subscriptions: vscode.Disposable[] = [this.changed, this.diagnostics];
  private readonly scratch = mkdtempSync(join(tmpdir(), "fts-dataset-edits-"));

  constructor(
    private readonly tokenCounterModule: string,
    private readonly settings: SettingsAccessor,
    private readonly logger: Logger,
  ) {
    const isDataset = (document: vscode.TextDocument): boolean => document.uri.scheme === "file" && document.fileName.endsWith(".jsonl");
    this.subscriptions.push(
      vscode.workspace.onDidOpenTextDocument((document) => isDataset(document) && void this.validate(document.uri)),
      vscode.workspace.onDidSaveTextDocument((document) => isDataset(document) && void this.validate(document.uri)),
      vscode.workspace.onDidChangeTextDocument((event) => isDataset(event.document) && this.validateEditedSoon(event.document)),
      settings.onDidChange(["training.sequenceLength"], () => [...this.reports.keys()].forEach((path) => void this.validate(vscode.Uri.file(path)))),
    );
    vscode.workspace.textDocuments.filter(isDataset).forEach((document) => void this.validate(document.uri));
  }

  report(uri: vscode.Uri): DatasetReport | undefined {
    return this.reports.get(uri.fsPath);
  }

  isValidating(uri: vscode.Uri): boolean {
    return this.running.has(uri.fsPath);
  }

  /** Validates the file on disk (or `contentPath`, an unsaved copy) and publishes the result. */
  async validate(uri: vscode.Uri, contentPath?: string): Promise<DatasetReport | undefined> {
    this.running.get(uri.fsPath)?.abort();
    const controller = new AbortController();
    this.running.set(uri.fsPath, controller);
    this.changed.fire(uri);
    try {
      const report = await runValidationInWorker(
        contentPath ?? uri.fsPath,
        {
          maxTokens: this.settings.get("training.sequenceLength"),
          tokenCounter: { module: this.tokenCounterModule, config: { tokenizer: "harmony" } },
        },
        { signal: controller.signal },
      );
      this.reports.set(uri.fsPath, { ...report, file: uri.fsPath });
      this.diagnostics.set(uri, report.problems.map(toDiagnostic));
      return report;
    } catch (error) {
      if (!(error instanceof Error && error.name === "AbortError")) this.logger.error(`Validating ${uri.fsPath} failed`, error);
      return undefined;
    } finally {
      if (this.running.get(uri.fsPath) === controller) this.running.delete(uri.fsPath);
      this.changed.fire(uri);
    }
  }

  private validateEditedSoon(document: vscode.TextDocument): void {
    const key = document.uri.fsPath;
    clearTimeout(this.debounce.get(key));
    this.debounce.set(
      key,
      setTimeout(() => {
        this.debounce.delete(key);
        // The worker reads files; an unsaved buffer is validated from a private copy, never
        // by writing over the user's file.
        const copy = join(this.scratch, `${Buffer.from(key).toString("base64url").slice(-40)}.jsonl`);
        writeFileSync(copy, document.getText(), "utf8");
        void this.validate(document.uri, copy);
      }, EDIT_DEBOUNCE_MS),
    );
  }

  dispose(): void {
    this.running.forEach((controller) => controller.abort());
    this.debounce.forEach((timer) => clearTimeout(timer));
    this.subscriptions.forEach((disposable) => disposable.dispose());
    rmSync(this.scratch, { recursive: true, force: true });
  }
}

function toDiagnostic(problem: DatasetProblem): vscode.Diagnostic {
  const line = Math.max(0, problem.line - 1);
  const range =
    problem.column !== undefined
      ? new vscode.Range(line, problem.column - 1, line, problem.column)
      : new vscode.Range(line, 0, line, Number.MAX_SAFE_INTEGER);
  const severity = problem.severity === "error" ? vscode.DiagnosticSeverity.Error : vscode.DiagnosticSeverity.Warning;
  const diagnostic = new vscode.Diagnostic(range, problem.message, severity);
  diagnostic.source = "Fine-Tune Studio";
  diagnostic.code = problem.code;
  return diagnostic;
}
