/**
 * One interface over the renderers, chosen by the tokenizer: GPT-OSS ("harmony": our harmony
 * renderer for chats, our harmony FIM format for FIM samples) or a Hugging Face model folder
 * (its chat template for chats, its FIM tokens for FIM samples). prepareDataset only sees this.
 */
import { createHash } from "node:crypto";
import type { SampleSource, TrainingSample } from "../datasets/conversation";
import { HARMONY_CHAT_TEMPLATE } from "../tokenizers/harmonyChatTemplate";
import { PrepareError } from "./errors";
import { detectFimTokens, renderFimWithTokens, renderGptOssFim, type FimOrder } from "./fimFormats";
import { HARMONY_PAD_ID, HARMONY_TOKENIZER_ID, HARMONY_VOCABULARY_SIZE, loadHarmonyEncoder } from "./harmonyEncoder";
import { renderHarmonyConversation, type HarmonyRenderOptions, type MaskMode } from "./harmonyRenderer";
import { loadModelTokenizer } from "./modelTokenizer";
import { ChatTemplateRenderer } from "./templateRenderer";
import type { TokenizedSample } from "./tokenSequence";

export type TokenizerSpec = "harmony" | { modelFolder: string };

export interface SampleRendererOptions {
  /** Default: "last" for harmony (earlier turns lose their reasoning), "all" for templates. */
  maskMode?: MaskMode;
  /** System-message settings of the harmony format (reasoning effort, date, identity). */
  harmony?: Omit<HarmonyRenderOptions, "maskMode" | "addGenerationPrompt">;
  /** Extra chat-template variables for template models (e.g. enable_thinking). */
  templateContext?: Record<string, unknown>;
  /** FIM order for models with FIM tokens; "psm" by default. */
  fimOrder?: FimOrder;
  /** Repository name written after <|repo_name|> for FIM samples with a path. */
  repoName?: string;
}

export interface SampleRenderer {
  /** Written into shards and the manifest. */
  tokenizerId: string;
  /** sha256 of the chat template text ("" when a model has none). */
  templateHash: string;
  vocabSize: number;
  padId: number;
  maskMode: MaskMode;
  render(sample: TrainingSample, source?: SampleSource): TokenizedSample;
}

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

export async function createSampleRenderer(spec: TokenizerSpec, options: SampleRendererOptions = {}): Promise<SampleRenderer> {
  if (spec === "harmony") {
    const encoder = await loadHarmonyEncoder();
    const maskMode = options.maskMode ?? "last";
    const harmony: HarmonyRenderOptions = { ...options.harmony, maskMode };
    return {
      tokenizerId: HARMONY_TOKENIZER_ID,
      templateHash: sha256Hex(HARMONY_CHAT_TEMPLATE),
      vocabSize: HARMONY_VOCABULARY_SIZE,
      padId: HARMONY_PAD_ID,
      maskMode,
      render: (sample, source) =>
        sample.kind === "fim" ? renderGptOssFim(encoder, sample) : renderHarmonyConversation(encoder, sample, harmony, source),
    };
  }

  const model = await loadModelTokenizer(spec.modelFolder);
  const maskMode = options.maskMode ?? "all";
  const fimTokens = detectFimTokens(model);
  let chat: ChatTemplateRenderer | undefined;
  const fimOptions = { order: options.fimOrder ?? "psm", ...(options.repoName !== undefined ? { repoName: options.repoName } : {}) };
  return {
    tokenizerId: model.identity,
    templateHash: sha256Hex(model.chatTemplate ?? ""),
    vocabSize: model.vocabSize,
    padId: model.padId,
    maskMode,
    render: (sample, source) => {
      if (sample.kind === "fim") {
        if (fimTokens === undefined) {
          throw new PrepareError("no_fim_support", `FIM sample, but ${spec.modelFolder} has no FIM tokens (<|fim_prefix|>, <|fim_suffix|>, <|fim_middle|>).`, source);
        }
        return renderFimWithTokens(sample, fimTokens, model.encodePlain, fimOptions);
      }
      chat ??= new ChatTemplateRenderer(model);
      return chat.render(sample, { maskMode, ...(options.templateContext ? { context: options.templateContext } : {}) }, source);
    },
  };
}
