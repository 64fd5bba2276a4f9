/**
 * Every setting the product reads, with its type and default. package.json's
 * contributes.configuration declares the same keys (a unit test keeps the two equal); code
 * reads settings only through the typed accessor built on this table.
 */
export interface Settings {
  /** Interpreter for the training sidecar; empty means auto-detect. Restart: next sidecar start. */
  "python.interpreterPath": string;
  /** Folder for base models and exports; empty means ~/.finetune-studio/models. Applies live. */
  "models.folder": string;
  /** Where training runs. Applies to the next run. */
  "training.device": "auto" | "cuda" | "cpu";
  /** Tokens per packed training row; samples longer than this are flagged. Applies live. */
  "training.sequenceLength": number;
  /** Inline completions on or off. Applies live. */
  "completion.enabled": boolean;
  /** GPU offload for the inference host: "auto", "max" or a number. Needs an inference host restart. */
  "inference.gpuLayers": string;
  /** Verbosity of the output channel. Applies live. */
  logLevel: "error" | "warn" | "info" | "debug";
}

export type SettingKey = keyof Settings;

export const SETTINGS_SECTION = "finetuneStudio";

export const SETTING_DEFAULTS: Settings = {
  "python.interpreterPath": "",
  "models.folder": "",
  "training.device": "auto",
  "training.sequenceLength": 2048,
  "completion.enabled": true,
  "inference.gpuLayers": "auto",
  logLevel: "info",
};

/** How a change to each setting takes effect (shown in descriptions, used to prompt restarts). */
export const SETTING_EFFECT: Record<SettingKey, "live" | "next-run" | "restart-inference-host"> = {
  "python.interpreterPath": "next-run",
  "models.folder": "live",
  "training.device": "next-run",
  "training.sequenceLength": "live",
  "completion.enabled": "live",
  "inference.gpuLayers": "restart-inference-host",
  logLevel: "live",
};
