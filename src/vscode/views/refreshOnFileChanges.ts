import * as vscode from "vscode";

/** Watches `glob` in the workspace and calls `refresh` on every create, change or delete. */
export function refreshOnFileChanges(glob: string, refresh: () => void): vscode.Disposable[] {
  const watcher = vscode.workspace.createFileSystemWatcher(glob);
  return [watcher, watcher.onDidCreate(refresh), watcher.onDidDelete(refresh), watcher.onDidChange(refresh)];
}
