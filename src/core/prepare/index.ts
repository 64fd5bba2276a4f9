/**
 * Dataset preparation's public surface: rendering (harmony, chat templates, FIM formats),
 * packing, and the prepare / verify pair that produces and checks a prepared-dataset folder.
 */
export { PrepareError, type PrepareErrorCode } from "./errors";
export {
  GPT_OSS_FIM_HOLE,
  GPT_OSS_FIM_INSTRUCTIONS,
  GPT_OSS_FIM_STOP_IDS,
  buildFimPromptIds,
  buildGptOssFimPrompt,
  detectFimTokens,
  gptOssFimUserMessage,
  renderFimWithTokens,
  renderGptOssFim,
  type FimOrder,
  type FimPromptOptions,
  type FimTokens,
  type GptOssFimPrompt,
} from "./fimFormats";
export { HARMONY_PAD_ID, HARMONY_TOKENIZER_ID, loadHarmonyEncoder, type HarmonyEncoder } from "./harmonyEncoder";
export { harmonySystemContent, renderHarmonyConversation, type HarmonyRenderOptions, type MaskMode, type ReasoningEffort } from "./harmonyRenderer";
export { loadModelTokenizer, type ModelTokenizer } from "./modelTokenizer";
export { packSamples, type OverlongPolicy, type PackedDataset, type PackOptions, type PackStats } from "./packing";
export {
  prepareDataset,
  type PrepareDatasetOptions,
  type PrepareProgress,
  type PrepareReport,
  type PrepareResult,
  type RejectedSample,
  type SourcedSample,
} from "./prepareDataset";
export { MANIFEST_FILE, REPORT_FILE, verifyPreparedDataset } from "./preparedDatasetFiles";
export { createSampleRenderer, type SampleRenderer, type SampleRendererOptions, type TokenizerSpec } from "./sampleRenderer";
export { ChatTemplateRenderer, type TemplateRenderOptions } from "./templateRenderer";
export type { TokenizedSample } from "./tokenSequence";
