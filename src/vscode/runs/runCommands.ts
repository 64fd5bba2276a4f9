/**
 * New / Stop / Resume / Delete Training Run. Each takes a run id, a Runs-view item, or (for
 * tests and scripts) an options object, and falls back to quick picks in the palette.
 */
import { existsSync, readdirSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import * as vscode from "vscode";
import { checkTrainingEnvironment } from "../../core/environmentCheck";
import { listRuns } from "../../core/runFolders";
import { PRESETS, createRun, isPresetName, type PresetName } from "../../core/runs/runPresets";
import { runsRoot } from "../../core/runs/runStore";
import type { RunSupervisor } from "../../core/runs/runSupervisor";
import type { Logger } from "../logger";
import type { SettingsAccessor } from "../settings";

export interface RunCommandDependencies {
  nativeDir: string;
  settings: SettingsAccessor;
  logger: Logger;
  supervisor: RunSupervisor;
  openPanel: (runId: string) => void;
  refreshViews: () => void;
}

export function workspaceRoot(): string | undefined {
  return vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
}

/** A run id string or a Runs-view item ({id}); undefined asks with a quick pick. */
export async function resolveRunDir(target: unknown, placeHolder: string): Promise<string | undefined> {
  const root = workspaceRoot();
  if (!root) return undefined;
  let id = typeof target === "string" ? target : typeof (target as { id?: unknown } | undefined)?.id === "string" ? (target as { id: string }).id : undefined;
  if (id === undefined) {
    const picked = await vscode.window.showQuickPick(
      listRuns(root).map((run) => ({ label: run.id, description: run.status })),
      { placeHolder },
    );
    id = picked?.label;
  }
  return id === undefined ? undefined : join(runsRoot(root), id);
}

async function findPython(deps: RunCommandDependencies): Promise<string | undefined> {
  const check = await checkTrainingEnvironment({
    configuredPython: deps.settings.pythonInterpreter(),
    projectRoot: workspaceRoot(),
    nativeDir: deps.nativeDir,
    env: process.env,
  });
  if (check.ok) return check.python.path;
  void vscode.window.showErrorMessage(`${check.problem} ${check.fix}`);
  return undefined;
}

interface NewRunArguments {
  model: string;
  datasets: string[];
  preset?: PresetName;
  maxSteps?: number;
}

/** Resolves to the new run's id. */
export async function newTrainingRun(deps: RunCommandDependencies, options: unknown): Promise<string | undefined> {
  const root = workspaceRoot();
  if (!root) {
    void vscode.window.showErrorMessage("Open a folder first: training runs are stored in the workspace under .finetune/runs.");
    return undefined;
  }
  const request = isNewRunArguments(options) ? options : await askForRun(deps);
  if (!request) return undefined;
  const python = await findPython(deps);
  if (!python) return undefined;
  try {
    const runDir = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: "Fine-Tune Studio: preparing the training run" },
      (progress) =>
        createRun({
          workspaceRoot: root,
          modelDir: request.model,
          datasets: request.datasets,
          preset: request.preset ?? "quick",
          ...(request.maxSteps !== undefined ? { maxSteps: request.maxSteps } : {}),
          onProgress: (message) => progress.report({ message }),
        }),
    );
    deps.supervisor.start(runDir, python);
    deps.refreshViews();
    const id = basename(runDir);
    deps.logger.info(`Training run ${id} started.`);
    return id;
  } catch (error) {
    deps.logger.error("Starting the training run failed", error);
    void vscode.window.showErrorMessage(`Starting the training run failed: ${error instanceof Error ? error.message : String(error)}`);
    return undefined;
  }
}

function isNewRunArguments(value: unknown): value is NewRunArguments {
  const candidate = value as Partial<NewRunArguments> | undefined;
  return (
    typeof candidate?.model === "string" &&
    Array.isArray(candidate.datasets) &&
    candidate.datasets.every((item) => typeof item === "string") &&
    (candidate.preset === undefined || isPresetName(candidate.preset)) &&
    (candidate.maxSteps === undefined || (Number.isInteger(candidate.maxSteps) && candidate.maxSteps > 0))
  );
}

async function askForRun(deps: RunCommandDependencies): Promise<NewRunArguments | undefined> {
  const folder = deps.settings.modelsFolder();
  const models = existsSync(folder)
    ? readdirSync(folder, { withFileTypes: true }).filter((entry) => entry.isDirectory() && existsSync(join(folder, entry.name, "config.json")))
    : [];
  if (models.length === 0) {
    void vscode.window.showWarningMessage(`No base model in ${folder}. Create one with "Create Tiny Test Model" or set finetuneStudio.models.folder.`);
    return undefined;
  }
  const model = await vscode.window.showQuickPick(models.map((entry) => ({ label: entry.name, detail: join(folder, entry.name) })), { placeHolder: "Base model" });
  if (!model?.detail) return undefined;
  const files = await vscode.workspace.findFiles("**/*.jsonl", "{**/node_modules/**,**/.finetune/**}", 200);
  const datasets = await vscode.window.showQuickPick(
    files.map((uri) => ({ label: vscode.workspace.asRelativePath(uri), detail: uri.fsPath })),
    { placeHolder: "Dataset(s) (JSONL)", canPickMany: true },
  );
  if (!datasets || datasets.length === 0) return undefined;
  const preset = await vscode.window.showQuickPick(
    (Object.keys(PRESETS) as PresetName[]).map((name) => ({ label: PRESETS[name].label, detail: PRESETS[name].detail, name })),
    { placeHolder: "Preset" },
  );
  if (!preset) return undefined;
  return { model: model.detail, datasets: datasets.map((item) => item.detail ?? item.label), preset: preset.name };
}

export async function stopTrainingRun(deps: RunCommandDependencies, target: unknown): Promise<string | undefined> {
  const runDir = await resolveRunDir(target, "Run to stop");
  if (!runDir) return undefined;
  if (!deps.supervisor.isActive(runDir)) {
    void vscode.window.showInformationMessage(`Run ${basename(runDir)} is not training.`);
    return undefined;
  }
  const status = await deps.supervisor.stop(runDir);
  deps.refreshViews();
  return status?.status;
}

export async function resumeTrainingRun(deps: RunCommandDependencies, target: unknown): Promise<string | undefined> {
  const runDir = await resolveRunDir(target, "Run to resume");
  if (!runDir) return undefined;
  if (deps.supervisor.isActive(runDir)) return basename(runDir);
  const python = await findPython(deps);
  if (!python) return undefined;
  try {
    deps.supervisor.start(runDir, python, true);
    deps.refreshViews();
    return basename(runDir);
  } catch (error) {
    void vscode.window.showErrorMessage(`Resuming failed: ${error instanceof Error ? error.message : String(error)}`);
    return undefined;
  }
}

/** `{runId, confirmed: true}` skips the modal (tests); otherwise the user confirms. */
export async function deleteTrainingRun(deps: RunCommandDependencies, target: unknown): Promise<boolean> {
  const confirmed = (target as { confirmed?: unknown } | undefined)?.confirmed === true;
  const runId = (target as { runId?: unknown } | undefined)?.runId;
  const runDir = await resolveRunDir(typeof runId === "string" ? runId : target, "Run to delete");
  if (!runDir || !existsSync(runDir)) return false;
  if (!confirmed) {
    const answer = await vscode.window.showWarningMessage(
      `Delete training run ${basename(runDir)} with its checkpoints and logs?`,
      { modal: true },
      "Delete",
    );
    if (answer !== "Delete") return false;
  }
  if (deps.supervisor.isActive(runDir)) await deps.supervisor.stop(runDir, 10_000);
  rmSync(runDir, { recursive: true, force: true });
  deps.refreshViews();
  return true;
}
