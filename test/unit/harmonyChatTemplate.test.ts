import assert from "node:assert/strict";
import { test } from "node:test";
import { Template } from "@huggingface/jinja";
import { HARMONY_CHAT_TEMPLATE } from "../../src/core/tokenizers/harmonyChatTemplate";

const template = new Template(HARMONY_CHAT_TEMPLATE);
const render = (context: Record<string, unknown>): string => template.render(context);

const SYSTEM_NO_TOOLS =
  "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n" +
  "Knowledge cutoff: 2024-06\n\n" +
  "Reasoning: medium\n\n" +
  "# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>";

const WEATHER_TOOL = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Gets the current weather in a city.",
    parameters: {
      type: "object",
      properties: {
        city: { type: "string", description: "The city, e.g. Paris" },
        unit: { type: "string", enum: ["celsius", "fahrenheit"], default: "celsius" },
      },
      required: ["city"],
    },
  },
};

test("renders a training conversation with instructions, a tool call, its result and a final answer", () => {
  const rendered = render({
    messages: [
      { role: "system", content: "Answer in one sentence." },
      { role: "user", content: "How warm is it in Paris?" },
      {
        role: "assistant",
        thinking: "I should look up the weather.",
        tool_calls: [{ type: "function", function: { name: "get_weather", arguments: { city: "Paris" } } }],
      },
      { role: "tool", content: '{"temperature": 21}' },
      { role: "assistant", thinking: "21 degrees.", content: "It is 21 °C in Paris." },
    ],
    tools: [WEATHER_TOOL, { type: "function", function: { name: "get_time", description: "Gets the time." } }],
    current_date: "2025-08-01",
    reasoning_effort: "low",
  });
  const expected =
    // System message (§5.3): identity, cutoff, date / reasoning / channels + the functions line.
    "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n" +
    "Knowledge cutoff: 2024-06\n" +
    "Current date: 2025-08-01\n" +
    "\n" +
    "Reasoning: low\n" +
    "\n" +
    "# Valid channels: analysis, commentary, final. Channel must be included for every message.\n" +
    "Calls to these tools must go to the commentary channel: 'functions'.<|end|>" +
    // Developer message: instructions, then the functions namespace.
    "<|start|>developer<|message|># Instructions\n" +
    "\n" +
    "Answer in one sentence.\n" +
    "\n" +
    "# Tools\n" +
    "\n" +
    "## functions\n" +
    "\n" +
    "namespace functions {\n" +
    "\n" +
    "// Gets the current weather in a city.\n" +
    "type get_weather = (_: {\n" +
    "// The city, e.g. Paris\n" +
    "city: string,\n" +
    'unit?: "celsius" | "fahrenheit", // default: celsius\n' +
    "}) => any;\n" +
    "\n" +
    "// Gets the time.\n" +
    "type get_time = () => any;\n" +
    "\n" +
    "} // namespace functions<|end|>" +
    "<|start|>user<|message|>How warm is it in Paris?<|end|>" +
    // The current turn keeps its chain of thought; the call names its recipient in the channel part.
    "<|start|>assistant<|channel|>analysis<|message|>I should look up the weather.<|end|>" +
    '<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}<|call|>' +
    '<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{"temperature": 21}<|end|>' +
    "<|start|>assistant<|channel|>analysis<|message|>21 degrees.<|end|>" +
    // Training target: the last final answer ends with <|return|>.
    "<|start|>assistant<|channel|>final<|message|>It is 21 °C in Paris.<|return|>";
  assert.equal(rendered, expected);
});

test("with add_generation_prompt the prompt ends with <|start|>assistant and earlier answers end with <|end|>", () => {
  const rendered = render({
    messages: [
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello!" },
      { role: "user", content: "Bye" },
    ],
    add_generation_prompt: true,
  });
  assert.equal(
    rendered,
    SYSTEM_NO_TOOLS +
      "<|start|>user<|message|>Hi<|end|>" +
      "<|start|>assistant<|channel|>final<|message|>Hello!<|end|>" +
      "<|start|>user<|message|>Bye<|end|>" +
      "<|start|>assistant",
  );
});

test("drops the chain of thought of earlier turns and keeps the current one (§5.4)", () => {
  const rendered = render({
    messages: [
      { role: "user", content: "2+2?" },
      { role: "assistant", thinking: "Simple sum.", content: "4" },
      { role: "user", content: "3+3?" },
      { role: "assistant", reasoning_content: "Another sum.", content: "6" },
    ],
  });
  assert.equal(
    rendered,
    SYSTEM_NO_TOOLS +
      "<|start|>user<|message|>2+2?<|end|>" +
      "<|start|>assistant<|channel|>final<|message|>4<|end|>" +
      "<|start|>user<|message|>3+3?<|end|>" +
      "<|start|>assistant<|channel|>analysis<|message|>Another sum.<|end|>" +
      "<|start|>assistant<|channel|>final<|message|>6<|return|>",
  );
});

test("names tool results by their own name or by the position of the call, and keeps preambles on commentary", () => {
  const rendered = render({
    messages: [
      { role: "developer", content: [{ type: "text", text: "Use tools." }] },
      { role: "user", content: "Weather in Oslo and Rome?" },
      {
        role: "assistant",
        content: "Checking both cities.",
        tool_calls: [
          { name: "get_weather", arguments: '{"city":"Oslo"}' },
          { name: "get_weather_v2", arguments: { city: "Rome" } },
        ],
      },
      { role: "tool", content: "5" },
      { role: "tool", content: "25" },
      { role: "tool", name: "audit", content: "ok" },
    ],
    tools: [WEATHER_TOOL],
    add_generation_prompt: true,
  });
  const turn = rendered.slice(rendered.indexOf("<|start|>user"));
  assert.equal(
    turn,
    "<|start|>user<|message|>Weather in Oslo and Rome?<|end|>" +
      "<|start|>assistant<|channel|>commentary<|message|>Checking both cities.<|end|>" +
      '<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Oslo"}<|call|>' +
      '<|start|>assistant<|channel|>commentary to=functions.get_weather_v2 <|constrain|>json<|message|>{"city": "Rome"}<|call|>' +
      "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>5<|end|>" +
      "<|start|>functions.get_weather_v2 to=assistant<|channel|>commentary<|message|>25<|end|>" +
      "<|start|>functions.audit to=assistant<|channel|>commentary<|message|>ok<|end|>" +
      "<|start|>assistant",
  );
  assert.ok(rendered.includes("<|start|>developer<|message|># Instructions\n\nUse tools.\n\n# Tools\n\n## functions\n\n"));
});

test("without instructions or tools there is no developer message; reasoning effort and identity are variables", () => {
  const rendered = render({
    messages: [{ role: "user", content: "Hi" }],
    add_generation_prompt: true,
    reasoning_effort: "high",
    model_identity: "You are a tiny test model.",
  });
  assert.equal(
    rendered,
    "<|start|>system<|message|>You are a tiny test model.\nKnowledge cutoff: 2024-06\n\nReasoning: high\n\n" +
      "# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>" +
      "<|start|>user<|message|>Hi<|end|><|start|>assistant",
  );
});

test("renders JSON-schema types in TypeScript form: arrays, unions, nested objects, no-argument functions", () => {
  const rendered = render({
    messages: [{ role: "user", content: "x" }],
    tools: [
      {
        name: "search",
        description: "Searches.\nReturns ids.",
        parameters: {
          type: "object",
          properties: {
            terms: { type: "array", items: { type: "string" } },
            limit: { type: "integer", default: 10 },
            mode: { type: ["string", "null"] },
            range: { type: "object", properties: { from: { type: "number" }, to: { type: "number" } }, required: ["from"] },
            tags: { type: "array", items: { enum: ["a", "b"] } },
            extra: {},
          },
          required: ["terms"],
        },
      },
      { name: "ping", parameters: { type: "object", properties: {} } },
    ],
  });
  const namespace = rendered.slice(rendered.indexOf("namespace functions {"), rendered.indexOf("<|end|><|start|>user"));
  assert.equal(
    namespace,
    "namespace functions {\n\n" +
      "// Searches.\n// Returns ids.\n" +
      "type search = (_: {\n" +
      "terms: string[],\n" +
      "limit?: number, // default: 10\n" +
      "mode?: string | null,\n" +
      "range?: { from: number, to?: number },\n" +
      'tags?: ("a" | "b")[],\n' +
      "extra?: any,\n" +
      "}) => any;\n\n" +
      "type ping = () => any;\n\n" +
      "} // namespace functions",
  );
});

test("refuses a tool result that names no function and follows no call", () => {
  assert.throws(
    () => render({ messages: [{ role: "user", content: "x" }, { role: "tool", content: "5" }] }),
    /no name and no matching tool call/,
  );
});
