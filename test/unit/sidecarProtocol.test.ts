import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { resolvePython } from "../../src/core/pythonEnvironment";
import {
  SIDECAR_COMMAND_TYPES,
  SIDECAR_ERROR_CODES,
  SIDECAR_EVENT_SCHEMAS,
  SIDECAR_PROTOCOL_VERSION,
  decodeSidecarEvent,
} from "../../src/protocol/sidecar";

const root = join(__dirname, "..", "..");
const transcript = readFileSync(join(root, "test", "fixtures", "protocol", "sidecar-transcript.jsonl"), "utf8")
  .split("\n")
  .filter((line) => line.trim().length > 0)
  .map((line) => JSON.parse(line) as { direction: "in" | "out"; message: Record<string, unknown> });

test("every sidecar event in the shared transcript decodes and round-trips", () => {
  for (const entry of transcript.filter((item) => item.direction === "out")) {
    const decoded = decodeSidecarEvent(JSON.stringify(entry.message));
    assert.ok(decoded.ok, decoded.ok ? "" : decoded.problem);
    assert.deepEqual(JSON.parse(JSON.stringify(decoded.value)), entry.message);
  }
});

test("the transcript covers every event type and every command type", () => {
  const outTypes = new Set(transcript.filter((item) => item.direction === "out").map((item) => item.message["type"]));
  assert.deepEqual([...outTypes].sort(), Object.keys(SIDECAR_EVENT_SCHEMAS).sort());
  const inTypes = new Set(transcript.filter((item) => item.direction === "in").map((item) => item.message["type"]));
  assert.deepEqual([...inTypes].sort(), [...SIDECAR_COMMAND_TYPES].sort());
});

test("rejects missing, unknown and mistyped fields by name", () => {
  const step = { type: "step", step: 1, total_steps: 2, loss: 1, lr: 1, grad_norm: 1, tokens_per_s: 1, mem_gb: 1, eta_s: 1 };
  const missing = decodeSidecarEvent(JSON.stringify({ ...step, loss: undefined }));
  assert.ok(!missing.ok && /"loss"/.test(missing.problem));
  const unknown = decodeSidecarEvent(JSON.stringify({ ...step, perplexity: 3 }));
  assert.ok(!unknown.ok && /"perplexity"/.test(unknown.problem));
  const mistyped = decodeSidecarEvent(JSON.stringify({ ...step, step: 1.5 }));
  assert.ok(!mistyped.ok && /"step"/.test(mistyped.problem));
  const badCode = decodeSidecarEvent(JSON.stringify({ type: "error", code: "oops", message: "m", hint: "h" }));
  assert.ok(!badCode.ok && /oops/.test(badCode.problem));
  assert.ok(!decodeSidecarEvent("Loading checkpoint shards: 100%").ok);
});

test("the Python mirror declares the same schema (drift check)", async () => {
  const resolution = await resolvePython({ configuredPath: undefined, projectRoot: root, env: process.env });
  assert.ok(resolution.ok, "a Python with torch is installed");
  const output = execFileSync(resolution.python.path, ["-m", "finetune_sidecar", "schema"], {
    env: { ...process.env, PYTHONPATH: join(root, "native") },
    encoding: "utf8",
  });
  const python = JSON.parse(output.trim()) as {
    protocol_version: number;
    events: Record<string, Record<string, string>>;
    error_codes: string[];
    commands: string[];
  };
  assert.equal(python.protocol_version, SIDECAR_PROTOCOL_VERSION);
  assert.deepEqual(python.events, SIDECAR_EVENT_SCHEMAS);
  assert.deepEqual([...python.error_codes].sort(), [...SIDECAR_ERROR_CODES].sort());
  assert.deepEqual([...python.commands].sort(), [...SIDECAR_COMMAND_TYPES].sort());
});
