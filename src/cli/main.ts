/**
 * Fine-Tune Studio's headless CLI (dist/cli.js). It runs the same core modules as the
 * extension, so anything the command palette can do is scriptable and testable in CI.
 */
import { resolve } from "node:path";
import { checkTrainingEnvironment, summarizeEnvironment } from "../core/environmentCheck";
import { productPaths } from "../core/paths";
import { PYTHON_ENV_VARIABLE } from "../core/pythonEnvironment";
import { EXPORT_TYPES, exportModelToGguf, parseExportType } from "../core/exportModel";
import { ensurePythonEnvironment } from "../core/pythonSetup";
import { SidecarError } from "../core/sidecarProcess";
import { createTinyModel } from "../core/tinyModel";
import { parseArgs, stringFlag, integerFlag, UsageError, type FlagSpec, type ParsedArgs } from "./args";
import { runDemo } from "./demo";

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
  export                   Export a model folder (HF layout) to GGUF.
      --model DIR          Model folder (config.json, safetensors, tokenizer.json)
      --out FILE           Output .gguf file (required)
      --type TYPE          F16 (default), BF16, F32, Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q4_0
                           or MXFP4_MOE (quantized by llama.cpp; GPT-OSS experts stay MXFP4)
  help                     Show this text.

Common options:
  --python PATH            Interpreter for the sidecar (else ${PYTHON_ENV_VARIABLE}, then auto-detect).
  --verbose                Show sidecar logs on stderr.`;

const FLAGS: FlagSpec = {
  workdir: "value",
  out: "value",
  model: "value",
  type: "value",
  arch: "value",
  seed: "value",
  python: "value",
  "with-pytest": "switch",
  "print-python": "switch",
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
      return exportCommand(args);
    default:
      throw new UsageError(`Unknown command "${args.command}".`);
  }
}

async function exportCommand(args: ParsedArgs): Promise<number> {
  const model = stringFlag(args, "model");
  const out = stringFlag(args, "out");
  if (!model || !out) throw new UsageError("export needs --model DIR and --out FILE.");
  const requested = stringFlag(args, "type") ?? "F16";
  const type = parseExportType(requested);
  if (!type) throw new UsageError(`--type must be one of ${EXPORT_TYPES.join(", ")}, got "${requested}".`);
  const controller = new AbortController();
  process.once("SIGINT", () => controller.abort());
  let lastTenth = -1;
  const result = await exportModelToGguf({
    modelFolder: resolve(model),
    outFile: resolve(out),
    type,
    signal: controller.signal,
    onProgress: (progress) => {
      const tenth = Math.floor(progress.fraction * 10);
      if (tenth > lastTenth) {
        lastTenth = tenth;
        log(`export: ${Math.round(progress.fraction * 100)}% (${progress.stage}: ${progress.detail})`);
      }
    },
  });
  print(`Wrote ${result.outFile} (${result.type}, ${(result.bytes / 1e6).toFixed(1)} MB, file type ${result.fileType}, ${result.seconds.toFixed(1)} s)`);
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
