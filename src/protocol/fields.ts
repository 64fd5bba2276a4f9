/**
 * A tiny runtime schema language shared by the protocol modules. Messages cross process
 * boundaries as JSON, so every field is checked on arrival; a message with an unknown or
 * missing field is rejected rather than half-trusted.
 */

/** The kind of one field. A trailing `?` marks an optional field; `|null` admits null. */
export type FieldKind =
  | "string"
  | "number"
  | "integer"
  | "boolean"
  | "object"
  | "string[]"
  | "number[]"
  | "object[]"
  | "string|null"
  | "number|null"
  | "integer|null";

export type FieldSpec = FieldKind | `${FieldKind}?`;

/** Field name to kind, for one message type (the `type` discriminator excluded). */
export type MessageSchema = Readonly<Record<string, FieldSpec>>;

export type JsonObject = Record<string, unknown>;

function matchesKind(value: unknown, kind: FieldKind): boolean {
  switch (kind) {
    case "string":
      return typeof value === "string";
    case "number":
      return typeof value === "number" && Number.isFinite(value);
    case "integer":
      return Number.isInteger(value);
    case "boolean":
      return typeof value === "boolean";
    case "object":
      return typeof value === "object" && value !== null && !Array.isArray(value);
    case "string[]":
      return Array.isArray(value) && value.every((item) => typeof item === "string");
    case "number[]":
      return Array.isArray(value) && value.every((item) => typeof item === "number");
    case "object[]":
      return (
        Array.isArray(value) &&
        value.every((item) => typeof item === "object" && item !== null && !Array.isArray(item))
      );
    case "string|null":
      return value === null || typeof value === "string";
    case "number|null":
      return value === null || (typeof value === "number" && Number.isFinite(value));
    case "integer|null":
      return value === null || Number.isInteger(value);
  }
}

/**
 * Checks `message` against `schema`. Returns the first problem as a sentence naming the
 * field, or undefined when the message conforms. Unknown fields are problems too: they mean
 * the two ends disagree about the protocol.
 */
export function findSchemaProblem(
  typeName: string,
  message: JsonObject,
  schema: MessageSchema,
): string | undefined {
  for (const [field, spec] of Object.entries(schema)) {
    const optional = spec.endsWith("?");
    const kind = (optional ? spec.slice(0, -1) : spec) as FieldKind;
    if (!(field in message) || message[field] === undefined) {
      if (optional) continue;
      return `"${typeName}" message lacks the required field "${field}" (${kind})`;
    }
    if (!matchesKind(message[field], kind)) {
      return `"${typeName}" message field "${field}" should be ${kind}, got ${JSON.stringify(message[field])}`;
    }
  }
  for (const field of Object.keys(message)) {
    if (field !== "type" && !(field in schema)) {
      return `"${typeName}" message has an unknown field "${field}"`;
    }
  }
  return undefined;
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
