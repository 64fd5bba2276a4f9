import * as assert from "node:assert/strict";
import * as vscode from "vscode";
import { screenshot, withTimeout } from "./harness";
import { activatedApi } from "./support";

suite("Webviews", () => {
  suiteSetup(async () => {
    // VS Code's own chat sidebar would crowd the screenshots; it is not part of this product.
    await vscode.commands.executeCommand("workbench.action.closeAuxiliaryBar").then(undefined, () => undefined);
  });

  test("the training panel opens and completes its handshake", async () => {
    const api = await activatedApi();
    await vscode.commands.executeCommand("finetuneStudio.openTrainingPanel");
    await withTimeout(api.webviews.whenReady("training"), 60_000, "the training panel's ready message");
    assert.ok(api.webviews.isReady("training"));
    await screenshot("training-panel");
  });

  test("the chat view opens and completes its handshake", async () => {
    const api = await activatedApi();
    await vscode.commands.executeCommand("finetuneStudio.openChat");
    await withTimeout(api.webviews.whenReady("chat"), 60_000, "the chat view's ready message");
    assert.ok(api.webviews.isReady("chat"));
    await screenshot("chat-view");
  });
});
