/**
 * Renders a Conversation for GPT-OSS training straight to token ids and a loss mask, with the
 * message layout of our harmony chat template (src/core/tokenizers/harmonyChatTemplate.ts) in
 * training mode: a GGUF exported with that template prompts the model with exactly the tokens
 * it was trained on. Control tokens go in by id and every text piece is encoded as plain text
 * (harmonyEncoder.ts), so user text that spells "<|end|>" stays text.
 *
 * Layout (reference §5.3-5.5), mirroring the template:
 * - system: identity line, knowledge cutoff, optional date, reasoning level, valid channels
 *   (+ the functions line when the conversation has tools);
 * - developer: `# Instructions` from all system/developer messages joined by a blank line,
 *   then the `# Tools` namespace (harmonyTools.ts);
 * - assistant: analysis only after the last user message (earlier turns drop it, §5.4);
 *   tool calls on commentary with the recipient in the channel part and `<|constrain|>json`,
 *   ending `<|call|>`; a commentary preamble for content next to tool calls; the final
 *   answer ends `<|return|>` when it is the conversation's last message, else `<|end|>`.
 *
 * Loss mask (§5.5): a target is every token the model generates after the prompt's trailing
 * `<|start|>assistant`: channel headers, recipients, `<|constrain|>json`, contents, the
 * `<|end|><|start|>assistant` separators between its own messages of one run, and the closing
 * `<|return|>` / `<|call|>`. Not targets: system, developer, user and tool-result messages;
 * the `<|start|>assistant` that opens a run (after a user message, a tool result or a call,
 * the prompt supplies it); and the `<|end|>` of an earlier turn's final answer, because the
 * model generated `<|return|>` there and history rewrote it.
 *
 * Mask modes: "last" (default) trains only the assistant messages after the last user message.
 * Earlier turns are rendered without their chain of thought, so training on them would teach
 * the model to answer without reasoning; "all" trains them anyway (plain multi-turn chat data).
 */
import type { Conversation, ConversationMessage, SampleSource } from "../datasets/conversation";
import { HarmonyTokenId as T } from "../tokenizers/harmonyVocabulary";
import { PrepareError } from "./errors";
import type { HarmonyEncoder } from "./harmonyEncoder";
import { functionsNamespace } from "./harmonyTools";
import { TokenSequenceBuilder, type TokenizedSample } from "./tokenSequence";

export type MaskMode = "all" | "last";
export type ReasoningEffort = "low" | "medium" | "high";

export interface HarmonyRenderOptions {
  maskMode?: MaskMode;
  /** Default "medium", as in the template. */
  reasoningEffort?: ReasoningEffort;
  /** YYYY-MM-DD; no date line without it, so training tokens are reproducible. */
  currentDate?: string;
  /** Replaces the first system line (the template's `model_identity`). */
  modelIdentity?: string;
  /** Inference prompt instead of a training sample: no `<|return|>`, ends `<|start|>assistant`. */
  addGenerationPrompt?: boolean;
}

export const DEFAULT_MODEL_IDENTITY = "You are ChatGPT, a large language model trained by OpenAI.";

/** The system message content of §5.3, exactly as the template writes it. */
export function harmonySystemContent(options: HarmonyRenderOptions, hasTools: boolean): string {
  let text = options.modelIdentity ? options.modelIdentity : DEFAULT_MODEL_IDENTITY;
  text += "\nKnowledge cutoff: 2024-06";
  if (options.currentDate) text += `\nCurrent date: ${options.currentDate}`;
  text += `\n\nReasoning: ${options.reasoningEffort ? options.reasoningEffort : "medium"}`;
  text += "\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message.";
  if (hasTools) text += "\nCalls to these tools must go to the commentary channel: 'functions'.";
  return text;
}

export function renderHarmonyConversation(
  encoder: HarmonyEncoder,
  conversation: Conversation,
  options: HarmonyRenderOptions = {},
  source?: SampleSource,
): TokenizedSample {
  const { messages } = conversation;
  const tools = conversation.tools ?? [];
  const hasTools = tools.length > 0;
  const maskMode = options.maskMode ?? "last";
  const generation = options.addGenerationPrompt === true;
  const out = new TokenSequenceBuilder((text) => encoder.encodePlain(text));

  let lastUserIndex = -1;
  let instructions = "";
  messages.forEach((message, index) => {
    if (message.role === "user") lastUserIndex = index;
    if (message.role === "system" || message.role === "developer") {
      instructions = instructions ? `${instructions}\n\n${message.content}` : message.content;
    }
  });

  // Prompt part: never a target.
  const plainMessage = (header: string, content: string): void => {
    out.special(T.start, false).text(header, false).special(T.message, false).text(content, false).special(T.end, false);
  };
  plainMessage("system", harmonySystemContent(options, hasTools));
  if (instructions || hasTools) {
    let developer = instructions ? `# Instructions\n\n${instructions}` : "";
    if (instructions && hasTools) developer += "\n\n";
    if (hasTools) developer += functionsNamespace(tools);
    plainMessage("developer", developer);
  }

  // True while the model is mid-run: its last message ended with <|end|> and it goes on with
  // <|start|>assistant itself (after analysis or a commentary preamble).
  let continuing = false;
  let callNames: string[] = [];
  let resultIndex = 0;

  const openAssistant = (target: boolean, channel: string): void => {
    const separator = target && continuing;
    out.special(T.start, separator).text("assistant", separator).special(T.channel, target).text(channel, target);
  };

  messages.forEach((message: ConversationMessage, index) => {
    switch (message.role) {
      case "system":
      case "developer":
        return;
      case "user":
        plainMessage("user", message.content);
        continuing = false;
        return;
      case "tool": {
        let name = message.name;
        if (!name) {
          const byPosition = callNames[resultIndex];
          if (byPosition === undefined) {
            throw new PrepareError("bad_sample", `message ${index + 1} (tool) has no name and no matching tool call before it.`, source);
          }
          name = byPosition;
        }
        resultIndex += 1;
        out.special(T.start, false).text(`functions.${name} to=assistant`, false);
        out.special(T.channel, false).text("commentary", false).special(T.message, false);
        out.text(message.content, false).special(T.end, false);
        continuing = false;
        return;
      }
      case "assistant": {
        const target = !generation && (maskMode === "all" || index > lastUserIndex);
        const calls = message.toolCalls ?? [];
        if (message.reasoning && index > lastUserIndex) {
          openAssistant(target, "analysis");
          out.special(T.message, target).text(message.reasoning, target).special(T.end, target);
          continuing = true;
        }
        if (calls.length > 0) {
          if (message.content) {
            openAssistant(target, "commentary");
            out.special(T.message, target).text(message.content, target).special(T.end, target);
            continuing = true;
          }
          callNames = [];
          resultIndex = 0;
          for (const call of calls) {
            if (!call.name) throw new PrepareError("bad_sample", `message ${index + 1} has a tool call without a name.`, source);
            callNames.push(call.name);
            openAssistant(target, `commentary to=functions.${call.name} `);
            out.special(T.constrain, target).text("json", target).special(T.message, target);
            out.text(call.arguments, target).special(T.call, target);
            continuing = false;
          }
        } else if (message.content) {
          const closesSample = index === messages.length - 1 && !generation;
          openAssistant(target, "final");
          out.special(T.message, target).text(message.content, target);
          out.special(closesSample ? T.return : T.end, target && closesSample);
          continuing = false;
        }
        return;
      }
    }
  });
  if (generation) out.special(T.start, false).text("assistant", false);
  return out.finish();
}
