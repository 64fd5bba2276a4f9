/**
 * Fill-in-the-middle formats, one function per format shared by training (prepareDataset) and
 * inference (the completion provider), so both build the same tokens.
 *
 * (a) Models with FIM tokens (Qwen2.5-Coder: <|fim_prefix|> 151659, <|fim_middle|> 151660,
 *     <|fim_suffix|> 151661, <|fim_pad|>, <|repo_name|> 151663, <|file_sep|> 151664; or the
 *     StarCoder spellings <fim_prefix> ...), detected from the tokenizer's added tokens. Same
 *     layout as llama.cpp's /infill (format_infill) and node-llama-cpp's infill:
 *       [<|repo_name|>{repo}\n] [<|file_sep|>{path}\n] PSM: <|fim_prefix|>P<|fim_suffix|>S<|fim_middle|>
 *                                                      SPM: <|fim_suffix|>S<|fim_prefix|>P<|fim_middle|>
 *     then the middle and the end token (<|endoftext|>, else the eos token). Only the middle and
 *     the end token are targets. Text is encoded without parsing added tokens, as llama.cpp does.
 *
 * (b) GPT-OSS has no FIM tokens (anchors §8), so FIM is a harmony conversation; the exact
 *     tokens (special tokens by id, text as plain o200k_harmony text):
 *
 *       <|start|>system<|message|>{system content of §5.3 with "Reasoning: low", no date, no tools}<|end|>
 *       <|start|>developer<|message|># Instructions\n\n{GPT_OSS_FIM_INSTRUCTIONS}<|end|>
 *       <|start|>user<|message|>{user}<|end|>
 *       <|start|>assistant<|channel|>final<|message|>          <- the prompt ends here
 *       {middle}<|return|>                                     <- targets (training only)
 *
 *     where {user} = ("File: " + path + "\n" when a path is given) + "<file>\n" + prefix +
 *     "<FILL_HERE>" + suffix + "\n</file>". The prompt ends inside the assistant's final
 *     message, so the model answers at once, without an analysis channel, and its first
 *     token is the first token of the middle. Inference stops at <|return|> (200002) or
 *     <|end|> (200007) and inserts the decoded text. The full training sample is exactly what
 *     our harmony chat template renders for [developer: instructions, user: {user},
 *     assistant: middle] with reasoning_effort "low" (the render tests check it; an empty
 *     middle, which the template would not render, trains just <|return|>: "nothing to add").
 *     A prefix or suffix that itself contains "<FILL_HERE>" is passed through unchanged.
 */
import type { FimSample } from "../datasets/conversation";
import { HarmonyTokenId as T } from "../tokenizers/harmonyVocabulary";
import { loadHarmonyEncoder, type HarmonyEncoder } from "./harmonyEncoder";
import { renderHarmonyConversation, type HarmonyRenderOptions } from "./harmonyRenderer";
import type { ModelTokenizer } from "./modelTokenizer";
import { TokenSequenceBuilder, type PlainTextEncoder, type TokenizedSample } from "./tokenSequence";

export type FimOrder = "psm" | "spm";

export interface FimTokens {
  prefix: number;
  suffix: number;
  middle: number;
  /** Ends the middle: <|endoftext|> when the vocabulary has it, else the eos token. */
  end: number;
  fileSeparator?: number;
  repoName?: number;
}

const FIM_SPELLINGS = [
  { prefix: "<|fim_prefix|>", suffix: "<|fim_suffix|>", middle: "<|fim_middle|>", fileSeparator: "<|file_sep|>", repoName: "<|repo_name|>" },
  { prefix: "<fim_prefix>", suffix: "<fim_suffix>", middle: "<fim_middle>", fileSeparator: "<file_sep>", repoName: "<repo_name>" },
];

/** The model's FIM tokens, or undefined when it has none (then only chat samples work). */
export function detectFimTokens(model: Pick<ModelTokenizer, "addedTokens" | "specialTokens">): FimTokens | undefined {
  const id = (text: string | undefined): number | undefined => (text === undefined ? undefined : model.addedTokens.get(text));
  const end = id("<|endoftext|>") ?? id(model.specialTokens["eos_token"]);
  for (const spelling of FIM_SPELLINGS) {
    const prefix = id(spelling.prefix);
    const suffix = id(spelling.suffix);
    const middle = id(spelling.middle);
    if (prefix === undefined || suffix === undefined || middle === undefined || end === undefined) continue;
    const tokens: FimTokens = { prefix, suffix, middle, end };
    const fileSeparator = id(spelling.fileSeparator);
    const repoName = id(spelling.repoName);
    if (fileSeparator !== undefined) tokens.fileSeparator = fileSeparator;
    if (repoName !== undefined) tokens.repoName = repoName;
    return tokens;
  }
  return undefined;
}

export interface FimPromptOptions {
  order?: FimOrder;
  /** Repository-relative path of the file; written after <|file_sep|> when the model has it. */
  path?: string;
  /** Repository name after <|repo_name|> (llama.cpp's server writes "myproject"). */
  repoName?: string;
}

/** The prompt ids, ending with the middle token: what inference feeds the model. */
export function buildFimPromptIds(tokens: FimTokens, encodePlain: PlainTextEncoder, prefix: string, suffix: string, options: FimPromptOptions = {}): number[] {
  const out = new TokenSequenceBuilder(encodePlain);
  appendFimPrompt(out, tokens, prefix, suffix, options);
  return [...out.finish().ids];
}

function appendFimPrompt(out: TokenSequenceBuilder, tokens: FimTokens, prefix: string, suffix: string, options: FimPromptOptions): void {
  if (options.repoName !== undefined && tokens.repoName !== undefined) out.special(tokens.repoName, false).text(`${options.repoName}\n`, false);
  if (options.path !== undefined && tokens.fileSeparator !== undefined) out.special(tokens.fileSeparator, false).text(`${options.path}\n`, false);
  if ((options.order ?? "psm") === "psm") {
    out.special(tokens.prefix, false).text(prefix, false).special(tokens.suffix, false).text(suffix, false);
  } else {
    out.special(tokens.suffix, false).text(suffix, false).special(tokens.prefix, false).text(prefix, false);
  }
  out.special(tokens.middle, false);
}

/** A training sample: the prompt (not targets), then middle + end token (targets). */
export function renderFimWithTokens(sample: FimSample, tokens: FimTokens, encodePlain: PlainTextEncoder, options: Omit<FimPromptOptions, "path"> = {}): TokenizedSample {
  const out = new TokenSequenceBuilder(encodePlain);
  appendFimPrompt(out, tokens, sample.prefix, sample.suffix, sample.path === undefined ? options : { ...options, path: sample.path });
  out.text(sample.middle, true).special(tokens.end, true);
  return out.finish();
}

export const GPT_OSS_FIM_HOLE = "<FILL_HERE>";
export const GPT_OSS_FIM_INSTRUCTIONS =
  "You are a code completion engine. The user message is a source file between <file> and </file> " +
  `with one gap marked ${GPT_OSS_FIM_HOLE}. Reply with exactly the text that belongs in the gap and nothing else: ` +
  "no explanation, no code fences, no repetition of the code before or after the gap. " +
  "The text may span several lines; reply with nothing if nothing is missing.";
export const GPT_OSS_FIM_RENDER_OPTIONS: HarmonyRenderOptions = { reasoningEffort: "low" };
/** Tokens that end the middle at inference. */
export const GPT_OSS_FIM_STOP_IDS: readonly number[] = [T.return, T.end, T.call];

export function gptOssFimUserMessage(prefix: string, suffix: string, path?: string): string {
  return `${path !== undefined ? `File: ${path}\n` : ""}<file>\n${prefix}${GPT_OSS_FIM_HOLE}${suffix}\n</file>`;
}

function gptOssFimPromptIds(encoder: HarmonyEncoder, prefix: string, suffix: string, path?: string): number[] {
  const head = renderHarmonyConversation(
    encoder,
    {
      kind: "conversation",
      messages: [
        { role: "developer", content: GPT_OSS_FIM_INSTRUCTIONS },
        { role: "user", content: gptOssFimUserMessage(prefix, suffix, path) },
      ],
    },
    { ...GPT_OSS_FIM_RENDER_OPTIONS, addGenerationPrompt: true },
  );
  return [...head.ids, T.channel, ...encoder.encodePlain("final"), T.message];
}

export interface GptOssFimPrompt {
  /** Feed these ids as is (never re-tokenize `text`: code may spell control tokens). */
  ids: number[];
  /** The same prompt as text, for logs and debugging. */
  text: string;
  stopIds: readonly number[];
}

/** The GPT-OSS FIM prompt (format above); the completion provider and training both use it. */
export async function buildGptOssFimPrompt(prefix: string, suffix: string, path?: string): Promise<GptOssFimPrompt> {
  const encoder = await loadHarmonyEncoder();
  const ids = gptOssFimPromptIds(encoder, prefix, suffix, path);
  return { ids, text: encoder.decode(ids), stopIds: GPT_OSS_FIM_STOP_IDS };
}

/** A GPT-OSS FIM training sample: the prompt, then middle + <|return|> as targets. */
export function renderGptOssFim(encoder: HarmonyEncoder, sample: FimSample): TokenizedSample {
  const out = new TokenSequenceBuilder((text) => encoder.encodePlain(text));
  out.tokens(gptOssFimPromptIds(encoder, sample.prefix, sample.suffix, sample.path), false);
  out.text(sample.middle, true).special(T.return, true);
  return out.finish();
}
