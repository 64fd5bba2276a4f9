/**
 * Every command the extension contributes. package.json's contributes.commands must list
 * exactly these (unit test), and the extension must register exactly these (integration test).
 */
export const COMMAND_IDS = [
  "finetuneStudio.checkEnvironment",
  "finetuneStudio.createTinyModel",
  "finetuneStudio.exportModel",
  "finetuneStudio.revealModel",
  "finetuneStudio.copyModelPath",
  "finetuneStudio.openTrainingPanel",
  "finetuneStudio.newTrainingRun",
  "finetuneStudio.stopTrainingRun",
  "finetuneStudio.resumeTrainingRun",
  "finetuneStudio.deleteTrainingRun",
  "finetuneStudio.openChat",
  "finetuneStudio.restartInferenceHost",
  "finetuneStudio.refreshViews",
  "finetuneStudio.showLogs",
] as const;

export type CommandId = (typeof COMMAND_IDS)[number];

/** Commands that start a process or run a model; they are refused in untrusted workspaces. */
export const COMMANDS_NEEDING_TRUST: ReadonlySet<CommandId> = new Set<CommandId>([
  "finetuneStudio.checkEnvironment",
  "finetuneStudio.createTinyModel",
  "finetuneStudio.exportModel",
  "finetuneStudio.revealModel",
  "finetuneStudio.copyModelPath",
  "finetuneStudio.restartInferenceHost",
  "finetuneStudio.newTrainingRun",
  "finetuneStudio.resumeTrainingRun",
]);
