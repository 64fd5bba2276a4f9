/**
 * Fine-Tune Studio's headless CLI (dist/cli.js). It runs the same core modules as the
 * extension, so anything the command palette can do is scriptable and testable in CI.
 */
import { mkdirSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { checkTrainingEnvironment, summarizeEnvironment } from "../core/environmentCheck";
import { productPaths } from "../core/paths";
import { describeExport, writeHandoffFiles } from "../core/exportSummary";
import { exportLoraAdapterToGguf } from "../core/gguf/loraAdapterGguf";
import { installIntoLmStudio } from "../core/handoff/lmStudio";
import { PYTHON_ENV_VARIABLE, resolvePython } from "../core/pythonEnvironment";
import { EXPORT_TYPES, exportModelToGguf, parseExportType } from "../core/exportModel";
import { ensurePythonEnvironment } from "../core/pythonSetup";
import { SidecarError } from "../core/sidecarProcess";
import { createTinyModel } from "../core/tinyModel";
import { parseArgs, stringFlag, integerFlag, UsageError, type FlagSpec, type ParsedArgs } from "./args";
import { buildFimCommand, prepareCommand, validateCommand } from "./datasetCommands";
import { runDemo } from "./demo";
import type { TokenizerSpec } from "../core/prepare/sampleRenderer";

const paths = productPaths(resolve(__dirname, ".."));
const print = (line: string): void => {
  process.stdout.write(`${line}\n`);
};
const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

const USAGE = `Usage: finetune-studio <command> [options]

Commands:
  demo                     Run the pipeline on the tiny built-in model and sample dataset.
      --workdir DIR        Where the demo writes (default: ./.finetune-demo)
  info                     Show the Python/PyTorch environment the trainer would use.
  setup                    Make a PyTorch-capable Python available (apt on Debian as root,
                           else a .venv with native/requirements.txt).
      --with-pytest        Also require pytest (for the test tiers).
      --print-python       Print only the interpreter's path.
  make-tiny-model          Write a tiny model with a real architecture and random weights.
      --out DIR            Output folder (required)
      --arch gpt-oss       Architecture (default gpt-oss)
      --seed N             Random seed (default 0)
  validate FILE            Check a JSONL dataset: format, per-line errors with line and
                           column, duplicates, token statistics. Exit 1 on errors.
      --tokenizer harmony  Count tokens with GPT-OSS's o200k_harmony (default), or
      --model DIR          with a Hugging Face model folder's tokenizer and template
      --max-tokens N       Flag samples longer than N tokens
  prepare FILE...          Render, tokenize, split and pack JSONL files into token shards.
      --out DIR            Prepared dataset folder (required)
      --model DIR          Hugging Face model folder (default: GPT-OSS harmony)
      --seq-len N          Tokens per packed row (default 2048)
      --eval-fraction F    Held-out share for eval loss (default 0.1)
      --seed N             Split and packing seed (default 0)
  build-fim [DIR]          Build a code-completion (fill-in-the-middle) dataset from a
                           repository (default: the current folder), honouring .gitignore and
                           skipping binaries, vendored, generated, minified files and secrets.
      --out DIR            Where train.jsonl, eval.jsonl and report.json go (required)
      --eval-fraction F    Share of whole files held out (default 0.1)
      --samples-per-file N FIM samples cut per file (default 8)
      --seed N             Seed (default 0)
  export                   Export a model folder (HF layout) to GGUF.
      --model DIR          Model folder (config.json, safetensors, tokenizer.json)
      --out FILE           Output .gguf file (required)
      --type TYPE          F16 (default), BF16, F32, Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q4_0
                           or MXFP4_MOE (quantized by llama.cpp; GPT-OSS experts stay MXFP4)
      --no-verify          Skip loading the file and comparing it with the PyTorch model
                           (verification is on by default; a failed file is renamed .unverified)
      --lmstudio DIR       Also place the file in an LM Studio models folder
                           (DIR/finetune-studio/<name>/, hard link when possible)
  export-adapter           Export a training checkpoint's LoRA adapter as a GGUF adapter that
                           llama.cpp, node-llama-cpp, Ollama (ADAPTER) apply over the base GGUF.
      --adapter DIR        Checkpoint folder (adapter_model.safetensors, adapter_config.json)
      --model DIR          The base model folder it was trained on
      --out FILE           Output .gguf file (required)
  help                     Show this text.

Common options:
  --python PATH            Interpreter for the sidecar (else ${PYTHON_ENV_VARIABLE}, then auto-detect).
  --verbose                Show sidecar logs on stderr.`;

const FLAGS: FlagSpec = {
  workdir: "value",
  out: "value",
  model: "value",
  tokenizer: "value",
  "max-tokens": "value",
  "seq-len": "value",
  "eval-fraction": "value",
  "samples-per-file": "value",
  type: "value",
  arch: "value",
  seed: "value",
  python: "value",
  "with-pytest": "switch",
  "print-python": "switch",
  "no-verify": "switch",
  lmstudio: "value",
  adapter: "value",
  verbose: "switch",
  help: "switch",
};

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv, FLAGS);
  const configuredPython = stringFlag(args, "python");
  const onLog = args.flags.has("verbose") ? log : undefined;
  switch (args.command) {
    case undefined:
    case "help":
      print(USAGE);
      return 0;
    case "demo":
      return runDemo({
        paths,
        workDir: resolve(stringFlag(args, "workdir") ?? ".finetune-demo"),
        configuredPython,
        print,
      });
    case "info":
      return info(configuredPython, onLog);
    case "setup": {
      const python = await ensurePythonEnvironment({
        projectRoot: paths.root,
        configuredPath: configuredPython,
        env: process.env,
        needPytest: args.flags.has("with-pytest"),
        log,
      });
      if (args.flags.has("print-python")) print(python.path);
      else print(`Python for the sidecar: ${python.path} (Python ${python.version}, torch ${python.torch}, ${python.source})`);
      return 0;
    }
    case "make-tiny-model":
      return makeTinyModel(args, configuredPython, onLog);
    case "export":
      return exportCommand(args, configuredPython);
    case "export-adapter":
      return exportAdapterCommand(args);
    case "build-fim": {
      const out = stringFlag(args, "out");
      if (!out || args.positionals.length > 1) throw new UsageError("build-fim takes at most one repository folder and needs --out DIR.");
      const evalFraction = Number(stringFlag(args, "eval-fraction") ?? "0.1");
      if (!(evalFraction >= 0 && evalFraction < 1)) throw new UsageError("--eval-fraction must be at least 0 and below 1.");
      await buildFimCommand(
        args.positionals[0] ?? ".",
        { outDir: out, seed: integerFlag(args, "seed") ?? 0, evalFraction, samplesPerFile: integerFlag(args, "samples-per-file") },
        { print, log },
      );
      return 0;
    }
    case "validate": {
      const file = args.positionals[0];
      if (!file || args.positionals.length > 1) throw new UsageError("validate takes one JSONL file.");
      const clean = await validateCommand(file, { tokenizer: tokenizerSpec(args), maxTokens: integerFlag(args, "max-tokens"), problemLimit: 50 }, { print, log });
      return clean ? 0 : 1;
    }
    case "prepare": {
      const out = stringFlag(args, "out");
      if (args.positionals.length === 0 || !out) throw new UsageError("prepare needs JSONL files and --out DIR.");
      const evalFraction = Number(stringFlag(args, "eval-fraction") ?? "0.1");
      if (!(evalFraction >= 0 && evalFraction < 1)) throw new UsageError("--eval-fraction must be at least 0 and below 1.");
      await prepareCommand(
        args.positionals,
        { tokenizer: tokenizerSpec(args), outDir: out, seqLen: integerFlag(args, "seq-len") ?? 2048, evalFraction, seed: integerFlag(args, "seed") ?? 0 },
        { print, log },
      );
      return 0;
    }
    default:
      throw new UsageError(`Unknown command "${args.command}".`);
  }
}

function tokenizerSpec(args: ParsedArgs): TokenizerSpec {
  const model = stringFlag(args, "model");
  const tokenizer = stringFlag(args, "tokenizer") ?? "harmony";
  if (model) return { modelFolder: resolve(model) };
  if (tokenizer !== "harmony") throw new UsageError(`--tokenizer must be harmony (or pass --model DIR), got "${tokenizer}".`);
  return "harmony";
}

async function exportCommand(args: ParsedArgs, configuredPython: string | undefined): Promise<number> {
  const model = stringFlag(args, "model");
  const out = stringFlag(args, "out");
  if (!model || !out) throw new UsageError("export needs --model DIR and --out FILE.");
  const requested = stringFlag(args, "type") ?? "F16";
  const type = parseExportType(requested);
  if (!type) throw new UsageError(`--type must be one of ${EXPORT_TYPES.join(", ")}, got "${requested}".`);
  let python: string | undefined;
  if (!args.flags.has("no-verify")) {
    const resolution = await resolvePython({ configuredPath: configuredPython, projectRoot: paths.root, env: process.env });
    if (!resolution.ok) throw new Error(`Verification needs the PyTorch sidecar (or pass --no-verify).\n${resolution.fix}`);
    python = resolution.python.path;
  }
  mkdirSync(dirname(resolve(out)), { recursive: true });
  const controller = new AbortController();
  process.once("SIGINT", () => controller.abort());
  let lastTenth = -1;
  const result = await exportModelToGguf({
    modelFolder: resolve(model),
    outFile: resolve(out),
    type,
    verify: python ? { python, nativeDir: paths.nativeDir } : false,
    signal: controller.signal,
    onProgress: (progress) => {
      const tenth = Math.floor(progress.fraction * 10);
      if (tenth > lastTenth) {
        lastTenth = tenth;
        log(`export: ${Math.round(progress.fraction * 100)}% (${progress.stage}: ${progress.detail})`);
      }
    },
  });
  print(`Wrote ${describeExport(result)}`);
  const modelfile = await writeHandoffFiles(result, log);
  if (modelfile) print(`Ollama: ${modelfile.createCommand}   (Modelfile: ${modelfile.path})`);
  const lmStudio = stringFlag(args, "lmstudio");
  if (lmStudio) {
    const name = basename(result.outFile).replace(/\.gguf$/i, "").replace(/-(F32|F16|BF16|Q8_0|Q6_K|Q5_K_M|Q4_K_M|Q4_0|MXFP4_MOE)$/i, "");
    const placed = await installIntoLmStudio({ ggufPath: result.outFile, modelsDir: resolve(lmStudio), publisher: "finetune-studio", modelName: name });
    print(`LM Studio: ${placed.path} (${placed.mode})`);
  }
  return 0;
}

async function exportAdapterCommand(args: ParsedArgs): Promise<number> {
  const adapter = stringFlag(args, "adapter");
  const model = stringFlag(args, "model");
  const out = stringFlag(args, "out");
  if (!adapter || !model || !out) throw new UsageError("export-adapter needs --adapter DIR, --model DIR and --out FILE.");
  mkdirSync(dirname(resolve(out)), { recursive: true });
  const result = await exportLoraAdapterToGguf({ adapterFolder: resolve(adapter), baseModelFolder: resolve(model), outFile: resolve(out) });
  print(
    `Wrote ${result.outFile} (LoRA adapter for ${result.architecture}, rank ${result.ranks.join("/")}, alpha ${result.alpha}, ` +
      `${result.adapted.length} tensors, ${(result.bytes / 1e6).toFixed(2)} MB, ${result.seconds.toFixed(1)} s)`,
  );
  return 0;
}

async function info(configuredPython: string | undefined, onLog: ((line: string) => void) | undefined): Promise<number> {
  const check = await checkTrainingEnvironment({
    configuredPython,
    projectRoot: paths.root,
    nativeDir: paths.nativeDir,
    env: process.env,
    ...(onLog ? { onLog } : {}),
  });
  if (!check.ok) {
    log(`${check.problem}\n${check.fix}`);
    return 1;
  }
  print(summarizeEnvironment(check));
  print(`Sidecar ${check.hello.sidecar_version}, protocol ${check.hello.protocol_version}, CUDA ${check.hello.cuda ?? "none"}`);
  return 0;
}

async function makeTinyModel(
  args: ParsedArgs,
  configuredPython: string | undefined,
  onLog: ((line: string) => void) | undefined,
): Promise<number> {
  const out = stringFlag(args, "out");
  if (!out) throw new UsageError("make-tiny-model needs --out DIR.");
  const arch = stringFlag(args, "arch") ?? "gpt-oss";
  if (arch !== "gpt-oss") throw new UsageError(`--arch must be gpt-oss, got "${arch}".`);
  const check = await checkTrainingEnvironment({
    configuredPython,
    projectRoot: paths.root,
    nativeDir: paths.nativeDir,
    env: process.env,
  });
  if (!check.ok) {
    log(`${check.problem}\n${check.fix}`);
    return 1;
  }
  const seed = integerFlag(args, "seed");
  const artifact = await createTinyModel({
    python: check.python.path,
    nativeDir: paths.nativeDir,
    outDir: resolve(out),
    architecture: arch,
    ...(seed !== undefined ? { seed } : {}),
    onProgress: (event) => log(`${event.stage}: ${event.message}`),
    ...(onLog ? { onLog } : {}),
  });
  print(`Wrote ${artifact.path} (${(artifact.bytes / 1e6).toFixed(1)} MB)`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      log(`${error.message}\n\n${USAGE}`);
      process.exitCode = 2;
    } else if (SidecarError.is(error)) {
      log(`Error (${error.code}): ${error.message}\nHint: ${error.hint}`);
      process.exitCode = 1;
    } else {
      log(`Error: ${error instanceof Error ? error.message : String(error)}`);
      process.exitCode = 1;
    }
  },
);
