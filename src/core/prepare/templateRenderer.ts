/**
 * Renders a Conversation for a Hugging Face model (Qwen2.5-Coder, Llama, ...) with the model's
 * own chat template (@huggingface/jinja, the engine transformers.js uses) and finds the loss
 * mask without knowing the template's syntax:
 *
 *   for each assistant message i in scope:
 *     start_i = render(messages[:i], add_generation_prompt=true)
 *     end_i   = render(messages[:i+1], add_generation_prompt=false)
 *   the characters full[len(start_i) : len(end_i)] are what the model generates for message i.
 *
 * This only holds when the template is prefix-stable (rendering a prefix of the conversation
 * gives a prefix of the full rendering); templates that rewrite earlier turns (e.g. drop old
 * reasoning, or end the last turn differently) are detected and reported with the sample and
 * the message index, never silently mis-masked. Whitespace a template writes after the stop
 * token (ChatML's "\n" after <|im_end|>) is not a target: the model stops before producing it.
 *
 * The text is then tokenized piece by piece (prompt, target, prompt, ...), not as one string:
 * at inference the prompt up to the generation prompt is tokenized on its own and the model
 * generates from there, so a boundary token must not be merged with the answer's first
 * characters. (Qwen-style "<|im_start|>assistant\n" followed by an answer that starts with
 * "\n" is one "\n\n" token in the whole text, but "\n" + "\n" for the model.) The pieces are
 * checked to decode to the same text as the whole rendering; a mismatch is reported.
 */
import { Template } from "@huggingface/jinja";
import type { Conversation, SampleSource } from "../datasets/conversation";
import { PrepareError } from "./errors";
import type { MaskMode } from "./harmonyRenderer";
import type { ModelTokenizer } from "./modelTokenizer";
import { toTemplateMessages, toTemplateTools, type TemplateMessage } from "./templateMessages";
import type { TokenizedSample } from "./tokenSequence";

export interface TemplateRenderOptions {
  /** "all" (default for template models): every assistant message; "last": after the last user message. */
  maskMode?: MaskMode;
  /** Extra template variables (e.g. `enable_thinking`). */
  context?: Record<string, unknown>;
}

export class ChatTemplateRenderer {
  private readonly template: Template;

  constructor(private readonly model: ModelTokenizer) {
    if (model.chatTemplate === undefined) {
      throw new PrepareError("model_files", `${model.folder} has no chat template (tokenizer_config.json "chat_template" or chat_template.jinja); chat samples need one.`);
    }
    try {
      this.template = new Template(model.chatTemplate);
    } catch (error) {
      throw new PrepareError("model_files", `The chat template in ${model.chatTemplateFile ?? model.folder} does not parse: ${(error as Error).message}`);
    }
  }

  renderText(messages: TemplateMessage[], tools: unknown, addGenerationPrompt: boolean, extra: Record<string, unknown> = {}): string {
    return this.template.render({
      ...this.model.specialTokens,
      ...extra,
      messages,
      tools,
      add_generation_prompt: addGenerationPrompt,
    });
  }

  render(conversation: Conversation, options: TemplateRenderOptions = {}, source?: SampleSource): TokenizedSample {
    this.rejectControlSpellingsInAnswers(conversation, source);
    const messages = toTemplateMessages(conversation);
    const tools = toTemplateTools(conversation.tools);
    const maskMode = options.maskMode ?? "all";
    const render = (count: number, generationPrompt: boolean): string => {
      try {
        return this.renderText(messages.slice(0, count), tools, generationPrompt, options.context);
      } catch (error) {
        throw new PrepareError("bad_sample", `the chat template failed on messages 1..${count}: ${(error as Error).message}`, source);
      }
    };
    const full = render(messages.length, false);
    let lastUser = -1;
    messages.forEach((message, index) => {
      if (message.role === "user") lastUser = index;
    });

    const spans: Array<[number, number]> = [];
    messages.forEach((message, index) => {
      if (message.role !== "assistant" || (maskMode === "last" && index < lastUser)) return;
      const before = render(index, true);
      const after = render(index + 1, false);
      for (const [name, text] of [["the prompt before", before], ["the rendering up to", after]] as const) {
        if (!full.startsWith(text)) {
          const at = firstDifference(text, full);
          throw new PrepareError(
            "template_not_prefix_stable",
            `${name} message ${index + 1} (assistant) is not a prefix of the whole conversation's rendering ` +
              `(first difference at character ${at}: ${JSON.stringify(text.slice(at, at + 40))}); ` +
              `the template in ${this.model.chatTemplateFile ?? this.model.folder} rewrites earlier turns, so assistant spans cannot be found.`,
            source,
          );
        }
      }
      const start = before.length;
      const end = start + this.trimAfterStop(after.slice(start));
      const previous = spans[spans.length - 1];
      if (after.length < start || (previous !== undefined && start < previous[1])) {
        throw new PrepareError("template_not_prefix_stable", `message ${index + 1} (assistant): the generation prompt overlaps the previous answer.`, source);
      }
      if (end > start) spans.push([start, end]);
    });

    const ids: number[] = [];
    const mask: number[] = [];
    let cursor = 0;
    const push = (text: string, target: boolean): void => {
      for (const id of this.model.encode(text)) {
        ids.push(id);
        mask.push(target ? 1 : 0);
      }
    };
    for (const [start, end] of spans) {
      push(full.slice(cursor, start), false);
      push(full.slice(start, end), true);
      cursor = end;
    }
    push(full.slice(cursor), false);

    // The pieces are the tokens training uses (see the module comment); they must spell the
    // same text as the whole rendering does, or the template and tokenizer disagree.
    const pieces = this.model.decode(ids);
    const whole = this.model.decode(this.model.encode(full));
    if (pieces !== whole) {
      const at = firstDifference(pieces, whole);
      throw new PrepareError(
        "token_boundary",
        `the rendered text tokenized piece by piece does not decode to the whole text (character ${at}: ${JSON.stringify(pieces.slice(at, at + 30))} vs ${JSON.stringify(whole.slice(at, at + 30))}).`,
        source,
      );
    }
    return { ids: Uint32Array.from(ids), mask: Uint8Array.from(mask) };
  }

  /**
   * Template text is tokenized with added tokens parsed (as at inference), so an answer that
   * spells "<|im_end|>" would teach the model to emit that token mid-answer. Such samples are
   * rejected; prompts may spell them (inference parses them the same way).
   */
  private rejectControlSpellingsInAnswers(conversation: Conversation, source: SampleSource | undefined): void {
    conversation.messages.forEach((message, index) => {
      if (message.role !== "assistant") return;
      const texts = [message.content, message.reasoning ?? "", ...(message.toolCalls ?? []).map((call) => `${call.name} ${call.arguments}`)];
      for (const token of this.model.controlTokens) {
        if (texts.some((text) => text.includes(token))) {
          throw new PrepareError("bad_sample", `message ${index + 1} (assistant) contains the text ${token}, which this model's tokenizer reads as a control token.`, source);
        }
      }
    });
  }

  /** Length of `span` without whitespace after a closing control token (<|im_end|>, <|eot_id|>). */
  private trimAfterStop(span: string): number {
    const trimmed = span.trimEnd();
    if (trimmed.length === span.length) return span.length;
    for (const token of this.model.controlTokens) if (trimmed.endsWith(token)) return trimmed.length;
    return span.length;
  }
}

function firstDifference(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let index = 0; index < length; index++) if (a[index] !== b[index]) return index;
  return length;
}
