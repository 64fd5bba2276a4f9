import * as assert from "node:assert/strict";
import * as vscode from "vscode";
import { EXTENSION_ID, activatedApi } from "./support";

suite("Extension", () => {
  test("activates in the real extension host", async () => {
    const api = await activatedApi();
    const extension = vscode.extensions.getExtension(EXTENSION_ID);
    assert.ok(extension?.isActive, "extension is active");
    assert.ok(api.webviews, "activate() returned the API");
  });

  test("registers exactly the commands package.json contributes", async () => {
    await activatedApi();
    const manifest = vscode.extensions.getExtension(EXTENSION_ID)?.packageJSON as {
      contributes: { commands: Array<{ command: string }> };
    };
    const contributed = manifest.contributes.commands.map((entry) => entry.command).sort();
    // View containers add "<view>.focus" and similar ids with a second dot; our commands have one.
    const registered = (await vscode.commands.getCommands(true))
      .filter((id) => /^finetuneStudio\.[A-Za-z]+$/.test(id))
      .sort();
    assert.deepEqual(registered, contributed);
  });

  test("contributes the Datasets, Runs and Models views and the Chat view", async () => {
    await activatedApi();
    for (const view of ["finetuneStudio.datasets", "finetuneStudio.runs", "finetuneStudio.models", "finetuneStudio.chat"]) {
      await vscode.commands.executeCommand(`${view}.focus`);
    }
  });

  test("declares limited support for untrusted workspaces", () => {
    const manifest = vscode.extensions.getExtension(EXTENSION_ID)?.packageJSON as {
      capabilities: { untrustedWorkspaces: { supported: unknown } };
    };
    assert.equal(manifest.capabilities.untrustedWorkspaces.supported, "limited");
  });
});
