/**
 * Composition root: builds the services and registers them with VS Code. No logic lives
 * here; each feature's behaviour is in its own module.
 */
import { join } from "node:path";
import * as vscode from "vscode";
import { productPaths } from "./core/paths";
import { RunSupervisor } from "./core/runs/runSupervisor";
import { registerCommands } from "./vscode/commands";
import { DatasetReportService } from "./vscode/datasets/datasetReports";
import { InferenceHostService } from "./vscode/inferenceHostService";
import { Logger } from "./vscode/logger";
import { RunStatusBar } from "./vscode/runs/runStatusBar";
import { SettingsAccessor } from "./vscode/settings";
import { DatasetsView } from "./vscode/views/datasetsView";
import { ModelsView } from "./vscode/views/modelsView";
import { RunsView } from "./vscode/views/runsView";
import { ChatViewProvider } from "./vscode/webviews/chatView";
import { WebviewReadiness } from "./vscode/webviews/html";
import { TrainingPanel } from "./vscode/webviews/trainingPanel";

/** What activate() returns; the integration suite uses it to wait for webview handshakes. */
export interface FineTuneStudioApi {
  readonly webviews: WebviewReadiness;
  readonly datasetReports: DatasetReportService;
  readonly inferenceHost: InferenceHostService;
  /** Training runs: start/stop/follow, live series; the suite waits on its events. */
  readonly runs: RunSupervisor;
  readonly runStatusBar: RunStatusBar;
  readonly trainingPanel: TrainingPanel;
}

export function activate(context: vscode.ExtensionContext): FineTuneStudioApi {
  const logger = new Logger();
  try {
    const paths = productPaths(context.extensionUri.fsPath);
    const mediaRoot = vscode.Uri.joinPath(context.extensionUri, "media");
    const settings = new SettingsAccessor();
    const webviews = new WebviewReadiness();
    const datasetReports = new DatasetReportService(join(context.extensionPath, "dist", "token-counter.js"), settings, logger);
    const datasets = new DatasetsView(datasetReports);
    const workspaceRoot = (): string | undefined => vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    const supervisor = new RunSupervisor({ nativeDir: paths.nativeDir, onLog: logger.child("runs") });
    const runs = new RunsView(supervisor);
    const models = new ModelsView(settings);
    const trainingPanel = new TrainingPanel(mediaRoot, webviews, logger, supervisor, workspaceRoot);
    const runStatusBar = new RunStatusBar(supervisor);
    const inferenceHost = new InferenceHostService(paths.inferenceHostEntry, logger);
    const refreshViews = (): void => [datasets, runs, models].forEach((view) => view.refresh());

    context.subscriptions.push(
      logger,
      supervisor,
      runStatusBar,
      datasetReports,
      datasets,
      runs,
      models,
      trainingPanel,
      inferenceHost,
      vscode.window.registerTreeDataProvider("finetuneStudio.datasets", datasets),
      vscode.window.registerTreeDataProvider("finetuneStudio.runs", runs),
      vscode.window.registerTreeDataProvider("finetuneStudio.models", models),
      vscode.window.registerWebviewViewProvider(ChatViewProvider.viewId, new ChatViewProvider(mediaRoot, webviews, logger)),
      ...registerCommands({ paths, settings, logger, trainingPanel, inferenceHost, supervisor, refreshViews }),
    );
    // Runs keep training across window reloads (the sidecar is detached): follow them again,
    // and mark failed those whose process died while no window was watching.
    const root = workspaceRoot();
    if (root !== undefined && vscode.workspace.isTrusted) {
      for (const runDir of supervisor.reattachAll(root)) logger.info(`Reattached to training run ${runDir}.`);
    }
    logger.info(`Fine-Tune Studio activated (workspace ${vscode.workspace.isTrusted ? "trusted" : "untrusted: no sidecar, no models"}).`);
    return { webviews, inferenceHost, datasetReports, runs: supervisor, runStatusBar, trainingPanel };
  } catch (error) {
    // VS Code shows nothing when activation throws, so say it before re-throwing.
    logger.error("Fine-Tune Studio failed to activate", error);
    void vscode.window.showErrorMessage("Fine-Tune Studio failed to activate; see its output channel.");
    throw error;
  }
}

export function deactivate(): void {
  // Disposables registered in activate() stop the inference host and close panels.
}
