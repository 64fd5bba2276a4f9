/**
 * Fine-Tune Studio's own Jinja chat template for GPT-OSS's harmony format (reference §5),
 * written from the format description. It is a TypeScript string so that it bundles with the
 * extension; the tokenizer writer saves it as chat_template.jinja and the GGUF exporter stores it
 * as `tokenizer.chat_template`. It sticks to plain Jinja (macros, namespace, tojson) so that
 * transformers, @huggingface/jinja and llama.cpp's template engine all render it.
 *
 * Input, as transformers' apply_chat_template passes it:
 * - `messages`: `system` / `developer` (become the developer message's `# Instructions`),
 *   `user`, `assistant` (`content`; optional `thinking` or `reasoning_content` for the analysis
 *   channel; optional `tool_calls`, each `{function: {name, arguments}}` or `{name, arguments}`,
 *   arguments a JSON string or an object), `tool` (`content`; the function is `name`, else the
 *   matching call of the assistant message before it, by position).
 * - `tools`: JSON-schema function tools, `{type: "function", function: {...}}` or bare.
 * - `add_generation_prompt`, `reasoning_effort` (low | medium | high; default medium),
 *   `current_date` (YYYY-MM-DD; no date line without it, so training text is reproducible),
 *   `model_identity` (replaces the first system line).
 *
 * Rules: analysis (thinking) is rendered only for assistant messages after the last user
 * message, so earlier turns keep their tool calls and final answers but lose their chain of
 * thought, as harmony drops it once a turn has ended (§5.4). Function calls go on the
 * commentary channel with the recipient in the channel part, as the model generates them. A
 * conversation whose last message is an assistant answer and that asks for no generation
 * prompt is a training sample: that answer ends with `<|return|>` instead of `<|end|>` (§5.5).
 */
export const HARMONY_CHAT_TEMPLATE = String.raw`{#- Fine-Tune Studio harmony template for GPT-OSS (see harmonyChatTemplate.ts for its inputs) -#}
{%- macro text_of(content) -%}
{%- if content is string -%}{{ content }}
{%- elif content is iterable -%}{%- for part in content -%}{%- if part is string -%}{{ part }}{%- elif part.text is defined -%}{{ part.text }}{%- endif -%}{%- endfor -%}
{%- endif -%}
{%- endmacro -%}

{%- macro comment_lines(text) -%}{{ "// " ~ text.replace("\n", "\n// ") }}{%- endmacro -%}

{%- macro ts_type(schema) -%}
{%- if schema.enum is defined -%}
{%- for value in schema.enum -%}{{ value | tojson }}{{ " | " if not loop.last else "" }}{%- endfor -%}
{%- elif schema.anyOf is defined or schema.oneOf is defined -%}
{%- for option in (schema.anyOf if schema.anyOf is defined else schema.oneOf) -%}{{ ts_type(option) }}{{ " | " if not loop.last else "" }}{%- endfor -%}
{%- elif schema.type is defined and schema.type is not string -%}
{%- for single in schema.type -%}{{ ts_type({"type": single}) }}{{ " | " if not loop.last else "" }}{%- endfor -%}
{%- elif schema.type == "string" or schema.type == "boolean" or schema.type == "null" -%}{{ schema.type }}
{%- elif schema.type == "number" or schema.type == "integer" -%}number
{%- elif schema.type == "array" -%}
{%- set item = ts_type(schema.items) if schema.items is defined else "any" -%}
{{ ("(" ~ item ~ ")" if " | " in item else item) ~ "[]" }}
{%- elif schema.type == "object" and schema.properties is defined -%}
{{ "{ " }}{%- for name, property in schema.properties.items() -%}{{ name }}{{ "?" if schema.required is not defined or name not in schema.required else "" }}: {{ ts_type(property) }}{{ ", " if not loop.last else "" }}{%- endfor -%}{{ " }" }}
{%- else -%}any
{%- endif -%}
{%- endmacro -%}

{%- macro function_declaration(tool) -%}
{%- set fn = tool.function if tool.function is defined else tool -%}
{%- if fn.description is defined and fn.description -%}{{ comment_lines(fn.description) ~ "\n" }}{%- endif -%}
{{ "type " ~ fn.name ~ " = " }}
{%- if fn.parameters is defined and fn.parameters.properties is defined and fn.parameters.properties | length > 0 -%}
{{ "(_: {\n" }}
{%- for name, property in fn.parameters.properties.items() -%}
{%- if property.description is defined and property.description -%}{{ comment_lines(property.description) ~ "\n" }}{%- endif -%}
{{ name }}{{ "?" if fn.parameters.required is not defined or name not in fn.parameters.required else "" }}{{ ": " ~ ts_type(property) ~ "," }}
{%- if property.default is defined -%}{{ " // default: " ~ (property.default if property.default is string else property.default | tojson) }}{%- endif -%}
{{ "\n" }}
{%- endfor -%}
{{ "}) => any;\n\n" }}
{%- else -%}
{{ "() => any;\n\n" }}
{%- endif -%}
{%- endmacro -%}

{%- set has_tools = tools is defined and tools is not none and tools | length > 0 -%}
{%- set ns = namespace(last_user_index=-1, instructions="", call_names=[], result_index=0) -%}
{%- for message in messages -%}
{%- if message.role == "user" -%}{%- set ns.last_user_index = loop.index0 -%}{%- endif -%}
{%- if message.role == "system" or message.role == "developer" -%}
{%- set ns.instructions = ns.instructions ~ ("\n\n" if ns.instructions else "") ~ text_of(message.content) -%}
{%- endif -%}
{%- endfor -%}

{#- System message: identity and dates, reasoning effort, channels. -#}
{{ "<|start|>system<|message|>" }}
{{- model_identity if model_identity is defined and model_identity else "You are ChatGPT, a large language model trained by OpenAI." }}
{{- "\nKnowledge cutoff: 2024-06" }}
{%- if current_date is defined and current_date -%}{{ "\nCurrent date: " ~ current_date }}{%- endif -%}
{{- "\n\nReasoning: " ~ (reasoning_effort if reasoning_effort is defined and reasoning_effort else "medium") }}
{{- "\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message." }}
{%- if has_tools -%}{{ "\nCalls to these tools must go to the commentary channel: 'functions'." }}{%- endif -%}
{{- "<|end|>" }}

{#- Developer message: instructions from system/developer messages, then function tools. -#}
{%- if ns.instructions or has_tools -%}
{{- "<|start|>developer<|message|>" }}
{%- if ns.instructions -%}{{ "# Instructions\n\n" ~ ns.instructions }}{%- endif -%}
{%- if ns.instructions and has_tools -%}{{ "\n\n" }}{%- endif -%}
{%- if has_tools -%}
{{- "# Tools\n\n## functions\n\nnamespace functions {\n\n" }}
{%- for tool in tools -%}{{ function_declaration(tool) }}{%- endfor -%}
{{- "} // namespace functions" }}
{%- endif -%}
{{- "<|end|>" }}
{%- endif -%}

{%- for message in messages -%}
{%- if message.role == "user" -%}
{{- "<|start|>user<|message|>" ~ text_of(message.content) ~ "<|end|>" }}
{%- elif message.role == "assistant" -%}
{%- set thinking = message.thinking if message.thinking is defined else (message.reasoning_content if message.reasoning_content is defined else none) -%}
{%- set content = text_of(message.content) if message.content is defined and message.content is not none else "" -%}
{%- if thinking and loop.index0 > ns.last_user_index -%}
{{- "<|start|>assistant<|channel|>analysis<|message|>" ~ thinking ~ "<|end|>" }}
{%- endif -%}
{%- if message.tool_calls is defined and message.tool_calls -%}
{%- if content -%}{{ "<|start|>assistant<|channel|>commentary<|message|>" ~ content ~ "<|end|>" }}{%- endif -%}
{%- set ns.call_names = [] -%}
{%- set ns.result_index = 0 -%}
{%- for call in message.tool_calls -%}
{%- set fn = call.function if call.function is defined else call -%}
{%- set ns.call_names = ns.call_names + [fn.name] -%}
{{- "<|start|>assistant<|channel|>commentary to=functions." ~ fn.name ~ " <|constrain|>json<|message|>" }}
{{- fn.arguments if fn.arguments is string else fn.arguments | tojson }}
{{- "<|call|>" }}
{%- endfor -%}
{%- elif content -%}
{{- "<|start|>assistant<|channel|>final<|message|>" ~ content }}
{{- "<|return|>" if loop.last and not add_generation_prompt else "<|end|>" }}
{%- endif -%}
{%- elif message.role == "tool" -%}
{%- if message.name is defined and message.name -%}{%- set tool_name = message.name -%}
{%- elif ns.result_index < ns.call_names | length -%}{%- set tool_name = ns.call_names[ns.result_index] -%}
{%- else -%}{{ raise_exception("A tool result has no name and no matching tool call before it.") }}
{%- endif -%}
{%- set ns.result_index = ns.result_index + 1 -%}
{{- "<|start|>functions." ~ tool_name ~ " to=assistant<|channel|>commentary<|message|>" ~ text_of(message.content) ~ "<|end|>" }}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ "<|start|>assistant" }}{%- endif -%}
`;
