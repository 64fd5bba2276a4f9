/**
 * Converts our Conversation into the `messages` / `tools` that Hugging Face chat templates
 * expect (transformers' apply_chat_template conventions), so any model's template can render
 * it: assistant reasoning as `reasoning_content` (Qwen3, DeepSeek) and `thinking` (GPT-OSS),
 * tool calls as `{type: "function", id, function: {name, arguments}}`, tool results with
 * `tool_call_id` and `name`, tools as `{type: "function", function: {...}}`.
 */
import type { Conversation, ToolDefinition } from "../datasets/conversation";

export interface TemplateMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

export interface TemplateMessageOptions {
  /**
   * How tool-call arguments are passed. "object" (default) is the transformers convention
   * (templates `| tojson` them); "string" keeps the exact JSON text, which our harmony template
   * prints as is, as the model generates it.
   */
  toolArguments?: "object" | "string";
}

export function toTemplateMessages(conversation: Conversation, options: TemplateMessageOptions = {}): TemplateMessage[] {
  const asObject = (options.toolArguments ?? "object") === "object";
  return conversation.messages.map((message): TemplateMessage => {
    switch (message.role) {
      case "system":
      case "developer":
      case "user":
        return { role: message.role, content: message.content };
      case "tool":
        return { role: "tool", content: message.content, name: message.name, tool_call_id: message.toolCallId };
      case "assistant": {
        const converted: TemplateMessage = { role: "assistant", content: message.content };
        if (message.reasoning) {
          converted["reasoning_content"] = message.reasoning;
          converted["thinking"] = message.reasoning;
        }
        if (message.toolCalls && message.toolCalls.length > 0) {
          converted["tool_calls"] = message.toolCalls.map((call) => ({
            type: "function",
            id: call.id,
            function: { name: call.name, arguments: asObject ? parseArguments(call.arguments) : call.arguments },
          }));
        }
        return converted;
      }
    }
  });
}

export function toTemplateTools(tools: readonly ToolDefinition[] | undefined): Array<Record<string, unknown>> | undefined {
  if (!tools || tools.length === 0) return undefined;
  return tools.map((tool) => ({ type: "function", function: { ...tool } }));
}

/** Arguments that are not a JSON object stay text: the template then prints them as given. */
function parseArguments(text: string): unknown {
  try {
    const parsed: unknown = JSON.parse(text);
    return parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) ? parsed : text;
  } catch {
    return text;
  }
}
