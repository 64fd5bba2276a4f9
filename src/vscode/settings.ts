/**
 * The one typed accessor for Fine-Tune Studio's settings. Keys and defaults come from
 * core/settingsSchema.ts; no other module calls getConfiguration.
 */
import * as vscode from "vscode";
import { SETTINGS_SECTION, SETTING_DEFAULTS, type SettingKey, type Settings } from "../core/settingsSchema";
import { defaultModelsFolder } from "../core/paths";

export class SettingsAccessor {
  get<K extends SettingKey>(key: K): Settings[K] {
    const value = vscode.workspace.getConfiguration(SETTINGS_SECTION).get<Settings[K]>(key);
    return value ?? SETTING_DEFAULTS[key];
  }

  /** The interpreter path, or undefined to auto-detect. */
  pythonInterpreter(): string | undefined {
    const configured = this.get("python.interpreterPath").trim();
    return configured.length > 0 ? configured : undefined;
  }

  modelsFolder(): string {
    const configured = this.get("models.folder").trim();
    return configured.length > 0 ? configured : defaultModelsFolder();
  }

  /** Calls `listener` when any of `keys` changes. */
  onDidChange(keys: readonly SettingKey[], listener: () => void): vscode.Disposable {
    return vscode.workspace.onDidChangeConfiguration((event) => {
      if (keys.some((key) => event.affectsConfiguration(`${SETTINGS_SECTION}.${key}`))) listener();
    });
  }
}
