/**
 * Training panel page. Today it renders the run header and the honest state of the build;
 * the live charts (loss, learning rate, throughput, memory) arrive with the training-runs issue.
 */
import type { TrainingPanelState } from "../../src/protocol/webview";
import { connectToHost, element } from "../shared/host";

const app = document.getElementById("app") as HTMLElement;

function render(state: TrainingPanelState): void {
  app.replaceChildren();
  const header = element("header", { class: "panel-header" });
  header.append(
    element("h1", {}, state.runId ? `Run ${state.runId}` : "Training"),
    element("span", { class: `badge status-${state.status}`, role: "status" }, state.status === "none" ? "no run" : state.status),
  );
  const metrics = element("section", { class: "metric-grid", "aria-label": "Run metrics" });
  for (const name of ["Loss", "Learning rate", "Tokens/s", "GPU memory"]) {
    const card = element("div", { class: "metric" });
    card.append(element("span", { class: "metric-name" }, name), element("span", { class: "metric-value" }, "—"));
    metrics.append(card);
  }
  app.append(header, element("p", { class: "notice" }, state.notice), metrics);
  document.body.dataset["ready"] = "true";
}

connectToHost("training", (message) => {
  if (message.type === "init" && message.view === "training") render(message.state);
});
