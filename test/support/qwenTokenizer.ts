/**
 * A small Qwen2-style byte-level BPE tokenizer for tiny test checkpoints (make-tiny-model
 * writes none): the 256 byte tokens, merges learned from a short code-and-prose corpus, and
 * Qwen's special tokens at the top of the vocabulary, with <|endoftext|> and <|im_end|> on the
 * last two ids, where the tiny Qwen2 config puts bos/eos for a small vocab_size. Written as
 * tokenizer.json + tokenizer_config.json (ChatML chat template) like a Qwen2.5 release.
 *
 * `encodeQwenReference` is the same BPE in plain TypeScript (Qwen2's pre-tokenizer regex,
 * then lowest-rank merges), the reference llama.cpp's tokenization is checked against.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { BYTE_TO_UNICODE, bytesToUnicode } from "../../src/core/tokenizers/bytesToUnicode";

/** Qwen's special tokens in the order they take the top ids (last two: endoftext, im_end). */
export const QWEN_SPECIAL_TOKENS = [
  "<|im_start|>",
  "<|fim_prefix|>",
  "<|fim_middle|>",
  "<|fim_suffix|>",
  "<|fim_pad|>",
  "<|repo_name|>",
  "<|file_sep|>",
  "<|endoftext|>",
  "<|im_end|>",
] as const;
export type QwenSpecialToken = (typeof QWEN_SPECIAL_TOKENS)[number];

/** A ChatML template in the shape of Qwen2.5's (default system message, generation prompt). */
export const QWEN_CHATML_TEMPLATE = [
  "{%- if messages[0]['role'] == 'system' %}",
  "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}",
  "{%- else %}",
  "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}",
  "{%- endif %}",
  "{%- for message in messages %}",
  "{%- if not (message['role'] == 'system' and loop.first) %}",
  "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}",
  "{%- endif %}",
  "{%- endfor %}",
  "{%- if add_generation_prompt %}",
  "{{- '<|im_start|>assistant\\n' }}",
  "{%- endif %}",
].join("\n");

/** Qwen2's pre-tokenizer regex, minus the (?i:) group JavaScript lacks (case variants spelled out). */
const PRE_TOKENIZER = /'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

const CORPUS = [
  "def add(a, b):\n    return a + b\n\n",
  "export function add(a: number, b: number): number {\n  return a + b;\n}\n",
  "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs.\n",
  "for (let i = 0; i < items.length; i++) {\n  total += items[i].price;\n}\n",
  "import numpy as np\nimport torch\n\nclass Model(torch.nn.Module):\n    def forward(self, x):\n        return self.linear(x)\n",
  "Hello world! Hello there, how are you today? I am fine, thank you.\n",
].join("");

export interface QwenTokenizer {
  vocabSize: number;
  vocab: Map<string, number>;
  merges: Array<[string, string]>;
  special: Record<QwenSpecialToken, number>;
}

function words(text: string): string[] {
  return (text.match(PRE_TOKENIZER) ?? []).map((word) => bytesToUnicode(new TextEncoder().encode(word)));
}

/** Learns merges from the corpus until the vocabulary (plus the specials) fills `vocabSize`. */
export function buildQwenTokenizer(vocabSize: number): QwenTokenizer {
  const vocab = new Map<string, number>(BYTE_TO_UNICODE.map((char, byte) => [char, byte]));
  const merges: Array<[string, string]> = [];
  const budget = vocabSize - QWEN_SPECIAL_TOKENS.length;
  if (budget < 256) throw new Error(`vocabSize ${vocabSize} leaves no room for the 256 byte tokens and ${QWEN_SPECIAL_TOKENS.length} specials`);
  const sequences = words(CORPUS).map((word) => [...word]);
  while (vocab.size < budget) {
    const counts = new Map<string, number>();
    for (const symbols of sequences) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]} ${symbols[i + 1]}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
    }
    let best: string | undefined;
    let bestCount = 1;
    for (const [key, count] of counts) {
      if (count > bestCount || (count === bestCount && best !== undefined && key < best)) {
        best = key;
        bestCount = count;
      }
    }
    if (best === undefined) break;
    const [left, right] = best.split(" ") as [string, string];
    const merged = left + right;
    merges.push([left, right]);
    if (!vocab.has(merged)) vocab.set(merged, vocab.size);
    for (const symbols of sequences) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        if (symbols[i] === left && symbols[i + 1] === right) symbols.splice(i, 2, merged);
      }
    }
  }
  const first = vocabSize - QWEN_SPECIAL_TOKENS.length;
  const special = Object.fromEntries(QWEN_SPECIAL_TOKENS.map((token, i) => [token, first + i])) as Record<QwenSpecialToken, number>;
  return { vocabSize, vocab, merges, special };
}

/** tokenizer.json and tokenizer_config.json in the layout of a Qwen2.5 release. */
export function writeQwenTokenizerFiles(folder: string, vocabSize: number, chatTemplate = QWEN_CHATML_TEMPLATE): QwenTokenizer {
  const tokenizer = buildQwenTokenizer(vocabSize);
  const added = Object.entries(tokenizer.special).map(([content, id]) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const json = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: "NFC" },
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" }, behavior: "Isolated", invert: false },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    },
    post_processor: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
    decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(tokenizer.vocab),
      merges: tokenizer.merges.map(([left, right]) => `${left} ${right}`),
    },
  };
  writeFileSync(join(folder, "tokenizer.json"), JSON.stringify(json));
  const config = {
    add_prefix_space: false,
    added_tokens_decoder: Object.fromEntries(added.map(({ id, ...rest }) => [String(id), rest])),
    additional_special_tokens: QWEN_SPECIAL_TOKENS.filter((token) => token !== "<|endoftext|>"),
    bos_token: null,
    chat_template: chatTemplate,
    clean_up_tokenization_spaces: false,
    eos_token: "<|im_end|>",
    errors: "replace",
    model_max_length: 32768,
    pad_token: "<|endoftext|>",
    split_special_tokens: false,
    tokenizer_class: "Qwen2Tokenizer",
    unk_token: null,
  };
  writeFileSync(join(folder, "tokenizer_config.json"), JSON.stringify(config, null, 2));
  return tokenizer;
}

/** Reference encoding of plain text (no special tokens) with the tokenizer's merges. */
export function encodeQwenReference(tokenizer: QwenTokenizer, text: string): number[] {
  const ranks = new Map(tokenizer.merges.map(([left, right], rank) => [`${left} ${right}`, rank]));
  const ids: number[] = [];
  for (const word of words(text.normalize("NFC"))) {
    const symbols = [...word];
    for (;;) {
      let bestRank = Infinity;
      let at = -1;
      for (let i = 0; i + 1 < symbols.length; i++) {
        const rank = ranks.get(`${symbols[i]} ${symbols[i + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          at = i;
        }
      }
      if (at < 0) break;
      symbols.splice(at, 2, symbols[at]! + symbols[at + 1]!);
    }
    for (const symbol of symbols) {
      const id = tokenizer.vocab.get(symbol);
      if (id === undefined) throw new Error(`no token for ${JSON.stringify(symbol)}`);
      ids.push(id);
    }
  }
  return ids;
}
