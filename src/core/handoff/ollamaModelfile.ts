/**
 * An Ollama Modelfile written next to an exported GGUF, so `ollama create <name> -f <file>`
 * gives a model that chats in the format it was trained on. A GGUF imported without one
 * gets Ollama's bare `{{ .Prompt }}` template, the most common reason a fine-tune "behaves
 * wrong in Ollama" (anchors §2: Unsloth issue #798 and the gpt-oss template bugs).
 *
 * Ollama does not run the GGUF's Jinja template; TEMPLATE is a Go text/template over its own
 * data (.System, .Messages with .Role/.Content/.Thinking/.ToolCalls/.ToolName, .Tools,
 * .Prompt/.Suffix for /api/generate, .ThinkLevel/.IsThinkSet, the currentDate function). So
 * the chat format is detected from the GGUF and translated:
 *
 * - harmony (GPT-OSS): the same rendering as our Jinja template (harmonyChatTemplate.ts):
 *   system message with identity, knowledge cutoff, current date and reasoning level; a
 *   developer message with the instructions and `namespace functions`; analysis only after
 *   the last user turn; tool calls on the commentary channel. Ollama switches on its own
 *   harmony parser (thinking and tool calls out of the channels) for a gpt-oss model whose
 *   template contains <|start|> and <|end|>, which this one does. Stops: <|return|>, <|call|>.
 * - ChatML (Qwen2/2.5/3): <|im_start|>role … <|im_end|> turns, Qwen's <tools>/<tool_call>
 *   blocks, and, when the vocabulary has FIM tokens, `.Suffix` → <|fim_prefix|> … so that
 *   Ollama's /api/generate with a suffix does code infill. The default system message is the
 *   one the model's own template inserts, found by rendering it. Stops: <|im_end|>, <|endoftext|>.
 *
 * PARAMETER lines: num_ctx (Ollama's default context is small and truncates silently), the
 * sampling defaults from the model's generation_config.json when present, and the stops.
 */
import { existsSync } from "node:fs";
import { readFile, rename, writeFile } from "node:fs/promises";
import { basename, dirname, join, relative, sep } from "node:path";
import { Template } from "@huggingface/jinja";
import { readGgufFile, type GgufMetadataEntry } from "../gguf/reader";

export type ChatFormat = "harmony" | "chatml";

export interface ModelfileOptions {
  /** GGUF path as FROM shows it, relative to the Modelfile (e.g. "./model-Q4_K_M.gguf"). */
  from: string;
  chatFormat: ChatFormat;
  /** A LoRA-adapter GGUF applied on top of FROM (Ollama's ADAPTER instruction). */
  adapter?: string;
  /** Default system message (SYSTEM); none when undefined. */
  system?: string;
  /** Emit the FIM branch (.Suffix) of the ChatML template. */
  fim?: boolean;
  /** PARAMETER num_ctx. */
  contextLength?: number;
  /** Extra PARAMETER lines (temperature, top_p, top_k, repeat_penalty, ...), in this order. */
  parameters?: ReadonlyArray<readonly [name: string, value: number | string]>;
}

/** Stop sequences per format (the end-of-turn tokens; llama.cpp also stops on its EOG set). */
export const MODELFILE_STOPS: Readonly<Record<ChatFormat, readonly string[]>> = {
  harmony: ["<|return|>", "<|call|>"],
  chatml: ["<|im_end|>", "<|endoftext|>"],
};

/** Default num_ctx: enough for chat and completion, far below 128k-context models' memory use. */
export const DEFAULT_MODELFILE_CONTEXT = 8192;

export const HARMONY_OLLAMA_TEMPLATE = `<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.
Knowledge cutoff: 2024-06
Current date: {{ currentDate }}

Reasoning: {{ if and .IsThinkSet .ThinkLevel }}{{ .ThinkLevel }}{{ else }}medium{{ end }}

# Valid channels: analysis, commentary, final. Channel must be included for every message.
{{- if .Tools }}
Calls to these tools must go to the commentary channel: 'functions'.
{{- end }}<|end|>
{{- if or .System .Tools }}<|start|>developer<|message|>
{{- if .System }}# Instructions

{{ .System }}
{{- end }}
{{- if and .System .Tools }}

{{ end }}
{{- if .Tools }}# Tools

## functions

namespace functions {

{{ range $tool := .Tools }}
{{- $fn := $tool.Function }}
{{- if $fn.Description }}// {{ $fn.Description }}
{{ end }}type {{ $fn.Name }} = {{ if $fn.Parameters.Properties }}(_: {
{{ range $name, $prop := $fn.Parameters.Properties }}
{{- if $prop.Description }}// {{ $prop.Description }}
{{ end }}
{{- $required := false }}{{ range $fn.Parameters.Required }}{{ if eq . $name }}{{ $required = true }}{{ end }}{{ end -}}
{{ $name }}{{ if not $required }}?{{ end }}: {{ if $prop.Enum }}{{ range $j, $e := $prop.Enum }}{{ if $j }} | {{ end }}{{ json $e }}{{ end }}{{ else }}{{ range $i, $t := $prop.Type }}{{ if $i }} | {{ end }}{{ if or (eq $t "integer") (eq $t "number") }}number{{ else if eq $t "array" }}any[]{{ else }}{{ $t }}{{ end }}{{ end }}{{ end }},
{{ end }}}) => any;
{{ else }}() => any;
{{ end }}
{{ end }}} // namespace functions
{{- end }}<|end|>
{{- end }}
{{- $lastUser := -1 }}
{{- range $i, $m := .Messages }}{{ if eq $m.Role "user" }}{{ $lastUser = $i }}{{ end }}{{ end }}
{{- range $i, $m := .Messages }}
{{- if eq $m.Role "user" }}<|start|>user<|message|>{{ $m.Content }}<|end|>
{{- else if eq $m.Role "assistant" }}
{{- if and $m.Thinking (gt $i $lastUser) }}<|start|>assistant<|channel|>analysis<|message|>{{ $m.Thinking }}<|end|>
{{- end }}
{{- if $m.ToolCalls }}
{{- if $m.Content }}<|start|>assistant<|channel|>commentary<|message|>{{ $m.Content }}<|end|>
{{- end }}
{{- range $m.ToolCalls }}<|start|>assistant<|channel|>commentary to=functions.{{ .Function.Name }} <|constrain|>json<|message|>{{ .Function.Arguments }}<|call|>
{{- end }}
{{- else if $m.Content }}<|start|>assistant<|channel|>final<|message|>{{ $m.Content }}<|end|>
{{- end }}
{{- else if eq $m.Role "tool" }}<|start|>functions.{{ $m.ToolName }} to=assistant<|channel|>commentary<|message|>{{ $m.Content }}<|end|>
{{- end }}
{{- end }}<|start|>assistant`;

const CHATML_TOOLS = `{{- if .Tools }}

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{{- range .Tools }}
{"type": "function", "function": {{ .Function }}}
{{- end }}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call>
{{- end }}`;

const CHATML_CHAT = `{{- if or .System .Tools }}<|im_start|>system
{{- if .System }}
{{ .System }}
{{- end }}
${CHATML_TOOLS}<|im_end|>
{{ end }}
{{- range $i, $m := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq $m.Role "user" }}<|im_start|>user
{{ $m.Content }}<|im_end|>
{{ else if eq $m.Role "assistant" }}<|im_start|>assistant
{{ if $m.Content }}{{ $m.Content }}
{{- else if $m.ToolCalls }}<tool_call>
{{ range $m.ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>
{{- end }}{{ if not $last }}<|im_end|>
{{ end }}
{{- else if eq $m.Role "tool" }}<|im_start|>user
<tool_response>
{{ $m.Content }}
</tool_response><|im_end|>
{{ end }}
{{- if and (ne $m.Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}`;

/** The ChatML TEMPLATE, optionally with Qwen's FIM branch for /api/generate with a suffix. */
export function chatmlOllamaTemplate(fim: boolean): string {
  const generate = `{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ end }}{{ .Response }}{{ if .Response }}<|im_end|>{{ end }}`;
  const body = `{{- if .Messages }}\n${CHATML_CHAT}\n{{- else }}\n${generate}`;
  return fim ? `{{- if .Suffix }}<|fim_prefix|>{{ .Prompt }}<|fim_suffix|>{{ .Suffix }}<|fim_middle|>\n{{- else if .Messages }}\n${CHATML_CHAT}\n{{- else }}\n${generate}` : body;
}

/** Text of a Modelfile string argument: triple quotes unless the text contains them. */
function quoted(text: string): string {
  if (!text.includes('"""')) return `"""${text}"""`;
  return JSON.stringify(text);
}

export function buildOllamaModelfile(options: ModelfileOptions): string {
  const lines = [`# Ollama Modelfile written by Fine-Tune Studio: ollama create <name> -f <this file>`, `FROM ${options.from}`];
  if (options.adapter) lines.push(`ADAPTER ${options.adapter}`);
  const template = options.chatFormat === "harmony" ? HARMONY_OLLAMA_TEMPLATE : chatmlOllamaTemplate(options.fim ?? false);
  lines.push(`TEMPLATE ${quoted(template)}`);
  if (options.system !== undefined && options.system.length > 0) lines.push(`SYSTEM ${quoted(options.system)}`);
  lines.push(`PARAMETER num_ctx ${options.contextLength ?? DEFAULT_MODELFILE_CONTEXT}`);
  for (const [name, value] of options.parameters ?? []) lines.push(`PARAMETER ${name} ${typeof value === "string" ? JSON.stringify(value) : value}`);
  for (const stop of MODELFILE_STOPS[options.chatFormat]) lines.push(`PARAMETER stop ${JSON.stringify(stop)}`);
  return `${lines.join("\n")}\n`;
}

/** Harmony or ChatML from a chat template's tokens; undefined when it is neither. */
export function detectChatFormat(template: string | undefined): ChatFormat | undefined {
  if (!template) return undefined;
  if (template.includes("<|start|>") && template.includes("<|message|>") && template.includes("<|channel|>")) return "harmony";
  if (template.includes("<|im_start|>") && template.includes("<|im_end|>")) return "chatml";
  return undefined;
}

/**
 * The system message a Jinja chat template inserts on its own (Qwen2.5: "You are Qwen, created
 * by Alibaba Cloud. You are a helpful assistant."), found by rendering a user-only chat.
 */
export function defaultSystemMessage(template: string): string | undefined {
  try {
    const rendered = new Template(template).render({ messages: [{ role: "user", content: "\u0000" }], add_generation_prompt: false });
    const match = /<\|im_start\|>system\n([\s\S]*?)<\|im_end\|>/.exec(rendered);
    return match?.[1] || undefined;
  } catch {
    return undefined;
  }
}

/** Ollama PARAMETERs from a Hugging Face generation_config.json (only the keys Ollama has). */
export async function samplingParameters(modelFolder: string): Promise<Array<[string, number]>> {
  const path = join(modelFolder, "generation_config.json");
  if (!existsSync(path)) return [];
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
  } catch {
    return [];
  }
  if (config["do_sample"] === false) return [["temperature", 0]];
  const out: Array<[string, number]> = [];
  for (const [hf, ollama] of [["temperature", "temperature"], ["top_p", "top_p"], ["top_k", "top_k"], ["min_p", "min_p"], ["repetition_penalty", "repeat_penalty"]] as const) {
    const value = config[hf];
    if (typeof value === "number" && Number.isFinite(value)) out.push([ollama, value]);
  }
  return out;
}

export interface WriteModelfileOptions {
  /** A LoRA-adapter GGUF to apply on top (ADAPTER); must be in or below the GGUF's folder. */
  adapterPath?: string;
  /** Source folder: its generation_config.json supplies sampling PARAMETERs. */
  modelFolder?: string;
  /** Overrides the template's own default system message ("" for none). */
  system?: string;
  contextLength?: number;
  /** Modelfile path; default `<gguf without .gguf>.Modelfile` beside the GGUF. */
  outFile?: string;
}

export interface WrittenModelfile {
  path: string;
  chatFormat: ChatFormat;
  content: string;
  /** The command that imports it, run in the Modelfile's folder. */
  createCommand: string;
}

/** Reads the GGUF's metadata and writes its Modelfile atomically next to it. */
export async function writeOllamaModelfile(ggufPath: string, options: WriteModelfileOptions = {}): Promise<WrittenModelfile> {
  const contents = await readGgufFile(ggufPath);
  const value = (key: string): GgufMetadataEntry["value"] | undefined => contents.metadata.get(key)?.value;
  const template = value("tokenizer.chat_template");
  const chatFormat = detectChatFormat(typeof template === "string" ? template : undefined);
  if (!chatFormat) {
    throw new Error(`${ggufPath} has ${typeof template === "string" ? "a chat template that is neither harmony nor ChatML" : "no chat template"}; an Ollama TEMPLATE cannot be derived from it.`);
  }
  const folder = dirname(ggufPath);
  const outFile = options.outFile ?? join(folder, `${basename(ggufPath).replace(/\.gguf$/i, "")}.Modelfile`);
  const fromFolder = dirname(outFile);
  const relativePath = (path: string): string => {
    const rel = relative(fromFolder, path);
    if (rel.startsWith("..")) return path;
    return `./${rel.split(sep).join("/")}`;
  };
  const tokens = value("tokenizer.ggml.tokens");
  const architecture = String(value("general.architecture") ?? "");
  const trained = value(`${architecture}.context_length`);
  const system = options.system ?? (chatFormat === "chatml" && typeof template === "string" ? defaultSystemMessage(template) : undefined);
  const content = buildOllamaModelfile({
    from: relativePath(ggufPath),
    chatFormat,
    ...(options.adapterPath ? { adapter: relativePath(options.adapterPath) } : {}),
    ...(system ? { system } : {}),
    fim: Array.isArray(tokens) && tokens.includes("<|fim_prefix|>") && tokens.includes("<|fim_suffix|>") && tokens.includes("<|fim_middle|>"),
    contextLength: options.contextLength ?? Math.min(DEFAULT_MODELFILE_CONTEXT, typeof trained === "number" ? trained : DEFAULT_MODELFILE_CONTEXT),
    parameters: options.modelFolder ? await samplingParameters(options.modelFolder) : chatFormat === "harmony" ? [["temperature", 1], ["top_p", 1]] : [],
  });
  const temp = `${outFile}.${process.pid}.partial`;
  await writeFile(temp, content);
  await rename(temp, outFile);
  const name = basename(ggufPath).replace(/\.gguf$/i, "").toLowerCase().replace(/[^a-z0-9._-]+/g, "-");
  return { path: outFile, chatFormat, content, createCommand: `ollama create ${name} -f ${basename(outFile)}` };
}
