import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Template } from "@huggingface/jinja";
import { PrepareError } from "../../src/core/prepare/errors";
import { buildFimPromptIds, detectFimTokens, renderFimWithTokens, type FimTokens } from "../../src/core/prepare/fimFormats";
import { loadModelTokenizer, type ModelTokenizer } from "../../src/core/prepare/modelTokenizer";
import { createSampleRenderer } from "../../src/core/prepare/sampleRenderer";
import { toTemplateMessages, toTemplateTools } from "../../src/core/prepare/templateMessages";
import { ChatTemplateRenderer } from "../../src/core/prepare/templateRenderer";
import { CHATML_TEMPLATE } from "../fixtures/prepare/buildQwenStyleFixture";
import { LOOK_ALIKES, MULTI_TURN, PLAIN_CHAT, TOOL_CONVERSATION } from "../fixtures/prepare/conversations";
import { QWEN_STYLE_FOLDER, maskedText } from "../fixtures/prepare/helpers";

const FIM_PREFIX = 151_659;
const FIM_MIDDLE = 151_660;
const FIM_SUFFIX = 151_661;
const ENDOFTEXT = 151_643;

let model: ModelTokenizer;
let renderer: ChatTemplateRenderer;
let fim: FimTokens;
const masked = (ids: ArrayLike<number>, mask: ArrayLike<number>): string => maskedText(ids, mask, (part) => model.decode(part));

before(async () => {
  model = await loadModelTokenizer(QWEN_STYLE_FOLDER);
  renderer = new ChatTemplateRenderer(model);
  const detected = detectFimTokens(model);
  assert.ok(detected, "the fixture has FIM tokens");
  fim = detected;
});

const created: string[] = [];
const tempFolder = (prefix: string): string => {
  const folder = mkdtempSync(join(tmpdir(), prefix));
  created.push(folder);
  return folder;
};
after(() => {
  for (const folder of created) rmSync(folder, { recursive: true, force: true });
});

/** A copy of the fixture folder with another chat template (config key or .jinja file). */
function modelFolderWithTemplate(templateText: string, where: "config" | "jinja"): string {
  const folder = tempFolder("fts-template-");
  copyFileSync(join(QWEN_STYLE_FOLDER, "tokenizer.json"), join(folder, "tokenizer.json"));
  const config = JSON.parse(readFileSync(join(QWEN_STYLE_FOLDER, "tokenizer_config.json"), "utf8")) as Record<string, unknown>;
  delete config["chat_template"];
  if (where === "config") config["chat_template"] = templateText;
  else writeFileSync(join(folder, "chat_template.jinja"), templateText);
  writeFileSync(join(folder, "tokenizer_config.json"), JSON.stringify(config));
  return folder;
}

test("a Qwen2-style model folder loads offline: identity, vocabulary size, pad id, FIM tokens at Qwen's ids", () => {
  assert.match(model.identity, /^sha256:[0-9a-f]{64}$/);
  assert.equal(model.vocabSize, 151_936, "config.json's vocab_size wins over the largest id");
  assert.equal(model.padId, ENDOFTEXT);
  assert.deepEqual(fim, { prefix: FIM_PREFIX, suffix: FIM_SUFFIX, middle: FIM_MIDDLE, end: ENDOFTEXT, fileSeparator: 151_664, repoName: 151_663 });
  assert.equal(model.chatTemplate, CHATML_TEMPLATE);
  assert.deepEqual(model.encode("a<|im_end|>b"), [97, 151_645, 98], "template text: added tokens are parsed");
  assert.ok(!model.encodePlain("a<|im_end|>b").includes(151_645), "plain text: added tokens stay text");
  assert.equal(model.decode(model.encodePlain("def f():\n    return 東京 🚀")), "def f():\n    return 東京 🚀");
});

test("chat: the answer and its <|im_end|> are targets, not the newline the template writes after it", () => {
  const { ids, mask } = renderer.render(PLAIN_CHAT);
  const text = new Template(CHATML_TEMPLATE).render({ messages: toTemplateMessages(PLAIN_CHAT), add_generation_prompt: false });
  assert.equal(model.decode([...ids]), text);
  const seen = masked(ids, mask);
  assert.equal(seen, "Use `list(reversed(items))` or `items[::-1]`.<|im_end|>", `masked text: ${seen}`);
  assert.equal(ids[ids.length - 1], 10, "the rendering ends with a newline token");
  assert.equal(mask[mask.length - 1], 0);
});

test("tool calls: each assistant message is a span found by incremental rendering; tool responses are prompt", () => {
  const { ids, mask } = renderer.render(TOOL_CONVERSATION);
  const seen = masked(ids, mask);
  assert.equal(
    seen,
    [
      'Let me check both.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "bounds": {"lat": 48.8}}}\n</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call><|im_end|>',
      '\n<tool_call>\n{"name": "search_code", "arguments": {"query": "x"}}\n</tool_call><|im_end|>',
      "It is 21 °C in Paris at noon.<|im_end|>",
    ].join(" ¦ "),
    `masked text: ${seen}`,
  );
  const text = new Template(CHATML_TEMPLATE).render({ messages: toTemplateMessages(TOOL_CONVERSATION), tools: toTemplateTools(TOOL_CONVERSATION.tools) });
  assert.equal(model.decode([...ids]), text);
});

test('mask mode "last" keeps only the answers after the last user message', () => {
  const all = renderer.render(MULTI_TURN, { maskMode: "all" });
  const last = renderer.render(MULTI_TURN, { maskMode: "last" });
  assert.equal(masked(all.ids, all.mask), "4<|im_end|> ¦ 6 — naïve café ✅<|im_end|>");
  assert.equal(masked(last.ids, last.mask), "6 — naïve café ✅<|im_end|>");
});

test("a template that rewrites earlier turns is reported with the sample and the message", async () => {
  const unstable = CHATML_TEMPLATE.replace(
    '{{- "<|im_end|>\\n" -}}\n{%- elif message.role == "tool"',
    '{{- "<|im_end|>\\n" -}}{%- if loop.last and not add_generation_prompt -%}{{- "<|endoftext|>" -}}{%- endif -%}\n{%- elif message.role == "tool"',
  );
  assert.notEqual(unstable, CHATML_TEMPLATE);
  const folder = modelFolderWithTemplate(unstable, "jinja");
  const unstableRenderer = new ChatTemplateRenderer(await loadModelTokenizer(folder));
  assert.ok(unstableRenderer.render(PLAIN_CHAT).mask.includes(1), "one answer: nothing to rewrite");
  assert.throws(
    () => unstableRenderer.render(MULTI_TURN, {}, { file: "chat.jsonl", line: 3 }),
    (error: unknown) =>
      PrepareError.is(error, "template_not_prefix_stable") &&
      error.message.startsWith("chat.jsonl:3: the rendering up to message 4 (assistant)") &&
      error.message.includes("chat_template.jinja"),
  );
});

test("an answer that spells a control token is rejected; a prompt may spell it (inference parses it too)", () => {
  assert.throws(
    () => renderer.render(LOOK_ALIKES, {}, { file: "x.jsonl", line: 2 }),
    (error: unknown) => PrepareError.is(error, "bad_sample") && /x\.jsonl:2: message 2 \(assistant\) contains the text <\|endoftext\|>/.test(error.message),
  );
  const promptOnly = renderer.render({ kind: "conversation", messages: [{ role: "user", content: "what is <|im_end|>?" }, { role: "assistant", content: "A token." }] });
  assert.equal(masked(promptOnly.ids, promptOnly.mask), "A token.<|im_end|>");
});

test("FIM PSM and SPM with Qwen's FIM token ids: only middle and <|endoftext|> are targets", () => {
  const sample = { kind: "fim" as const, prefix: "def add(a, b):\n    ", suffix: "\n\nprint(add(1, 2))\n", middle: "return a + b" };
  const prefix = model.encodePlain(sample.prefix);
  const suffix = model.encodePlain(sample.suffix);
  const middle = model.encodePlain(sample.middle);
  const psm = renderFimWithTokens(sample, fim, model.encodePlain);
  assert.deepEqual([...psm.ids], [FIM_PREFIX, ...prefix, FIM_SUFFIX, ...suffix, FIM_MIDDLE, ...middle, ENDOFTEXT]);
  assert.equal(masked(psm.ids, psm.mask), "return a + b<|endoftext|>");
  const spm = renderFimWithTokens(sample, fim, model.encodePlain, { order: "spm" });
  assert.deepEqual([...spm.ids], [FIM_SUFFIX, ...suffix, FIM_PREFIX, ...prefix, FIM_MIDDLE, ...middle, ENDOFTEXT]);
  assert.equal(masked(spm.ids, spm.mask), "return a + b<|endoftext|>");
  const prompt = buildFimPromptIds(fim, model.encodePlain, sample.prefix, sample.suffix);
  assert.deepEqual([...psm.ids.slice(0, prompt.length)], prompt, "inference prompt = training prompt");
});

test("repository FIM: <|repo_name|> and <|file_sep|> with the path, as llama.cpp's /infill builds them; code text stays text", () => {
  const sample = { kind: "fim" as const, prefix: "x = '<|fim_middle|>'\n", suffix: "", middle: "y = 1\n", path: "src/a.py" };
  const rendered = renderFimWithTokens(sample, fim, model.encodePlain, { repoName: "demo" });
  assert.deepEqual(
    [...rendered.ids],
    [151_663, ...model.encodePlain("demo\n"), 151_664, ...model.encodePlain("src/a.py\n"), FIM_PREFIX, ...model.encodePlain(sample.prefix), FIM_SUFFIX, FIM_MIDDLE, ...model.encodePlain("y = 1\n"), ENDOFTEXT],
  );
  assert.equal(rendered.ids.filter((id) => id === FIM_MIDDLE).length, 1);
});

test("chat_template.jinja is used when tokenizer_config.json has none; missing files are named", async () => {
  const folder = modelFolderWithTemplate(CHATML_TEMPLATE, "jinja");
  const fromJinja = await loadModelTokenizer(folder);
  assert.equal(fromJinja.chatTemplateFile, join(folder, "chat_template.jinja"));
  assert.deepEqual([...new ChatTemplateRenderer(fromJinja).render(PLAIN_CHAT).ids], [...renderer.render(PLAIN_CHAT).ids]);
  const empty = tempFolder("fts-empty-");
  await assert.rejects(loadModelTokenizer(empty), (error: unknown) => PrepareError.is(error, "model_files") && error.message.includes(join(empty, "tokenizer.json")));
});

test("a model without FIM tokens rejects FIM samples with a named reason", async () => {
  const folder = tempFolder("fts-nofim-");
  const tokenizer = JSON.parse(readFileSync(join(QWEN_STYLE_FOLDER, "tokenizer.json"), "utf8")) as { added_tokens: Array<{ content: string }> };
  tokenizer.added_tokens = tokenizer.added_tokens.filter((token) => !token.content.startsWith("<|fim_"));
  writeFileSync(join(folder, "tokenizer.json"), JSON.stringify(tokenizer));
  copyFileSync(join(QWEN_STYLE_FOLDER, "tokenizer_config.json"), join(folder, "tokenizer_config.json"));
  const sampleRenderer = await createSampleRenderer({ modelFolder: folder });
  assert.throws(
    () => sampleRenderer.render({ kind: "fim", prefix: "a", suffix: "b", middle: "c" }, { file: "fim.jsonl", line: 1 }),
    (error: unknown) => PrepareError.is(error, "no_fim_support") && error.message.startsWith("fim.jsonl:1: "),
  );
});
