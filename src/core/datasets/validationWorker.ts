/**
 * Entry point of the validation worker thread (bundled as dist/dataset-validation-worker.js,
 * started by validationInWorker.ts). It runs validateDataset on the job in workerData and
 * posts progress, then the report or the failure. A token counter cannot be sent to a
 * thread (functions do not cross postMessage), so the job names a module that builds one.
 */
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { parentPort, workerData, type MessagePort } from "node:worker_threads";
import { DatasetError, type DatasetErrorCode } from "./problems";
import { validateDataset, type CountTokens, type DatasetReport, type ValidationOptions, type ValidationProgress, type ValidationSettings } from "./validate";

/**
 * A module that exports a factory of token counters, e.g. the tokenizer of the chosen model:
 * `export function createTokenCounter(config): CountTokens | Promise<CountTokens>`.
 */
export interface TokenCounterModule {
  /** Absolute path of a CommonJS or ES module. */
  module: string;
  /** Default "createTokenCounter". */
  exportName?: string;
  /** Passed to the factory; must be plain data (it is structured-cloned into the thread). */
  config?: unknown;
}

export interface ValidationJob {
  file: string;
  settings: ValidationSettings;
  tokenCounter?: TokenCounterModule;
}

export type ValidationWorkerMessage =
  | { kind: "progress"; progress: ValidationProgress }
  | { kind: "done"; report: DatasetReport }
  | { kind: "failed"; name: string; message: string; code?: DatasetErrorCode };

if (parentPort !== null) void runJob(parentPort, workerData as ValidationJob);

async function runJob(port: MessagePort, job: ValidationJob): Promise<void> {
  const post = (message: ValidationWorkerMessage): void => port.postMessage(message);
  try {
    const options: ValidationOptions = { ...job.settings, onProgress: (progress) => post({ kind: "progress", progress }) };
    if (job.tokenCounter !== undefined) options.countTokens = await loadTokenCounter(job.tokenCounter);
    post({ kind: "done", report: await validateDataset(job.file, options) });
  } catch (error) {
    const failure: ValidationWorkerMessage = {
      kind: "failed",
      name: error instanceof Error ? error.name : "Error",
      message: error instanceof Error ? error.message : String(error),
    };
    if (error instanceof DatasetError) failure.code = error.code;
    post(failure);
  }
}

export async function loadTokenCounter(spec: TokenCounterModule): Promise<CountTokens> {
  const exportName = spec.exportName ?? "createTokenCounter";
  let exports: Record<string, unknown>;
  try {
    // require() first: the bundles are CommonJS, and under tsx only require() sees .ts files.
    exports = createRequire(__filename)(spec.module) as Record<string, unknown>;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ERR_REQUIRE_ESM") throw new DatasetError("bad_option", `Cannot load the token counter ${spec.module}: ${(error as Error).message}`);
    exports = (await import(pathToFileURL(spec.module).href)) as Record<string, unknown>;
  }
  const factory = exports[exportName];
  if (typeof factory !== "function") throw new DatasetError("bad_option", `The token counter module ${spec.module} has no function export "${exportName}".`);
  const counter = (await (factory as (config: unknown) => unknown)(spec.config)) as unknown;
  if (typeof counter !== "function") throw new DatasetError("bad_option", `${spec.module}: ${exportName}() must return a function (sample) => number.`);
  return counter as CountTokens;
}
