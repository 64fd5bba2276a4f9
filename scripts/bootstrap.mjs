#!/usr/bin/env node
// Everything a fresh clone needs, idempotent and quick when already done:
//   1. npm dependencies (npm install from the lock, skipped while package-lock.json is unchanged),
//   2. the bundles (esbuild, ~0.1 s),
//   3. a Python with PyTorch for the sidecar (dist/cli.js setup: apt on Debian as root,
//      otherwise a .venv with native/requirements.txt),
//   4. with --for test: pytest, Chromium, and VS Code's own server for the integration tier.
// Usage: node scripts/bootstrap.mjs [--for demo|test]
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const purposeIndex = process.argv.indexOf("--for");
const purpose = purposeIndex >= 0 ? process.argv[purposeIndex + 1] : "demo";
if (purpose !== "demo" && purpose !== "test") {
  console.error(`bootstrap: --for must be "demo" or "test", got "${purpose}"`);
  process.exit(2);
}
const started = Date.now();
const say = (line) => console.log(`[bootstrap] ${line}`);

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: root, stdio: "inherit", ...options });
  if (result.error) throw new Error(`${command} could not start: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed with exit code ${result.status}`);
}

function ensureNodeModules() {
  const stamp = join(root, "node_modules", ".finetune-studio-lock-hash");
  const lockHash = createHash("sha256").update(readFileSync(join(root, "package-lock.json"))).digest("hex");
  if (existsSync(stamp) && readFileSync(stamp, "utf8") === lockHash) return say("npm dependencies: up to date");
  // Not `npm ci`: some registries (this project's CI mirror among them) lack a few of
  // node-llama-cpp's optional per-platform packages, and `npm ci` rejects a lock without them.
  // `npm install --no-save` installs exactly the locked versions and skips absent optionals.
  say("npm dependencies: npm install from package-lock.json (first run takes about a minute)");
  run("npm", ["install", "--no-save", "--no-audit", "--no-fund"]);
  writeFileSync(stamp, lockHash);
}

function ensureAptPackages(packages) {
  const missing = packages.filter((name) => spawnSync("dpkg", ["-s", name], { stdio: "ignore" }).status !== 0);
  if (missing.length === 0) return;
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  if (!isRoot || !existsSync("/usr/bin/apt-get")) {
    throw new Error(`Missing system packages: ${missing.join(" ")}. Install them with:\n  sudo apt-get install -y --no-install-recommends ${missing.join(" ")}`);
  }
  say(`apt: installing ${missing.join(" ")}`);
  run("apt-get", ["update", "-qq"]);
  run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], {
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
}

try {
  ensureNodeModules();
  run(process.execPath, [join(root, "scripts", "build.mjs")]);
  const setupArgs = [join(root, "dist", "cli.js"), "setup"];
  if (purpose === "test") setupArgs.push("--with-pytest");
  run(process.execPath, setupArgs);
  if (purpose === "test") {
    if (process.platform === "linux" && existsSync("/etc/debian_version")) ensureAptPackages(["chromium", "libkrb5-dev"]);
    const { ensureIntegrationTools } = await import("./testTools.mjs");
    const tools = await ensureIntegrationTools({ log: say });
    say(`integration tools: VS Code server ${tools.serverMain}, Chromium ${tools.chromium}`);
  }
  say(`ready for ${purpose} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (error) {
  console.error(`[bootstrap] failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
