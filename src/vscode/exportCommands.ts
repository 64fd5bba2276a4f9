/**
 * Export from the editor: pick a model folder and a GGUF type, watch cancellable progress,
 * then reveal or copy the result. The work itself is core/exportModel.ts, shared with the CLI.
 */
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import * as vscode from "vscode";
import { EXPORT_TYPES, exportModelToGguf, parseExportType, type ExportResult, type ExportType } from "../core/exportModel";
import { formatBytes } from "../core/formatBytes";
import { listLocalModels, type LocalModel } from "../core/localModels";
import { describeExport, writeHandoffFiles } from "../core/exportSummary";
import { resolvePython } from "../core/pythonEnvironment";
import type { Logger } from "./logger";
import type { SettingsAccessor } from "./settings";

const TYPE_DESCRIPTIONS: Record<ExportType, string> = {
  F32: "32-bit, reference quality, largest",
  F16: "16-bit, lossless for bf16-trained weights in practice",
  BF16: "bfloat16, exact copy of bf16 weights",
  Q8_0: "8.5 bits per weight, near-lossless",
  Q6_K: "6.6 bits per weight",
  Q5_K_M: "5.5 bits per weight, good quality",
  Q4_K_M: "4.5 bits per weight, the usual choice for local use",
  Q4_0: "4.5 bits per weight, legacy blocks, fastest on some CPUs",
  MXFP4_MOE: "GPT-OSS: experts MXFP4, other weights Q8_0 (like the official release)",
};

/** Arguments a test or another command may pass instead of answering the pickers. */
interface ExportArguments {
  modelFolder?: string;
  type?: string;
  outFile?: string;
}

export interface ExportCommandDependencies {
  settings: SettingsAccessor;
  /** The sidecar package folder, for the verification's PyTorch reference. */
  nativeDir: string;
  logger: Logger;
  refreshViews: () => void;
}

export async function exportModelCommand(deps: ExportCommandDependencies, argument: unknown): Promise<string | undefined> {
  const given = (isLocalModel(argument) ? { modelFolder: argument.path } : (argument ?? {})) as ExportArguments;
  const modelFolder = given.modelFolder ?? (await pickModelFolder(deps.settings.modelsFolder()));
  if (!modelFolder) return undefined;
  const type = given.type ? parseExportType(given.type) : await pickExportType();
  if (!type) {
    if (given.type) void vscode.window.showErrorMessage(`Unknown GGUF type "${given.type}"; choose one of ${EXPORT_TYPES.join(", ")}.`);
    return undefined;
  }
  const name = modelFolder.split(/[\\/]/).filter(Boolean).pop() ?? "model";
  const outFile = given.outFile ?? join(deps.settings.modelsFolder(), `${name}-${type}.gguf`);
  if (!given.outFile && existsSync(outFile)) {
    const answer = await vscode.window.showWarningMessage(`${outFile} exists. Replace it?`, { modal: true }, "Replace");
    if (answer !== "Replace") return undefined;
  }

  mkdirSync(dirname(outFile), { recursive: true });
  // Verification compares the file with the PyTorch model; without a torch interpreter the
  // export still runs and says plainly that it was not verified.
  const python = await resolvePython({ configuredPath: deps.settings.pythonInterpreter(), projectRoot: undefined, env: process.env });
  if (!python.ok) deps.logger.warn(`Exporting without verification: ${python.fix}`);
  let result: ExportResult;
  try {
    result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Exporting ${name} to ${type} GGUF`, cancellable: true },
      async (progress, token) => {
        const controller = new AbortController();
        token.onCancellationRequested(() => controller.abort());
        let reported = 0;
        return exportModelToGguf({
          modelFolder,
          outFile,
          type,
          verify: python.ok ? { python: python.python.path, nativeDir: deps.nativeDir } : false,
          signal: controller.signal,
          onLog: deps.logger.child("quantize"),
          onProgress: (update) => {
            const increment = Math.max(0, update.fraction * 100 - reported);
            reported += increment;
            progress.report({ increment, message: update.stage === "write" ? `writing ${update.detail}` : update.detail });
          },
        });
      },
    );
  } catch (error) {
    if (error instanceof Error && error.name === "AbortError") {
      deps.logger.info(`Export of ${modelFolder} to ${type} cancelled; nothing was written.`);
      return undefined;
    }
    deps.logger.error(`Export of ${modelFolder} to ${type} failed`, error);
    void vscode.window.showErrorMessage(`Export failed: ${error instanceof Error ? error.message : String(error)}`);
    return undefined;
  }
  deps.logger.info(`Exported ${describeExport(result)}`);
  const modelfile = await writeHandoffFiles(result, (line) => deps.logger.warn(line));
  if (modelfile) deps.logger.info(`Ollama Modelfile: ${modelfile.path}; import with: ${modelfile.createCommand}`);
  deps.refreshViews();
  const verified = result.verification ? "verified against the PyTorch model" : "not verified (no PyTorch interpreter)";
  void vscode.window
    .showInformationMessage(
      `Exported ${result.type} GGUF (${formatBytes(result.bytes)}), ${verified}.`,
      "Reveal in File Explorer",
      "Copy Path",
      ...(modelfile ? ["Copy Ollama Command"] : []),
    )
    .then((choice) => {
      if (choice === "Reveal in File Explorer") void revealPath(result.outFile);
      if (choice === "Copy Path") void copyPath(result.outFile);
      if (choice === "Copy Ollama Command" && modelfile) void vscode.env.clipboard.writeText(`cd "${dirname(modelfile.path)}" && ${modelfile.createCommand}`);
    });
  return result.outFile;
}

export async function revealPath(argument: unknown): Promise<void> {
  const path = pathOf(argument);
  if (path) await vscode.commands.executeCommand("revealFileInOS", vscode.Uri.file(path));
}

export async function copyPath(argument: unknown): Promise<string | undefined> {
  const path = pathOf(argument);
  if (!path) return undefined;
  await vscode.env.clipboard.writeText(path);
  return path;
}

async function pickModelFolder(modelsFolder: string): Promise<string | undefined> {
  const checkpoints = listLocalModels(modelsFolder).filter((model) => model.kind === "hf-checkpoint");
  const browse = "Browse for a model folder…";
  const picked = await vscode.window.showQuickPick(
    [
      ...checkpoints.map((model) => ({ label: model.name, description: `${model.architecture} · ${formatBytes(model.bytes)}`, path: model.path })),
      { label: browse, description: "a folder with config.json, safetensors and tokenizer.json", path: "" },
    ],
    { title: "Export which model?", placeHolder: "Models in the models folder" },
  );
  if (!picked) return undefined;
  if (picked.label !== browse) return picked.path;
  const folders = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: "Export" });
  return folders?.[0]?.fsPath;
}

async function pickExportType(): Promise<ExportType | undefined> {
  const picked = await vscode.window.showQuickPick(
    EXPORT_TYPES.map((type) => ({ label: type, description: TYPE_DESCRIPTIONS[type], picked: type === "Q4_K_M" })),
    { title: "GGUF type", placeHolder: "Q4_K_M is the usual choice for local use" },
  );
  return picked ? (picked.label as ExportType) : undefined;
}

function isLocalModel(value: unknown): value is LocalModel {
  return typeof value === "object" && value !== null && "path" in value && "kind" in value;
}

function pathOf(argument: unknown): string | undefined {
  if (typeof argument === "string") return argument;
  if (isLocalModel(argument)) return argument.path;
  if (argument instanceof vscode.Uri) return argument.fsPath;
  return undefined;
}
