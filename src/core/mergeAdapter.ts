/**
 * Folds a training checkpoint's LoRA adapter into its base model through the sidecar's
 * `merge` command (tensor by tensor, never loading the model), producing the Hugging Face
 * folder that the GGUF export reads.
 */
import { runSidecarCommand, type SidecarHandlers } from "./sidecarProcess";
import type { SidecarEventOf } from "../protocol/sidecar";

export interface MergeRequest {
  python: string;
  nativeDir: string;
  baseModel: string;
  /** A checkpoint folder: adapter_model.safetensors + adapter_config.json. */
  adapter: string;
  outDir: string;
  replace?: boolean;
}

export async function mergeAdapter(request: MergeRequest, handlers: SidecarHandlers = {}): Promise<SidecarEventOf<"artifact">> {
  const args = ["merge", "--model", request.baseModel, "--adapter", request.adapter, "--out", request.outDir];
  if (request.replace) args.push("--force");
  const events = await runSidecarCommand({ python: request.python, nativeDir: request.nativeDir, args }, handlers);
  const artifact = events.find((event): event is SidecarEventOf<"artifact"> => event.type === "artifact");
  if (!artifact) throw new Error("The sidecar finished merging without reporting the merged model.");
  return artifact;
}
