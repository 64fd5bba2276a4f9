/**
 * Runs mocha inside the VS Code extension host. The suite is one esbuild bundle, so test
 * modules are required after mocha has installed its tdd globals.
 */
import Mocha from "mocha";

export function runMocha(name: string, loadTests: () => void, timeoutMs = 120_000): Promise<void> {
  const mocha = new Mocha({ ui: "tdd", color: false, timeout: timeoutMs, reporter: "spec" });
  mocha.suite.emit("pre-require", globalThis, "bundle", mocha);
  loadTests();
  return new Promise((resolve, reject) => {
    const runner = mocha.run((failures) => {
      const passed = runner.stats?.passes ?? 0;
      const failed = runner.stats?.failures ?? failures;
      // One plain summary line that CI and scripts/test.mjs read.
      console.log(`${name}: ${passed} passed, ${failed} failed`);
      if (failures > 0) reject(new Error(`${failures} ${name} test(s) failed.`));
      else resolve();
    });
  });
}

/**
 * Asks the launcher for a screenshot of the whole workbench and waits until it is written.
 * Only the code-server launcher takes screenshots; elsewhere this is a no-op.
 */
export async function screenshot(name: string, timeoutMs = 30_000): Promise<void> {
  if (process.env["FTS_SCREENSHOTS"] !== "1") return;
  const { tmpdir } = await import("node:os");
  const { existsSync } = await import("node:fs");
  const { join } = await import("node:path");
  const marker = join(tmpdir(), `fts-screenshot-${name}-${process.pid}-${Date.now()}`);
  console.log(`@@screenshot ${name} ${marker}`);
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(marker)) {
    if (Date.now() > deadline) throw new Error(`The launcher did not take screenshot "${name}" within ${timeoutMs} ms.`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}.`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export async function waitFor(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}.`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
