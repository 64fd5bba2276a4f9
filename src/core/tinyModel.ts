/**
 * Creates a tiny model with a real architecture and random weights through the sidecar.
 * Tests, the demo and first-time users who want to see the pipeline without downloading
 * 13 GB all start from one of these.
 */
import { runSidecarCommand } from "./sidecarProcess";
import { writeHarmonyTokenizerFiles } from "./tokenizers/huggingFaceTokenizerJson";
import type { SidecarEventOf } from "../protocol/sidecar";

export type TinyModelArchitecture = "gpt-oss";

export interface TinyModelOptions {
  python: string;
  nativeDir: string;
  outDir: string;
  architecture: TinyModelArchitecture;
  seed?: number;
  /** Replace an existing folder at outDir (the sidecar refuses otherwise). */
  replace?: boolean;
  onProgress?: (event: SidecarEventOf<"progress">) => void;
  onLog?: (line: string) => void;
}

export async function createTinyModel(options: TinyModelOptions): Promise<SidecarEventOf<"artifact">> {
  const args = ["make-tiny-model", "--arch", options.architecture, "--out", options.outDir];
  if (options.seed !== undefined) args.push("--seed", String(options.seed));
  if (options.replace) args.push("--force");
  const events = await runSidecarCommand(
    { python: options.python, nativeDir: options.nativeDir, args },
    {
      onEvent: (event) => {
        if (event.type === "progress") options.onProgress?.(event);
      },
      ...(options.onLog ? { onLog: options.onLog } : {}),
    },
  );
  const artifact = events.find((event): event is SidecarEventOf<"artifact"> => event.type === "artifact");
  if (!artifact) throw new Error("The sidecar finished without reporting the model it wrote.");
  // The real GPT-OSS tokenizer (o200k_harmony) and our harmony chat template, so the tiny
  // model tokenizes, renders chats and exports exactly like gpt-oss-20b.
  const written = await writeHarmonyTokenizerFiles(artifact.path);
  return { ...artifact, bytes: artifact.bytes + written.reduce((sum, file) => sum + file.bytes, 0) };
}
