import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Template } from "@huggingface/jinja";
import { encode } from "gpt-tokenizer/encoding/o200k_harmony";
import type { Llama, LlamaModel, Token } from "node-llama-cpp";
import { GgufTokenType } from "../../src/core/gguf/constants";
import { readTokenizerMetadata } from "../../src/core/gguf/tokenizerMetadata";
import { GgufWriter } from "../../src/core/gguf/writer";
import { HARMONY_CHAT_TEMPLATE } from "../../src/core/tokenizers/harmonyChatTemplate";
import { HARMONY_VOCABULARY_SIZE } from "../../src/core/tokenizers/harmonyVocabulary";
import { writeHarmonyTokenizerFiles } from "../../src/core/tokenizers/huggingFaceTokenizerJson";

// The end-to-end check of what the tokenizer files are for: the GGUF exporter's tokenizer
// metadata built from them, loaded by llama.cpp (vocabulary only), tokenizes like tiktoken.

const TEXTS = [
  'export function add(a: number, b: number): number {\n\treturn a + b; // sum\n}\n',
  "Grüße aus Köln! Ça coûte 12,50 €. 東京は晴れです。 Привет, мир! مرحبا بالعالم",
  "Deploy 🚀🚀 done ✅ — family 👨‍👩‍👧‍👦, flags 🇫🇷🇯🇵, skin 👍🏽",
  "a  b   c\t\td\n\n\n   e \r\n f    \n\t \n   ",
  "1 12 123 1234 12345 3.14159 -42 1e-9 0x1F 1,000,000 ٣٤٥ ½",
  "I'm sure you'RE right, they'll say we'd DON'T HTTPServer parseJSONResponse",
];

let folder: string;
let llama: Llama;
let model: LlamaModel;
let metadata: Awaited<ReturnType<typeof readTokenizerMetadata>>;

before(async () => {
  folder = await mkdtemp(join(tmpdir(), "harmony-gguf-"));
  await writeHarmonyTokenizerFiles(folder);
  metadata = await readTokenizerMetadata(folder, { vocabSize: HARMONY_VOCABULARY_SIZE, pre: "gpt-4o", fallbackIds: {} });
  const writer = new GgufWriter(join(folder, "vocab.gguf"));
  // A vocabulary-only file: llama.cpp reads the architecture's hyper-parameters and the
  // tokenizer, no tensors. "llama" needs the fewest keys; the vocabulary does not depend on it.
  writer.addString("general.architecture", "llama");
  writer.addUint32("llama.context_length", 4096);
  writer.addUint32("llama.embedding_length", 64);
  writer.addUint32("llama.block_count", 1);
  writer.addUint32("llama.feed_forward_length", 128);
  writer.addUint32("llama.attention.head_count", 4);
  writer.addFloat32("llama.attention.layer_norm_rms_epsilon", 1e-5);
  for (const entry of metadata) writer.addKeyValue(entry.key, entry.type, entry.value, entry.elementType);
  const { path } = await writer.writeAll();

  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  // Quiet: node-llama-cpp's memory estimate tries a full load first and logs the missing tensors.
  llama = await getLlama({ build: "never", gpu: false, logLevel: LlamaLogLevel.error, logger: () => {}, progressLogs: false, skipDownload: true });
  model = await llama.loadModel({ modelPath: path, vocabOnly: true, gpuLayers: 0 });
});

after(async () => {
  await model?.dispose();
  await llama?.dispose();
  await rm(folder, { recursive: true, force: true });
});

test("the exporter's tokenizer metadata from our files has the §3.7 shape", () => {
  const byKey = new Map(metadata.map((entry) => [entry.key, entry.value]));
  assert.equal((byKey.get("tokenizer.ggml.tokens") as readonly string[]).length, HARMONY_VOCABULARY_SIZE);
  assert.equal((byKey.get("tokenizer.ggml.merges") as readonly string[]).length, 446_189);
  assert.equal(byKey.get("tokenizer.ggml.bos_token_id"), 199_998);
  assert.equal(byKey.get("tokenizer.ggml.eos_token_id"), 200_002);
  assert.equal(byKey.get("tokenizer.ggml.padding_token_id"), 199_999);
  const types = byKey.get("tokenizer.ggml.token_type") as Int32Array;
  assert.equal(types[35_644], GgufTokenType.NORMAL);
  assert.equal(types[200_006], GgufTokenType.CONTROL);
  assert.equal(types[201_087], GgufTokenType.CONTROL);
  assert.equal(byKey.get("tokenizer.chat_template"), HARMONY_CHAT_TEMPLATE);
});

test("llama.cpp tokenizes ordinary text exactly like gpt-tokenizer's o200k_harmony", () => {
  for (const text of TEXTS) {
    const ids = [...model.tokenize(text, false)];
    assert.deepEqual(ids, encode(text), JSON.stringify(text));
    assert.equal(model.detokenize(model.tokenize(text, false)), text);
  }
});

test("llama.cpp splits words at combining marks where tiktoken does not (its 'gpt-4o' regex lacks \\p{M})", () => {
  // llama-vocab.cpp approximates the o200k regex without \p{M}, so Devanagari, Bengali, Thai...
  // tokenize differently from tiktoken in llama.cpp, for ggml-org's GPT-OSS GGUF as for ours.
  // If this starts failing, llama.cpp matches tiktoken now: move the text into TEXTS above.
  const hindi = "नमस्ते दुनिया";
  assert.notDeepEqual([...model.tokenize(hindi, false)], encode(hindi));
  assert.equal(model.detokenize(model.tokenize(hindi, false)), hindi);
});

test("llama.cpp reads harmony control tokens in rendered prompts and stops on <|return|> and <|call|>, not <|end|>", () => {
  const prompt = new Template(HARMONY_CHAT_TEMPLATE).render({ messages: [{ role: "user", content: "Hi" }], add_generation_prompt: true });
  const ids = [...model.tokenize(prompt, true)];
  assert.equal(ids[0], 200_006);
  assert.deepEqual(ids.slice(-7), [200_006, ...encode("user"), 200_008, ...encode("Hi"), 200_007, 200_006, 173_781]);
  assert.equal(model.tokens.bos, 199_998);
  assert.equal(model.tokens.eos, 200_002);
  const eog = (id: number): boolean => model.isEogToken(id as Token);
  assert.deepEqual([200_002, 200_012, 199_999, 200_007].map(eog), [true, true, true, false]);
});
