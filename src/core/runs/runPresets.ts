/**
 * Creating a run: presets, dataset preparation into <run>/prepared and the run spec. Kept apart
 * from the supervisor so the CLI can create runs the same way the editor does.
 */
import { existsSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import type { RunSpec } from "../../protocol/runSpec";
import { samplesFromJsonl } from "../prepare/jsonlSamples";
import { prepareDataset } from "../prepare/prepareDataset";
import { createRunFolder, newRunId, runPaths, runsRoot, type RunMeta } from "./runStore";

export type PresetName = "quick" | "balanced" | "quality";

export interface Preset {
  label: string;
  detail: string;
  seqLen: number;
  spec: {
    lora: NonNullable<RunSpec["lora"]>;
    optimizer: NonNullable<RunSpec["optimizer"]>;
    schedule: NonNullable<RunSpec["schedule"]>;
    max_steps?: number;
    epochs?: number;
    eval_every: number;
  };
}

export const PRESETS: Record<PresetName, Preset> = {
  quick: {
    label: "Quick test",
    detail: "60 steps, rank 8, high learning rate: checks that everything works",
    seqLen: 512,
    spec: { lora: { rank: 8, alpha: 16 }, optimizer: { lr: 2e-3 }, schedule: { kind: "cosine", warmup_steps: 2 }, max_steps: 60, eval_every: 10 },
  },
  balanced: {
    label: "Balanced",
    detail: "1 epoch, rank 16, lr 2e-4",
    seqLen: 2048,
    spec: { lora: { rank: 16, alpha: 32 }, optimizer: { lr: 2e-4 }, schedule: { kind: "cosine", warmup_ratio: 0.03 }, epochs: 1, eval_every: 50 },
  },
  quality: {
    label: "Quality",
    detail: "3 epochs, rank 32, lr 1e-4",
    seqLen: 2048,
    spec: { lora: { rank: 32, alpha: 64 }, optimizer: { lr: 1e-4 }, schedule: { kind: "cosine", warmup_ratio: 0.03 }, epochs: 3, eval_every: 100 },
  },
};

export function isPresetName(value: unknown): value is PresetName {
  return typeof value === "string" && value in PRESETS;
}

export interface NewRunRequest {
  workspaceRoot: string;
  modelDir: string;
  datasets: string[];
  preset: PresetName;
  /** Overrides the preset's length (tests use a few steps). */
  maxSteps?: number;
  device?: RunSpec["device"];
  onProgress?: (message: string) => void;
}

/** Prepares the dataset(s) and writes run.json, meta.json and a queued status.json. */
export async function createRun(request: NewRunRequest): Promise<string> {
  const id = newRunId(basename(request.modelDir));
  const runDir = join(runsRoot(request.workspaceRoot), id);
  const paths = runPaths(runDir);
  const preset = PRESETS[request.preset];
  request.onProgress?.("preparing the dataset");
  const skipped = { count: 0 };
  const { manifest } = await prepareDataset({
    samples: samplesFromJsonl(request.datasets, skipped),
    tokenizer: isGptOss(request.modelDir) ? "harmony" : { modelFolder: request.modelDir },
    seqLen: preset.seqLen,
    evalFraction: 0.1,
    seed: 0,
    outDir: paths.prepared,
  });
  const shards = (split: "train" | "eval"): string[] =>
    manifest.shards.filter((shard) => shard.split === split).map((shard) => join(paths.prepared, shard.file));
  const evalShards = shards("eval");
  const length = request.maxSteps !== undefined ? { max_steps: request.maxSteps } : { max_steps: preset.spec.max_steps, epochs: preset.spec.epochs };
  const spec: RunSpec = {
    run_id: id,
    model_dir: request.modelDir,
    run_dir: runDir,
    train_shards: shards("train"),
    ...(evalShards.length > 0 ? { eval_shards: evalShards, eval_every: preset.spec.eval_every } : {}),
    lora: preset.spec.lora,
    optimizer: preset.spec.optimizer,
    schedule: preset.spec.schedule,
    ...Object.fromEntries(Object.entries(length).filter(([, value]) => value !== undefined)),
    device: request.device ?? "auto",
    seed: 0,
    resume: false,
  };
  const meta: RunMeta = { base_model: request.modelDir, datasets: request.datasets, preset: request.preset, created: new Date().toISOString() };
  createRunFolder(runDir, spec, meta);
  return runDir;
}

function isGptOss(modelDir: string): boolean {
  const config = join(modelDir, "config.json");
  if (!existsSync(config)) return false;
  try {
    return (JSON.parse(readFileSync(config, "utf8")) as { model_type?: unknown }).model_type === "gpt_oss";
  } catch {
    return false;
  }
}
