/**
 * Training panel page: the run's config, progress with ETA, live charts (train/eval loss,
 * learning rate, grad norm, tokens/s, memory), the log tail and Stop / Resume. It renders
 * whatever state the host sends; the host rebuilds that state from the run folder.
 */
import type { TrainingPanelState } from "../../src/protocol/webview";
import { connectToHost, element } from "../shared/host";
import { formatNumber, lineChart } from "./charts";

const app = document.getElementById("app") as HTMLElement;

function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${s % 60}s` : `${s}s`;
}

function render(state: TrainingPanelState): void {
  app.replaceChildren();
  const header = element("header", { class: "panel-header" });
  header.append(
    element("h1", {}, state.runId ? `Run ${state.runId}` : "Training"),
    element("span", { class: `badge status-${state.status}`, role: "status" }, state.status === "none" ? "no run" : state.status),
  );
  if (state.runId && state.status !== "none") {
    const stop = element("button", { type: "button", "data-action": "stop" }, "Stop");
    stop.disabled = state.status !== "running";
    stop.addEventListener("click", () => connection.send({ type: "training.action", action: "stop" }));
    const resume = element("button", { type: "button", "data-action": "resume" }, "Resume");
    resume.disabled = state.status === "running" || state.status === "done";
    resume.addEventListener("click", () => connection.send({ type: "training.action", action: "resume" }));
    header.append(stop, resume);
  }
  app.append(header);
  if (state.notice) app.append(element("p", { class: "notice" }, state.notice));
  const series = state.series;
  if (series) {
    const step = series.step.at(-1) ?? 0;
    const total = series.totalSteps ?? 0;
    const progress = element("section", { class: "progress", "aria-label": "Progress" });
    const bar = element("progress", { max: String(Math.max(total, 1)), value: String(step) });
    const eta = series.etaS !== null && state.status === "running" ? ` · ETA ${duration(series.etaS)}` : "";
    const best = series.bestEval !== null ? ` · best eval loss ${formatNumber(series.bestEval)}` : "";
    progress.append(bar, element("span", { class: "muted" }, `step ${step} / ${total || "?"}${eta}${best}`));
    app.append(progress);
    const charts = element("section", { class: "chart-grid", "aria-label": "Charts" });
    charts.append(
      lineChart(
        "Loss",
        [
          { x: series.step, y: series.loss, className: "series-train", label: "train" },
          { x: series.evalStep, y: series.evalLoss, className: "series-eval", label: "eval" },
        ],
        series.totalSteps,
      ),
      lineChart("Learning rate", [{ x: series.step, y: series.lr, className: "series-train", label: "lr" }], series.totalSteps),
      lineChart("Grad norm", [{ x: series.step, y: series.gradNorm, className: "series-train", label: "norm" }], series.totalSteps),
      lineChart("Tokens/s", [{ x: series.step, y: series.tokensPerS, className: "series-train", label: "tok/s" }], series.totalSteps),
      lineChart("Memory (GB)", [{ x: series.step, y: series.memGb, className: "series-train", label: "GB" }], series.totalSteps),
    );
    app.append(charts);
  }
  if (state.config.length > 0) {
    const table = element("dl", { class: "config" });
    for (const [label, value] of state.config) table.append(element("dt", {}, label), element("dd", {}, value));
    const details = element("details", { open: "" });
    details.append(element("summary", {}, "Configuration"), table);
    app.append(details);
  }
  if (state.logTail.length > 0) {
    const logs = element("details", {});
    logs.append(element("summary", {}, "Log (sidecar.log)"), element("pre", { class: "log-tail" }, state.logTail.join("\n")));
    app.append(logs);
  }
  document.body.dataset["ready"] = "true";
}

const connection = connectToHost("training", (message) => {
  if (message.type === "init" && message.view === "training") render(message.state);
  if (message.type === "training.update") render(message.state);
});
