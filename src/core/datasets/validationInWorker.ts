/**
 * Runs validateDataset in a worker thread, so validating a multi-gigabyte file never blocks
 * the extension host; progress comes back as messages and an AbortSignal terminates the
 * thread outright (no cooperative check to wait for).
 *
 * Where the worker script is: esbuild bundles each entry separately, so in the extension and
 * the CLI this code runs from dist/extension.js or dist/cli.js and the worker is the sibling
 * bundle dist/dataset-validation-worker.js (entry src/core/datasets/validationWorker.ts).
 * Under tsx (unit tests, scripts run from source) this file is still a .ts file, and the
 * worker is validationWorker.ts itself. Node 20 resolves a worker's entry before any
 * `--import tsx` hook exists in the new thread (ERR_UNKNOWN_FILE_EXTENSION, also with
 * `execArgv`), so from source the worker starts as a tiny CommonJS snippet that registers
 * tsx's require hook and then requires the .ts entry.
 */
import { Worker, type WorkerOptions } from "node:worker_threads";
import { join } from "node:path";
import { DatasetError } from "./problems";
import type { DatasetReport, ValidationProgress, ValidationSettings } from "./validate";
import type { TokenCounterModule, ValidationJob, ValidationWorkerMessage } from "./validationWorker";

/** File name of the worker bundle beside the running bundle. */
export const VALIDATION_WORKER_BUNDLE = "dataset-validation-worker.js";

export interface WorkerValidationOptions extends ValidationSettings {
  tokenCounter?: TokenCounterModule;
}

export interface WorkerLaunch {
  /** Absolute path of the worker script (.js bundle, or the .ts source with `register`). */
  script: string;
  /** A module to require in the thread before the script, e.g. "tsx/cjs" for .ts sources. */
  register?: string;
}

export interface WorkerControl {
  signal?: AbortSignal;
  onProgress?: (progress: ValidationProgress) => void;
  /** Default: defaultValidationWorker(). */
  worker?: WorkerLaunch;
  /**
   * Heap cap of the thread (V8 old generation). The thread lives in the extension host's
   * process; validation itself needs little, but the duplicate index grows by ~100 bytes
   * per sample. Default: V8's own limit.
   */
  maxHeapMb?: number;
}

export function defaultValidationWorker(): WorkerLaunch {
  if (__filename.endsWith(".ts")) return { script: join(__dirname, "validationWorker.ts"), register: "tsx/cjs" };
  return { script: join(__dirname, VALIDATION_WORKER_BUNDLE) };
}

export function runValidationInWorker(file: string, options: WorkerValidationOptions = {}, control: WorkerControl = {}): Promise<DatasetReport> {
  const { signal, onProgress } = control;
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  const { tokenCounter, ...settings } = options;
  const job: ValidationJob = { file, settings };
  if (tokenCounter !== undefined) job.tokenCounter = tokenCounter;
  const worker = startWorker(control.worker ?? defaultValidationWorker(), job, control.maxHeapMb);

  return new Promise<DatasetReport>((resolve, reject) => {
    let settled = false;
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      outcome();
    };
    const onAbort = (): void => {
      settle(() => reject(abortReason(signal as AbortSignal)));
      void worker.terminate();
    };
    signal?.addEventListener("abort", onAbort, { once: true });

    worker.on("message", (message: ValidationWorkerMessage) => {
      if (message.kind === "progress") {
        if (!settled) onProgress?.(message.progress);
      } else if (message.kind === "done") {
        settle(() => resolve(message.report));
      } else {
        settle(() => reject(message.code === undefined ? Object.assign(new Error(message.message), { name: message.name }) : new DatasetError(message.code, message.message)));
      }
    });
    worker.on("error", (error) => {
      const outOfMemory = (error as NodeJS.ErrnoException).code === "ERR_WORKER_OUT_OF_MEMORY";
      const why = outOfMemory ? `ran out of memory (heap cap ${control.maxHeapMb ?? "default"} MB)` : `crashed: ${error.message}`;
      settle(() => reject(new DatasetError("worker_failed", `The dataset validation worker ${why} while validating ${file}.`)));
    });
    worker.on("exit", (code) => settle(() => reject(new DatasetError("worker_failed", `The dataset validation worker exited (code ${code}) before finishing ${file}.`))));
  });
}

function startWorker(launch: WorkerLaunch, job: ValidationJob, maxHeapMb: number | undefined): Worker {
  const options: WorkerOptions = { workerData: job };
  if (maxHeapMb !== undefined) options.resourceLimits = { maxOldGenerationSizeMb: maxHeapMb };
  if (launch.register === undefined) return new Worker(launch.script, options);
  // Resolve the hook from the script's own folder, so it is found in the project's node_modules.
  const source = [
    `const load = require("node:module").createRequire(${JSON.stringify(launch.script)});`,
    `load(load.resolve(${JSON.stringify(launch.register)}));`,
    `load(${JSON.stringify(launch.script)});`,
  ].join("\n");
  return new Worker(source, { ...options, eval: true });
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("The dataset validation was cancelled.", "AbortError");
}
