/**
 * Quantizes a GGUF with llama.cpp's own quantizer (llama_model_quantize, the code behind
 * llama-quantize), so our files get exactly the tensor mixtures llama.cpp's tools produce.
 * It runs in a child process (see quantizeChild.ts) writing a temporary file beside the
 * output, which is renamed when llama.cpp returns 0 and removed on any failure or cancel.
 * Progress is the temporary file's size against an estimate of the final size, refined by
 * llama.cpp's per-tensor log lines.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { readGgufFile } from "../gguf/reader";
import { LineSplitter } from "../jsonLines";
import { GGML_TYPE_IDS } from "./llamaQuantizeAbi";
import { locateLlamaLibrary, type LlamaLibraryLocation } from "./llamaLibrary";
import { CHILD_ORPHANED_EXIT_CODE, QUANTIZE_CHILD_SOURCE, buildQuantizeJob, isQuantizeChildMessage, type QuantizeChildMessage } from "./quantizeChild";
import { estimateQuantizedFile } from "./quantizeEstimate";
import {
  KEEP_MXFP4_EXPERTS,
  OVERRIDE_TYPE_NAMES,
  QUANTIZE_TYPES,
  QuantizeError,
  SUPPORTED_QUANTIZE_TYPES,
  isQuantizeType,
  type QuantizeType,
  type TensorTypeOverride,
} from "./quantizeTypes";

export interface QuantizeProgress {
  bytesWritten: number;
  /** Estimated final size; undefined when the input could not be read ahead of llama.cpp. */
  expectedBytes: number | undefined;
  /** Tensors llama.cpp has finished, from its log. */
  tensorsDone: number;
  tensorCount: number | undefined;
  /** 0..1, never decreasing; 1 only once the output file is in place. */
  fraction: number;
}

export interface QuantizeOptions {
  input: string;
  output: string;
  type: QuantizeType;
  /** Quantization threads; default: llama.cpp's choice (all hardware threads). */
  threads?: number;
  /** Convert tensors that are already quantized (e.g. MXFP4 experts), dequantizing first. */
  allowRequantize?: boolean;
  /** `--tensor-type` rules, e.g. KEEP_MXFP4_EXPERTS; ignored by llama.cpp for F16/BF16. */
  tensorTypeOverrides?: readonly TensorTypeOverride[];
  signal?: AbortSignal;
  onProgress?: (progress: QuantizeProgress) => void;
  /** llama.cpp's log lines (loader summary, one line per tensor, warnings). */
  onLog?: (line: string) => void;
  /** Default: node-llama-cpp's prebuilt library, found by locateLlamaLibrary(). */
  library?: LlamaLibraryLocation;
}

export interface QuantizeResult {
  output: string;
  type: QuantizeType;
  /** general.file_type llama.cpp wrote. */
  fileType: number;
  bytes: number;
  seconds: number;
  /** The libllama that did the work. */
  library: string;
}

const POLL_MS = 200;
const LOG_TAIL_LINES = 40;
const TENSOR_LINE = /^\[\s*(\d+)\/\s*(\d+)\]/;

export async function quantizeGguf(options: QuantizeOptions): Promise<QuantizeResult> {
  const started = performance.now();
  const { type, signal } = options;
  if (!isQuantizeType(type)) {
    throw new QuantizeError("bad_option", `Quantization type ${JSON.stringify(type)} is not supported; choose one of ${SUPPORTED_QUANTIZE_TYPES.join(", ")}.`);
  }
  const threads = options.threads ?? 0;
  if (!Number.isInteger(threads) || threads < 0) throw new QuantizeError("bad_option", `threads must be a whole number of at least 0 (0 lets llama.cpp decide), got ${String(options.threads)}.`);
  const overrides = checkOverrides(options.tensorTypeOverrides ?? []);
  const input = resolve(options.input);
  const output = resolve(options.output);
  if (input === output) throw new QuantizeError("bad_option", `The output must be a different file from the input (${input}); llama.cpp reads the input while writing.`);
  const inputStats = await stat(input).catch(() => undefined);
  if (!inputStats?.isFile()) throw new QuantizeError("input_missing", `Cannot quantize ${input}: ${inputStats ? "it is not a file" : "the file does not exist"}. Export the model to GGUF first, or pick an existing .gguf file.`);
  const outputFolder = await stat(dirname(output)).catch(() => undefined);
  if (!outputFolder?.isDirectory()) throw new QuantizeError("bad_option", `The output folder ${dirname(output)} does not exist; create it or choose another output path.`);
  signal?.throwIfAborted();

  const library = options.library ?? locateLlamaLibrary();
  const temp = join(dirname(output), `.${basename(output)}.${process.pid}.${randomBytes(4).toString("hex")}.partial`);
  const params = { ftype: QUANTIZE_TYPES[type].ftype, nthread: threads, allow_requantize: options.allowRequantize ?? false };
  const job = buildQuantizeJob(library, { input, output: temp, params, overrides: overrides.map((rule) => ({ pattern: rule.pattern, type: GGML_TYPE_IDS[rule.type] })) });

  // The estimate reads the input's header while llama.cpp starts; it only feeds progress.
  const progress: QuantizeProgress = { bytesWritten: 0, expectedBytes: undefined, tensorsDone: 0, tensorCount: undefined, fraction: 0 };
  if (options.onProgress) {
    readGgufFile(input)
      .then((contents) => {
        const estimate = estimateQuantizedFile(contents, type, overrides);
        progress.expectedBytes = estimate.bytes;
        progress.tensorCount ??= estimate.tensorCount;
      })
      .catch(() => undefined);
  }
  const report = (): void => {
    if (!options.onProgress) return;
    const byBytes = progress.expectedBytes ? progress.bytesWritten / progress.expectedBytes : 0;
    const byTensors = progress.tensorCount ? progress.tensorsDone / progress.tensorCount : 0;
    progress.fraction = Math.max(progress.fraction, Math.min(0.99, progress.expectedBytes ? byBytes : byTensors));
    options.onProgress({ ...progress });
  };

  const logTail: string[] = [];
  const onLine = (line: string): void => {
    logTail.push(line);
    if (logTail.length > LOG_TAIL_LINES) logTail.shift();
    options.onLog?.(line);
    const match = TENSOR_LINE.exec(line);
    if (match) {
      progress.tensorsDone = Number(match[1]) - 1;
      progress.tensorCount = Number(match[2]);
      report();
    }
  };

  const child = spawn(process.execPath, ["-e", QUANTIZE_CHILD_SOURCE], {
    // The extension host's binary is Electron; this makes it behave as plain Node.
    env: { ...process.env, ELECTRON_RUN_AS_NODE: "1" },
    stdio: ["ignore", "pipe", "pipe", "ipc"],
    serialization: "json",
    windowsHide: true,
  });
  const splitter = new LineSplitter(onLine);
  child.stdout?.on("data", (chunk: Buffer) => splitter.push(chunk));
  child.stderr?.on("data", (chunk: Buffer) => splitter.push(chunk));

  const poll = setInterval(() => {
    stat(temp)
      .then((stats) => {
        if (stats.size !== progress.bytesWritten) {
          progress.bytesWritten = stats.size;
          report();
        }
      })
      .catch(() => undefined);
  }, POLL_MS);

  let cancelled = false;
  const onAbort = (): void => {
    cancelled = true;
    child.kill("SIGKILL");
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  if (signal?.aborted) onAbort();

  try {
    const outcome = await new Promise<QuantizeChildMessage | { kind: "exit"; description: string }>((resolveOutcome, reject) => {
      let message: QuantizeChildMessage | undefined;
      child.on("message", (value: unknown) => {
        if (!isQuantizeChildMessage(value) || value.kind === "started") return;
        message = value;
      });
      child.on("error", (error) => reject(new QuantizeError("crashed", `Could not start the quantizer process (${process.execPath}): ${error.message}`)));
      // "close", not "exit": it comes after the IPC channel and stderr are drained.
      child.on("close", (code, exitSignal) => {
        splitter.end();
        if (message) resolveOutcome(message);
        else resolveOutcome({ kind: "exit", description: exitSignal ? `was killed by ${exitSignal}` : code === CHILD_ORPHANED_EXIT_CODE ? "lost its parent" : `exited with code ${code}` });
      });
      child.send(job);
    });
    if (cancelled) throw signal?.reason ?? new DOMException("The quantization was cancelled.", "AbortError");
    if (outcome.kind === "exit") {
      throw new QuantizeError("crashed", `The quantizer process ${outcome.description} while quantizing ${input} to ${type}.${tailText(logTail)}`);
    }
    if (outcome.kind === "failed") {
      const code = outcome.stage === "abi" ? "library_mismatch" : outcome.stage === "load" ? "library_missing" : "crashed";
      throw new QuantizeError(code, `The quantizer could not ${outcome.stage === "call" ? "run" : "load"} ${library.library}: ${outcome.message}.${outcome.stage === "call" ? "" : " Reinstall the extension; if this persists, the pinned node-llama-cpp and src/core/quantize/llamaQuantizeAbi.ts disagree."}`);
    }
    if (outcome.kind === "done" && outcome.code !== 0) {
      throw new QuantizeError("quantize_failed", `llama_model_quantize returned ${outcome.code} for ${input} (type ${type}): ${failureReason(logTail)}`);
    }
    await rename(temp, output);
    const bytes = (await stat(output)).size;
    progress.bytesWritten = bytes;
    progress.tensorsDone = progress.tensorCount ?? progress.tensorsDone;
    progress.fraction = 1;
    options.onProgress?.({ ...progress });
    return { output, type, fileType: QUANTIZE_TYPES[type].ftype, bytes, seconds: (performance.now() - started) / 1000, library: library.library };
  } finally {
    clearInterval(poll);
    signal?.removeEventListener("abort", onAbort);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await rm(temp, { force: true });
  }
}

function checkOverrides(overrides: readonly TensorTypeOverride[]): TensorTypeOverride[] {
  return overrides.map((rule, index) => {
    if (typeof rule.pattern !== "string" || rule.pattern.length === 0) {
      throw new QuantizeError("bad_option", `tensorTypeOverrides[${index}].pattern must be a non-empty regular expression, e.g. ${KEEP_MXFP4_EXPERTS[0]?.pattern}.`);
    }
    try {
      new RegExp(rule.pattern);
    } catch (error) {
      throw new QuantizeError("bad_option", `tensorTypeOverrides[${index}].pattern ${JSON.stringify(rule.pattern)} is not a valid regular expression: ${(error as Error).message}.`);
    }
    if (!OVERRIDE_TYPE_NAMES.includes(rule.type)) {
      throw new QuantizeError("bad_option", `tensorTypeOverrides[${index}].type ${JSON.stringify(rule.type)} is not a tensor type; choose one of ${OVERRIDE_TYPE_NAMES.join(", ")}.`);
    }
    return { pattern: rule.pattern, type: rule.type };
  });
}

/** llama.cpp's own words for the failure, plus what to do about the common one. */
function failureReason(logTail: readonly string[]): string {
  const line = [...logTail].reverse().find((candidate) => candidate.includes("failed to quantize"));
  const reason = line ? line.replace(/^.*failed to quantize:\s*/, "").trim() : `no reason was logged.${tailText(logTail)}`;
  const requantize = /requantizing from type (\w+) is disabled/.exec(reason);
  if (requantize) {
    return `${reason}. The input already holds ${requantize[1]} tensors (GPT-OSS experts are MXFP4): keep them with tensorTypeOverrides KEEP_MXFP4_EXPERTS (quantized types only), or pass allowRequantize to convert them (lossy twice).`;
  }
  return reason;
}

function tailText(logTail: readonly string[]): string {
  return logTail.length > 0 ? `\nLast llama.cpp log lines:\n${logTail.slice(-8).join("\n")}` : "";
}
