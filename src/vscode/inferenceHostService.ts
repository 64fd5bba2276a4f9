/**
 * Keeps the inference host alive for the editor: starts it on first use, and after an
 * unexpected exit restarts it with a visible notice (at most three times in five minutes,
 * so a model that crashes on load does not loop forever).
 */
import * as vscode from "vscode";
import { InferenceHostClient } from "../core/inferenceHostClient";
import type { InferenceHello } from "../protocol/inferenceHost";
import type { Logger } from "./logger";

const RESTART_WINDOW_MS = 5 * 60_000;
const MAX_RESTARTS_IN_WINDOW = 3;

export class InferenceHostService implements vscode.Disposable {
  private client: InferenceHostClient | undefined;
  private starting: Promise<InferenceHello> | undefined;
  private readonly restarts: number[] = [];

  constructor(
    private readonly entryPoint: string,
    private readonly logger: Logger,
  ) {}

  get pid(): number | undefined {
    return this.client?.pid;
  }

  /** Starts the host if needed and returns its hello. */
  ensureStarted(): Promise<InferenceHello> {
    if (this.client?.running && this.client.hello) return Promise.resolve(this.client.hello);
    this.starting ??= this.startFresh().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  async restart(): Promise<InferenceHello> {
    await this.client?.stop();
    this.client = undefined;
    return this.ensureStarted();
  }

  private async startFresh(): Promise<InferenceHello> {
    const client = new InferenceHostClient({
      entryPoint: this.entryPoint,
      onLog: this.logger.child("inference host"),
      onUnexpectedExit: (description) => this.onCrash(description),
    });
    this.client = client;
    const hello = await client.start();
    this.logger.info(`Inference host ${hello.pid} ready: node-llama-cpp ${hello.nodeLlamaCppVersion}, ${hello.backend} backend.`);
    return hello;
  }

  private onCrash(description: string): void {
    this.client = undefined;
    const now = Date.now();
    while (this.restarts.length > 0 && now - (this.restarts[0] ?? now) > RESTART_WINDOW_MS) this.restarts.shift();
    if (this.restarts.length >= MAX_RESTARTS_IN_WINDOW) {
      this.logger.error(`The inference host ${description} again; not restarting it (3 crashes in 5 minutes).`);
      void vscode.window.showErrorMessage(
        `Fine-Tune Studio's inference host keeps crashing (${description}). Chat and completion are off until you restart it.`,
        "Restart Inference Host",
        "Show Logs",
      ).then((choice) => {
        if (choice === "Restart Inference Host") void vscode.commands.executeCommand("finetuneStudio.restartInferenceHost");
        if (choice === "Show Logs") this.logger.show();
      });
      return;
    }
    this.restarts.push(now);
    this.logger.warn(`The inference host ${description}; restarting it.`);
    void vscode.window.showWarningMessage(`Fine-Tune Studio's inference host ${description} and was restarted.`);
    this.ensureStarted().catch((error: unknown) => this.logger.error("Restarting the inference host failed", error));
  }

  dispose(): void {
    void this.client?.stop();
  }
}
