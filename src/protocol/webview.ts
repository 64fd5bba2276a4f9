/**
 * Protocol between the extension host and its webviews (the training panel and the chat
 * view). Imported by both sides: the host under src/vscode/webviews, the pages under webview/.
 *
 * Handshake: a page sends `ready` with its protocol version as soon as its script runs; the
 * host sends nothing before that (messages posted to a page that is not listening are lost)
 * and answers with `init`, which carries the full state so a reopened panel renders at once.
 */
import { isJsonObject } from "./fields";

export const WEBVIEW_PROTOCOL_VERSION = 1;

export type WebviewKind = "training" | "chat";

/** What the training panel shows. Grows with the trainer; today: the selected run, if any. */
export interface TrainingPanelState {
  /** Run folder name, or null when no run is selected. */
  runId: string | null;
  status: "none" | "queued" | "running" | "stopped" | "failed" | "done";
  /** Honest note about what the panel can do in this build. */
  notice: string;
}

export interface ChatViewState {
  /** Model serving chat, or null when none is loaded. */
  model: string | null;
  notice: string;
}

export type HostToWebview =
  | { type: "init"; protocolVersion: number; view: "training"; state: TrainingPanelState }
  | { type: "init"; protocolVersion: number; view: "chat"; state: ChatViewState }
  | { type: "chat.notice"; text: string };

export type WebviewToHost =
  | { type: "ready"; protocolVersion: number; view: WebviewKind }
  | { type: "chat.send"; text: string }
  | { type: "training.action"; action: "stop" | "resume" | "export" | "chat" };

export function isWebviewToHost(message: unknown): message is WebviewToHost {
  if (!isJsonObject(message)) return false;
  switch (message["type"]) {
    case "ready":
      return typeof message["protocolVersion"] === "number" && (message["view"] === "training" || message["view"] === "chat");
    case "chat.send":
      return typeof message["text"] === "string";
    case "training.action":
      return ["stop", "resume", "export", "chat"].includes(String(message["action"]));
    default:
      return false;
  }
}

export function isHostToWebview(message: unknown): message is HostToWebview {
  if (!isJsonObject(message)) return false;
  switch (message["type"]) {
    case "init":
      return typeof message["protocolVersion"] === "number" && isJsonObject(message["state"]);
    case "chat.notice":
      return typeof message["text"] === "string";
    default:
      return false;
  }
}
