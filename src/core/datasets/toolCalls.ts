/**
 * Tool definitions, assistant tool calls, tool results and reasoning, read from the shapes
 * datasets use in practice: OpenAI `tools` / `tool_calls` / `tool_call_id`, the same as
 * JSON text (ShareGPT exports store `tools` and `function_call` values as strings), and the
 * reasoning fields of DeepSeek, vLLM and Anthropic-style exports.
 *
 * Arguments must be JSON: the model learns to emit exactly that text, so a malformed
 * argument string in the data becomes malformed calls at inference time.
 */
import type { ToolCall, ToolDefinition } from "./conversation";
import { parseJsonLine } from "./jsonErrors";
import { describeValue, isJsonObject, quote, readOptionalString, type IssueList, type JsonObject } from "./recordFields";

/** Assistant fields that carry chain of thought, in the order they are looked at. */
export const REASONING_FIELDS = ["reasoning", "reasoning_content", "thinking"] as const;

/** A value that may be JSON text (ShareGPT exports) or already parsed. */
export function parseIfJsonText(value: unknown, field: string, issues: IssueList): unknown {
  if (typeof value !== "string") return value;
  const parsed = parseJsonLine(value);
  if (parsed.ok) return parsed.value;
  issues.error(field, `is text but not valid JSON (column ${parsed.error.column}: ${parsed.error.reason})`);
  return undefined;
}

export function readToolDefinitions(value: unknown, field: string, issues: IssueList): ToolDefinition[] | undefined {
  if (value === undefined || value === null) return undefined;
  const parsed = parseIfJsonText(value, field, issues);
  if (parsed === undefined) return undefined;
  if (!Array.isArray(parsed)) {
    issues.error(field, `must be an array of tool definitions, found ${describeValue(parsed)}`);
    return undefined;
  }
  const tools: ToolDefinition[] = [];
  parsed.forEach((entry, index) => {
    const entryField = `${field}[${index}]`;
    if (!isJsonObject(entry)) {
      issues.error(entryField, `must be a tool definition {"type": "function", "function": {"name", "parameters"}}, found ${describeValue(entry)}`);
      return;
    }
    // OpenAI nests the function; many exports flatten it.
    const nested = isJsonObject(entry["function"]);
    const definition = nested ? (entry["function"] as JsonObject) : entry;
    const base = nested ? `${entryField}.function` : entryField;
    if (nested && entry["type"] !== undefined && entry["type"] !== "function") {
      issues.error(`${entryField}.type`, `${describeValue(entry["type"])} is not supported; only "function" tools are`);
      return;
    }
    const name = definition["name"];
    if (typeof name !== "string" || name === "") {
      issues.error(`${base}.name`, `must be the function's name, found ${describeValue(name)}`);
      return;
    }
    const tool: ToolDefinition = { name };
    const description = readOptionalString(definition["description"], `${base}.description`, issues);
    if (description !== undefined) tool.description = description;
    const parameters = parseIfJsonText(definition["parameters"], `${base}.parameters`, issues);
    if (isJsonObject(parameters)) tool.parameters = parameters;
    else if (parameters !== undefined && parameters !== null) issues.error(`${base}.parameters`, `must be a JSON Schema object, found ${describeValue(parameters)}`);
    tools.push(tool);
  });
  return tools;
}

/**
 * OpenAI `tool_calls` ([{id, type, function: {name, arguments}}]), a flat [{name, arguments}]
 * or one legacy `function_call` object. `makeId` supplies ids the source lacks; they are
 * positional, so the same record always converts to the same sample.
 */
export function readToolCalls(value: unknown, field: string, issues: IssueList, makeId: (index: number) => string): ToolCall[] | undefined {
  if (value === undefined || value === null) return undefined;
  const list = Array.isArray(value) ? value : [value];
  const calls: ToolCall[] = [];
  list.forEach((entry, index) => {
    const entryField = Array.isArray(value) ? `${field}[${index}]` : field;
    if (!isJsonObject(entry)) {
      issues.error(entryField, `must be a tool call {"id", "type": "function", "function": {"name", "arguments"}}, found ${describeValue(entry)}`);
      return;
    }
    const nested = isJsonObject(entry["function"]);
    const call = nested ? (entry["function"] as JsonObject) : entry;
    const base = nested ? `${entryField}.function` : entryField;
    const name = call["name"];
    if (typeof name !== "string" || name === "") {
      issues.error(`${base}.name`, `must be the called function's name, found ${describeValue(name)}`);
      return;
    }
    // A call with broken arguments is still recorded, so its result links up and the one
    // real error is the only one reported.
    const rawArguments = call["arguments"] ?? call["parameters"];
    const args = readArguments(rawArguments, `${base}.arguments`, issues) ?? (typeof rawArguments === "string" ? rawArguments : "{}");
    const id = entry["id"];
    if (id !== undefined && typeof id !== "string") issues.error(`${entryField}.id`, `must be text, found ${describeValue(id)}`);
    calls.push({ id: typeof id === "string" && id !== "" ? id : makeId(index), name, arguments: args });
  });
  return calls;
}

function readArguments(value: unknown, field: string, issues: IssueList): string | undefined {
  if (value === undefined || value === null) return "{}";
  if (isJsonObject(value) || Array.isArray(value)) return JSON.stringify(value);
  if (typeof value !== "string") {
    issues.error(field, `must be a JSON object or JSON text, found ${describeValue(value)}`);
    return undefined;
  }
  const parsed = parseJsonLine(value);
  if (parsed.ok) return value;
  issues.error(field, `${quote(value)} is not valid JSON (column ${parsed.error.column}: ${parsed.error.reason}); the model would learn to emit broken calls`);
  return undefined;
}

/** The first non-empty reasoning field of an assistant turn. */
export function readReasoning(message: JsonObject, field: string, issues: IssueList): string | undefined {
  for (const key of REASONING_FIELDS) {
    const text = readOptionalString(message[key], field === "" ? key : `${field}.${key}`, issues);
    if (text !== undefined && text.trim() !== "") return text;
  }
  return undefined;
}

/**
 * R1-style data puts the chain of thought inline: `<think>…</think>answer`. Only a block at
 * the very start counts; a "<think>" mentioned later in an answer is left alone.
 */
export function splitLeadingThink(content: string): { content: string; reasoning?: string } {
  const match = /^\s*<think>([\s\S]*?)<\/think>\s*/.exec(content);
  if (match === null) return { content };
  const reasoning = (match[1] ?? "").trim();
  const rest = content.slice(match[0].length);
  return reasoning === "" ? { content: rest } : { content: rest, reasoning };
}

/** Matches tool results to the calls they answer, by id or, lacking one, in call order. */
export class ToolCallLedger {
  private readonly calls: { call: ToolCall; answered: boolean }[] = [];

  constructor(private readonly tools: ToolDefinition[] | undefined) {}

  record(calls: readonly ToolCall[], field: string, issues: IssueList): void {
    calls.forEach((call, index) => {
      if (this.tools !== undefined && !this.tools.some((tool) => tool.name === call.name)) {
        issues.warn(`${field}[${index}]`, `calls ${quote(call.name)}, which the record's tools do not define (defined: ${this.tools.map((tool) => tool.name).join(", ") || "none"})`);
      }
      this.calls.push({ call, answered: false });
    });
  }

  /** The call a tool result answers, or undefined after recording why there is none. */
  answer(toolCallId: string | undefined, name: string | undefined, field: string, issues: IssueList): ToolCall | undefined {
    const entry =
      toolCallId === undefined ? this.calls.find((candidate) => !candidate.answered) : this.calls.find((candidate) => candidate.call.id === toolCallId);
    if (entry === undefined) {
      if (this.calls.length === 0) issues.error(field, "is a tool result, but no earlier assistant message made a tool call");
      else if (toolCallId === undefined) issues.error(field, "is a tool result, but every earlier tool call already has its result");
      else issues.error(`${field}.tool_call_id`, `${quote(toolCallId)} matches no earlier tool call (ids: ${this.calls.map((known) => known.call.id).join(", ")})`);
      return undefined;
    }
    if (name !== undefined && name !== entry.call.name) {
      issues.warn(`${field}.name`, `${quote(name)} differs from the name of the call it answers (${quote(entry.call.name)})`);
    }
    entry.answered = true;
    return entry.call;
  }
}
