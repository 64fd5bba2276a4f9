import assert from "node:assert/strict";
import { before, test } from "node:test";
import { decode, encode } from "gpt-tokenizer/encoding/o200k_harmony";
import { deriveBpeMerges, mergeToText, type BpeMerge } from "../../src/core/tokenizers/bpeMerges";
import { BYTE_TO_UNICODE, bytesToUnicode, unicodeToBytes } from "../../src/core/tokenizers/bytesToUnicode";
import {
  HARMONY_MERGEABLE_TOKEN_COUNT,
  HARMONY_VOCABULARY_SIZE,
  HarmonyTokenId,
  loadHarmonyVocabulary,
  type HarmonyVocabulary,
} from "../../src/core/tokenizers/harmonyVocabulary";

let vocabulary: HarmonyVocabulary;
let merges: BpeMerge[];
let mergeMilliseconds = 0;

before(async () => {
  vocabulary = await loadHarmonyVocabulary();
  const started = performance.now();
  merges = deriveBpeMerges(vocabulary.mergeableTokenTexts);
  mergeMilliseconds = performance.now() - started;
});

test("the byte-level alphabet is GPT-2's: printable bytes keep their character, the rest move past U+00FF", () => {
  assert.equal(new Set(BYTE_TO_UNICODE).size, 256);
  assert.equal(BYTE_TO_UNICODE[0x41], "A");
  assert.equal(BYTE_TO_UNICODE[0x20], "\u0120"); // "Ġ", the space every GPT-2 style vocabulary shows
  assert.equal(BYTE_TO_UNICODE[0x0a], "\u010a"); // "Ċ"
  assert.equal(BYTE_TO_UNICODE[0x00], "\u0100");
  assert.equal(BYTE_TO_UNICODE[0xad], "\u0143"); // soft hyphen is not printable: the 68th moved byte
  const everyByte = Uint8Array.from({ length: 256 }, (_, byte) => byte);
  assert.deepEqual(unicodeToBytes(bytesToUnicode(everyByte)), everyByte);
  assert.throws(() => unicodeToBytes("a b"), /not byte-level text/);
});

test("the vocabulary has 201088 ids: 199998 ranks, then the harmony special tokens of §5.1", () => {
  assert.equal(vocabulary.tokenTexts.length, HARMONY_VOCABULARY_SIZE);
  assert.equal(vocabulary.mergeableTokenTexts.length, HARMONY_MERGEABLE_TOKEN_COUNT);
  assert.equal(vocabulary.specialTokens.length, HARMONY_VOCABULARY_SIZE - HARMONY_MERGEABLE_TOKEN_COUNT);
  const expected: [number, string][] = [
    [199_998, "<|startoftext|>"],
    [199_999, "<|endoftext|>"],
    [200_000, "<|reserved_200000|>"],
    [200_001, "<|reserved_200001|>"],
    [200_002, "<|return|>"],
    [200_003, "<|constrain|>"],
    [200_004, "<|reserved_200004|>"],
    [200_005, "<|channel|>"],
    [200_006, "<|start|>"],
    [200_007, "<|end|>"],
    [200_008, "<|message|>"],
    [200_009, "<|reserved_200009|>"],
    [200_011, "<|reserved_200011|>"],
    [200_012, "<|call|>"],
    [200_013, "<|reserved_200013|>"],
    [200_017, "<|reserved_200017|>"],
    [200_018, "<|endofprompt|>"],
    [200_019, "<|reserved_200019|>"],
    [201_087, "<|reserved_201087|>"],
  ];
  for (const [id, content] of expected) assert.equal(vocabulary.tokenTexts[id], content, `id ${id}`);
  assert.deepEqual(
    Object.values(HarmonyTokenId).map((id) => vocabulary.tokenTexts[id]),
    ["<|startoftext|>", "<|endoftext|>", "<|return|>", "<|constrain|>", "<|channel|>", "<|start|>", "<|end|>", "<|message|>", "<|call|>", "<|endofprompt|>"],
  );
  vocabulary.specialTokens.forEach((token, index) => assert.equal(token.id, HARMONY_MERGEABLE_TOKEN_COUNT + index));
  assert.equal(new Set(vocabulary.tokenTexts).size, HARMONY_VOCABULARY_SIZE, "every token text is unique");
});

test("special tokens agree with gpt-tokenizer's decoder, and ordinary ids with its encoder (§5.1)", () => {
  for (const { id, content } of vocabulary.specialTokens) assert.equal(decode([id]), content);
  assert.deepEqual(encode("analysis"), [35_644]);
  assert.deepEqual(encode("assistant"), [173_781]);
  assert.deepEqual(encode("final"), [17_196]);
  assert.equal(vocabulary.tokenTexts[35_644], "analysis");
  assert.equal(vocabulary.tokenTexts[173_781], "assistant");
  assert.equal(vocabulary.tokenTexts[17_196], "final");
  assert.equal(vocabulary.tokenTexts[encode(" the")[0] ?? -1], "\u0120the");
});

test("token bytes match gpt-tokenizer's decoding, and bytes that are not UTF-8 survive as byte-level text", () => {
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  let notUtf8 = 0;
  for (let id = 0; id < HARMONY_MERGEABLE_TOKEN_COUNT; id += 1) {
    const bytes = vocabulary.mergeableTokenBytes[id] ?? new Uint8Array();
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      notUtf8 += 1; // a fragment of a multi-byte character; only its bytes are defined
      assert.deepEqual(unicodeToBytes(vocabulary.mergeableTokenTexts[id] ?? ""), bytes);
      continue;
    }
    if (id % 101 === 0) assert.equal(text, decode([id]), `id ${id}`);
  }
  assert.ok(notUtf8 >= 256 - 128, `${notUtf8} tokens are not UTF-8 (the 128 high bytes at least)`);
});

test(`derives o200k_harmony's 446189 merges in rank order (measured under 10 s)`, (t) => {
  t.diagnostic(`deriveBpeMerges: ${merges.length} merges in ${mergeMilliseconds.toFixed(0)} ms`);
  assert.equal(merges.length, 446_189);
  assert.ok(mergeMilliseconds < 10_000, `took ${mergeMilliseconds.toFixed(0)} ms`);
  // The first merges of GPT-OSS's published tokenizer.json: runs of spaces, then "in".
  assert.deepEqual(merges.slice(0, 5).map(mergeToText), ["Ġ Ġ", "Ġ ĠĠĠ", "ĠĠ ĠĠ", "ĠĠĠ Ġ", "i n"]);

  const rankOf = new Map(vocabulary.mergeableTokenTexts.map((text, rank) => [text, rank]));
  let previousRank = -1;
  for (const [left, right] of merges) {
    const rank = rankOf.get(left + right);
    assert.ok(rank !== undefined && rankOf.has(left) && rankOf.has(right), `${left} ${right}`);
    assert.ok(rank >= previousRank, `merge "${left} ${right}" is out of rank order`);
    previousRank = rank;
  }
  const texts = new Set(merges.map(mergeToText));
  assert.equal(texts.size, merges.length, "no merge is listed twice");
});

test("every multi-byte token is the result of at least one merge", () => {
  const produced = new Set(merges.map(([left, right]) => left + right));
  const multiByte = vocabulary.mergeableTokenTexts.filter((text) => text.length > 1);
  assert.equal(multiByte.length, HARMONY_MERGEABLE_TOKEN_COUNT - 256);
  for (const text of multiByte) assert.ok(produced.has(text), text);
});

test("merges of a tiny rank table list every two-token split, ordered by the left part's rank", () => {
  const ranks = ["a", "b", "c", "ab", "bc", "abc", "cab"];
  assert.deepEqual(deriveBpeMerges(ranks), [
    ["a", "b"],
    ["b", "c"],
    ["a", "bc"], // "a" (rank 0) before "ab" (rank 3)
    ["ab", "c"],
    ["c", "ab"],
  ]);
  assert.throws(() => deriveBpeMerges(["a", "b", "a"]), /appears twice/);
  assert.throws(() => deriveBpeMerges(["a", "b", "abc"]), /cannot be built/);
});
