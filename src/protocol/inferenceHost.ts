/**
 * Protocol between the extension host and the inference host, a Node child process that
 * owns node-llama-cpp so that a native crash never takes the editor down.
 *
 * Transport: Node's IPC channel (child_process.fork), structured-clone of plain objects.
 * The child sends `hello` first; the parent refuses a child of another protocol version.
 * Requests carry a numeric id; each gets exactly one response, or a rejection when the
 * child dies or the request times out. `cancel` aborts a running request by id.
 */
import { isJsonObject } from "./fields";

export const INFERENCE_PROTOCOL_VERSION = 1;

/** Every request method with its parameters and result. */
export interface InferenceMethods {
  /** What the host has loaded and which backend llama.cpp uses. */
  status: { params: Record<string, never>; result: InferenceStatus };
  /** Loads a GGUF file (once; a second call with the same path returns the same id). */
  loadModel: { params: { path: string }; result: LoadedModelInfo };
  /** Raw text completion, greedy unless a temperature is given. */
  complete: { params: CompletionParams; result: CompletionResult };
  /** Release models and exit cleanly. */
  shutdown: { params: Record<string, never>; result: { ok: true } };
}

export interface LoadedModelInfo {
  modelId: string;
  path: string;
  architecture: string;
  trainContextSize: number;
  vocabularySize: number;
  loadMs: number;
}

export interface CompletionParams {
  modelId: string;
  prompt: string;
  maxTokens: number;
  temperature?: number;
  /** Texts that end the completion (not included in the result). */
  stop?: string[];
}

export interface CompletionResult {
  text: string;
  /** Time spent evaluating the prompt and generating, in milliseconds. */
  ms: number;
}

export type InferenceMethod = keyof InferenceMethods;
export const INFERENCE_METHODS: readonly InferenceMethod[] = ["status", "loadModel", "complete", "shutdown"];

export interface InferenceStatus {
  backend: string;
  loadedModels: string[];
  uptimeMs: number;
}

/** Child → parent: first message of every session. */
export interface InferenceHello {
  kind: "hello";
  protocolVersion: number;
  nodeLlamaCppVersion: string;
  /** llama.cpp backend in use: "cuda", "vulkan", "metal" or "cpu". */
  backend: string;
  pid: number;
}

/** Child → parent: the host could not start (for example node-llama-cpp failed to load). */
export interface InferenceFatal {
  kind: "fatal";
  message: string;
  hint: string;
}

export interface InferenceRequest<M extends InferenceMethod = InferenceMethod> {
  kind: "request";
  id: number;
  method: M;
  params: InferenceMethods[M]["params"];
}

export interface InferenceCancel {
  kind: "cancel";
  id: number;
}

export type InferenceResponse =
  | { kind: "response"; id: number; ok: true; result: unknown }
  | { kind: "response"; id: number; ok: false; error: { code: string; message: string } };

export type ParentToHost = InferenceRequest | InferenceCancel;
export type HostToParent = InferenceHello | InferenceFatal | InferenceResponse;

export function isHostToParent(message: unknown): message is HostToParent {
  if (!isJsonObject(message)) return false;
  switch (message["kind"]) {
    case "hello":
      return typeof message["protocolVersion"] === "number" && typeof message["backend"] === "string";
    case "fatal":
      return typeof message["message"] === "string";
    case "response":
      return typeof message["id"] === "number" && typeof message["ok"] === "boolean";
    default:
      return false;
  }
}

export function isParentToHost(message: unknown): message is ParentToHost {
  if (!isJsonObject(message)) return false;
  if (message["kind"] === "cancel") return typeof message["id"] === "number";
  return (
    message["kind"] === "request" &&
    typeof message["id"] === "number" &&
    INFERENCE_METHODS.includes(message["method"] as InferenceMethod)
  );
}
