/**
 * The Hugging Face tokenizer files of GPT-OSS (tokenizer.json, tokenizer_config.json,
 * special_tokens_map.json, chat_template.jinja), rebuilt from o200k_harmony so that tiny test
 * models carry the real model's tokenizer. The layout follows the published GPT-OSS
 * tokenizer.json: a byte-level BPE with every two-token split listed as a merge, the o200k
 * regex as an isolating Split, and merges ignored for words that are whole tokens (tiktoken
 * looks a piece up before merging it).
 */
import { randomBytes } from "node:crypto";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { deriveBpeMerges, type BpeMerge } from "./bpeMerges";
import { HARMONY_CHAT_TEMPLATE } from "./harmonyChatTemplate";
import { loadHarmonyVocabulary, type HarmonyVocabulary } from "./harmonyVocabulary";

/** The context length of both GPT-OSS sizes. */
export const HARMONY_MODEL_MAX_LENGTH = 131_072;

/** BOS, EOS and padding per the Hugging Face tokenizer config of GPT-OSS (reference §3.7, §5.1). */
export const HARMONY_SPECIAL_TOKENS_MAP = {
  bos_token: "<|startoftext|>",
  eos_token: "<|return|>",
  pad_token: "<|endoftext|>",
} as const;

export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

export interface TokenizerJson {
  version: "1.0";
  truncation: null;
  padding: null;
  added_tokens: AddedTokenJson[];
  normalizer: null;
  pre_tokenizer: Record<string, unknown>;
  post_processor: Record<string, unknown>;
  decoder: Record<string, unknown>;
  model: {
    type: "BPE";
    dropout: null;
    unk_token: null;
    continuing_subword_prefix: null;
    end_of_word_suffix: null;
    fuse_unk: false;
    byte_fallback: false;
    ignore_merges: true;
    vocab: Record<string, number>;
    merges: BpeMerge[];
  };
}

/**
 * gpt-tokenizer spells tiktoken's case-insensitive contraction group out as character classes,
 * because JavaScript regexes before ES2025 have no `(?i:…)`; tokenizer.json patterns are
 * Oniguruma, which does, and the published file uses that form.
 */
const JS_OPTIONAL_CONTRACTION = String.raw`(?:'(?:[sS]|[dD]|[mM]|[tT]|[lL][lL]|[vV][eE]|[rR][eE]))?`;
const ONIGURUMA_OPTIONAL_CONTRACTION = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)?`;

/** The o200k pre-tokenizer pattern in tokenizer.json syntax. */
export function o200kSplitPattern(vocabulary: HarmonyVocabulary): string {
  const source = vocabulary.javaScriptSplitPattern;
  if (!source.includes(JS_OPTIONAL_CONTRACTION)) {
    throw new Error("gpt-tokenizer's o200k split regex changed shape; update o200kSplitPattern.");
  }
  return source.split(JS_OPTIONAL_CONTRACTION).join(ONIGURUMA_OPTIONAL_CONTRACTION);
}

export function buildHarmonyTokenizerJson(vocabulary: HarmonyVocabulary, merges: BpeMerge[]): TokenizerJson {
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    // All 1090 special ids, where the published file lists the 21 up to <|endofprompt|>:
    // o200k_harmony defines them all and the model has embedding rows for them, so
    // len(tokenizer) equals the vocabulary size and no id is left without a token.
    added_tokens: vocabulary.specialTokens.map(({ id, content }) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: o200kSplitPattern(vocabulary) }, behavior: "Isolated", invert: false },
        // The Split already cut the text into words; ByteLevel only maps bytes to characters.
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    // ByteLevel post-processing and decoding touch only offsets and the byte mapping; the
    // prefix-space flag is inert there (no space is ever added when encoding).
    post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: true,
      // fromEntries defines keys as data properties, so a token such as "__proto__" stays a key.
      vocab: Object.fromEntries(vocabulary.mergeableTokenTexts.map((text, id) => [text, id])),
      merges,
    },
  };
}

export function buildHarmonyTokenizerConfig(vocabulary: HarmonyVocabulary): Record<string, unknown> {
  const addedTokensDecoder = Object.fromEntries(
    vocabulary.specialTokens.map(({ id, content }) => [
      String(id),
      { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true },
    ]),
  );
  // No "chat_template" key: transformers and llama.cpp's converter read chat_template.jinja
  // next to this file, and one copy of the template cannot disagree with itself.
  return {
    added_tokens_decoder: addedTokensDecoder,
    ...HARMONY_SPECIAL_TOKENS_MAP,
    clean_up_tokenization_spaces: false,
    extra_special_tokens: {},
    model_input_names: ["input_ids", "attention_mask"],
    model_max_length: HARMONY_MODEL_MAX_LENGTH,
    tokenizer_class: "PreTrainedTokenizerFast",
  };
}

export interface WrittenTokenizerFile {
  path: string;
  bytes: number;
}

/**
 * Writes the four tokenizer files into `folder` (created if missing). Each file is written to a
 * temporary name and renamed, so a reader never sees half a tokenizer.json (28 MB).
 */
export async function writeHarmonyTokenizerFiles(folder: string): Promise<WrittenTokenizerFile[]> {
  const vocabulary = await loadHarmonyVocabulary();
  const tokenizer = buildHarmonyTokenizerJson(vocabulary, deriveBpeMerges(vocabulary.mergeableTokenTexts));
  const contents: [name: string, text: string][] = [
    ["tokenizer.json", JSON.stringify(tokenizer)],
    ["tokenizer_config.json", `${JSON.stringify(buildHarmonyTokenizerConfig(vocabulary), null, 2)}\n`],
    ["special_tokens_map.json", `${JSON.stringify(HARMONY_SPECIAL_TOKENS_MAP, null, 2)}\n`],
    ["chat_template.jinja", HARMONY_CHAT_TEMPLATE],
  ];
  await mkdir(folder, { recursive: true });
  const written: WrittenTokenizerFile[] = [];
  for (const [name, text] of contents) {
    const path = join(folder, name);
    await writeFileAtomically(path, text);
    written.push({ path, bytes: Buffer.byteLength(text, "utf8") });
  }
  return written;
}

async function writeFileAtomically(path: string, text: string): Promise<void> {
  const temporary = `${path}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`;
  try {
    await writeFile(temporary, text, "utf8");
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}
