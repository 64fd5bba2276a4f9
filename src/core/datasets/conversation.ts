/**
 * The one internal shape every dataset format converts to. Renderers (harmony for GPT-OSS,
 * Jinja chat templates for Hugging Face models, FIM formats) only ever see this model, so a
 * new input format never touches a renderer and a new renderer never touches the parsers.
 */

/** A function the assistant may call (OpenAI "tools" entry, function type). */
export interface ToolDefinition {
  name: string;
  description?: string;
  /** JSON Schema of the arguments object. */
  parameters?: Record<string, unknown>;
}

export interface ToolCall {
  /** Correlates the call with its result; generated when the source has none. */
  id: string;
  name: string;
  /** Arguments as JSON text, exactly as the model should produce it. */
  arguments: string;
}

export type ConversationMessage =
  | { role: "system"; content: string }
  | { role: "developer"; content: string }
  | { role: "user"; content: string }
  | {
      role: "assistant";
      /** The user-visible answer (GPT-OSS: the final channel). May be empty with tool calls. */
      content: string;
      /** Chain of thought (GPT-OSS: the analysis channel), from reasoning/thinking fields. */
      reasoning?: string;
      toolCalls?: ToolCall[];
    }
  | { role: "tool"; toolCallId: string; name: string; content: string };

/** A chat sample: messages plus the tools they may call. */
export interface Conversation {
  kind: "conversation";
  messages: ConversationMessage[];
  tools?: ToolDefinition[];
}

/** A fill-in-the-middle sample: the model sees prefix and suffix and learns to produce middle. */
export interface FimSample {
  kind: "fim";
  prefix: string;
  suffix: string;
  middle: string;
  /** Repository-relative path, when known (repository-level FIM prompts use it). */
  path?: string;
}

export type TrainingSample = Conversation | FimSample;

/** The input formats the detector recognises. */
export type DatasetFormat =
  | "chat-messages"
  | "sharegpt"
  | "instruction"
  | "prompt-completion"
  | "fim";

/** Where a sample came from, for error messages and for editing it back in place. */
export interface SampleSource {
  file: string;
  /** 1-based line number in the JSONL file. */
  line: number;
}
