import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { Template } from "@huggingface/jinja";
import { GgufValueType } from "../../src/core/gguf/constants";
import { GgufWriter } from "../../src/core/gguf/writer";
import { defaultLmStudioModelsDir, installIntoLmStudio } from "../../src/core/handoff/lmStudio";
import { HARMONY_OLLAMA_TEMPLATE, buildOllamaModelfile, chatmlOllamaTemplate, detectChatFormat, writeOllamaModelfile } from "../../src/core/handoff/ollamaModelfile";
import { HARMONY_CHAT_TEMPLATE } from "../../src/core/tokenizers/harmonyChatTemplate";
import { QWEN_CHATML_TEMPLATE, QWEN_SPECIAL_TOKENS } from "../support/qwenTokenizer";

const scratch = mkdtempSync(join(tmpdir(), "fts-handoff-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A metadata-only GGUF (all the hand-off reads): architecture, context, tokens, template. */
async function metadataGguf(name: string, architecture: string, template: string, tokens: string[], contextLength: number): Promise<string> {
  const path = join(scratch, name);
  const writer = new GgufWriter(path);
  writer.addString("general.architecture", architecture);
  writer.addUint32(`${architecture}.context_length`, contextLength);
  writer.addString("tokenizer.ggml.model", "gpt2");
  writer.addArray("tokenizer.ggml.tokens", GgufValueType.STRING, tokens);
  writer.addString("tokenizer.chat_template", template);
  await writer.writeAll();
  return path;
}

const QWEN_TOKENS = ["a", "b", ...QWEN_SPECIAL_TOKENS];
const HARMONY_TOKENS = ["a", "<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|return|>", "<|call|>"];

test("a Qwen (ChatML) GGUF gets a Modelfile with its template, default system, FIM branch, sampling and stops", async () => {
  const gguf = await metadataGguf("coder-Q4_K_M.gguf", "qwen2", QWEN_CHATML_TEMPLATE, QWEN_TOKENS, 32768);
  const modelFolder = join(scratch, "qwen-source");
  mkdirSync(modelFolder);
  writeFileSync(join(modelFolder, "generation_config.json"), JSON.stringify({ do_sample: true, temperature: 0.7, top_p: 0.8, top_k: 20, repetition_penalty: 1.05 }));
  const written = await writeOllamaModelfile(gguf, { modelFolder });
  assert.equal(written.path, join(scratch, "coder-Q4_K_M.Modelfile"));
  assert.equal(written.chatFormat, "chatml");
  assert.equal(written.createCommand, "ollama create coder-q4_k_m -f coder-Q4_K_M.Modelfile");
  const text = readFileSync(written.path, "utf8");
  assert.equal(text, written.content);
  const lines = text.split("\n");
  assert.ok(lines.includes("FROM ./coder-Q4_K_M.gguf"), "FROM is relative to the Modelfile, which Ollama resolves from its own folder");
  assert.ok(text.includes(`TEMPLATE """${chatmlOllamaTemplate(true)}"""`));
  assert.ok(text.includes("{{- if .Suffix }}<|fim_prefix|>{{ .Prompt }}<|fim_suffix|>{{ .Suffix }}<|fim_middle|>"), "FIM tokens in the vocabulary: /api/generate with a suffix does infill");
  assert.ok(lines.includes('SYSTEM """You are Qwen, created by Alibaba Cloud. You are a helpful assistant."""'), "the template's own default system message");
  for (const line of ["PARAMETER num_ctx 8192", "PARAMETER temperature 0.7", "PARAMETER top_p 0.8", "PARAMETER top_k 20", "PARAMETER repeat_penalty 1.05", 'PARAMETER stop "<|im_end|>"', 'PARAMETER stop "<|endoftext|>"']) {
    assert.ok(lines.includes(line), `has ${line}`);
  }
  assert.ok(!text.includes("ADAPTER"));
});

test("a GPT-OSS GGUF gets the harmony template Ollama's harmony parser recognises, with <|return|> and <|call|> stops", async () => {
  const gguf = await metadataGguf("gpt-oss-F16.gguf", "gpt-oss", HARMONY_CHAT_TEMPLATE, HARMONY_TOKENS, 131072);
  const adapter = join(scratch, "gpt-oss-adapter.gguf");
  writeFileSync(adapter, "");
  const written = await writeOllamaModelfile(gguf, { adapterPath: adapter });
  assert.equal(written.chatFormat, "harmony");
  const lines = written.content.split("\n");
  assert.ok(lines.includes("FROM ./gpt-oss-F16.gguf") && lines.includes("ADAPTER ./gpt-oss-adapter.gguf"));
  assert.ok(written.content.includes(`TEMPLATE """${HARMONY_OLLAMA_TEMPLATE}"""`));
  // Ollama: a gpt-oss model whose template contains <|start|> and <|end|> is parsed as harmony.
  assert.ok(HARMONY_OLLAMA_TEMPLATE.includes("<|start|>") && HARMONY_OLLAMA_TEMPLATE.includes("<|end|>"));
  for (const line of ["PARAMETER num_ctx 8192", "PARAMETER temperature 1", "PARAMETER top_p 1", 'PARAMETER stop "<|return|>"', 'PARAMETER stop "<|call|>"']) assert.ok(lines.includes(line), `has ${line}`);
  assert.ok(!lines.some((line) => line.startsWith("SYSTEM")), "harmony's system message is built by the template; instructions come from the user's SYSTEM");
});

test("refuses a GGUF whose chat format it cannot translate, and quotes awkward SYSTEM text safely", async () => {
  const gguf = await metadataGguf("llama.gguf", "llama", "{{ bos_token }}{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}", ["a"], 4096);
  await assert.rejects(writeOllamaModelfile(gguf), /neither harmony nor ChatML/);
  assert.equal(detectChatFormat(undefined), undefined);
  const modelfile = buildOllamaModelfile({ from: "./m.gguf", chatFormat: "chatml", system: 'Say """hi"""' });
  assert.ok(modelfile.includes(`SYSTEM ${JSON.stringify('Say """hi"""')}`));
});

/** Go's text/template over Ollama-shaped data (test/fixtures/export/ollama-template); undefined without Go. */
function goRenderer(): ((template: string, data: object) => string) | undefined {
  if (spawnSync("go", ["version"]).status !== 0) return undefined;
  const binary = join(scratch, "render-ollama-template");
  const env = { ...process.env, GO111MODULE: "off", GOCACHE: join(scratch, "gocache") };
  execFileSync("go", ["build", "-o", binary, join(__dirname, "..", "fixtures", "export", "ollama-template", "main.go")], { env });
  return (template, data) => execFileSync(binary, { input: JSON.stringify({ template, data }), encoding: "utf8" });
}

test("Ollama's template engine renders the Modelfile templates exactly like the models' own Jinja templates", { skip: spawnSync("go", ["version"]).status !== 0 ? "Go is not installed" : false }, () => {
  const render = goRenderer()!;
  const tool = { name: "get_weather", description: "Weather now", parameters: { type: "object", required: ["city"], properties: { city: { type: "string", description: "City name" }, days: { type: "integer" }, unit: { type: "string", enum: ["c", "f"] } } } };
  // Ollama's data: api.Message / api.Tool (property types are lists), system messages also collated into .System.
  const ollamaTool = { type: "function", function: { ...tool, parameters: { ...tool.parameters, properties: { city: { type: ["string"], description: "City name" }, days: { type: ["integer"] }, unit: { type: ["string"], enum: ["c", "f"] } } } } };
  const harmonyGo = render(HARMONY_OLLAMA_TEMPLATE, {
    system: "Be brief.",
    tools: [ollamaTool],
    messages: [
      { role: "system", content: "Be brief." },
      { role: "user", content: "Weather in Paris?" },
      { role: "assistant", thinking: "Need the tool.", tool_calls: [{ function: { name: "get_weather", arguments: { city: "Paris" } } }] },
      { role: "tool", content: '{"temp":20}', tool_name: "get_weather" },
      { role: "assistant", content: "20 °C." },
      { role: "user", content: "Thanks" },
    ],
  });
  const harmonyJinja = new Template(HARMONY_CHAT_TEMPLATE).render({
    current_date: "2025-06-28",
    add_generation_prompt: true,
    tools: [{ type: "function", function: tool }],
    messages: [
      { role: "system", content: "Be brief." },
      { role: "user", content: "Weather in Paris?" },
      { role: "assistant", thinking: "Need the tool.", tool_calls: [{ function: { name: "get_weather", arguments: '{"city":"Paris"}' } }] },
      { role: "tool", content: '{"temp":20}', name: "get_weather" },
      { role: "assistant", content: "20 °C." },
      { role: "user", content: "Thanks" },
    ],
  });
  assert.equal(harmonyGo, harmonyJinja);

  const system = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
  const chat = [{ role: "user", content: "Hi" }, { role: "assistant", content: "Hello!" }, { role: "user", content: "Add 2 and 3." }];
  const chatmlGo = render(chatmlOllamaTemplate(true), { system, messages: [{ role: "system", content: system }, ...chat] });
  assert.equal(chatmlGo, new Template(QWEN_CHATML_TEMPLATE).render({ messages: chat, add_generation_prompt: true }));
  assert.equal(render(chatmlOllamaTemplate(true), { prompt: "def add(a, b):\n    return ", suffix: "\n" }), "<|fim_prefix|>def add(a, b):\n    return <|fim_suffix|>\n<|fim_middle|>");
  assert.equal(render(chatmlOllamaTemplate(false), { system: "S", prompt: "Hi" }), "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
});

test("LM Studio gets <models>/<publisher>/<model>/<file>.gguf, hard-linked on the same filesystem", async () => {
  const gguf = join(scratch, "tiny-Q8_0.gguf");
  writeFileSync(gguf, "GGUF-bytes");
  const models = join(scratch, "lmstudio", "models");
  const first = await installIntoLmStudio({ ggufPath: gguf, modelsDir: models, publisher: "finetune-studio", modelName: "tiny-coder" });
  assert.equal(first.path, join(models, "finetune-studio", "tiny-coder", "tiny-Q8_0.gguf"));
  assert.equal(first.mode, "hardlink");
  assert.equal(statSync(first.path).ino, statSync(gguf).ino, "no second copy of the weights");
  const again = await installIntoLmStudio({ ggufPath: gguf, modelsDir: models, publisher: "finetune-studio", modelName: "tiny-coder" });
  assert.equal(again.mode, "already-present");

  const other = join(scratch, "other", "tiny-Q8_0.gguf");
  mkdirSync(join(scratch, "other"));
  writeFileSync(other, "different");
  await assert.rejects(installIntoLmStudio({ ggufPath: other, modelsDir: models, publisher: "finetune-studio", modelName: "tiny-coder" }), /already exists and is a different file/);
  const copied = await installIntoLmStudio({ ggufPath: other, modelsDir: models, publisher: "finetune-studio", modelName: "tiny-coder", mode: "copy", replace: true });
  assert.equal(copied.mode, "copy");
  assert.equal(readFileSync(copied.path, "utf8"), "different");
  assert.notEqual(statSync(copied.path).ino, statSync(other).ino);

  await assert.rejects(installIntoLmStudio({ ggufPath: gguf, modelsDir: models, publisher: "../evil", modelName: "x" }), /not a usable folder name/);
  await assert.rejects(installIntoLmStudio({ ggufPath: gguf, modelsDir: models, publisher: "p", modelName: "a/b" }), /not a usable folder name/);

  const home = "/home/u";
  assert.equal(defaultLmStudioModelsDir(home, () => false), join(home, ".lmstudio", "models"));
  assert.equal(defaultLmStudioModelsDir(home, (path) => path === join(home, ".cache", "lm-studio", "models")), join(home, ".cache", "lm-studio", "models"));
  assert.equal(defaultLmStudioModelsDir(home, (path) => path === join(home, ".lmstudio")), join(home, ".lmstudio", "models"));
});
