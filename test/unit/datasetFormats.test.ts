import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import type { TrainingSample } from "../../src/core/datasets/conversation";
import { convertRecord, detectDatasetFormat, detectRecordFormat, FormatDetector } from "../../src/core/datasets/formats";

const fixtures = join(__dirname, "..", "fixtures", "datasets");

function records(name: string): unknown[] {
  return readFileSync(join(fixtures, name), "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as unknown);
}

function converted(record: unknown): TrainingSample {
  const conversion = convertRecord(record);
  assert.deepEqual(conversion.issues, [], JSON.stringify(conversion.issues));
  assert.ok(conversion.sample);
  return conversion.sample;
}

function issuesOf(record: unknown): string[] {
  return convertRecord(record).issues.map((issue) => `${issue.severity} ${issue.code} ${issue.field} | ${issue.message}`);
}

test("detects each format from its fields", () => {
  assert.equal(detectRecordFormat({ messages: [] }), "chat-messages");
  assert.equal(detectRecordFormat({ conversations: "broken" }), "sharegpt");
  assert.equal(detectRecordFormat({ instruction: "x", output: "y" }), "instruction");
  assert.equal(detectRecordFormat({ input: "x", output: "y" }), "instruction");
  assert.equal(detectRecordFormat({ instruction: "x", context: "c", response: "y" }), "instruction");
  assert.equal(detectRecordFormat({ prompt: "x", completion: "y" }), "prompt-completion");
  assert.equal(detectRecordFormat({ prefix: "a", suffix: "b", middle: "c" }), "fim");
  assert.equal(detectRecordFormat({ prefix: "a", middle: "c" }), "fim");
  assert.equal(detectRecordFormat({ text: "x" }), undefined);
  assert.equal(detectRecordFormat(["messages"]), undefined);
});

test("chat messages: system, developer, user, assistant; text parts are joined", () => {
  const [first, second] = records("chat-messages.jsonl").map(converted);
  assert.deepEqual(first, {
    kind: "conversation",
    messages: [
      { role: "system", content: "You are terse." },
      { role: "user", content: "2+2?" },
      { role: "assistant", content: "4" },
    ],
  });
  assert.deepEqual(second, {
    kind: "conversation",
    messages: [
      { role: "developer", content: "Answer in French." },
      { role: "user", content: "Hello there" },
      { role: "assistant", content: "Bonjour" },
    ],
  });
});

test("ShareGPT: roles, top-level system, and function_call/observation tool turns", () => {
  const [plain, withSystem, tools] = records("sharegpt.jsonl").map(converted);
  assert.deepEqual(plain, {
    kind: "conversation",
    messages: [
      { role: "system", content: "Be kind." },
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello!" },
    ],
  });
  assert.deepEqual(withSystem?.kind === "conversation" && withSystem.messages[0], { role: "system", content: "Top-level system prompt" });
  assert.deepEqual(tools, {
    kind: "conversation",
    tools: [{ name: "get_weather", description: "Weather for a city", parameters: { type: "object", properties: { city: { type: "string" } } } }],
    messages: [
      { role: "user", content: "Weather in Paris?" },
      { role: "assistant", content: "", toolCalls: [{ id: "call_1_0", name: "get_weather", arguments: '{"city":"Paris"}' }] },
      { role: "tool", toolCallId: "call_1_0", name: "get_weather", content: '{"temp": 21}' },
      { role: "assistant", content: "21 degrees." },
    ],
  });
});

test("instruction pairs: Alpaca with and without input, system and history, Dolly's context/response", () => {
  const samples = records("instruction.jsonl").map(converted);
  const turns = samples.map((sample) => (sample.kind === "conversation" ? sample.messages.map((message) => `${message.role}: ${message.content}`) : []));
  assert.deepEqual(turns, [
    ["user: Translate to French\n\ncat", "assistant: chat"],
    ["user: Name a color", "assistant: Blue"],
    ["system: Colors only.", "user: Name a color", "assistant: Green", "user: And another?", "assistant: Red"],
    ["user: Summarize\n\nLong text.", "assistant: Short."],
  ]);
});

test("prompt/completion: plain text and TRL's conversational message lists", () => {
  const [text, chat] = records("prompt-completion.jsonl").map(converted);
  assert.deepEqual(text, {
    kind: "conversation",
    messages: [
      { role: "user", content: "The capital of France is" },
      { role: "assistant", content: " Paris." },
    ],
  });
  assert.deepEqual(chat, {
    kind: "conversation",
    messages: [
      { role: "user", content: "What color is the sky?" },
      { role: "assistant", content: "Blue." },
    ],
  });
});

test("fill-in-the-middle keeps whitespace and empty parts", () => {
  const [withPath, atStart] = records("fim.jsonl").map(converted);
  assert.deepEqual(withPath, { kind: "fim", prefix: "def add(a, b):\n    ", suffix: "\n\nprint(add(1, 2))\n", middle: "return a + b", path: "src/math.py" });
  assert.deepEqual(atStart, { kind: "fim", prefix: "", suffix: "x = 1\n", middle: "import os\n" });
});

test("tool traces: OpenAI tool_calls, object arguments, parallel calls answered in order, tool definitions", () => {
  const [search, parallel] = records("tool-traces.jsonl").slice(0, 2).map(converted);
  assert.deepEqual(search, {
    kind: "conversation",
    tools: [{ name: "search", description: "Web search", parameters: { type: "object", properties: { q: { type: "string" } }, required: ["q"] } }],
    messages: [
      { role: "user", content: "Find node 24 release date" },
      { role: "assistant", content: "", toolCalls: [{ id: "call_abc", name: "search", arguments: '{"q": "node 24 release"}' }] },
      { role: "tool", toolCallId: "call_abc", name: "search", content: "May 2025" },
      { role: "assistant", content: "Node 24 was released in May 2025." },
    ],
  });
  assert.deepEqual(parallel?.kind === "conversation" && parallel.messages.slice(1, 4), [
    {
      role: "assistant",
      content: "",
      toolCalls: [
        { id: "call_1_0", name: "add", arguments: '{"a":2,"b":3}' },
        { id: "call_1_1", name: "mul", arguments: '{"a":2,"b":3}' },
      ],
    },
    { role: "tool", toolCallId: "call_1_0", name: "add", content: "5" },
    { role: "tool", toolCallId: "call_1_1", name: "mul", content: '{"result":6}' },
  ]);
});

test("tool traces: broken arguments and an unknown tool_call_id are reported once each, by field", () => {
  const broken = records("tool-traces.jsonl")[2];
  assert.deepEqual(issuesOf(broken), [
    `error schema messages[1].tool_calls[0].function.arguments | messages[1].tool_calls[0].function.arguments: "{\\"a\\": 1,}" is not valid JSON (column 8: a trailing comma before '}' is not allowed in JSON); the model would learn to emit broken calls`,
    `error schema messages[2].tool_call_id | messages[2].tool_call_id: "c9" matches no earlier tool call (ids: c1)`,
  ]);
  assert.match(issuesOf({ messages: [{ role: "user", content: "x" }, { role: "tool", content: "r" }, { role: "assistant", content: "y" }] })[0] ?? "", /messages\[1\]: is a tool result, but no earlier assistant message made a tool call/);
  assert.match(
    issuesOf({ tools: [{ name: "a" }], messages: [{ role: "user", content: "x" }, { role: "assistant", tool_calls: [{ function: { name: "b", arguments: "{}" } }] }] })[0] ?? "",
    /^warning schema messages\[1\]\.tool_calls\[0\] .*calls "b", which the record's tools do not define \(defined: a\)/,
  );
});

test("reasoning, reasoning_content, thinking and a leading <think> block become the assistant's reasoning", () => {
  const reasoning = records("reasoning.jsonl").map(converted).map((sample) => {
    const last = sample.kind === "conversation" ? sample.messages[sample.messages.length - 1] : undefined;
    return last?.role === "assistant" ? [last.reasoning, last.content] : [];
  });
  assert.deepEqual(reasoning, [
    ["Check divisors up to 4: none.", "Yes."],
    ["9 = 3 * 3.", "No."],
    ["Only divisors 1 and 2.", "Yes."],
    ["4 = 2 * 2.", "No."],
    ["By definition primes are > 1.", "No."],
  ]);
  const mentioned = converted({ messages: [{ role: "user", content: "tag?" }, { role: "assistant", content: "Use <think>…</think> tags." }] });
  assert.deepEqual(mentioned.kind === "conversation" && mentioned.messages[1], { role: "assistant", content: "Use <think>…</think> tags." });
});

test("schema errors name the field path and what was expected", () => {
  assert.deepEqual(issuesOf({ messages: [{ role: "user", content: "a" }, { role: "assistant", content: "b" }, { role: "assitant", content: "c" }] }), [
    'error schema messages[2].role | messages[2].role: "assitant" is not one of system, developer, user, assistant, tool (did you mean "assistant"?)',
  ]);
  assert.deepEqual(issuesOf({ messages: [{ content: "a" }, { role: "assistant", content: "b" }] }), [
    "error schema messages[0].role | messages[0].role: is missing; it must be one of system, developer, user, assistant, tool",
  ]);
  assert.deepEqual(issuesOf({ messages: "hi" }), ['error schema messages | messages: must be an array of {"role", "content"} messages, found the text "hi"']);
  assert.deepEqual(issuesOf({ messages: [{ role: "user", content: [{ type: "image_url", image_url: {} }] }, { role: "assistant", content: "b" }] }), [
    'error schema messages[0].content[0].type | messages[0].content[0].type: "image_url" content is not supported; only text parts ({"type": "text", "text": ...}) can be trained on',
  ]);
  assert.deepEqual(issuesOf({ conversations: [{ from: "human", value: "a" }, { from: "bot", value: "b" }] }), [
    'error schema conversations[1].from | conversations[1].from: "bot" is not one of human, gpt, system, tool, function_call, observation (did you mean "gpt"?)',
  ]);
  assert.deepEqual(issuesOf({ instruction: "a" }), ["error schema output | output: is missing; it must be text"]);
  assert.deepEqual(issuesOf({ prefix: "a", suffix: 3, middle: "m" }), ["error schema suffix | suffix: must be text, found a number (3)"]);
  assert.deepEqual(issuesOf({ history: [["a"]], instruction: "q", output: "r" }), ['error schema history[0] | history[0]: must be a [user, assistant] pair of texts, found an array of 1']);
  assert.deepEqual(issuesOf({ messages: [{ role: "user", content: "a" }, { role: "assistant", content: "  " }] }), [
    "error empty_assistant messages[1].content | messages[1].content: is an empty assistant turn (no content, reasoning or tool call); training on it teaches the model to answer with nothing",
  ]);
  assert.deepEqual(issuesOf({ conversations: [{ from: "human", value: "a" }] }), [
    "error no_trainable_turn conversations | conversations: has 1 message(s) but no assistant turn, so there is nothing to train on",
  ]);
});

test("a record of unknown shape gets the fields every format expects, typo hints and the file's format", () => {
  const [issue] = convertRecord({ mesages: [], label: 1 }, "chat-messages").issues;
  assert.equal(issue?.code, "unknown_format");
  const message = issue?.message ?? "";
  assert.match(message, /^The fields "mesages", "label" match no dataset format\. "mesages" looks like "messages"\./);
  assert.match(message, /The rest of the file is chat-messages/);
  for (const expected of ["chat-messages: messages", "sharegpt: conversations", "instruction: instruction, optional input, output", "prompt-completion: prompt, completion", "fim: prefix, suffix, middle"]) {
    assert.ok(message.includes(expected), `lists ${expected}`);
  }
  assert.match(convertRecord([{ messages: [] }]).issues[0]?.message ?? "", /JSON array of records: write each record on a line of its own/);
  assert.match(convertRecord("text").issues[0]?.message ?? "", /the line is the text "text", but each line must be one JSON object/);
});

test("the dominant format comes from the first N records, ties going to the first seen", async () => {
  const detector = new FormatDetector(3);
  for (const format of ["fim", "sharegpt", "sharegpt", "fim", "fim"] as const) detector.observe(format);
  assert.equal(detector.dominant, "sharegpt");
  assert.equal(detector.settled, true);
  const tie = new FormatDetector(10);
  tie.observe("instruction");
  tie.observe("fim");
  assert.equal(tie.dominant, "instruction");
  assert.deepEqual(await detectDatasetFormat(join(fixtures, "mixed.jsonl")), { dominant: "chat-messages", sampled: 6 });
  assert.deepEqual(await detectDatasetFormat(join(fixtures, "broken.jsonl"), { window: 2 }), { dominant: "chat-messages", sampled: 2 });
});
