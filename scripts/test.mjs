#!/usr/bin/env node
// Runs the test tiers and prints each tier's pass/fail counts, then a total line.
//   unit         strict typecheck of every TS project, then core logic in plain Node (node:test via tsx)
//   python       pytest for native/ (CPU)
//   integration  the mocha suite inside a real VS Code extension host (VS Code's own server
//                from the code-server package, driven by headless Chromium), then the packaged
//                .vsix installed into that server and activated
// Usage: node scripts/test.mjs [unit|python|integration ...]   (default: all tiers)
// Expects `node scripts/bootstrap.mjs --for test` to have run (npm test does that).
import { spawn, spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const requested = process.argv.slice(2);
const tiers = requested.length > 0 ? requested : ["unit", "python", "integration"];
const known = new Set(["unit", "python", "integration"]);
for (const tier of tiers) {
  if (!known.has(tier)) {
    console.error(`Unknown tier "${tier}"; choose from ${[...known].join(", ")}.`);
    process.exit(2);
  }
}

/** Runs a command, streaming its output, and resolves with exit code and captured text. */
function runCaptured(command, args, options = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"], ...options });
    let output = "";
    const forward = (stream) => (chunk) => {
      output += chunk.toString("utf8");
      stream.write(chunk);
    };
    child.stdout.on("data", forward(process.stdout));
    child.stderr.on("data", forward(process.stderr));
    child.on("error", (error) => resolve({ code: 127, output: `${output}\n${error.message}` }));
    child.on("close", (code) => resolve({ code: code ?? 1, output }));
  });
}

function count(output, pattern) {
  const matches = [...output.matchAll(pattern)];
  return matches.length > 0 ? Number(matches[matches.length - 1][1]) : 0;
}

function sidecarPython() {
  const result = spawnSync(process.execPath, [join(root, "dist", "cli.js"), "setup", "--with-pytest", "--print-python"], {
    cwd: root,
    encoding: "utf8",
  });
  if (result.status !== 0) throw new Error(`No Python for the python tier:\n${result.stderr}`);
  return result.stdout.trim().split("\n").pop();
}

/** Strict TypeScript is part of the unit tier: a type error fails it like a failing test. */
async function typecheck() {
  const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
  let failures = 0;
  for (const project of ["tsconfig.json", "webview/tsconfig.json", "test/tsconfig.json"]) {
    const { code } = await runCaptured(process.execPath, [tsc, "-p", project, "--noEmit"]);
    console.log(`typecheck ${project}: ${code === 0 ? "clean" : "FAILED"}`);
    if (code !== 0) failures++;
  }
  return failures;
}

async function unitTier() {
  const typeErrors = await typecheck();
  const folder = join(root, "test", "unit");
  const files = readdirSync(folder).filter((name) => name.endsWith(".test.ts")).map((name) => join(folder, name));
  const { code, output } = await runCaptured(process.execPath, ["--import", "tsx", "--test", "--test-reporter=spec", ...files]);
  return {
    code: code || typeErrors,
    passed: count(output, /^ℹ pass (\d+)/gm),
    failed: count(output, /^ℹ fail (\d+)/gm) + typeErrors,
  };
}

async function pythonTier() {
  const python = sidecarPython();
  const { code, output } = await runCaptured(python, ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], {
    cwd: join(root, "native"),
  });
  return { code, passed: count(output, /(\d+) passed/g), failed: count(output, /(\d+) failed/g) + count(output, /(\d+) errors?/g) };
}

async function integrationTier() {
  const results = join(root, "test-results");
  mkdirSync(results, { recursive: true });
  const workspace = mkdtempSync(join(tmpdir(), "fts-workspace-"));
  cpSync(join(root, "test", "integration", "workspace"), workspace, { recursive: true });
  const launcher = join(root, "test", "integration", "runInCodeServer.mjs");
  const suite = await runCaptured(process.execPath, [
    launcher,
    "--extension", root,
    "--tests", join(root, "out", "test", "integration", "suite", "index.js"),
    "--workspace", workspace,
    "--results", results,
  ]);
  rmSync(workspace, { recursive: true, force: true });
  const suitePassed = count(suite.output, /^integration: (\d+) passed/gm);
  const suiteFailed = count(suite.output, /^integration: \d+ passed, (\d+) failed/gm);

  const vsix = await packageVsix();
  let vsixResult = { code: vsix.code, output: vsix.output };
  if (vsix.code === 0) {
    const harness = mkdtempSync(join(tmpdir(), "fts-vsix-harness-"));
    cpSync(join(root, "test", "integration", "vsixHarness"), harness, { recursive: true });
    const emptyWorkspace = mkdtempSync(join(tmpdir(), "fts-vsix-workspace-"));
    vsixResult = await runCaptured(process.execPath, [
      launcher,
      "--extension", harness,
      "--tests", join(root, "out", "test", "integration", "vsixSmoke", "index.js"),
      "--workspace", emptyWorkspace,
      "--results", join(results, "vsix"),
      "--install-vsix", vsix.path,
    ]);
  }
  const vsixPassed = count(vsixResult.output, /^vsix: (\d+) passed/gm);
  const vsixFailed = count(vsixResult.output, /^vsix: \d+ passed, (\d+) failed/gm);
  const failedRuns = (suite.code !== 0 && suiteFailed === 0 ? 1 : 0) + (vsixResult.code !== 0 && vsixFailed === 0 ? 1 : 0);
  return {
    code: suite.code || vsixResult.code,
    passed: suitePassed + vsixPassed,
    failed: suiteFailed + vsixFailed + failedRuns,
  };
}

async function packageVsix() {
  const path = join(root, "dist", "finetune-studio.vsix");
  console.log("[test] packaging the .vsix (production build)");
  const build = await runCaptured(process.execPath, [join(root, "scripts", "build.mjs"), "--production"]);
  if (build.code !== 0) return { code: build.code, output: build.output, path };
  const vsce = join(root, "node_modules", ".bin", "vsce");
  const packed = await runCaptured(vsce, ["package", "--out", path, "--allow-missing-repository", "--no-rewrite-relative-links"]);
  // Restore the development build (source maps) for anything that runs after the tests.
  await runCaptured(process.execPath, [join(root, "scripts", "build.mjs")]);
  return { code: packed.code, output: packed.output, path };
}

const runners = { unit: unitTier, python: pythonTier, integration: integrationTier };
const summary = [];
for (const tier of tiers) {
  console.log(`\n===== ${tier} tier =====`);
  const started = Date.now();
  let result;
  try {
    result = await runners[tier]();
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    result = { code: 1, passed: 0, failed: 1 };
  }
  // A tier that exits non-zero without counting a failure still fails the run.
  const failed = result.failed + (result.code !== 0 && result.failed === 0 ? 1 : 0);
  const noTests = result.passed === 0 && failed === 0;
  summary.push({ tier, passed: result.passed, failed: failed + (noTests ? 1 : 0), seconds: (Date.now() - started) / 1000, noTests });
}

console.log("\n===== summary =====");
for (const entry of summary) {
  const note = entry.noTests ? " (no tests ran: counted as a failure)" : "";
  console.log(`${entry.tier}: ${entry.passed} passed, ${entry.failed} failed in ${entry.seconds.toFixed(1)} s${note}`);
}
const passed = summary.reduce((sum, entry) => sum + entry.passed, 0);
const failed = summary.reduce((sum, entry) => sum + entry.failed, 0);
console.log(`total: ${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
