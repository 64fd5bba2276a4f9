/**
 * GPT-OSS's tokenizer (o200k_harmony, from gpt-tokenizer) as the renderers use it: text is
 * always encoded with special-token parsing switched off, and control tokens are inserted by
 * id (HarmonyTokenId). gpt-tokenizer only recognises special tokens at the start of a string
 * when they are allowed (environment.md), so parsing rendered text would be wrong anyway.
 *
 * The encoding's rank table is 2.4 MB of JavaScript; it is imported on first use so that
 * loading the extension does not pay for it.
 */
import { HARMONY_VOCABULARY_SIZE, HarmonyTokenId } from "../tokenizers/harmonyVocabulary";

/** Tokenizer identity written into shards and manifests. */
export const HARMONY_TOKENIZER_ID = "o200k_harmony";
/** Padding id (the HF config's pad token, <|endoftext|>); padding is masked out anyway. */
export const HARMONY_PAD_ID = HarmonyTokenId.endOfText;
export { HARMONY_VOCABULARY_SIZE };

export interface HarmonyEncoder {
  /** Encodes text as ordinary text: "<|end|>" in it becomes the five tokens of its spelling. */
  encodePlain(text: string): number[];
  /** Decodes ids, spelling control tokens as their literal text. */
  decode(ids: Iterable<number>): string;
}

let cached: Promise<HarmonyEncoder> | undefined;

export function loadHarmonyEncoder(): Promise<HarmonyEncoder> {
  cached ??= importEncoder().catch((error: unknown) => {
    cached = undefined; // let a later call retry instead of replaying the failure
    throw error;
  });
  return cached;
}

async function importEncoder(): Promise<HarmonyEncoder> {
  const encoding = await import("gpt-tokenizer/encoding/o200k_harmony");
  // Empty sets: nothing is parsed as a special token and nothing throws for looking like one.
  const plain = { allowedSpecial: new Set<string>(), disallowedSpecial: new Set<string>() };
  return {
    encodePlain: (text) => encoding.encode(text, plain),
    decode: (ids) => encoding.decode(ids),
  };
}
