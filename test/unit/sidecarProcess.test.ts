import assert from "node:assert/strict";
import { join } from "node:path";
import { before, test } from "node:test";
import { resolvePython } from "../../src/core/pythonEnvironment";
import { SidecarError, runSidecarCommand, startSidecar } from "../../src/core/sidecarProcess";
import type { SidecarEvent } from "../../src/protocol/sidecar";

const root = join(__dirname, "..", "..");
const stubs = join(root, "test", "fixtures", "stub-sidecars");
let python = "";

before(async () => {
  const resolution = await resolvePython({ configuredPath: undefined, projectRoot: root, env: process.env });
  assert.ok(resolution.ok, "a Python with torch is installed (npm test bootstraps it)");
  python = resolution.python.path;
});

test("the real sidecar's info command says hello, reports the device and finishes", async () => {
  const events = await runSidecarCommand({ python, nativeDir: join(root, "native"), args: ["info"] });
  assert.deepEqual(events.map((event) => event.type), ["hello", "info", "done"]);
  const info = events[1] as Extract<SidecarEvent, { type: "info" }>;
  assert.ok(["cpu", "cuda", "mps"].includes(info.device));
  assert.ok(info.threads >= 1);
});

test("a bad argument comes back as a structured error, not a traceback", async () => {
  await assert.rejects(
    runSidecarCommand({ python, nativeDir: join(root, "native"), args: ["make-tiny-model", "--arch", "llama9"] }),
    (error: unknown) => SidecarError.is(error, "bad_arguments") && error.hint.length > 0,
  );
});

test("refuses a sidecar that speaks another protocol version", async () => {
  await assert.rejects(
    runSidecarCommand({ python, nativeDir: join(stubs, "wrong-protocol"), args: [] }),
    (error: unknown) => SidecarError.is(error, "protocol") && /protocol 99/.test(error.message),
  );
});

test("reports a crash with the last stderr lines", async () => {
  await assert.rejects(
    runSidecarCommand({ python, nativeDir: join(stubs, "crash"), args: [] }),
    (error: unknown) => SidecarError.is(error, "crashed") && /exit(ed)? with code 3/.test(error.message) && /Segmentation fault/.test(error.message),
  );
});

test("skips stdout lines that are not protocol messages and logs them", async () => {
  const logs: string[] = [];
  const events = await runSidecarCommand({ python, nativeDir: join(stubs, "noisy"), args: [] }, { onLog: (line) => logs.push(line) });
  assert.deepEqual(events.map((event) => event.type), ["hello", "done"]);
  assert.equal(logs.filter((line) => line.includes("skipped")).length, 2);
});

test("stop() sends a stop line and the sidecar finishes gracefully", async () => {
  const seen: string[] = [];
  const session = startSidecar(
    { python, nativeDir: join(stubs, "stoppable"), args: [] },
    {
      onEvent: (event) => {
        seen.push(event.type);
        if (event.type === "started") session.stop(5_000);
      },
    },
  );
  const done = await session.finished;
  assert.equal(done.reason, "stopped");
  assert.deepEqual(seen, ["hello", "started", "checkpoint", "done"]);
});

test("a missing interpreter is a spawn failure that names the setting", async () => {
  await assert.rejects(
    runSidecarCommand({ python: "/nonexistent/python3", nativeDir: join(root, "native"), args: ["info"] }),
    (error: unknown) => SidecarError.is(error, "spawn_failed") && /interpreterPath/.test(error.hint),
  );
});
