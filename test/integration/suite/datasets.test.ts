import * as assert from "node:assert/strict";
import { join } from "node:path";
import * as vscode from "vscode";
import { screenshot, waitFor } from "./harness";
import { activatedApi } from "./support";

function workspaceFile(relative: string): vscode.Uri {
  const folder = vscode.workspace.workspaceFolders?.[0];
  assert.ok(folder, "the suite runs with a workspace folder");
  return vscode.Uri.file(join(folder.uri.fsPath, relative));
}

suite("Datasets", () => {
  test("a broken JSONL file shows its errors in the Problems panel at the right lines", async () => {
    await activatedApi();
    const uri = workspaceFile("data/broken-sample.jsonl");
    await vscode.window.showTextDocument(uri);
    await waitFor(() => vscode.languages.getDiagnostics(uri).length >= 2, 60_000, "dataset diagnostics");
    const diagnostics = vscode.languages.getDiagnostics(uri);
    const json = diagnostics.find((diagnostic) => diagnostic.code === "invalid_json");
    assert.ok(json, "an invalid_json diagnostic");
    assert.equal(json.range.start.line, 1, "on line 2");
    assert.match(json.message, /trailing comma/);
    const schema = diagnostics.find((diagnostic) => diagnostic.code === "schema" || diagnostic.code === "no_trainable_turn");
    assert.ok(schema, `a schema diagnostic for line 3 (got ${diagnostics.map((d) => d.code).join(", ")})`);
    assert.equal(schema.range.start.line, 2);
    await vscode.commands.executeCommand("workbench.actions.view.problems");
    await vscode.commands.executeCommand("finetuneStudio.datasets.focus");
    await screenshot("datasets-problems");
  });

  test("diagnostics follow unsaved edits, and the file on disk is untouched", async () => {
    const uri = workspaceFile("data/sample-chat.jsonl");
    const before = (await vscode.workspace.fs.readFile(uri)).toString();
    const editor = await vscode.window.showTextDocument(uri);
    assert.equal(vscode.languages.getDiagnostics(uri).filter((d) => d.severity === vscode.DiagnosticSeverity.Error).length, 0);
    await editor.edit((edit) => edit.insert(new vscode.Position(editor.document.lineCount, 0), '{"messages": [\n'));
    await waitFor(
      () => vscode.languages.getDiagnostics(uri).some((d) => d.code === "invalid_json"),
      60_000,
      "a diagnostic for the unsaved broken line",
    );
    assert.equal((await vscode.workspace.fs.readFile(uri)).toString(), before, "validation never writes the user's file");
    await vscode.commands.executeCommand("workbench.action.revertAndCloseActiveEditor");
    await waitFor(() => !vscode.languages.getDiagnostics(uri).some((d) => d.code === "invalid_json"), 60_000, "diagnostics cleared after revert");
  });

  test("the Datasets view reports format, samples and token statistics", async () => {
    const api = await activatedApi();
    const uri = workspaceFile("data/sample-chat.jsonl");
    const report = api.datasetReports.report(uri) ?? (await api.datasetReports.validate(uri));
    assert.ok(report);
    assert.equal(report.format.dominant, "chat-messages");
    assert.equal(report.usableSamples, 2);
    assert.ok(report.tokens && report.tokens.mean > 5, "token statistics from the harmony tokenizer");
  });
});
