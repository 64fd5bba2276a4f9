/**
 * Entry point of the inference host child process (dist/inference-host.js). It loads
 * node-llama-cpp with prebuilt binaries only (never compiles on a user's machine), says
 * hello, then serves requests from the parent over the IPC channel.
 */
import {
  INFERENCE_PROTOCOL_VERSION,
  isParentToHost,
  type HostToParent,
  type InferenceMethod,
  type InferenceRequest,
  type InferenceStatus,
} from "../protocol/inferenceHost";

import { ModelRegistry } from "./modelRegistry";

type Llama = Awaited<ReturnType<typeof import("node-llama-cpp")["getLlama"]>>;

const startedAt = Date.now();

function send(message: HostToParent): void {
  process.send?.(message);
}

async function loadLlama(): Promise<{ llama: Llama; registry: ModelRegistry; version: string }> {
  const module = await import("node-llama-cpp");
  const llama = await module.getLlama({
    build: "never",
    gpu: "auto",
    progressLogs: false,
    skipDownload: true,
    logLevel: module.LlamaLogLevel.error,
  });
  const version = await readNodeLlamaCppVersion();
  return { llama, registry: new ModelRegistry(llama, module), version };
}

/** The package's exports hide package.json, so read it from the folder Node would resolve. */
async function readNodeLlamaCppVersion(): Promise<string> {
  const { createRequire } = await import("node:module");
  const { existsSync, readFileSync } = await import("node:fs");
  const { join } = await import("node:path");
  const searchPaths = createRequire(__filename).resolve.paths("node-llama-cpp") ?? [];
  for (const folder of searchPaths) {
    const manifest = join(folder, "node-llama-cpp", "package.json");
    if (existsSync(manifest)) return (JSON.parse(readFileSync(manifest, "utf8")) as { version: string }).version;
  }
  return "unknown";
}

function backendName(llama: Llama): string {
  return llama.gpu === false ? "cpu" : llama.gpu;
}

async function handle(llama: Llama, registry: ModelRegistry, request: InferenceRequest): Promise<unknown> {
  const method: InferenceMethod = request.method;
  switch (method) {
    case "status": {
      const status: InferenceStatus = {
        backend: backendName(llama),
        loadedModels: registry.loadedPaths,
        uptimeMs: Date.now() - startedAt,
      };
      return status;
    }
    case "loadModel":
      return registry.load((request as InferenceRequest<"loadModel">).params.path);
    case "complete":
      return registry.complete((request as InferenceRequest<"complete">).params);
    case "shutdown":
      setImmediate(() => {
        void registry
          .dispose()
          .then(() => llama.dispose())
          .finally(() => process.exit(0));
      });
      return { ok: true };
  }
}

async function main(): Promise<void> {
  if (!process.send) {
    process.stderr.write("The inference host must be started by Fine-Tune Studio (it talks over an IPC channel).\n");
    process.exit(2);
  }
  let loaded: { llama: Llama; registry: ModelRegistry; version: string };
  try {
    loaded = await loadLlama();
  } catch (error) {
    send({
      kind: "fatal",
      message: `node-llama-cpp could not load: ${error instanceof Error ? error.message : String(error)}`,
      hint: "The extension ships prebuilt llama.cpp binaries for this platform; reinstall the extension, or check the output channel for the native error.",
    });
    process.exit(1);
  }
  const { llama, registry, version } = loaded;
  process.on("message", (message: unknown) => {
    if (!isParentToHost(message) || message.kind !== "request") return;
    handle(llama, registry, message).then(
      (result) => send({ kind: "response", id: message.id, ok: true, result }),
      (error: unknown) =>
        send({
          kind: "response",
          id: message.id,
          ok: false,
          error: { code: "failed", message: error instanceof Error ? error.message : String(error) },
        }),
    );
  });
  // The parent going away (editor closed, crash) must not leave a model resident in memory.
  process.on("disconnect", () => process.exit(0));
  send({
    kind: "hello",
    protocolVersion: INFERENCE_PROTOCOL_VERSION,
    nodeLlamaCppVersion: version,
    backend: backendName(llama),
    pid: process.pid,
  });
}

void main();
