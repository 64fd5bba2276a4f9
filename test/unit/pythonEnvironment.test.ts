import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { PYTHON_ENV_VARIABLE, listPythonCandidates, resolvePython } from "../../src/core/pythonEnvironment";

test("tries the setting, then the environment variable, before auto-detection", () => {
  const candidates = listPythonCandidates({
    configuredPath: "/opt/py/bin/python",
    projectRoot: undefined,
    env: { [PYTHON_ENV_VARIABLE]: "/env/python" },
  });
  assert.deepEqual(candidates.slice(0, 2), [
    { path: "/opt/py/bin/python", source: "setting" },
    { path: "/env/python", source: "environment" },
  ]);
  assert.equal(candidates[candidates.length - 1]?.source, "path");
});

test("a configured interpreter without torch is reported, not silently replaced", async () => {
  // A real interpreter script that answers the probe like a Python without torch.
  const folder = mkdtempSync(join(tmpdir(), "fts-python-"));
  const fake = join(folder, "python");
  writeFileSync(fake, `#!/bin/sh\necho '{"version": "3.12.0", "torch": null, "cuda": null, "numpy": null, "pytest": null}'\n`);
  chmodSync(fake, 0o755);
  const resolution = await resolvePython({ configuredPath: fake, projectRoot: undefined, env: {} });
  assert.equal(resolution.ok, false);
  if (!resolution.ok) {
    assert.match(resolution.fix, new RegExp(`${fake.replace(/[/.]/g, "\\$&")} \\(setting\\): Python 3\\.12\\.0, no torch`));
    assert.match(resolution.fix, /apt-get install|pip install/);
  }
});

test("a configured path that does not exist is named in the fix", async () => {
  const resolution = await resolvePython({ configuredPath: "/no/such/python", projectRoot: undefined, env: {} });
  assert.equal(resolution.ok, false);
  if (!resolution.ok) assert.match(resolution.fix, /\/no\/such\/python \(setting\): does not start/);
});
