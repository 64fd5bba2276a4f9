/**
 * A Hugging Face model folder's tokenizer as data preparation needs it: tokenizer.json read by
 * @huggingface/tokenizers (pure TypeScript, nothing fetched), the chat template from
 * tokenizer_config.json (`chat_template`, a string or a list of named templates) or
 * chat_template.jinja, the special tokens of the config, and an identity (sha256 of
 * tokenizer.json) that shards and manifests record.
 *
 * Two encoders: `encode` parses added tokens (rendered chat-template text spells
 * `<|im_start|>` etc. and must become those ids, as transformers and llama.cpp do), and
 * `encodePlain`, which runs normalizer, pre-tokenizer and model only, so code or user text that
 * spells an added token stays text (llama.cpp's infill tokenizes prefix and suffix that way).
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { PrepareError } from "./errors";

export interface ModelTokenizer {
  folder: string;
  /** "sha256:<hex>" of tokenizer.json. */
  identity: string;
  /** Chat template text, when the model has one. */
  chatTemplate: string | undefined;
  /** Where the template came from (for error messages). */
  chatTemplateFile: string | undefined;
  /** Added tokens by content (tokenizer.json `added_tokens`). */
  addedTokens: ReadonlyMap<string, number>;
  /** The added tokens marked `special` (control tokens such as <|im_end|>, not <tool_call>). */
  controlTokens: ReadonlySet<string>;
  /** Special token strings of tokenizer_config.json (bos_token, eos_token, pad_token, ...). */
  specialTokens: Readonly<Record<string, string>>;
  /** Every id is below it: max(config.json vocab_size, largest token id + 1). */
  vocabSize: number;
  padId: number;
  encode(text: string): number[];
  encodePlain(text: string): number[];
  decode(ids: readonly number[]): string;
}

interface TokenizerJsonShape {
  added_tokens?: Array<{ id: number; content: string; special?: boolean }>;
  model?: { vocab?: Record<string, number> | Array<[string, number]> };
}

interface PipelineInternals {
  normalizer: ((text: string) => string) | null;
  pre_tokenizer: ((text: string, options?: unknown) => string[]) | null;
  model: ((pieces: string[]) => string[]) & { tokens_to_ids: Map<string, number>; unk_token_id?: number };
}

async function readJson(path: string, required: boolean): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if (!required && (error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new PrepareError("model_files", `Cannot read ${path}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new PrepareError("model_files", `${path} is not valid JSON: ${(error as Error).message}`);
  }
}

function tokenString(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value !== null && typeof value === "object" && typeof (value as { content?: unknown }).content === "string") {
    return (value as { content: string }).content;
  }
  return undefined;
}

function pickChatTemplate(config: Record<string, unknown>): string | undefined {
  const value = config["chat_template"];
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const named = value as Array<{ name?: unknown; template?: unknown }>;
    const chosen = named.find((entry) => entry.name === "default") ?? named[0];
    return typeof chosen?.template === "string" ? chosen.template : undefined;
  }
  return undefined;
}

export async function loadModelTokenizer(folder: string): Promise<ModelTokenizer> {
  const tokenizerPath = join(folder, "tokenizer.json");
  const configPath = join(folder, "tokenizer_config.json");
  let tokenizerBytes: Buffer;
  try {
    tokenizerBytes = await readFile(tokenizerPath);
  } catch (error) {
    throw new PrepareError("model_files", `Cannot read ${tokenizerPath}: ${(error as Error).message}`);
  }
  let tokenizerJson: TokenizerJsonShape;
  try {
    tokenizerJson = JSON.parse(tokenizerBytes.toString("utf8")) as TokenizerJsonShape;
  } catch (error) {
    throw new PrepareError("model_files", `${tokenizerPath} is not valid JSON: ${(error as Error).message}`);
  }
  const config = ((await readJson(configPath, false)) ?? {}) as Record<string, unknown>;
  const modelConfig = (await readJson(join(folder, "config.json"), false)) as { vocab_size?: unknown } | undefined;

  let chatTemplate = pickChatTemplate(config);
  let chatTemplateFile = chatTemplate !== undefined ? configPath : undefined;
  if (chatTemplate === undefined) {
    const jinjaPath = join(folder, "chat_template.jinja");
    try {
      chatTemplate = await readFile(jinjaPath, "utf8");
      chatTemplateFile = jinjaPath;
    } catch {
      // No template: the model can still take FIM samples.
    }
  }

  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(tokenizerJson, config);
  } catch (error) {
    throw new PrepareError("model_files", `${tokenizerPath} cannot be loaded: ${(error as Error).message}`);
  }
  const internals = tokenizer as unknown as PipelineInternals;

  const addedTokens = new Map<string, number>();
  const controlTokens = new Set<string>();
  let maxId = -1;
  for (const token of tokenizerJson.added_tokens ?? []) {
    addedTokens.set(token.content, token.id);
    if (token.special === true) controlTokens.add(token.content);
    maxId = Math.max(maxId, token.id);
  }
  for (const id of internals.model.tokens_to_ids.values()) maxId = Math.max(maxId, id);
  const configuredVocab = typeof modelConfig?.vocab_size === "number" ? modelConfig.vocab_size : 0;

  const specialTokens: Record<string, string> = {};
  for (const key of ["bos_token", "eos_token", "pad_token", "unk_token"]) {
    const value = tokenString(config[key]);
    if (value !== undefined) specialTokens[key] = value;
  }
  const padText = specialTokens["pad_token"] ?? specialTokens["eos_token"];
  const padId = (padText !== undefined ? addedTokens.get(padText) ?? internals.model.tokens_to_ids.get(padText) : undefined) ?? 0;

  const encodePlain = (text: string): number[] => {
    if (text.length === 0) return [];
    const normalized = internals.normalizer ? internals.normalizer(text) : text;
    const pieces = internals.pre_tokenizer ? internals.pre_tokenizer(normalized, { section_index: 0 }) : [normalized];
    return internals.model(pieces).map((token) => {
      const id = internals.model.tokens_to_ids.get(token) ?? internals.model.unk_token_id;
      if (id === undefined) throw new PrepareError("model_files", `${tokenizerPath}: token ${JSON.stringify(token)} has no id and there is no unk token.`);
      return id;
    });
  };

  return {
    folder,
    identity: `sha256:${createHash("sha256").update(tokenizerBytes).digest("hex")}`,
    chatTemplate,
    chatTemplateFile,
    addedTokens,
    controlTokens,
    specialTokens,
    vocabSize: Math.max(configuredVocab, maxId + 1),
    padId,
    encode: (text) => (text.length === 0 ? [] : tokenizer.encode(text, { add_special_tokens: false }).ids),
    encodePlain,
    decode: (ids) => (ids.length === 0 ? "" : tokenizer.decode([...ids], { skip_special_tokens: false, clean_up_tokenization_spaces: false })),
  };
}
