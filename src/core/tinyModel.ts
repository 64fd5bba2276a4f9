/**
 * Creates a tiny model with a real architecture and random weights through the sidecar.
 * Tests, the demo and first-time users who want to see the pipeline without downloading
 * 13 GB all start from one of these.
 */
import { runSidecarCommand } from "./sidecarProcess";
import type { SidecarEventOf } from "../protocol/sidecar";

export type TinyModelArchitecture = "gpt-oss";

export interface TinyModelOptions {
  python: string;
  nativeDir: string;
  outDir: string;
  architecture: TinyModelArchitecture;
  seed?: number;
  onProgress?: (event: SidecarEventOf<"progress">) => void;
  onLog?: (line: string) => void;
}

export async function createTinyModel(options: TinyModelOptions): Promise<SidecarEventOf<"artifact">> {
  const args = ["make-tiny-model", "--arch", options.architecture, "--out", options.outDir];
  if (options.seed !== undefined) args.push("--seed", String(options.seed));
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
  return artifact;
}
