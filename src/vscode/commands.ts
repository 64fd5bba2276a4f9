/**
 * Every command of the extension in one table. Ids come from core/commandIds.ts, which
 * package.json mirrors; commands that start processes refuse to run in untrusted workspaces.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import * as vscode from "vscode";
import { COMMANDS_NEEDING_TRUST, type CommandId } from "../core/commandIds";
import { checkTrainingEnvironment, summarizeEnvironment } from "../core/environmentCheck";
import type { ProductPaths } from "../core/paths";
import { torchInstallCommand } from "../core/pythonEnvironment";
import { SidecarError } from "../core/sidecarProcess";
import { createTinyModel } from "../core/tinyModel";
import type { RunSupervisor } from "../core/runs/runSupervisor";
import { copyPath, exportModelCommand, revealPath } from "./exportCommands";
import { deleteTrainingRun, newTrainingRun, resumeTrainingRun, stopTrainingRun, type RunCommandDependencies } from "./runs/runCommands";
import type { InferenceHostService } from "./inferenceHostService";
import type { Logger } from "./logger";
import type { SettingsAccessor } from "./settings";
import type { TrainingPanel } from "./webviews/trainingPanel";

export interface CommandDependencies {
  paths: ProductPaths;
  settings: SettingsAccessor;
  logger: Logger;
  trainingPanel: TrainingPanel;
  inferenceHost: InferenceHostService;
  supervisor: RunSupervisor;
  refreshViews: () => void;
}

type Handler = (...args: unknown[]) => unknown;

export function registerCommands(deps: CommandDependencies): vscode.Disposable[] {
  const runs: RunCommandDependencies = {
    nativeDir: deps.paths.nativeDir,
    settings: deps.settings,
    logger: deps.logger,
    supervisor: deps.supervisor,
    openPanel: (runId) => deps.trainingPanel.show(runId),
    refreshViews: deps.refreshViews,
  };
  const table: Record<CommandId, Handler> = {
    "finetuneStudio.checkEnvironment": () => checkEnvironment(deps),
    "finetuneStudio.createTinyModel": (options) => createTinyModelCommand(deps, options),
    "finetuneStudio.exportModel": (target) => exportModelCommand({ ...deps, nativeDir: deps.paths.nativeDir }, target),
    "finetuneStudio.revealModel": (target) => revealPath(target),
    "finetuneStudio.copyModelPath": (target) => copyPath(target),
    "finetuneStudio.openTrainingPanel": (target) => deps.trainingPanel.show(runIdOf(target)),
    "finetuneStudio.newTrainingRun": (options) => newTrainingRun(runs, options),
    "finetuneStudio.stopTrainingRun": (target) => stopTrainingRun(runs, target),
    "finetuneStudio.resumeTrainingRun": (target) => resumeTrainingRun(runs, target),
    "finetuneStudio.deleteTrainingRun": (target) => deleteTrainingRun(runs, target),
    "finetuneStudio.openChat": () => vscode.commands.executeCommand("finetuneStudio.chat.focus"),
    "finetuneStudio.restartInferenceHost": () => restartInferenceHost(deps),
    "finetuneStudio.refreshViews": () => deps.refreshViews(),
    "finetuneStudio.showLogs": () => deps.logger.show(),
  };
  return Object.entries(table).map(([id, handler]) =>
    vscode.commands.registerCommand(id, (...args: unknown[]) => {
      if (COMMANDS_NEEDING_TRUST.has(id as CommandId) && !vscode.workspace.isTrusted) {
        void vscode.window.showWarningMessage(
          "Fine-Tune Studio runs no training sidecar and no model in an untrusted workspace. Trust the workspace to use this command.",
        );
        return undefined;
      }
      return handler(...args);
    }),
  );
}

/** A run id, or a Runs-view item carrying one. */
function runIdOf(target: unknown): string | undefined {
  if (typeof target === "string") return target;
  const id = (target as { id?: unknown } | undefined)?.id;
  return typeof id === "string" ? id : undefined;
}

function projectRoot(): string | undefined {
  return vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
}

async function checkEnvironment(deps: CommandDependencies): Promise<string | undefined> {
  const check = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: "Fine-Tune Studio: checking the training environment…" },
    () =>
      checkTrainingEnvironment({
        configuredPython: deps.settings.pythonInterpreter(),
        projectRoot: projectRoot(),
        nativeDir: deps.paths.nativeDir,
        env: process.env,
        onLog: deps.logger.child("sidecar"),
      }),
  );
  if (check.ok) {
    const summary = summarizeEnvironment(check);
    deps.logger.info(`Training environment: ${summary}`);
    void vscode.window.showInformationMessage(`Training environment: ${summary}`);
    return summary;
  }
  deps.logger.error(`${check.problem}\n${check.fix}`);
  const choice = await vscode.window.showErrorMessage(
    `${check.problem} Install PyTorch with: ${torchInstallCommand()}`,
    "Copy Command",
    "Open Settings",
  );
  if (choice === "Copy Command") await vscode.env.clipboard.writeText(torchInstallCommand());
  if (choice === "Open Settings") {
    await vscode.commands.executeCommand("workbench.action.openSettings", "finetuneStudio.python.interpreterPath");
  }
  return undefined;
}

/** `options.outDir` lets tests and scripts choose the folder; the palette picks a fresh one. */
async function createTinyModelCommand(deps: CommandDependencies, options: unknown): Promise<string | undefined> {
  const requested = (options as { outDir?: unknown } | undefined)?.outDir;
  const outDir = typeof requested === "string" ? requested : freshFolder(deps.settings.modelsFolder(), "tiny-gpt-oss");
  const check = await checkTrainingEnvironment({
    configuredPython: deps.settings.pythonInterpreter(),
    projectRoot: projectRoot(),
    nativeDir: deps.paths.nativeDir,
    env: process.env,
  });
  if (!check.ok) {
    deps.logger.error(`${check.problem}\n${check.fix}`);
    void vscode.window.showErrorMessage(`${check.problem} Install PyTorch with: ${torchInstallCommand()}`);
    return undefined;
  }
  try {
    const artifact = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: "Creating a tiny GPT-OSS test model", cancellable: false },
      (progress) =>
        createTinyModel({
          python: check.python.path,
          nativeDir: deps.paths.nativeDir,
          outDir,
          architecture: "gpt-oss",
          onProgress: (event) => progress.report({ message: event.message }),
          onLog: deps.logger.child("sidecar"),
        }),
    );
    deps.refreshViews();
    void vscode.window.showInformationMessage(`Tiny GPT-OSS model written to ${artifact.path}.`);
    return artifact.path;
  } catch (error) {
    const hint = SidecarError.is(error) ? ` ${error.hint}` : "";
    deps.logger.error("Creating the tiny model failed", error);
    void vscode.window.showErrorMessage(`Creating the tiny model failed: ${error instanceof Error ? error.message : String(error)}.${hint}`);
    return undefined;
  }
}

async function restartInferenceHost(deps: CommandDependencies): Promise<string | undefined> {
  try {
    const hello = await deps.inferenceHost.restart();
    const text = `Inference host ready: node-llama-cpp ${hello.nodeLlamaCppVersion}, ${hello.backend} backend.`;
    void vscode.window.showInformationMessage(text);
    return text;
  } catch (error) {
    deps.logger.error("The inference host did not start", error);
    void vscode.window.showErrorMessage(`The inference host did not start: ${error instanceof Error ? error.message : String(error)}`);
    return undefined;
  }
}

function freshFolder(parent: string, base: string): string {
  let candidate = join(parent, base);
  for (let index = 2; existsSync(candidate); index++) candidate = join(parent, `${base}-${index}`);
  return candidate;
}
