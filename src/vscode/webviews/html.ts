/**
 * HTML shell for every webview: a strict content security policy (scripts only with this
 * page's nonce, styles and images only from the extension's media folder) and the bundle.
 */
import { randomBytes } from "node:crypto";
import * as vscode from "vscode";

export function webviewHtml(webview: vscode.Webview, mediaRoot: vscode.Uri, bundle: "training" | "chat", title: string): string {
  const nonce = randomBytes(16).toString("base64");
  const script = webview.asWebviewUri(vscode.Uri.joinPath(mediaRoot, `${bundle}.js`));
  const style = webview.asWebviewUri(vscode.Uri.joinPath(mediaRoot, "webview.css"));
  const csp = [
    "default-src 'none'",
    `style-src ${webview.cspSource}`,
    `img-src ${webview.cspSource} data:`,
    `font-src ${webview.cspSource}`,
    `script-src 'nonce-${nonce}'`,
  ].join("; ");
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${style.toString()}">
<title>${title}</title>
</head>
<body>
<main id="app" aria-live="polite"><p class="muted">Loading…</p></main>
<script nonce="${nonce}" src="${script.toString()}"></script>
</body>
</html>`;
}

/** Records which webviews completed their handshake; the integration suite waits on it. */
export class WebviewReadiness {
  private readonly ready = new Set<string>();
  private readonly waiters = new Map<string, Array<() => void>>();

  markReady(view: string): void {
    this.ready.add(view);
    this.waiters.get(view)?.forEach((resolve) => resolve());
    this.waiters.delete(view);
  }

  markClosed(view: string): void {
    this.ready.delete(view);
  }

  isReady(view: string): boolean {
    return this.ready.has(view);
  }

  whenReady(view: string): Promise<void> {
    if (this.ready.has(view)) return Promise.resolve();
    return new Promise((resolve) => {
      const list = this.waiters.get(view) ?? [];
      list.push(resolve);
      this.waiters.set(view, list);
    });
  }
}
