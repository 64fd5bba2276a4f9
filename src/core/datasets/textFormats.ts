/**
 * Records that are not chats yet: instruction pairs (Alpaca's instruction/input/output with
 * its optional system and history, and Dolly's context/response), prompt/completion pairs
 * (plain text, or TRL's conversational form where both are message lists), and
 * fill-in-the-middle samples. Pairs become a user turn and an assistant turn.
 */
import { assistantMessage, ConversationBuilder } from "./conversationBuilder";
import type { Conversation, FimSample } from "./conversation";
import { readChatMessages } from "./chatFormats";
import { describeValue, readOptionalString, readText, type IssueList, type JsonObject } from "./recordFields";
import { readReasoning, splitLeadingThink } from "./toolCalls";

/** The first key of `keys` the record has, so messages use the user's own field name. */
function presentKey(record: JsonObject, keys: readonly string[]): string {
  return keys.find((key) => record[key] !== undefined) ?? (keys[0] as string);
}

export function convertInstruction(record: JsonObject, issues: IssueList): Conversation | undefined {
  const outputKey = presentKey(record, ["output", "response"]);
  const inputKey = presentKey(record, ["input", "context"]);
  const builder = new ConversationBuilder(outputKey, undefined);
  const system = readOptionalString(record["system"], "system", issues);
  if (system !== undefined && system.trim() !== "") builder.add({ role: "system", content: system }, "system");
  readHistory(record["history"], issues, builder);

  const instruction = record["instruction"] === undefined ? "" : readText(record["instruction"], "instruction", issues);
  const input = readOptionalString(record[inputKey], inputKey, issues) ?? "";
  if (instruction !== undefined && instruction.trim() === "" && input.trim() === "") {
    issues.error("instruction", record["instruction"] === undefined ? `is missing (and ${inputKey} is empty); there is no prompt` : `is empty (and so is ${inputKey}); there is no prompt`);
  }
  // Alpaca's own template puts the input after the instruction, separated by a blank line.
  if (instruction !== undefined) builder.add({ role: "user", content: [instruction, input].filter((part) => part.trim() !== "").join("\n\n") }, "instruction");
  const output = readText(record[outputKey], outputKey, issues);
  if (output === undefined) return undefined;
  const reasoning = readReasoning(record, "", issues);
  const split = reasoning === undefined ? splitLeadingThink(output) : { content: output, reasoning };
  builder.add(assistantMessage(split.content, split.reasoning, undefined), outputKey);
  return builder.finish(issues);
}

/** Alpaca's `history`: earlier [user, assistant] pairs, oldest first. */
function readHistory(value: unknown, issues: IssueList, builder: ConversationBuilder): void {
  if (value === undefined || value === null) return;
  if (!Array.isArray(value)) {
    issues.error("history", `must be an array of [user, assistant] pairs, found ${describeValue(value)}`);
    return;
  }
  value.forEach((pair, index) => {
    if (!Array.isArray(pair) || pair.length !== 2) {
      issues.error(`history[${index}]`, `must be a [user, assistant] pair of texts, found ${describeValue(pair)}`);
      return;
    }
    const user = readText(pair[0], `history[${index}][0]`, issues);
    const assistant = readText(pair[1], `history[${index}][1]`, issues);
    if (user === undefined || assistant === undefined) return;
    builder.add({ role: "user", content: user }, `history[${index}][0]`);
    builder.add(assistantMessage(assistant, undefined, undefined), `history[${index}][1]`);
  });
}

export function convertPromptCompletion(record: JsonObject, issues: IssueList): Conversation | undefined {
  const builder = new ConversationBuilder("completion", undefined);
  const system = readOptionalString(record["system"], "system", issues);
  if (system !== undefined && system.trim() !== "") builder.add({ role: "system", content: system }, "system");
  const prompt = record["prompt"];
  const completion = record["completion"];
  // TRL's conversational prompt-completion: both sides are message lists.
  if (Array.isArray(prompt)) readChatMessages(prompt, "prompt", issues, builder);
  else {
    const text = readText(prompt, "prompt", issues);
    if (text !== undefined) builder.add({ role: "user", content: text }, "prompt");
  }
  if (Array.isArray(completion)) readChatMessages(completion, "completion", issues, builder);
  else {
    const text = readText(completion, "completion", issues);
    if (text === undefined) return undefined;
    const split = splitLeadingThink(text);
    builder.add(assistantMessage(split.content, split.reasoning, undefined), "completion");
  }
  return builder.finish(issues);
}

export function convertFim(record: JsonObject, issues: IssueList): FimSample | undefined {
  // Empty strings are legitimate here: the cursor can sit at the start or end of a file,
  // and an empty middle teaches the model when to insert nothing.
  const prefix = readText(record["prefix"], "prefix", issues);
  const suffix = readText(record["suffix"], "suffix", issues);
  const middle = readText(record["middle"], "middle", issues);
  const path = readOptionalString(record["path"], "path", issues);
  if (prefix === undefined || suffix === undefined || middle === undefined) return undefined;
  const sample: FimSample = { kind: "fim", prefix, suffix, middle };
  if (path !== undefined) sample.path = path;
  return sample;
}
