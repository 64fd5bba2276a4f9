import assert from "node:assert/strict";
import { test } from "node:test";
import { WEBVIEW_PROTOCOL_VERSION, isHostToWebview, isWebviewToHost } from "../../src/protocol/webview";

test("accepts well-formed page messages and rejects malformed ones", () => {
  assert.ok(isWebviewToHost({ type: "ready", protocolVersion: WEBVIEW_PROTOCOL_VERSION, view: "chat" }));
  assert.ok(isWebviewToHost({ type: "chat.send", text: "hi" }));
  assert.ok(isWebviewToHost({ type: "training.action", action: "stop" }));
  assert.ok(!isWebviewToHost({ type: "ready", protocolVersion: 1, view: "terminal" }));
  assert.ok(!isWebviewToHost({ type: "chat.send", text: 42 }));
  assert.ok(!isWebviewToHost({ type: "training.action", action: "format-disk" }));
  assert.ok(!isWebviewToHost("ready"));
});

test("accepts host messages the pages understand", () => {
  assert.ok(isHostToWebview({ type: "init", protocolVersion: 1, view: "chat", state: { model: null, notice: "" } }));
  assert.ok(isHostToWebview({ type: "chat.notice", text: "x" }));
  assert.ok(!isHostToWebview({ type: "init", protocolVersion: 1, view: "chat" }));
});

test("accepts live training updates with a full state and rejects partial ones", () => {
  const state = { runId: "r", status: "running", notice: "", config: [["Preset", "quick"]], series: null, logTail: [] };
  assert.ok(isHostToWebview({ type: "training.update", state }));
  assert.ok(!isHostToWebview({ type: "training.update", state: { runId: "r" } }));
  assert.ok(!isHostToWebview({ type: "training.update" }));
});
