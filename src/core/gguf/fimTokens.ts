/**
 * Fill-in-the-middle token ids for `tokenizer.ggml.fim_*_token_id`, found by the token texts
 * code models use. llama.cpp also guesses them from the vocabulary when the keys are
 * missing, but writing them makes the GGUF self-describing for every loader, and
 * node-llama-cpp's infill (LlamaCompletion.generateInfillCompletion) reads exactly these.
 */
import { GgufValueType } from "./constants";
import type { TokenizerKeyValue } from "./tokenizerMetadata";

/** GGUF key suffix → token texts, first match wins (Qwen2.5-Coder / Qwen3 spellings first). */
const FIM_TOKENS: ReadonlyArray<readonly [key: string, texts: readonly string[]]> = [
  ["fim_pre_token_id", ["<|fim_prefix|>", "<fim_prefix>", "<fim-prefix>"]],
  ["fim_suf_token_id", ["<|fim_suffix|>", "<fim_suffix>", "<fim-suffix>"]],
  ["fim_mid_token_id", ["<|fim_middle|>", "<fim_middle>", "<fim-middle>"]],
  ["fim_pad_token_id", ["<|fim_pad|>", "<fim_pad>", "<fim-pad>"]],
  ["fim_rep_token_id", ["<|repo_name|>", "<repo_name>", "<reponame>"]],
  ["fim_sep_token_id", ["<|file_sep|>", "<file_sep>"]],
];

/** The fim_* keys for the tokens present in `tokens` (an empty list for models without FIM). */
export function fimTokenMetadata(tokens: readonly string[]): TokenizerKeyValue[] {
  const ids = new Map<string, number>();
  tokens.forEach((token, id) => {
    if (token.startsWith("<") && !ids.has(token)) ids.set(token, id);
  });
  const entries: TokenizerKeyValue[] = [];
  for (const [key, texts] of FIM_TOKENS) {
    const id = texts.map((text) => ids.get(text)).find((candidate) => candidate !== undefined);
    if (id !== undefined) entries.push({ key: `tokenizer.ggml.${key}`, type: GgufValueType.UINT32, value: id });
  }
  return entries;
}

/** The token list inside readTokenizerMetadata's entries. */
export function tokenListOf(entries: readonly TokenizerKeyValue[]): readonly string[] {
  const list = entries.find((entry) => entry.key === "tokenizer.ggml.tokens")?.value;
  return Array.isArray(list) ? (list as readonly string[]) : [];
}
