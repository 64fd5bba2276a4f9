/**
 * The Chat view in the Fine-Tune Studio sidebar. Until a tuned model can be exported and
 * loaded, it answers every prompt with an honest notice instead of pretending.
 */
import * as vscode from "vscode";
import { WEBVIEW_PROTOCOL_VERSION, isWebviewToHost, type ChatViewState, type HostToWebview } from "../../protocol/webview";
import type { Logger } from "../logger";
import { webviewHtml, type WebviewReadiness } from "./html";

export class ChatViewProvider implements vscode.WebviewViewProvider {
  static readonly viewId = "finetuneStudio.chat";
  private view: vscode.WebviewView | undefined;
  private readonly state: ChatViewState = {
    model: null,
    notice: "No model is loaded. Chat with a tuned model arrives once runs can be exported to GGUF and served by the inference host.",
  };

  constructor(
    private readonly mediaRoot: vscode.Uri,
    private readonly readiness: WebviewReadiness,
    private readonly logger: Logger,
  ) {}

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    view.webview.options = { enableScripts: true, localResourceRoots: [this.mediaRoot] };
    view.webview.html = webviewHtml(view.webview, this.mediaRoot, "chat", "Chat");
    view.webview.onDidReceiveMessage((message: unknown) => {
      if (!isWebviewToHost(message)) {
        this.logger.warn("Chat view sent a malformed message; ignored.");
        return;
      }
      if (message.type === "ready") {
        this.post({ type: "init", protocolVersion: WEBVIEW_PROTOCOL_VERSION, view: "chat", state: this.state });
        this.readiness.markReady("chat");
      } else if (message.type === "chat.send") {
        this.post({ type: "chat.notice", text: this.state.notice });
      }
    });
    view.onDidDispose(() => {
      this.view = undefined;
      this.readiness.markClosed("chat");
    });
  }

  private post(message: HostToWebview): void {
    void this.view?.webview.postMessage(message);
  }
}
