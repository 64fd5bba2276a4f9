/**
 * Collects converted messages together with the source field each came from, so the checks
 * that apply to every conversation format (an assistant turn with nothing in it, a sample
 * with no assistant turn at all) are written once and still point at the user's own field
 * names: `messages[3].content`, `conversations[5].value` or `output`.
 */
import type { Conversation, ConversationMessage, ToolCall, ToolDefinition } from "./conversation";
import { ToolCallLedger } from "./toolCalls";
import type { IssueList } from "./recordFields";

type AssistantMessage = Extract<ConversationMessage, { role: "assistant" }>;

export function assistantMessage(content: string, reasoning: string | undefined, toolCalls: ToolCall[] | undefined): AssistantMessage {
  const message: AssistantMessage = { role: "assistant", content };
  if (reasoning !== undefined && reasoning !== "") message.reasoning = reasoning;
  if (toolCalls !== undefined && toolCalls.length > 0) message.toolCalls = toolCalls;
  return message;
}

export class ConversationBuilder {
  readonly messages: ConversationMessage[] = [];
  /** Per message, the path of the source field holding its content. */
  readonly contentFields: string[] = [];
  readonly ledger: ToolCallLedger;

  constructor(
    /** Where the messages come from, e.g. "messages"; names the sample in whole-sample issues. */
    private readonly listField: string,
    private readonly tools: ToolDefinition[] | undefined,
  ) {
    this.ledger = new ToolCallLedger(tools);
  }

  add(message: ConversationMessage, contentField: string): void {
    this.messages.push(message);
    this.contentFields.push(contentField);
  }

  /** The conversation, after the checks every conversation format shares. */
  finish(issues: IssueList): Conversation {
    let assistantTurns = 0;
    this.messages.forEach((message, index) => {
      if (message.role !== "assistant") return;
      assistantTurns++;
      if (message.content.trim() === "" && message.reasoning === undefined && message.toolCalls === undefined) {
        issues.error(
          this.contentFields[index] ?? this.listField,
          "is an empty assistant turn (no content, reasoning or tool call); training on it teaches the model to answer with nothing",
          "empty_assistant",
        );
      }
    });
    // A turn that failed to convert already has its own error; "no assistant turn" would be noise.
    if (assistantTurns === 0 && !issues.hasErrors) {
      const what = this.messages.length === 0 ? "has no messages" : `has ${this.messages.length} message(s) but no assistant turn`;
      issues.error(this.listField, `${what}, so there is nothing to train on`, "no_trainable_turn");
    }
    const conversation: Conversation = { kind: "conversation", messages: this.messages };
    if (this.tools !== undefined && this.tools.length > 0) conversation.tools = this.tools;
    return conversation;
  }
}
