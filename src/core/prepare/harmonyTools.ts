/**
 * The developer message's `# Tools` section of harmony (reference §5.3): function tools as a
 * TypeScript-like `namespace functions`. This is a line-by-line transcription of the macros
 * `ts_type`, `function_declaration` and `comment_lines` in
 * src/core/tokenizers/harmonyChatTemplate.ts, because training tokens must equal what the
 * exported GGUF's template renders at inference. Any change there must be made here too; the
 * render tests compare both on schemas with enums, unions, arrays, nested objects and defaults.
 */
import type { ToolDefinition } from "../datasets/conversation";

type Schema = Record<string, unknown>;

/**
 * `| tojson` as @huggingface/jinja prints it (Python json.dumps defaults: ", " and ": "
 * separators, non-ASCII kept, keys in insertion order).
 */
export function jinjaToJson(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (Array.isArray(value)) return `[${value.map(jinjaToJson).join(", ")}]`;
  if (typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>);
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}: ${jinjaToJson(item)}`).join(", ")}}`;
  }
  return JSON.stringify(value);
}

function asSchema(value: unknown): Schema {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Schema) : {};
}

function isOptional(schema: Schema, name: string): boolean {
  const required = schema["required"];
  return required === undefined || !(Array.isArray(required) && required.includes(name));
}

function commentLines(text: string): string {
  return `// ${text.split("\n").join("\n// ")}`;
}

/** Jinja truthiness of the values the template tests with a bare `if`. */
function truthy(value: unknown): boolean {
  if (typeof value === "string") return value.length > 0;
  if (Array.isArray(value)) return value.length > 0;
  if (value !== null && typeof value === "object") return Object.keys(value).length > 0;
  return Boolean(value);
}

/** The template's `ts_type(schema)`. */
export function tsType(schemaValue: unknown): string {
  const schema = asSchema(schemaValue);
  const type = schema["type"];
  if (schema["enum"] !== undefined) {
    return asArray(schema["enum"]).map(jinjaToJson).join(" | ");
  }
  if (schema["anyOf"] !== undefined || schema["oneOf"] !== undefined) {
    const options = schema["anyOf"] !== undefined ? schema["anyOf"] : schema["oneOf"];
    return asArray(options).map(tsType).join(" | ");
  }
  if (type !== undefined && typeof type !== "string") {
    return asArray(type).map((single) => tsType({ type: single })).join(" | ");
  }
  if (type === "string" || type === "boolean" || type === "null") return type;
  if (type === "number" || type === "integer") return "number";
  if (type === "array") {
    const item = schema["items"] !== undefined ? tsType(schema["items"]) : "any";
    return `${item.includes(" | ") ? `(${item})` : item}[]`;
  }
  if (type === "object" && schema["properties"] !== undefined) {
    const fields = Object.entries(asSchema(schema["properties"])).map(
      ([name, property]) => `${name}${isOptional(schema, name) ? "?" : ""}: ${tsType(property)}`,
    );
    return `{ ${fields.join(", ")} }`;
  }
  return "any";
}

function asArray(value: unknown): unknown[] {
  if (Array.isArray(value)) return value;
  // Jinja iterates a string by characters and a mapping by keys; schemas never rely on that.
  return [];
}

/** The template's `function_declaration(tool)`. */
export function functionDeclaration(tool: ToolDefinition): string {
  let text = "";
  if (tool.description !== undefined && truthy(tool.description)) text += `${commentLines(tool.description)}\n`;
  text += `type ${tool.name} = `;
  const parameters = asSchema(tool.parameters);
  const properties = asSchema(parameters["properties"]);
  if (Object.keys(properties).length === 0) return `${text}() => any;\n\n`;
  text += "(_: {\n";
  for (const [name, propertyValue] of Object.entries(properties)) {
    const property = asSchema(propertyValue);
    const description = property["description"];
    if (description !== undefined && truthy(description)) text += `${commentLines(String(description))}\n`;
    text += `${name}${isOptional(parameters, name) ? "?" : ""}: ${tsType(property)},`;
    if (property["default"] !== undefined) {
      const fallback = property["default"];
      text += ` // default: ${typeof fallback === "string" ? fallback : jinjaToJson(fallback)}`;
    }
    text += "\n";
  }
  return `${text}}) => any;\n\n`;
}

/** The `# Tools` section for function tools, as the developer message carries it. */
export function functionsNamespace(tools: readonly ToolDefinition[]): string {
  return `# Tools\n\n## functions\n\nnamespace functions {\n\n${tools.map(functionDeclaration).join("")}} // namespace functions`;
}
