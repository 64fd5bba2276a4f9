import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { InferenceHostClient } from "../../src/core/inferenceHostClient";

const entryPoint = join(__dirname, "..", "..", "dist", "inference-host.js");

test("the real inference host loads node-llama-cpp, answers status and shuts down", async () => {
  assert.ok(existsSync(entryPoint), "dist/inference-host.js is built (npm run build)");
  const client = new InferenceHostClient({ entryPoint });
  const hello = await client.start();
  assert.equal(hello.nodeLlamaCppVersion, "3.22.1");
  const status = await client.request("status", {});
  assert.equal(status.backend, hello.backend);
  assert.deepEqual(status.loadedModels, []);
  await client.stop();
  assert.equal(client.running, false);
});

test("a killed inference host rejects its pending request and reports the exit", async () => {
  const exits: string[] = [];
  const client = new InferenceHostClient({ entryPoint, onUnexpectedExit: (description) => exits.push(description) });
  const hello = await client.start();
  const pending = client.request("status", {});
  process.kill(hello.pid, "SIGKILL");
  // The status answer may win the race with the kill; either way nothing may hang.
  await pending.catch((error: unknown) => assert.match(String(error), /killed by SIGKILL|before answering/));
  for (let waited = 0; client.running && waited < 5000; waited += 50) await new Promise((r) => setTimeout(r, 50));
  assert.equal(client.running, false);
  assert.deepEqual(exits, ["killed by SIGKILL"]);
  await assert.rejects(client.request("status", {}), /not running/);
});
