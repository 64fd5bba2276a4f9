/**
 * Status bar item while a run trains: live step/total and loss; a click opens the panel on
 * that run. Hidden when nothing trains in this window.
 */
import { basename } from "node:path";
import * as vscode from "vscode";
import type { RunSupervisor } from "../../core/runs/runSupervisor";

export class RunStatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem("finetuneStudio.training", vscode.StatusBarAlignment.Left, 50);
  private readonly subscription: { dispose(): void };
  private current: string | undefined;

  constructor(private readonly supervisor: RunSupervisor) {
    this.item.name = "Fine-Tune Studio training";
    this.subscription = supervisor.onDidChange((runDir) => this.update(runDir));
  }

  /** The text shown; the integration suite reads it. */
  get text(): string | undefined {
    return this.current === undefined ? undefined : this.item.text;
  }

  update(runDir: string): void {
    if (!this.supervisor.isActive(runDir)) {
      if (this.current === runDir) {
        this.current = undefined;
        this.item.hide();
      }
      return;
    }
    this.current = runDir;
    const series = this.supervisor.seriesOf(runDir);
    const step = series.step.at(-1);
    const loss = series.loss.at(-1);
    const id = basename(runDir);
    this.item.text =
      step === undefined
        ? `$(sync~spin) ${id}: starting`
        : `$(sync~spin) step ${step}/${series.totalSteps ?? "?"} · loss ${loss?.toFixed(3) ?? "?"}`;
    this.item.tooltip = `Training run ${id}: click to open the training panel`;
    this.item.command = { command: "finetuneStudio.openTrainingPanel", title: "Open Training Panel", arguments: [id] };
    this.item.show();
  }

  dispose(): void {
    this.subscription.dispose();
    this.item.dispose();
  }
}
