/**
 * Chat-shaped records: OpenAI `messages` (system, developer, user, assistant, tool) and
 * ShareGPT `conversations` (from/value, with LLaMA-Factory's function_call/observation turns
 * for tool use). Both land in the same Conversation, tool calls linked to their results.
 */
import { assistantMessage, ConversationBuilder } from "./conversationBuilder";
import type { Conversation } from "./conversation";
import { describeValue, isJsonObject, notOneOf, readOptionalString, readText, type IssueList, type JsonObject } from "./recordFields";
import { parseIfJsonText, readReasoning, readToolCalls, readToolDefinitions, splitLeadingThink } from "./toolCalls";

export const CHAT_ROLES = ["system", "developer", "user", "assistant", "tool"] as const;

export function convertChatMessages(record: JsonObject, issues: IssueList): Conversation | undefined {
  const list = record["messages"];
  if (!Array.isArray(list)) {
    issues.error("messages", `must be an array of {"role", "content"} messages, found ${describeValue(list)}`);
    return undefined;
  }
  const builder = new ConversationBuilder("messages", readToolDefinitions(record["tools"], "tools", issues));
  readChatMessages(list, "messages", issues, builder);
  return builder.finish(issues);
}

/** Reads OpenAI-style messages into `builder`; also used for prompt/completion message lists. */
export function readChatMessages(list: readonly unknown[], field: string, issues: IssueList, builder: ConversationBuilder): void {
  list.forEach((entry, index) => {
    const path = `${field}[${index}]`;
    if (!isJsonObject(entry)) {
      issues.error(path, `must be a message {"role", "content"}, found ${describeValue(entry)}`);
      return;
    }
    const role = entry["role"];
    if (typeof role !== "string") {
      const found = role === undefined ? "is missing" : `must be text, found ${describeValue(role)}`;
      issues.error(`${path}.role`, `${found}; it must be one of ${CHAT_ROLES.join(", ")}`);
      return;
    }
    switch (role) {
      case "system":
      case "developer":
      case "user": {
        const content = readText(entry["content"], `${path}.content`, issues);
        if (content !== undefined) builder.add({ role, content }, `${path}.content`);
        return;
      }
      case "assistant":
        readAssistant(entry, path, issues, builder, `call_${builder.messages.length}`);
        return;
      case "tool":
        readToolResult(entry, entry["content"], `${path}.content`, path, issues, builder);
        return;
      default:
        issues.error(`${path}.role`, notOneOf(role, CHAT_ROLES));
    }
  });
}

function readAssistant(entry: JsonObject, path: string, issues: IssueList, builder: ConversationBuilder, idPrefix: string): void {
  const callsKey = entry["tool_calls"] !== undefined ? "tool_calls" : "function_call";
  const toolCalls = readToolCalls(entry[callsKey], `${path}.${callsKey}`, issues, (index) => `${idPrefix}_${index}`);
  // Content may be null or absent next to tool calls; an empty turn is caught by finish().
  const content = readText(entry["content"], `${path}.content`, issues, { optional: true });
  if (content === undefined) return;
  const reasoning = readReasoning(entry, path, issues);
  const split = reasoning === undefined ? splitLeadingThink(content) : { content, reasoning };
  if (entry["weight"] !== undefined && entry["weight"] !== 1) {
    // OpenAI's format lets weight 0 exclude a turn from the loss; the conversation model has
    // no such flag yet, so say so rather than train on a turn the user excluded.
    issues.warn(`${path}.weight`, `${describeValue(entry["weight"])} is not supported yet: this assistant turn is trained on like any other`);
  }
  if (toolCalls !== undefined) builder.ledger.record(toolCalls, `${path}.${callsKey}`, issues);
  builder.add(assistantMessage(split.content, split.reasoning, toolCalls), `${path}.content`);
}

/** Tool output is text; an object (common in generated traces) is kept as its JSON text. */
function readToolResult(entry: JsonObject, value: unknown, contentField: string, path: string, issues: IssueList, builder: ConversationBuilder): void {
  const content = isJsonObject(value) ? JSON.stringify(value) : readText(value, contentField, issues);
  const toolCallId = readOptionalString(entry["tool_call_id"], `${path}.tool_call_id`, issues);
  const name = readOptionalString(entry["name"], `${path}.name`, issues);
  const call = builder.ledger.answer(toolCallId, name, path, issues);
  if (call === undefined || content === undefined) return;
  builder.add({ role: "tool", toolCallId: call.id, name: call.name, content }, contentField);
}

/** ShareGPT speakers, as written by ShareGPT itself and by LLaMA-Factory's tool-use variant. */
export const SHAREGPT_SPEAKERS = ["human", "gpt", "system", "tool", "function_call", "observation"] as const;
const SPEAKER_ROLES = new Map<string, "user" | "assistant" | "system" | "tool" | "call">([
  ["human", "user"],
  ["user", "user"],
  ["gpt", "assistant"],
  ["assistant", "assistant"],
  ["model", "assistant"],
  ["system", "system"],
  ["tool", "tool"],
  ["observation", "tool"],
  ["function_call", "call"],
]);

export function convertShareGpt(record: JsonObject, issues: IssueList): Conversation | undefined {
  const list = record["conversations"];
  if (!Array.isArray(list)) {
    issues.error("conversations", `must be an array of {"from", "value"} turns, found ${describeValue(list)}`);
    return undefined;
  }
  const builder = new ConversationBuilder("conversations", readToolDefinitions(record["tools"], "tools", issues));
  const system = readOptionalString(record["system"], "system", issues);
  if (system !== undefined && system.trim() !== "") builder.add({ role: "system", content: system }, "system");
  list.forEach((entry, index) => {
    const path = `conversations[${index}]`;
    if (!isJsonObject(entry)) {
      issues.error(path, `must be a turn {"from", "value"}, found ${describeValue(entry)}`);
      return;
    }
    // Some exports keep ShareGPT's list but use OpenAI's key names inside it.
    const speakerKey = entry["from"] === undefined && entry["role"] !== undefined ? "role" : "from";
    const valueKey = entry["value"] === undefined && entry["content"] !== undefined ? "content" : "value";
    const speaker = entry[speakerKey];
    const valueField = `${path}.${valueKey}`;
    if (typeof speaker !== "string") {
      const found = speaker === undefined ? "is missing" : `must be text, found ${describeValue(speaker)}`;
      issues.error(`${path}.${speakerKey}`, `${found}; it must be one of ${SHAREGPT_SPEAKERS.join(", ")}`);
      return;
    }
    const role = SPEAKER_ROLES.get(speaker);
    if (role === undefined) {
      issues.error(`${path}.${speakerKey}`, notOneOf(speaker, SHAREGPT_SPEAKERS, ["user", "assistant", "model"]));
      return;
    }
    const value = entry[valueKey];
    if (role === "user" || role === "system") {
      const content = readText(value, valueField, issues);
      if (content !== undefined) builder.add({ role, content }, valueField);
    } else if (role === "assistant") {
      const content = readText(value, valueField, issues);
      if (content === undefined) return;
      const reasoning = readReasoning(entry, path, issues);
      const split = reasoning === undefined ? splitLeadingThink(content) : { content, reasoning };
      builder.add(assistantMessage(split.content, split.reasoning, undefined), valueField);
    } else if (role === "call") {
      // LLaMA-Factory writes the call (or a list of parallel calls) as JSON text.
      if (value === undefined || value === null) {
        issues.error(valueField, `is ${describeValue(value)}; a function_call turn holds the call as JSON {"name", "arguments"}`);
        return;
      }
      const parsed = parseIfJsonText(value, valueField, issues);
      if (parsed === undefined) return;
      const calls = readToolCalls(parsed, valueField, issues, (callIndex) => `call_${index}_${callIndex}`) ?? [];
      if (calls.length === 0) {
        if (parsed === null || (Array.isArray(parsed) && parsed.length === 0)) issues.error(valueField, "holds no tool call");
        return;
      }
      builder.ledger.record(calls, valueField, issues);
      builder.add(assistantMessage("", undefined, calls), valueField);
    } else {
      readToolResult({ name: entry["name"], tool_call_id: entry["tool_call_id"] }, value, valueField, path, issues, builder);
    }
  });
  return builder.finish(issues);
}
