/**
 * Turns a Hugging Face byte-level BPE tokenizer (tokenizer.json, tokenizer_config.json,
 * chat_template.jinja) into the `tokenizer.*` metadata llama.cpp builds its vocabulary from
 * (reference: gpt-oss-and-gguf.md §3.7). Token strings stay in GPT-2's byte-to-unicode form,
 * exactly as tokenizer.json stores them; llama.cpp maps them back to bytes itself.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { GgufTokenType, GgufValueType } from "./constants";
import { GgufExportError } from "./errors";

export interface TokenizerKeyValue {
  key: string;
  type: GgufValueType;
  value: number | string | readonly string[] | Int32Array;
  elementType?: GgufValueType;
}

export interface TokenizerOptions {
  /** Embedding rows of the model; the token list is padded or checked against it. */
  vocabSize: number;
  /** llama.cpp pre-tokenizer name, e.g. "gpt-4o" for o200k_harmony. */
  pre: string;
  /** Ids from config.json / generation_config.json, used when tokenizer_config.json names none. */
  fallbackIds: { bos?: number | undefined; eos?: number | undefined; pad?: number | undefined };
}

interface AddedToken {
  id: number;
  content: string;
  special?: boolean;
}

export async function readTokenizerMetadata(folder: string, options: TokenizerOptions): Promise<TokenizerKeyValue[]> {
  const tokenizerPath = join(folder, "tokenizer.json");
  if (!existsSync(tokenizerPath)) {
    throw new GgufExportError("missing_file", `${folder} has no tokenizer.json; copy tokenizer.json, tokenizer_config.json and chat_template.jinja from the base model into it before exporting.`);
  }
  const tokenizer = await readJsonObject(tokenizerPath);
  const configPath = join(folder, "tokenizer_config.json");
  const tokenizerConfig = existsSync(configPath) ? await readJsonObject(configPath) : {};
  const model = tokenizer["model"] as Record<string, unknown> | undefined;
  if (!model || model["type"] !== "BPE" || typeof model["vocab"] !== "object" || !Array.isArray(model["merges"])) {
    throw new GgufExportError("tokenizer", `${tokenizerPath}: model type ${JSON.stringify(model?.["type"] ?? null)} is not supported; the exporter converts byte-level BPE tokenizers (model.type "BPE" with vocab and merges).`);
  }

  const vocab = model["vocab"] as Record<string, unknown>;
  const added = ((tokenizer["added_tokens"] as AddedToken[] | undefined) ?? []).filter((token) => Number.isInteger(token.id) && typeof token.content === "string");
  const addedById = new Map(added.map((token) => [token.id, token]));
  const tokens: string[] = new Array<string>(options.vocabSize);
  const types = new Int32Array(options.vocabSize);
  const place = (id: number, content: string): void => {
    if (!Number.isInteger(id) || id < 0 || id >= options.vocabSize) {
      throw new GgufExportError("tokenizer", `${tokenizerPath}: token ${JSON.stringify(content)} has id ${id}, but the model has ${options.vocabSize} embedding rows (config.json vocab_size); the tokenizer does not belong to this model.`);
    }
    const existing = tokens[id];
    if (existing !== undefined && existing !== content) {
      throw new GgufExportError("tokenizer", `${tokenizerPath}: id ${id} is used by both ${JSON.stringify(existing)} and ${JSON.stringify(content)}.`);
    }
    tokens[id] = content;
  };
  for (const [content, id] of Object.entries(vocab)) place(id as number, content);
  for (const token of added) place(token.id, token.content);
  for (let id = 0; id < options.vocabSize; id++) {
    const addedToken = addedById.get(id);
    if (tokens[id] === undefined) {
      // Rows the tokenizer never produces (padding up to the embedding size).
      tokens[id] = `[PAD${id}]`;
      types[id] = GgufTokenType.UNUSED;
    } else if (addedToken) {
      types[id] = addedToken.special === true || looksSpecial(addedToken.content) ? GgufTokenType.CONTROL : GgufTokenType.USER_DEFINED;
    } else {
      types[id] = GgufTokenType.NORMAL;
    }
  }
  const merges = (model["merges"] as unknown[]).map((merge, i) => {
    if (typeof merge === "string") return merge;
    if (Array.isArray(merge) && merge.length === 2 && merge.every((part) => typeof part === "string")) return `${merge[0]} ${merge[1]}`;
    throw new GgufExportError("tokenizer", `${tokenizerPath}: merge ${i} is ${JSON.stringify(merge)}; expected "a b" or ["a", "b"].`);
  });

  const idOf = (field: string, fallback: number | undefined): number | undefined => {
    const raw = tokenizerConfig[field];
    const content = typeof raw === "string" ? raw : typeof raw === "object" && raw !== null ? (raw as { content?: unknown }).content : undefined;
    if (typeof content !== "string") return fallback;
    const id = added.find((token) => token.content === content)?.id ?? (Object.hasOwn(vocab, content) ? (vocab[content] as number) : undefined);
    if (id === undefined) throw new GgufExportError("tokenizer", `${configPath}: ${field} ${JSON.stringify(content)} is not a token of ${tokenizerPath}.`);
    return id;
  };
  const { UINT32, STRING, ARRAY, INT32 } = GgufValueType;
  const entries: TokenizerKeyValue[] = [
    { key: "tokenizer.ggml.model", type: STRING, value: "gpt2" },
    { key: "tokenizer.ggml.pre", type: STRING, value: options.pre },
    { key: "tokenizer.ggml.tokens", type: ARRAY, elementType: STRING, value: tokens },
    { key: "tokenizer.ggml.token_type", type: ARRAY, elementType: INT32, value: types },
    { key: "tokenizer.ggml.merges", type: ARRAY, elementType: STRING, value: merges },
  ];
  const specialIds: Array<[string, number | undefined]> = [
    ["tokenizer.ggml.bos_token_id", idOf("bos_token", options.fallbackIds.bos)],
    ["tokenizer.ggml.eos_token_id", idOf("eos_token", options.fallbackIds.eos)],
    ["tokenizer.ggml.padding_token_id", idOf("pad_token", options.fallbackIds.pad)],
  ];
  for (const [key, id] of specialIds) if (id !== undefined) entries.push({ key, type: UINT32, value: id });
  const template = await readChatTemplate(folder, tokenizerConfig);
  if (template !== undefined) entries.push({ key: "tokenizer.chat_template", type: STRING, value: template });
  return entries;
}

/** chat_template.jinja wins over tokenizer_config.json's chat_template (transformers' order). */
async function readChatTemplate(folder: string, tokenizerConfig: Record<string, unknown>): Promise<string | undefined> {
  const jinjaPath = join(folder, "chat_template.jinja");
  if (existsSync(jinjaPath)) return readFile(jinjaPath, "utf8");
  const template = tokenizerConfig["chat_template"];
  if (typeof template === "string") return template;
  if (Array.isArray(template)) {
    const named = template as Array<{ name?: unknown; template?: unknown }>;
    const chosen = named.find((entry) => entry.name === "default") ?? named[0];
    if (typeof chosen?.template === "string") return chosen.template;
  }
  return undefined;
}

/** convert_hf_to_gguf also treats non-special added tokens shaped like <|name|> as control tokens. */
function looksSpecial(content: string): boolean {
  return /^<\|[^\s]*\|>$/.test(content);
}

async function readJsonObject(path: string): Promise<Record<string, unknown>> {
  try {
    const parsed: unknown = JSON.parse(await readFile(path, "utf8"));
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not a JSON object");
    return parsed as Record<string, unknown>;
  } catch (error) {
    throw new GgufExportError("tokenizer", `${path} is not valid JSON (${(error as Error).message}).`);
  }
}
