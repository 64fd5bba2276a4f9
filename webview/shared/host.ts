/**
 * The page side of the webview protocol: a typed wrapper over acquireVsCodeApi that sends
 * `ready` once and hands validated host messages to the page.
 */
import {
  WEBVIEW_PROTOCOL_VERSION,
  isHostToWebview,
  type HostToWebview,
  type WebviewKind,
  type WebviewToHost,
} from "../../src/protocol/webview";

interface VsCodeApi {
  postMessage(message: unknown): void;
  getState(): unknown;
  setState(state: unknown): void;
}

declare function acquireVsCodeApi(): VsCodeApi;

export interface HostConnection {
  send(message: WebviewToHost): void;
}

export function connectToHost(view: WebviewKind, onMessage: (message: HostToWebview) => void): HostConnection {
  const api = acquireVsCodeApi();
  window.addEventListener("message", (event: MessageEvent<unknown>) => {
    if (isHostToWebview(event.data)) onMessage(event.data);
  });
  const connection: HostConnection = { send: (message) => api.postMessage(message) };
  connection.send({ type: "ready", protocolVersion: WEBVIEW_PROTOCOL_VERSION, view });
  return connection;
}

/** Creates an element with text content; the pages never assign innerHTML from data. */
export function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string> = {},
  text?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}
