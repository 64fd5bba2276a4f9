import * as vscode from "vscode";
import type { FineTuneStudioApi } from "../../../src/extension";

export const EXTENSION_ID = "finetune-studio.finetune-studio";

export async function activatedApi(): Promise<FineTuneStudioApi> {
  const extension = vscode.extensions.getExtension<FineTuneStudioApi>(EXTENSION_ID);
  if (!extension) throw new Error(`${EXTENSION_ID} is not installed in this extension host.`);
  return extension.activate();
}
