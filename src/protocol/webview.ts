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

/** Chart series rebuilt from the run's events.jsonl (parallel arrays, one entry per step). */
export interface TrainingSeries {
  step: number[];
  loss: number[];
  lr: number[];
  gradNorm: number[];
  tokensPerS: number[];
  memGb: number[];
  evalStep: number[];
  evalLoss: number[];
  totalSteps: number | null;
  etaS: number | null;
  bestEval: number | null;
}

/** What the training panel shows: the whole picture, so a reopened panel renders at once. */
export interface TrainingPanelState {
  /** Run folder name, or null when no run is selected. */
  runId: string | null;
  status: "none" | "queued" | "running" | "stopped" | "failed" | "done" | "unknown";
  /** Why the run failed, or a note when no run is selected. */
  notice: string;
  /** Base model, datasets, preset and the key spec values, as label → text. */
  config: Array<[string, string]>;
  series: TrainingSeries | null;
  /** Last lines of sidecar.log. */
  logTail: string[];
}

export interface ChatViewState {
  /** Model serving chat, or null when none is loaded. */
  model: string | null;
  notice: string;
}

export type HostToWebview =
  | { type: "init"; protocolVersion: number; view: "training"; state: TrainingPanelState }
  | { type: "init"; protocolVersion: number; view: "chat"; state: ChatViewState }
  | { type: "chat.notice"; text: string }
  /** Live update of the training panel (same shape as init's state). */
  | { type: "training.update"; state: TrainingPanelState };

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
    case "training.update":
      return isJsonObject(message["state"]) && Array.isArray(message["state"]["config"]) && Array.isArray(message["state"]["logTail"]);
    default:
      return false;
  }
}
