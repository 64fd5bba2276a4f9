/**
 * Finds a Python interpreter that can run the training sidecar (it must import torch), and
 * explains the exact fix when there is none. Used by the extension's preflight, the CLI and
 * the bootstrap, so all three agree on which interpreter trains.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

/** Where a candidate interpreter came from, in the order they are tried. */
export type PythonSource = "setting" | "environment" | "project-venv" | "debian-system" | "path";

export interface PythonCandidate {
  path: string;
  source: PythonSource;
}

/** What a probe learned about one interpreter. */
export interface PythonReport {
  path: string;
  source: PythonSource;
  version: string;
  torch: string | null;
  cuda: string | null;
  numpy: string | null;
  pytest: string | null;
}

export const DEBIAN_TORCH_PACKAGES = ["python3-torch", "python3-numpy", "libopenblas0-pthread", "python3-pytest"];

/** Environment variable that overrides the interpreter for CI, the CLI and debugging. */
export const PYTHON_ENV_VARIABLE = "FINETUNE_STUDIO_PYTHON";

const PROBE_SCRIPT = [
  "import json, sys",
  "def v(name):",
  "    try:",
  "        module = __import__(name)",
  "        return str(getattr(module, '__version__', 'unknown'))",
  "    except Exception:",
  "        return None",
  "cuda = None",
  "try:",
  "    import torch",
  "    cuda = torch.version.cuda",
  "except Exception:",
  "    pass",
  "print(json.dumps({'version': sys.version.split()[0], 'torch': v('torch'), 'cuda': cuda, 'numpy': v('numpy'), 'pytest': v('pytest')}))",
].join("\n");

export function listPythonCandidates(options: {
  configuredPath: string | undefined;
  projectRoot: string | undefined;
  env: NodeJS.ProcessEnv;
}): PythonCandidate[] {
  const candidates: PythonCandidate[] = [];
  if (options.configuredPath) candidates.push({ path: options.configuredPath, source: "setting" });
  const fromEnv = options.env[PYTHON_ENV_VARIABLE];
  if (fromEnv) candidates.push({ path: fromEnv, source: "environment" });
  if (options.projectRoot) {
    const venvPython =
      process.platform === "win32"
        ? join(options.projectRoot, ".venv", "Scripts", "python.exe")
        : join(options.projectRoot, ".venv", "bin", "python");
    if (existsSync(venvPython)) candidates.push({ path: venvPython, source: "project-venv" });
  }
  // Debian's torch lives in the system interpreter, which a pyenv shim on PATH may hide.
  if (process.platform === "linux" && existsSync("/usr/bin/python3")) {
    candidates.push({ path: "/usr/bin/python3", source: "debian-system" });
  }
  candidates.push({ path: process.platform === "win32" ? "python" : "python3", source: "path" });
  return candidates;
}

/** Runs the probe script with one interpreter; undefined when it does not start at all. */
export function probePython(candidate: PythonCandidate, timeoutMs = 60_000): Promise<PythonReport | undefined> {
  return new Promise((resolve) => {
    execFile(candidate.path, ["-c", PROBE_SCRIPT], { timeout: timeoutMs }, (error, stdout) => {
      if (error) {
        resolve(undefined);
        return;
      }
      try {
        const parsed = JSON.parse(stdout.trim()) as Omit<PythonReport, "path" | "source">;
        resolve({ ...parsed, path: candidate.path, source: candidate.source });
      } catch {
        resolve(undefined);
      }
    });
  });
}

export type PythonResolution =
  | { ok: true; python: PythonReport; rejected: PythonReport[] }
  | { ok: false; rejected: PythonReport[]; missing: PythonCandidate[]; fix: string };

/**
 * Tries the candidates in order and returns the first interpreter that imports torch. A
 * configured interpreter that lacks torch is not silently replaced: the user chose it, so
 * the answer is a fix for that interpreter.
 */
export async function resolvePython(options: {
  configuredPath: string | undefined;
  projectRoot: string | undefined;
  env: NodeJS.ProcessEnv;
}): Promise<PythonResolution> {
  const rejected: PythonReport[] = [];
  const missing: PythonCandidate[] = [];
  for (const candidate of listPythonCandidates(options)) {
    const report = await probePython(candidate);
    if (!report) {
      missing.push(candidate);
      if (candidate.source === "setting") break;
      continue;
    }
    if (report.torch) return { ok: true, python: report, rejected };
    rejected.push(report);
    if (candidate.source === "setting") break;
  }
  return { ok: false, rejected, missing, fix: describeTorchFix(rejected, missing) };
}

/** The exact command that gives this machine a torch-capable interpreter. */
export function torchInstallCommand(): string {
  if (isDebianLike()) {
    const sudo = isRoot() ? "" : "sudo ";
    return `${sudo}apt-get install -y --no-install-recommends ${DEBIAN_TORCH_PACKAGES.join(" ")}`;
  }
  return "python3 -m venv .venv && .venv/bin/python -m pip install -r native/requirements.txt";
}

function describeTorchFix(rejected: PythonReport[], missing: PythonCandidate[]): string {
  const lines: string[] = [];
  for (const candidate of missing) lines.push(`${candidate.path} (${candidate.source}): does not start`);
  for (const report of rejected) lines.push(`${report.path} (${report.source}): Python ${report.version}, no torch`);
  const tried = lines.length > 0 ? `Tried:\n  ${lines.join("\n  ")}\n` : "";
  return (
    `${tried}No Python interpreter with PyTorch was found. Install it with:\n  ${torchInstallCommand()}\n` +
    `or set "finetuneStudio.python.interpreterPath" (or ${PYTHON_ENV_VARIABLE}) to an interpreter that can import torch.`
  );
}

export function isDebianLike(): boolean {
  return process.platform === "linux" && existsSync("/etc/debian_version") && existsSync("/usr/bin/apt-get");
}

export function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}
