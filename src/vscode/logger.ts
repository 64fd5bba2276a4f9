/**
 * The Fine-Tune Studio output channel. Errors also reveal the channel, because a failure the
 * user cannot see is the most common complaint about local-model extensions.
 */
import * as vscode from "vscode";

export class Logger implements vscode.Disposable {
  private readonly channel = vscode.window.createOutputChannel("Fine-Tune Studio", { log: true });

  info(message: string): void {
    this.channel.info(message);
  }

  warn(message: string): void {
    this.channel.warn(message);
  }

  debug(message: string): void {
    this.channel.debug(message);
  }

  error(message: string, error?: unknown): void {
    const detail = error instanceof Error ? `: ${error.message}` : error !== undefined ? `: ${String(error)}` : "";
    this.channel.error(`${message}${detail}`);
    this.channel.show(true);
  }

  /** Lines from a child process, tagged with where they came from. */
  child(source: string): (line: string) => void {
    return (line) => this.channel.info(`[${source}] ${line}`);
  }

  show(): void {
    this.channel.show();
  }

  dispose(): void {
    this.channel.dispose();
  }
}
