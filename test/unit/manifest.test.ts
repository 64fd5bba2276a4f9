import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { COMMAND_IDS } from "../../src/core/commandIds";
import { SETTINGS_SECTION, SETTING_DEFAULTS } from "../../src/core/settingsSchema";

interface Manifest {
  main: string;
  activationEvents: string[];
  capabilities: { untrustedWorkspaces: { supported: string } };
  contributes: {
    commands: Array<{ command: string; category: string; title: string }>;
    configuration: { properties: Record<string, { default: unknown }> };
    views: Record<string, Array<{ id: string; type?: string }>>;
    viewsContainers: { activitybar: Array<{ id: string; title: string }> };
  };
}

const root = join(__dirname, "..", "..");
const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as Manifest;

test("contributes exactly the commands the command table registers", () => {
  const contributed = manifest.contributes.commands.map((entry) => entry.command).sort();
  assert.deepEqual(contributed, [...COMMAND_IDS].sort());
});

test("puts every command under the one Fine-Tune Studio category", () => {
  for (const command of manifest.contributes.commands) assert.equal(command.category, "Fine-Tune Studio", command.command);
});

test("declares exactly the settings of the typed accessor, with the same defaults", () => {
  const properties = manifest.contributes.configuration.properties;
  const declared = Object.keys(properties).sort();
  const expected = Object.keys(SETTING_DEFAULTS).map((key) => `${SETTINGS_SECTION}.${key}`).sort();
  assert.deepEqual(declared, expected);
  for (const [key, value] of Object.entries(SETTING_DEFAULTS)) {
    assert.deepEqual(properties[`${SETTINGS_SECTION}.${key}`]?.default, value, key);
  }
});

test("has the Fine-Tune Studio container with Datasets, Runs, Models and a Chat webview", () => {
  assert.deepEqual(manifest.contributes.viewsContainers.activitybar.map((c) => c.title), ["Fine-Tune Studio"]);
  const views = manifest.contributes.views["finetuneStudio"] ?? [];
  assert.deepEqual(views.map((view) => view.id), [
    "finetuneStudio.datasets",
    "finetuneStudio.runs",
    "finetuneStudio.models",
    "finetuneStudio.chat",
  ]);
  assert.equal(views.find((view) => view.id === "finetuneStudio.chat")?.type, "webview");
});

test("points main at the bundle and limits untrusted workspaces", () => {
  assert.equal(manifest.main, "./dist/extension.js");
  assert.equal(manifest.capabilities.untrustedWorkspaces.supported, "limited");
  assert.ok(!manifest.activationEvents.includes("*"), "no eager activation");
});
