/**
 * Turns events.jsonl into chart series. The sidecar appends and flushes per line, so the
 * last line may be half-written while we read: a line is only parsed once its newline is
 * there. A resumed session starts with its own `started {resumed_from_step}`; points after
 * that step are dropped so a resume after a crash continues one curve instead of doubling back.
 */
import { readFileSync, existsSync } from "node:fs";
import { decodeSidecarEvent, type SidecarEvent, type SidecarEventOf } from "../../protocol/sidecar";

export interface RunSeries {
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
  lastCheckpoint: SidecarEventOf<"checkpoint"> | null;
  bestEval: number | null;
  /** The terminal event of the newest session, if it has ended with one. */
  terminal: SidecarEventOf<"done"> | SidecarEventOf<"error"> | null;
  sessions: number;
}

export function emptySeries(): RunSeries {
  return {
    step: [],
    loss: [],
    lr: [],
    gradNorm: [],
    tokensPerS: [],
    memGb: [],
    evalStep: [],
    evalLoss: [],
    totalSteps: null,
    etaS: null,
    lastCheckpoint: null,
    bestEval: null,
    terminal: null,
    sessions: 0,
  };
}

/** Applies one event in place; returns the series for chaining. */
export function applyEvent(series: RunSeries, event: SidecarEvent): RunSeries {
  switch (event.type) {
    case "started": {
      series.sessions++;
      series.terminal = null;
      series.totalSteps = event.total_steps;
      truncateAfter(series, event.resumed_from_step);
      break;
    }
    case "step":
      series.step.push(event.step);
      series.loss.push(event.loss);
      series.lr.push(event.lr);
      series.gradNorm.push(event.grad_norm);
      series.tokensPerS.push(event.tokens_per_s);
      series.memGb.push(event.mem_gb);
      series.totalSteps = event.total_steps;
      series.etaS = event.eta_s;
      break;
    case "eval":
      series.evalStep.push(event.step);
      series.evalLoss.push(event.loss);
      series.bestEval = series.bestEval === null ? event.loss : Math.min(series.bestEval, event.loss);
      break;
    case "checkpoint":
      series.lastCheckpoint = event;
      break;
    case "done":
    case "error":
      series.terminal = event;
      series.etaS = null;
      break;
    default:
      break;
  }
  return series;
}

function truncateAfter(series: RunSeries, step: number): void {
  let keep = series.step.findIndex((value) => value > step);
  if (keep >= 0) {
    for (const key of ["step", "loss", "lr", "gradNorm", "tokensPerS", "memGb"] as const) series[key].length = keep;
  }
  keep = series.evalStep.findIndex((value) => value > step);
  if (keep >= 0) {
    series.evalStep.length = keep;
    series.evalLoss.length = keep;
    series.bestEval = series.evalLoss.length > 0 ? Math.min(...series.evalLoss) : null;
  }
}

/** Splits complete lines off `text`; returns them and the unterminated rest. */
export function splitCompleteLines(text: string): { lines: string[]; rest: string } {
  const end = text.lastIndexOf("\n");
  if (end < 0) return { lines: [], rest: text };
  return { lines: text.slice(0, end).split("\n").map((line) => line.replace(/\r$/, "")), rest: text.slice(end + 1) };
}

/** Decodes lines, skipping blank and malformed ones (a torn line from a killed process). */
export function decodeLines(lines: readonly string[]): SidecarEvent[] {
  const events: SidecarEvent[] = [];
  for (const line of lines) {
    if (line.trim().length === 0) continue;
    const decoded = decodeSidecarEvent(line);
    if (decoded.ok) events.push(decoded.value);
  }
  return events;
}

/** Reads a whole events.jsonl into series; a partial last line is left for later. */
export function readRunSeries(eventsPath: string): RunSeries {
  const series = emptySeries();
  if (!existsSync(eventsPath)) return series;
  const { lines } = splitCompleteLines(readFileSync(eventsPath, "utf8"));
  for (const event of decodeLines(lines)) applyEvent(series, event);
  return series;
}
