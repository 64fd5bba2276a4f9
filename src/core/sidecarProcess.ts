/**
 * Spawns one command of the Python training sidecar and turns its stdout into typed events.
 * The session is only trusted after a `hello` of our protocol version; anything else on
 * stdout is logged and skipped, and an exit without `done` or `error` becomes a crash with
 * the tail of stderr, so the user always learns why it stopped.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { LineSplitter } from "./jsonLines";
import {
  SIDECAR_PROTOCOL_VERSION,
  decodeSidecarEvent,
  encodeSidecarCommand,
  type SidecarEvent,
  type SidecarEventOf,
} from "../protocol/sidecar";

export interface SidecarLaunch {
  /** Interpreter that imports torch (see pythonEnvironment.ts). */
  python: string;
  /** Folder holding the finetune_sidecar package (the extension's native/). */
  nativeDir: string;
  /** Sidecar subcommand and its arguments, e.g. ["info"]. */
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** Why a sidecar session failed; `code` is the sidecar's own error code when it sent one. */
export type SidecarFailureCode = SidecarEventOf<"error">["code"] | "spawn_failed" | "protocol" | "crashed";

export class SidecarError extends Error {
  constructor(
    readonly code: SidecarFailureCode,
    message: string,
    readonly hint: string,
  ) {
    super(message);
    this.name = "SidecarError";
  }

  static is(error: unknown, code?: SidecarFailureCode): error is SidecarError {
    return error instanceof SidecarError && (code === undefined || error.code === code);
  }
}

export interface SidecarHandlers {
  onEvent?: (event: SidecarEvent) => void;
  /** stderr lines and skipped stdout lines. */
  onLog?: (line: string) => void;
}

export interface SidecarSession {
  readonly pid: number | undefined;
  /** Resolves with the `done` event, rejects with a SidecarError. */
  readonly finished: Promise<SidecarEventOf<"done">>;
  /** Asks for a graceful stop; escalates to SIGTERM, then SIGKILL, if ignored. */
  stop(graceMs?: number): void;
  kill(): void;
}

export function startSidecar(launch: SidecarLaunch, handlers: SidecarHandlers = {}): SidecarSession {
  const env = {
    ...process.env,
    ...launch.env,
    PYTHONPATH: joinPythonPath(launch.nativeDir, launch.env?.["PYTHONPATH"] ?? process.env["PYTHONPATH"]),
    PYTHONUNBUFFERED: "1",
    PYTHONIOENCODING: "utf-8",
  };
  const child: ChildProcessWithoutNullStreams = spawn(launch.python, ["-m", "finetune_sidecar", ...launch.args], {
    cwd: launch.cwd,
    env,
    stdio: ["pipe", "pipe", "pipe"],
  });
  const stderrTail: string[] = [];
  let helloSeen = false;
  let terminal: SidecarEventOf<"done"> | SidecarError | undefined;
  const escalations: NodeJS.Timeout[] = [];

  const fail = (error: SidecarError): void => {
    if (terminal === undefined) terminal = error;
    child.kill("SIGKILL");
  };

  const stdoutLines = new LineSplitter((line) => {
    const decoded = decodeSidecarEvent(line);
    if (!decoded.ok) {
      handlers.onLog?.(`[sidecar stdout, skipped] ${decoded.problem}`);
      return;
    }
    const event = decoded.value;
    if (!helloSeen) {
      if (event.type !== "hello" || event.protocol_version !== SIDECAR_PROTOCOL_VERSION) {
        fail(
          new SidecarError(
            "protocol",
            `The training sidecar speaks protocol ${event.type === "hello" ? event.protocol_version : "unknown"}; this extension needs ${SIDECAR_PROTOCOL_VERSION}.`,
            "The native/ folder and the extension come from different versions; reinstall the extension.",
          ),
        );
        return;
      }
      helloSeen = true;
    }
    if (event.type === "done" && terminal === undefined) terminal = event;
    if (event.type === "error" && terminal === undefined) terminal = new SidecarError(event.code, event.message, event.hint);
    handlers.onEvent?.(event);
  });
  const stderrLines = new LineSplitter((line) => {
    stderrTail.push(line);
    if (stderrTail.length > 40) stderrTail.shift();
    handlers.onLog?.(line);
  });
  child.stdout.on("data", (chunk: Buffer) => stdoutLines.push(chunk));
  child.stderr.on("data", (chunk: Buffer) => stderrLines.push(chunk));
  child.stdin.on("error", () => {
    // The sidecar may exit before reading a stop line; the exit handler reports the outcome.
  });

  const finished = new Promise<SidecarEventOf<"done">>((resolve, reject) => {
    child.on("error", (error) => {
      terminal ??= new SidecarError(
        "spawn_failed",
        `Could not start the training sidecar with ${launch.python}: ${error.message}`,
        `Check "finetuneStudio.python.interpreterPath"; it must point to a Python that can import torch.`,
      );
    });
    child.on("close", (code, signal) => {
      escalations.forEach(clearTimeout);
      stdoutLines.end();
      stderrLines.end();
      if (terminal instanceof SidecarError) reject(terminal);
      else if (terminal !== undefined) resolve(terminal);
      else {
        const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        reject(
          new SidecarError(
            "crashed",
            `The training sidecar ${how} without reporting a result.${stderrTail.length ? `\nLast log lines:\n${stderrTail.slice(-10).join("\n")}` : ""}`,
            "See the Fine-Tune Studio output channel for the full log.",
          ),
        );
      }
    });
  });

  return {
    pid: child.pid,
    finished,
    stop(graceMs = 30_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.stdin.write(encodeSidecarCommand({ type: "stop" }));
      escalations.push(setTimeout(() => child.kill("SIGTERM"), graceMs));
      escalations.push(setTimeout(() => child.kill("SIGKILL"), graceMs * 2));
    },
    kill() {
      child.kill("SIGKILL");
    },
  };
}

/** Runs a short sidecar command to completion and returns every event it sent. */
export async function runSidecarCommand(
  launch: SidecarLaunch,
  handlers: SidecarHandlers = {},
): Promise<SidecarEvent[]> {
  const events: SidecarEvent[] = [];
  const session = startSidecar(launch, {
    onEvent: (event) => {
      events.push(event);
      handlers.onEvent?.(event);
    },
    ...(handlers.onLog ? { onLog: handlers.onLog } : {}),
  });
  await session.finished;
  return events;
}

function joinPythonPath(nativeDir: string, existing: string | undefined): string {
  const separator = process.platform === "win32" ? ";" : ":";
  return existing ? `${nativeDir}${separator}${existing}` : nativeDir;
}
