/**
 * Suite run against the packaged .vsix installed into VS Code's extensions folder (not the
 * development path): the package activates and registers its commands.
 */
import * as assert from "node:assert/strict";
import * as vscode from "vscode";
import { runMocha } from "../suite/harness";

const EXTENSION_ID = "finetune-studio.finetune-studio";

export function run(): Promise<void> {
  return runMocha("vsix", () => {
    suite("Packaged extension", () => {
      test("is installed from the .vsix and activates", async () => {
        const extension = vscode.extensions.getExtension(EXTENSION_ID);
        assert.ok(extension, `${EXTENSION_ID} is installed`);
        assert.match(extension.extensionPath, /extensions/, "loaded from the extensions folder");
        await extension.activate();
        assert.ok(extension.isActive);
      });

      test("registers its commands", async () => {
        const commands = await vscode.commands.getCommands(true);
        assert.ok(commands.includes("finetuneStudio.openTrainingPanel"));
        assert.ok(commands.includes("finetuneStudio.checkEnvironment"));
      });
    });
  });
}
