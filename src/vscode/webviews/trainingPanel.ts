/**
 * The training panel (an editor-area webview). One panel is reused; opening it for another
 * run retargets it. Live charts and controls arrive with the training-runs issue.
 */
import * as vscode from "vscode";
import {
  WEBVIEW_PROTOCOL_VERSION,
  isWebviewToHost,
  type HostToWebview,
  type TrainingPanelState,
} from "../../protocol/webview";
import type { Logger } from "../logger";
import { webviewHtml, type WebviewReadiness } from "./html";

export class TrainingPanel implements vscode.Disposable {
  static readonly viewType = "finetuneStudio.trainingPanel";
  private panel: vscode.WebviewPanel | undefined;
  private state: TrainingPanelState = {
    runId: null,
    status: "none",
    notice: "No run selected. Starting runs from the editor arrives with the training sidecar; this panel will then show live loss, learning rate, throughput and memory.",
  };

  constructor(
    private readonly mediaRoot: vscode.Uri,
    private readonly readiness: WebviewReadiness,
    private readonly logger: Logger,
  ) {}

  show(runId?: string): void {
    if (runId !== undefined) {
      this.state = { ...this.state, runId, notice: `Run ${runId}. Live charts arrive with the training-runs issue.` };
    }
    if (this.panel) {
      this.panel.reveal(vscode.ViewColumn.Active);
      this.post({ type: "init", protocolVersion: WEBVIEW_PROTOCOL_VERSION, view: "training", state: this.state });
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
        this.post({ type: "init", protocolVersion: WEBVIEW_PROTOCOL_VERSION, view: "training", state: this.state });
        this.readiness.markReady("training");
      }
    });
    panel.onDidDispose(() => {
      this.panel = undefined;
      this.readiness.markClosed("training");
    });
  }

  private post(message: HostToWebview): void {
    void this.panel?.webview.postMessage(message);
  }

  dispose(): void {
    this.panel?.dispose();
  }
}
