/**
 * Protocol between the extension host (or CLI) and the Python training sidecar.
 *
 * Transport: the sidecar writes one UTF-8 JSON object per line on stdout and nothing else;
 * logs go to stderr. The host writes command objects, one per line, on the sidecar's stdin.
 * Every session starts with a `hello` event that carries `protocol_version`; the host refuses
 * to talk to a sidecar of another version. Field names are snake_case on the wire because
 * both ends (and the run folder's metrics.jsonl) share them.
 *
 * Mirrored in Python by native/finetune_sidecar/protocol.py. Both sides replay
 * test/fixtures/protocol/sidecar-transcript.jsonl, so a change on one side only fails a test.
 */
import { findSchemaProblem, isJsonObject, type MessageSchema } from "./fields";

export const SIDECAR_PROTOCOL_VERSION = 1;

/** Field schemas of every event the sidecar may emit, keyed by `type`. */
export const SIDECAR_EVENT_SCHEMAS = {
  /** First line of every session. */
  hello: {
    protocol_version: "integer",
    sidecar_version: "string",
    python: "string",
    torch: "string|null",
    cuda: "string|null",
    pid: "integer",
  },
  /** Answer to `info`: what this machine can train on. */
  info: {
    device: "string",
    device_name: "string",
    total_memory_gb: "number|null",
    free_memory_gb: "number|null",
    bf16_supported: "boolean",
    threads: "integer",
    platform: "string",
    numpy: "string|null",
  },
  /** Progress of a long step that is not a training step (creating a model, exporting). */
  progress: {
    stage: "string",
    done: "number",
    total: "number",
    message: "string",
  },
  /** A file or folder the command produced. */
  artifact: {
    kind: "string",
    path: "string",
    bytes: "integer",
  },
  /** Training began (or resumed). */
  started: {
    run_id: "string",
    total_steps: "integer",
    tokens_per_step: "integer",
    resumed_from_step: "integer",
    trainable_params: "integer",
  },
  /** One optimizer step. */
  step: {
    step: "integer",
    total_steps: "integer",
    loss: "number",
    lr: "number",
    grad_norm: "number",
    tokens_per_s: "number",
    mem_gb: "number",
    eta_s: "number",
  },
  /** Loss on the held-out shard. */
  eval: {
    step: "integer",
    loss: "number",
  },
  /** A checkpoint folder was written atomically. */
  checkpoint: {
    step: "integer",
    path: "string",
  },
  /** Predicted cost of a run spec before it starts. */
  estimate: {
    peak_memory_gb: "number",
    tokens_per_s: "number|null",
    breakdown: "object",
  },
  /** The command finished; nothing follows. */
  done: {
    reason: "string",
    step: "integer|null",
  },
  /** The command failed; nothing follows. */
  error: {
    code: "string",
    message: "string",
    hint: "string",
  },
} as const satisfies Record<string, MessageSchema>;

export type SidecarEventType = keyof typeof SIDECAR_EVENT_SCHEMAS;

/** Error codes the sidecar uses in `error` events. */
export const SIDECAR_ERROR_CODES = [
  "bad_spec",
  "bad_arguments",
  "missing_weights",
  "weights_mismatch",
  "missing_dependency",
  "nan_loss",
  "out_of_memory",
  "unsupported",
  "internal",
] as const;
export type SidecarErrorCode = (typeof SIDECAR_ERROR_CODES)[number];

/** Reasons a `done` event gives. */
export type SidecarDoneReason = "completed" | "stopped" | "early_stopped";

interface HelloEvent {
  type: "hello";
  protocol_version: number;
  sidecar_version: string;
  python: string;
  torch: string | null;
  cuda: string | null;
  pid: number;
}
interface InfoEvent {
  type: "info";
  device: string;
  device_name: string;
  total_memory_gb: number | null;
  free_memory_gb: number | null;
  bf16_supported: boolean;
  threads: number;
  platform: string;
  numpy: string | null;
}
interface ProgressEvent {
  type: "progress";
  stage: string;
  done: number;
  total: number;
  message: string;
}
interface ArtifactEvent {
  type: "artifact";
  kind: string;
  path: string;
  bytes: number;
}
interface StartedEvent {
  type: "started";
  run_id: string;
  total_steps: number;
  tokens_per_step: number;
  resumed_from_step: number;
  trainable_params: number;
}
interface StepEvent {
  type: "step";
  step: number;
  total_steps: number;
  loss: number;
  lr: number;
  grad_norm: number;
  tokens_per_s: number;
  mem_gb: number;
  eta_s: number;
}
interface EvalEvent {
  type: "eval";
  step: number;
  loss: number;
}
interface CheckpointEvent {
  type: "checkpoint";
  step: number;
  path: string;
}
interface EstimateEvent {
  type: "estimate";
  peak_memory_gb: number;
  tokens_per_s: number | null;
  breakdown: Record<string, unknown>;
}
interface DoneEvent {
  type: "done";
  reason: SidecarDoneReason;
  step: number | null;
}
interface ErrorEvent {
  type: "error";
  code: SidecarErrorCode;
  message: string;
  hint: string;
}

export type SidecarEvent =
  | HelloEvent
  | InfoEvent
  | ProgressEvent
  | ArtifactEvent
  | StartedEvent
  | StepEvent
  | EvalEvent
  | CheckpointEvent
  | EstimateEvent
  | DoneEvent
  | ErrorEvent;

export type SidecarEventOf<T extends SidecarEventType> = Extract<SidecarEvent, { type: T }>;

/** Commands the host may write to the sidecar's stdin. */
export type SidecarCommand =
  /** Save a checkpoint at the end of the current step and exit 0. */
  { type: "stop" };

export const SIDECAR_COMMAND_TYPES = ["stop"] as const;

export type DecodeResult<T> = { ok: true; value: T } | { ok: false; problem: string };

/** Parses and validates one stdout line of the sidecar. */
export function decodeSidecarEvent(line: string): DecodeResult<SidecarEvent> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return { ok: false, problem: `not JSON: ${shorten(line)}` };
  }
  if (!isJsonObject(parsed) || typeof parsed["type"] !== "string") {
    return { ok: false, problem: `not a protocol message (no "type"): ${shorten(line)}` };
  }
  const typeName = parsed["type"];
  if (!(typeName in SIDECAR_EVENT_SCHEMAS)) {
    return { ok: false, problem: `unknown sidecar event "${typeName}"` };
  }
  const schema: MessageSchema = SIDECAR_EVENT_SCHEMAS[typeName as SidecarEventType];
  const problem = findSchemaProblem(typeName, parsed, schema);
  if (problem !== undefined) return { ok: false, problem };
  if (typeName === "error" && !(SIDECAR_ERROR_CODES as readonly string[]).includes(String(parsed["code"]))) {
    return { ok: false, problem: `"error" message has an unknown code ${JSON.stringify(parsed["code"])}` };
  }
  if (typeName === "done" && !["completed", "stopped", "early_stopped"].includes(String(parsed["reason"]))) {
    return { ok: false, problem: `"done" message has an unknown reason ${JSON.stringify(parsed["reason"])}` };
  }
  return { ok: true, value: parsed as unknown as SidecarEvent };
}

/** Serializes a command for the sidecar's stdin (one line, newline-terminated). */
export function encodeSidecarCommand(command: SidecarCommand): string {
  return `${JSON.stringify(command)}\n`;
}

/** Serializes an event exactly as the Python side does (used by the transcript test). */
export function encodeSidecarEvent(event: SidecarEvent): string {
  return JSON.stringify(event);
}

function shorten(text: string): string {
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}
