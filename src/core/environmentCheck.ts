/**
 * The training-environment check shared by the "Check Training Environment" command and the
 * CLI's `info`: find the interpreter, ask the sidecar what it sees, and phrase the result.
 */
import { resolvePython, type PythonReport } from "./pythonEnvironment";
import { runSidecarCommand } from "./sidecarProcess";
import type { SidecarEventOf } from "../protocol/sidecar";

export interface EnvironmentCheckOptions {
  configuredPython: string | undefined;
  projectRoot: string | undefined;
  nativeDir: string;
  env: NodeJS.ProcessEnv;
  onLog?: (line: string) => void;
}

export type EnvironmentCheck =
  | { ok: true; python: PythonReport; hello: SidecarEventOf<"hello">; info: SidecarEventOf<"info"> }
  | { ok: false; problem: string; fix: string };

export async function checkTrainingEnvironment(options: EnvironmentCheckOptions): Promise<EnvironmentCheck> {
  const resolution = await resolvePython({
    configuredPath: options.configuredPython,
    projectRoot: options.projectRoot,
    env: options.env,
  });
  if (!resolution.ok) return { ok: false, problem: "No Python interpreter with PyTorch.", fix: resolution.fix };

  const events = await runSidecarCommand(
    { python: resolution.python.path, nativeDir: options.nativeDir, args: ["info"], env: options.env },
    options.onLog ? { onLog: options.onLog } : {},
  );
  const hello = events.find((event): event is SidecarEventOf<"hello"> => event.type === "hello");
  const info = events.find((event): event is SidecarEventOf<"info"> => event.type === "info");
  if (!hello || !info) {
    return { ok: false, problem: "The sidecar answered without an info report.", fix: "See the output channel log." };
  }
  return { ok: true, python: resolution.python, hello, info };
}

/** One-line summary, e.g. "Python 3.11.2 · torch 1.13.0a0 · cpu (x86_64), 23.4 GB, 2 threads". */
export function summarizeEnvironment(check: Extract<EnvironmentCheck, { ok: true }>): string {
  const { python, info } = check;
  const memory = info.total_memory_gb === null ? "memory unknown" : `${info.total_memory_gb.toFixed(1)} GB`;
  const free = info.free_memory_gb === null ? "" : ` (${info.free_memory_gb.toFixed(1)} GB free)`;
  return (
    `Python ${python.version} (${python.path}) · torch ${python.torch ?? "missing"}` +
    ` · ${info.device}: ${info.device_name}, ${memory}${free}` +
    ` · bf16 ${info.bf16_supported ? "yes" : "no"} · ${info.threads} threads`
  );
}
