/**
 * The quantizer child process. llama_model_quantize blocks for minutes on a 20B model and
 * has no cancel hook, and a native fault must not take down the extension host, so it runs
 * in a separate Node process (the extension host's own binary with ELECTRON_RUN_AS_NODE),
 * which cancellation simply kills. The child is a self-contained script passed with `-e`:
 * esbuild bundles the extension into one file, so there is no separate file to fork.
 *
 * It knows nothing about llama.cpp itself. The parent sends a job with the library paths
 * and the koffi declarations built from llamaQuantizeAbi.ts (the one place they live); the
 * child binds them, checks that the library's default params read back as declared, applies
 * the job's params and calls llama_model_quantize. llama.cpp's log goes to stderr, which the
 * parent reads for per-tensor progress and for the reason of a failure.
 */
import {
  LLAMA_MODEL_TENSOR_OVERRIDE,
  LLAMA_QUANTIZE_DEFAULTS,
  LLAMA_QUANTIZE_FUNCTIONS,
  LLAMA_QUANTIZE_STRUCTS,
  koffiStructDefinition,
  type QuantizeParamsValue,
} from "./llamaQuantizeAbi";
import type { LlamaLibraryLocation } from "./llamaLibrary";

export interface QuantizeJob {
  koffiPath: string;
  dependencies: string[];
  library: string;
  structs: { name: string; definition: Record<string, string> }[];
  functions: { name: string; result: string; parameters: string[] }[];
  expectedDefaults: Record<string, QuantizeParamsValue>;
  /** Members of llama_model_quantize_params to set (names as in the struct). */
  params: Record<string, number | boolean>;
  overrideStruct: string;
  overrides: { pattern: string; type: number }[];
  input: string;
  output: string;
}

export type QuantizeChildMessage =
  | { kind: "started" }
  | { kind: "done"; code: number }
  | { kind: "failed"; stage: "load" | "abi" | "call"; message: string };

export function isQuantizeChildMessage(value: unknown): value is QuantizeChildMessage {
  if (typeof value !== "object" || value === null) return false;
  const kind = (value as { kind?: unknown }).kind;
  if (kind === "started") return true;
  if (kind === "done") return typeof (value as { code?: unknown }).code === "number";
  return kind === "failed" && typeof (value as { message?: unknown }).message === "string";
}

export function buildQuantizeJob(
  location: LlamaLibraryLocation,
  request: { input: string; output: string; params: Record<string, number | boolean>; overrides: { pattern: string; type: number }[] },
): QuantizeJob {
  return {
    koffiPath: location.koffiPath,
    dependencies: location.dependencies,
    library: location.library,
    structs: LLAMA_QUANTIZE_STRUCTS.map((struct) => ({ name: struct.name, definition: koffiStructDefinition(struct) })),
    functions: LLAMA_QUANTIZE_FUNCTIONS.map((fn) => ({ name: fn.name, result: fn.resultKoffiType, parameters: fn.parameters.map((parameter) => parameter.koffiType) })),
    expectedDefaults: { ...LLAMA_QUANTIZE_DEFAULTS },
    params: request.params,
    overrideStruct: LLAMA_MODEL_TENSOR_OVERRIDE.name,
    overrides: request.overrides,
    input: request.input,
    output: request.output,
  };
}

/**
 * Exit code of a child whose parent went away (the extension host crashed or was killed): it
 * removes its temporary file and stops rather than finish a file nobody will rename.
 */
export const CHILD_ORPHANED_EXIT_CODE = 70;

// Plain CommonJS, no helpers from outside: this text is what the child runs. The override
// patterns are NUL-terminated Buffers kept referenced until the call returns, so the
// `const char *` in the array llama.cpp reads stays valid.
export const QUANTIZE_CHILD_SOURCE = String.raw`"use strict";
let finished = false;
const keep = [];
const send = (message, then) => {
  if (process.connected) process.send(message, then);
  else if (then) then();
};
const finish = (message) => {
  finished = true;
  send(message, () => process.disconnect());
};
let partial;
process.on("disconnect", () => {
  if (finished) return;
  try {
    if (partial) require("fs").rmSync(partial, { force: true });
  } finally {
    process.exit(${CHILD_ORPHANED_EXIT_CODE});
  }
});
process.once("message", (job) => {
  let stage = "load";
  partial = job.output;
  try {
    const koffi = require(job.koffiPath);
    for (const dependency of job.dependencies) keep.push(koffi.load(dependency));
    const library = koffi.load(job.library);
    keep.push(library);
    for (const struct of job.structs) koffi.struct(struct.name, struct.definition);
    const fn = {};
    for (const f of job.functions) fn[f.name] = library.func(f.name, f.result, f.parameters);
    stage = "abi";
    fn.llama_backend_init();
    const params = fn.llama_model_quantize_default_params();
    const expected = job.expectedDefaults;
    const names = Object.keys(expected);
    const wrong = names.filter((name) => String(params[name]) !== String(expected[name]));
    if (wrong.length > 0 || Object.keys(params).length !== names.length) {
      throw new Error("llama_model_quantize_default_params() read back " +
        wrong.map((name) => name + " = " + String(params[name]) + " (expected " + String(expected[name]) + ")").join(", ") +
        "; the library's struct layout differs from the declaration");
    }
    Object.assign(params, job.params);
    if (job.overrides.length > 0) {
      const rows = job.overrides.map((override) => {
        const pattern = Buffer.from(override.pattern + "\0", "utf8");
        keep.push(pattern);
        return { pattern, type: override.type };
      });
      rows.push({ pattern: null, type: 0 });
      const memory = koffi.alloc(job.overrideStruct, rows.length);
      koffi.encode(memory, job.overrideStruct, rows, rows.length);
      keep.push(memory);
      params.tt_overrides = memory;
    }
    stage = "call";
    send({ kind: "started" });
    fn.llama_model_quantize.async(job.input, job.output, params, (error, code) => {
      if (error) finish({ kind: "failed", stage, message: String((error && error.message) || error) });
      else finish({ kind: "done", code: Number(code) });
    });
  } catch (error) {
    finish({ kind: "failed", stage, message: String((error && error.message) || error) });
  }
});
`;
