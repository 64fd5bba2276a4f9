/**
 * The training panel (an editor-area webview). One panel is reused; opening it for another
 * run retargets it. Its state is rebuilt from the run folder (events.jsonl, status.json,
 * sidecar.log), so charts survive closing the panel and restarting VS Code; live updates are
 * throttled so a fast run does not flood the page.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import * as vscode from "vscode";
import { readMeta, readSpec, readStatus, runPaths, runsRoot, tailLines } from "../../core/runs/runStore";
import type { RunSupervisor } from "../../core/runs/runSupervisor";
import {
  WEBVIEW_PROTOCOL_VERSION,
  isWebviewToHost,
  type HostToWebview,
  type TrainingPanelState,
} from "../../protocol/webview";
import type { Logger } from "../logger";
import { webviewHtml, type WebviewReadiness } from "./html";

const NO_RUN_NOTICE = 'No run selected. Start one with "Fine-Tune Studio: New Training Run" or pick a run in the Runs view.';

export class TrainingPanel implements vscode.Disposable {
  static readonly viewType = "finetuneStudio.trainingPanel";
  private panel: vscode.WebviewPanel | undefined;
  private runId: string | null = null;
  private pending: NodeJS.Timeout | undefined;
  private readonly subscription: { dispose(): void };

  constructor(
    private readonly mediaRoot: vscode.Uri,
    private readonly readiness: WebviewReadiness,
    private readonly logger: Logger,
    private readonly supervisor: RunSupervisor,
    private readonly workspaceRoot: () => string | undefined,
  ) {
    this.subscription = supervisor.onDidChange((runDir) => {
      if (this.panel && this.runId !== null && runDir === this.runDir(this.runId)) this.scheduleUpdate();
    });
  }

  /** The selected run; the integration suite reads it. */
  get currentRun(): string | null {
    return this.runId;
  }

  show(runId?: string): void {
    if (runId !== undefined) this.runId = runId;
    if (this.panel) {
      this.panel.reveal(vscode.ViewColumn.Active);
      this.post({ type: "init", protocolVersion: WEBVIEW_PROTOCOL_VERSION, view: "training", state: this.state() });
      return;
    }
    const panel = vscode.window.createWebviewPanel(TrainingPanel.viewType, "Fine-Tune Studio: Training", vscode.ViewColumn.Active, {
      enableScripts: true,
      retainContextWhenHidden: false,
      localResourceRoots: [this.mediaRoot],
    });
    this.panel = panel;
    panel.iconPath = vscode.Uri.joinPath(this.mediaRoot, "icon.svg");
    panel.webview.html = webviewHtml(panel.webview, this.mediaRoot, "training", "Training");
    panel.webview.onDidReceiveMessage((message: unknown) => {
      if (!isWebviewToHost(message)) {
        this.logger.warn("Training panel sent a malformed message; ignored.");
        return;
      }
      if (message.type === "ready") {
        if (message.protocolVersion !== WEBVIEW_PROTOCOL_VERSION) {
          this.logger.error(`Training panel speaks protocol ${message.protocolVersion}, expected ${WEBVIEW_PROTOCOL_VERSION}.`);
          return;
        }
        this.post({ type: "init", protocolVersion: WEBVIEW_PROTOCOL_VERSION, view: "training", state: this.state() });
        this.readiness.markReady("training");
      }
      if (message.type === "training.action" && this.runId !== null) {
        const command = message.action === "stop" ? "finetuneStudio.stopTrainingRun" : message.action === "resume" ? "finetuneStudio.resumeTrainingRun" : undefined;
        if (command) void vscode.commands.executeCommand(command, this.runId).then(() => this.scheduleUpdate());
      }
    });
    panel.onDidDispose(() => {
      this.panel = undefined;
      this.readiness.markClosed("training");
    });
  }

  private runDir(runId: string): string | undefined {
    const root = this.workspaceRoot();
    return root === undefined ? undefined : join(runsRoot(root), runId);
  }

  private scheduleUpdate(): void {
    if (this.pending) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      this.post({ type: "training.update", state: this.state() });
    }, 250);
  }

  /** Everything the page shows, read from the run folder. */
  private state(): TrainingPanelState {
    const runDir = this.runId === null ? undefined : this.runDir(this.runId);
    if (this.runId === null || runDir === undefined || !existsSync(runDir)) {
      return { runId: this.runId, status: "none", notice: this.runId === null ? NO_RUN_NOTICE : `Run ${this.runId} was not found in this workspace.`, config: [], series: null, logTail: [] };
    }
    const status = readStatus(runDir);
    const spec = readSpec(runDir);
    const meta = readMeta(runDir);
    const series = this.supervisor.isActive(runDir) ? this.supervisor.seriesOf(runDir) : this.supervisor.reload(runDir);
    const config: Array<[string, string]> = [];
    if (meta) {
      config.push(["Base model", meta.base_model], ["Datasets", meta.datasets.join(", ")], ["Preset", meta.preset], ["Created", meta.created]);
    }
    if (spec) {
      config.push(
        ["LoRA", `rank ${spec.lora?.rank ?? 8}, alpha ${spec.lora?.alpha ?? 16}`],
        ["Learning rate", String(spec.optimizer?.lr ?? 2e-4)],
        ["Length", spec.max_steps !== undefined ? `${spec.max_steps} steps` : `${spec.epochs ?? 1} epoch(s)`],
        ["Device", spec.device ?? "auto"],
      );
    }
    return {
      runId: this.runId,
      status: status?.status ?? "unknown",
      notice: status?.reason ?? "",
      config,
      series,
      logTail: tailLines(runPaths(runDir).log, 12).filter((line) => !line.startsWith("{")),
    };
  }

  private post(message: HostToWebview): void {
    void this.panel?.webview.postMessage(message);
  }

  dispose(): void {
    if (this.pending) clearTimeout(this.pending);
    this.subscription.dispose();
    this.panel?.dispose();
  }
}
