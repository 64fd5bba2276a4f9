import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Template } from "@huggingface/jinja";
import { Tokenizer } from "@huggingface/tokenizers";
import { encode } from "gpt-tokenizer/encoding/o200k_harmony";
import { deriveBpeMerges } from "../../src/core/tokenizers/bpeMerges";
import { HARMONY_CHAT_TEMPLATE } from "../../src/core/tokenizers/harmonyChatTemplate";
import { loadHarmonyVocabulary } from "../../src/core/tokenizers/harmonyVocabulary";
import {
  buildHarmonyTokenizerConfig,
  buildHarmonyTokenizerJson,
  writeHarmonyTokenizerFiles,
  type TokenizerJson,
} from "../../src/core/tokenizers/huggingFaceTokenizerJson";

/** The pre-tokenizer pattern of GPT-OSS's published tokenizer.json (Oniguruma syntax). */
const PUBLISHED_O200K_PATTERN = String.raw`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`;

const SAMPLES: Record<string, string> = {
  asciiCode: 'export function add(a: number, b: number): number {\n\treturn a + b; // sum\n}\nconst url = "https://example.com/a/b?c=1&d=2";\n',
  python: "def main():\n    for i in range(10):\n        print(f\"{i:>3}\")\n\n\nif __name__ == '__main__':\n    main()\n",
  unicode: "Grüße aus Köln! Ça coûte 12,50 €. 東京は晴れです。 Привет, мир! مرحبا بالعالم नमस्ते दुनिया ᏣᎳᎩ",
  emoji: "Deploy 🚀🚀 done ✅ — family 👨‍👩‍👧‍👦, flags 🇫🇷🇯🇵, skin 👍🏽, keycap 1️⃣",
  whitespace: "a  b   c\t\td\n\n\n   e \r\n f    \n\t \n   ",
  numbers: "1 12 123 1234 12345 3.14159 -42 1e-9 0x1F 2024-06-30 1,000,000 ٣٤٥ ½",
  contractions: "I'm sure you'RE right, they'll say we'd DON'T can't won't it's O'Neil's",
  casing: "HTTPServer parseJSONResponse camelCaseWord SCREAMING_SNAKE snake_case kebab-case ÄÖÜäöü",
  punctuation: "...!!! ??? <<>> ==> //// \\\\ ''' \"\"\" ``` ```ts\n} ]] ))\n",
};

let tokenizerJson: TokenizerJson;
let buildMilliseconds = 0;
let serializedBytes = 0;
let tokenizer: Tokenizer;
let folder: string;

before(async () => {
  const started = performance.now();
  const vocabulary = await loadHarmonyVocabulary();
  tokenizerJson = buildHarmonyTokenizerJson(vocabulary, deriveBpeMerges(vocabulary.mergeableTokenTexts));
  serializedBytes = Buffer.byteLength(JSON.stringify(tokenizerJson), "utf8");
  buildMilliseconds = performance.now() - started;
  tokenizer = new Tokenizer(tokenizerJson, buildHarmonyTokenizerConfig(vocabulary));
  folder = await mkdtemp(join(tmpdir(), "harmony-tokenizer-"));
});

after(async () => {
  await rm(folder, { recursive: true, force: true });
});

test("tokenizer.json has the published GPT-OSS layout", (t) => {
  t.diagnostic(`tokenizer.json built and serialized in ${buildMilliseconds.toFixed(0)} ms, ${serializedBytes} bytes`);
  const { model } = tokenizerJson;
  assert.equal(model.type, "BPE");
  assert.equal(model.ignore_merges, true);
  assert.equal(model.byte_fallback, false);
  assert.equal(Object.keys(model.vocab).length, 199_998);
  assert.equal(model.merges.length, 446_189);
  assert.equal(model.vocab["analysis"], 35_644);
  assert.equal(model.vocab["\u0120the"], encode(" the")[0]);
  assert.deepEqual(tokenizerJson.pre_tokenizer, {
    type: "Sequence",
    pretokenizers: [
      { type: "Split", pattern: { Regex: PUBLISHED_O200K_PATTERN }, behavior: "Isolated", invert: false },
      { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
    ],
  });
  assert.equal(tokenizerJson.normalizer, null);
  assert.equal(tokenizerJson.decoder["type"], "ByteLevel");
  assert.equal(tokenizerJson.added_tokens.length, 1_090);
  assert.ok(tokenizerJson.added_tokens.every((token) => token.special && !token.normalized));
  assert.deepEqual(
    tokenizerJson.added_tokens.find((token) => token.id === 200_006),
    { id: 200_006, content: "<|start|>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
  );
});

for (const [name, text] of Object.entries(SAMPLES)) {
  test(`Hugging Face's BPE over our tokenizer.json encodes ${name} exactly like gpt-tokenizer`, () => {
    const expected = encode(text);
    const { ids } = tokenizer.encode(text, { add_special_tokens: false });
    assert.deepEqual(ids, expected);
    assert.equal(tokenizer.decode(ids), text);
  });
}

test("both tokenizers agree on this repository's own source files", async () => {
  const files = ["src/core/sidecarProcess.ts", "src/core/environmentCheck.ts", "ARCHITECTURE.md", "README.md"];
  for (const file of files) {
    const text = await readFile(join(__dirname, "..", "..", file), "utf8");
    assert.deepEqual(tokenizer.encode(text, { add_special_tokens: false }).ids, encode(text), file);
  }
});

test("both tokenizers agree on pseudo-random text mixing scripts, digits, spaces and symbols", () => {
  const alphabet = [..."aeiou stnrlTHEQZ0123456789 \n\t\r.,;:'\"!?-_/\\(){}[]<>@#$%^&*+=~`|éüßçñøåłœ€£¥©ÆЖжЯяΩωλあいうアイウ漢字한국어ไทยעבריתعربي😀🎉👍🏽‍♀️"];
  let seed = 20_250_801;
  const next = (): number => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648; // a fixed LCG: the same strings every run
    return seed / 2_147_483_648;
  };
  for (let sample = 0; sample < 300; sample += 1) {
    let text = "";
    const length = 1 + Math.floor(next() * 80);
    for (let index = 0; index < length; index += 1) text += alphabet[Math.floor(next() * alphabet.length)];
    assert.deepEqual(tokenizer.encode(text, { add_special_tokens: false }).ids, encode(text), JSON.stringify(text));
  }
});

test("control tokens in rendered harmony text become single ids; ordinary words keep their ids", () => {
  const rendered = new Template(HARMONY_CHAT_TEMPLATE).render({
    messages: [{ role: "user", content: "Hi" }],
    add_generation_prompt: true,
  });
  const { ids } = tokenizer.encode(`${rendered}<|channel|>final<|message|>Hello!<|return|>`, { add_special_tokens: false });
  assert.equal(ids[0], 200_006); // <|start|>
  assert.deepEqual(ids.slice(-8), [200_006, 173_781, 200_005, 17_196, 200_008, ...encode("Hello!"), 200_002]);
  const countOf = (id: number): number => ids.filter((value) => value === id).length;
  assert.equal(countOf(200_006), 3); // system, user, assistant
  assert.equal(countOf(200_008), 3);
  assert.equal(countOf(200_007), 2);
});

test("writeHarmonyTokenizerFiles writes the four files atomically and they load back", async (t) => {
  const started = performance.now();
  const written = await writeHarmonyTokenizerFiles(folder);
  t.diagnostic(`wrote ${written.map((file) => `${file.path.split("/").pop()} ${file.bytes} B`).join(", ")} in ${(performance.now() - started).toFixed(0)} ms`);
  assert.deepEqual((await readdir(folder)).sort(), ["chat_template.jinja", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]);

  const onDisk = JSON.parse(await readFile(join(folder, "tokenizer.json"), "utf8")) as TokenizerJson;
  assert.equal(onDisk.model.merges.length, 446_189);
  const config = JSON.parse(await readFile(join(folder, "tokenizer_config.json"), "utf8")) as Record<string, unknown>;
  assert.equal(config["bos_token"], "<|startoftext|>");
  assert.equal(config["eos_token"], "<|return|>");
  assert.equal(config["pad_token"], "<|endoftext|>");
  assert.equal(config["model_max_length"], 131_072);
  assert.equal(config["tokenizer_class"], "PreTrainedTokenizerFast");
  assert.equal(Object.keys(config["added_tokens_decoder"] as object).length, 1_090);
  assert.deepEqual(JSON.parse(await readFile(join(folder, "special_tokens_map.json"), "utf8")), {
    bos_token: "<|startoftext|>",
    eos_token: "<|return|>",
    pad_token: "<|endoftext|>",
  });
  assert.equal(await readFile(join(folder, "chat_template.jinja"), "utf8"), HARMONY_CHAT_TEMPLATE);

  const reloaded = new Tokenizer(onDisk, config);
  const text = SAMPLES["unicode"] ?? "";
  assert.deepEqual(reloaded.encode(text, { add_special_tokens: false }).ids, encode(text));
  // A second write replaces the files in place and leaves no temporary files behind.
  await writeHarmonyTokenizerFiles(folder);
  assert.equal((await readdir(folder)).length, 4);
});
