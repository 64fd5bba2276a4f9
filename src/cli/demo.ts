/**
 * `finetune-studio demo`: the whole pipeline, headless, on the embedded default (a tiny
 * GPT-OSS-architecture model with random weights and the shipped sample dataset).
 * Each step either runs for real or says plainly that it is not built yet; none is faked.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { checkTrainingEnvironment, summarizeEnvironment } from "../core/environmentCheck";
import { InferenceHostClient } from "../core/inferenceHostClient";
import type { ProductPaths } from "../core/paths";
import { exportModelToGguf } from "../core/exportModel";
import { mergeAdapter } from "../core/mergeAdapter";
import { createTinyModel } from "../core/tinyModel";
import { samplesFromJsonl } from "../core/prepare/jsonlSamples";
import { prepareDataset } from "../core/prepare/prepareDataset";
import { verifyPreparedDataset } from "../core/prepare/preparedDatasetFiles";
import { startTraining } from "../core/training";
import type { SidecarEventOf } from "../protocol/sidecar";

export const DEMO_DATASET = "samples/datasets/harmony-chat-sample.jsonl";

type StepOutcome = { status: "ran"; detail: string } | { status: "not-built"; detail: string };

interface DemoStep {
  title: string;
  run: () => Promise<StepOutcome>;
}

export interface DemoOptions {
  paths: ProductPaths;
  workDir: string;
  configuredPython: string | undefined;
  print: (line: string) => void;
}

/** Runs the demo; resolves to the process exit code. */
export async function runDemo(options: DemoOptions): Promise<number> {
  const { paths, workDir, print } = options;
  let python: string | undefined;
  const modelDir = join(workDir, "models", "tiny-gpt-oss");
  const datasetPath = join(paths.root, DEMO_DATASET);
  const ggufPath = join(workDir, "exports", "tiny-gpt-oss-tuned-Q8_0.gguf");
  const preparedDir = join(workDir, "prepared");
  const runDir = join(workDir, "runs", `demo-${Date.now()}`);
  const mergedDir = join(workDir, "models", "tiny-gpt-oss-tuned");
  let lastCheckpoint: string | undefined;

  const steps: DemoStep[] = [
    {
      title: "environment",
      run: async () => {
        const check = await checkTrainingEnvironment({
          configuredPython: options.configuredPython,
          projectRoot: paths.root,
          nativeDir: paths.nativeDir,
          env: process.env,
        });
        if (!check.ok) throw new Error(`${check.problem}\n${check.fix}`);
        python = check.python.path;
        return { status: "ran", detail: summarizeEnvironment(check) };
      },
    },
    {
      title: "base model",
      run: async () => {
        if (!python) throw new Error("no Python interpreter (the environment step failed)");
        const reused = existsSync(join(modelDir, "config.json")) && existsSync(join(modelDir, "tokenizer.json"));
        if (!reused) {
          await createTinyModel({ python, nativeDir: paths.nativeDir, outDir: modelDir, architecture: "gpt-oss", replace: true });
        }
        const config = JSON.parse(readFileSync(join(modelDir, "config.json"), "utf8")) as Record<string, number>;
        return {
          status: "ran",
          detail:
            `tiny GPT-OSS (random weights): ${config["num_hidden_layers"]} layers, hidden ${config["hidden_size"]}, ` +
            `${config["num_local_experts"]} MXFP4 experts, o200k_harmony tokenizer (${config["vocab_size"]}) ` +
            `${reused ? "reused from" : "written to"} ${relative(process.cwd(), modelDir) || modelDir}`,
        };
      },
    },
    {
      title: "prepare dataset",
      run: async () => {
        const skipped = { count: 0 };
        const { manifest, report } = await prepareDataset({
          samples: samplesFromJsonl([datasetPath], skipped),
          tokenizer: "harmony",
          seqLen: 512,
          evalFraction: 0.125,
          seed: 0,
          outDir: preparedDir,
        });
        return {
          status: "ran",
          detail:
            `${DEMO_DATASET} -> ${manifest.counts.train_documents} train + ${manifest.counts.eval_documents} eval samples in harmony format, ` +
            `${manifest.counts.target_tokens} target tokens, ${manifest.shards.length} shards of 512-token rows ` +
            `(packing ${(report.train.efficiency * 100).toFixed(0)}%)`,
        };
      },
    },
    {
      title: "train LoRA",
      run: async () => {
        if (!python) throw new Error("no Python interpreter (the environment step failed)");
        const manifest = await verifyPreparedDataset(preparedDir);
        const shards = (split: "train" | "eval"): string[] =>
          manifest.shards.filter((shard) => shard.split === split).map((shard) => join(preparedDir, shard.file));
        let first: number | undefined;
        let last: SidecarEventOf<"step"> | undefined;
        let evalLoss: number | undefined;
        const { session } = startTraining(
          {
            python,
            nativeDir: paths.nativeDir,
            spec: {
              run_id: "demo",
              model_dir: modelDir,
              run_dir: runDir,
              train_shards: shards("train"),
              eval_shards: shards("eval"),
              lora: { rank: 8, alpha: 16 },
              optimizer: { lr: 2e-3 },
              schedule: { kind: "cosine", warmup_steps: 2 },
              max_steps: 12,
              eval_every: 6,
              device: "cpu",
              dtype: "fp32",
              seed: 0,
              resume: false,
            },
          },
          {
            onEvent: (event) => {
              if (event.type === "step") {
                first ??= event.loss;
                last = event;
              }
              if (event.type === "eval") evalLoss = event.loss;
              if (event.type === "checkpoint") lastCheckpoint = event.path;
            },
          },
        );
        const done = await session.finished;
        if (!last || first === undefined) throw new Error("training finished without a single step");
        return {
          status: "ran",
          detail:
            `${last.step} LoRA steps on CPU (${done.reason}): train loss ${first.toFixed(2)} -> ${last.loss.toFixed(2)}` +
            `${evalLoss !== undefined ? `, eval loss ${evalLoss.toFixed(2)}` : ""}, ${Math.round(last.tokens_per_s)} tokens/s; ` +
            `checkpoints in ${relative(process.cwd(), runDir) || runDir}`,
        };
      },
    },
    {
      title: "export GGUF",
      run: async () => {
        if (!python || !lastCheckpoint) throw new Error("no training checkpoint (the train step failed)");
        await mergeAdapter({ python, nativeDir: paths.nativeDir, baseModel: modelDir, adapter: lastCheckpoint, outDir: mergedDir, replace: true });
        mkdirSync(dirname(ggufPath), { recursive: true });
        const result = await exportModelToGguf({ modelFolder: mergedDir, outFile: ggufPath, type: "Q8_0" });
        return {
          status: "ran",
          detail:
            `LoRA merged into the base, then ${relative(process.cwd(), result.outFile) || result.outFile} ` +
            `(Q8_0 by llama.cpp's quantizer, experts kept MXFP4, ${(result.bytes / 1e6).toFixed(1)} MB, ${result.seconds.toFixed(1)} s)`,
        };
      },
    },
    {
      title: "load + complete",
      run: async () => {
        const host = new InferenceHostClient({ entryPoint: paths.inferenceHostEntry });
        try {
          const hello = await host.start();
          const model = await host.request("loadModel", { path: ggufPath });
          const prompt = "<|start|>user<|message|>Say hello.<|end|><|start|>assistant";
          const completion = await host.request("complete", { modelId: model.modelId, prompt, maxTokens: 12 });
          return {
            status: "ran",
            detail:
              `node-llama-cpp ${hello.nodeLlamaCppVersion} (${hello.backend}) loaded the GGUF (${model.architecture}, ` +
              `${model.vocabularySize} tokens, ${model.loadMs} ms) and completed a harmony prompt in ${completion.ms} ms: ` +
              `${JSON.stringify(completion.text)} (a random-weight model after 12 steps: the text is noise)`,
          };
        } finally {
          await host.stop();
        }
      },
    },
  ];

  print("Fine-Tune Studio demo: prepare -> train -> export GGUF -> load -> complete (headless, through the CLI)");
  let ran = 0;
  let notBuilt = 0;
  for (const [index, step] of steps.entries()) {
    const label = `[${index + 1}/${steps.length}] ${step.title}`.padEnd(24, " ");
    try {
      const outcome = await step.run();
      if (outcome.status === "ran") ran++;
      else notBuilt++;
      print(`${label} ${outcome.status === "ran" ? "ok       " : "NOT BUILT"} ${outcome.detail}`);
    } catch (error) {
      print(`${label} FAILED    ${error instanceof Error ? error.message : String(error)}`);
      print(`Demo stopped: step "${step.title}" failed.`);
      return 1;
    }
  }
  print(`Summary: ${ran} of ${steps.length} steps ran for real; ${notBuilt} are not built yet and were not faked.`);
  return 0;
}
