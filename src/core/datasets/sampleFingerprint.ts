/**
 * A stable hash of what a sample teaches, for finding duplicates. It hashes the converted
 * sample, not the line, so the same conversation written as ShareGPT on one line and as
 * OpenAI messages on another is caught, and so are copies that differ only in key order,
 * JSON spacing, surrounding whitespace, CRLF inside strings, or generated tool-call ids.
 */
import { createHash } from "node:crypto";
import type { ConversationMessage, TrainingSample } from "./conversation";

/** 128 bits of SHA-256 in base64url (22 characters): small enough to keep one per line. */
export function sampleFingerprint(sample: TrainingSample): string {
  // The normalised form is arrays of strings and numbers, which the native JSON.stringify
  // serialises unambiguously; only user-supplied objects (tools, arguments) need canonicalJson.
  return createHash("sha256").update(JSON.stringify(normalizeSample(sample))).digest().subarray(0, 16).toString("base64url");
}

function normalizeText(text: string): string {
  const trimmed = text.trim();
  return trimmed.includes("\r") ? trimmed.replace(/\r\n?/g, "\n") : trimmed;
}

/** Arguments JSON re-serialised with sorted keys; text that is not JSON stays as it is. */
function normalizeArguments(text: string): string {
  try {
    return canonicalJson(JSON.parse(text));
  } catch {
    return normalizeText(text);
  }
}

function normalizeSample(sample: TrainingSample): unknown {
  if (sample.kind === "fim") {
    // Whitespace is the substance of a FIM sample: nothing is trimmed.
    return ["fim", sample.prefix, sample.suffix, sample.middle, sample.path ?? null];
  }
  // Ids only correlate calls with results; replace them by their order of appearance.
  const ordinals = new Map<string, number>();
  const ordinal = (id: string): number => {
    let known = ordinals.get(id);
    if (known === undefined) {
      known = ordinals.size;
      ordinals.set(id, known);
    }
    return known;
  };
  const messages = sample.messages.map((message: ConversationMessage) => {
    switch (message.role) {
      case "assistant":
        return [
          "assistant",
          normalizeText(message.content),
          normalizeText(message.reasoning ?? ""),
          (message.toolCalls ?? []).map((call) => [ordinal(call.id), call.name, normalizeArguments(call.arguments)]),
        ];
      case "tool":
        return ["tool", ordinal(message.toolCallId), message.name, normalizeText(message.content)];
      default:
        return [message.role, normalizeText(message.content)];
    }
  });
  return ["conversation", messages, sample.tools === undefined ? "" : canonicalJson(sample.tools)];
}

/** JSON with object keys sorted at every depth, so key order never changes the hash. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
    return `{${entries.join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}
