#!/usr/bin/env node
// Builds every bundle with esbuild: the extension, the inference host and the CLI (Node,
// CommonJS), the webviews (browser), and the integration suite that runs inside VS Code.
// Usage: node scripts/build.mjs [--watch] [--production]
import * as esbuild from "esbuild";
import { chmodSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const watch = process.argv.includes("--watch");
const production = process.argv.includes("--production");

// node-llama-cpp is ESM with native binaries per platform: it ships in node_modules and is
// loaded with import() at run time, never bundled.
const nodeExternals = ["vscode", "node-llama-cpp", "mocha", "koffi"];

const nodeBundle = {
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  sourcemap: production ? false : "linked",
  minify: production,
  external: nodeExternals,
  logLevel: "warning",
  absWorkingDir: root,
};

const browserBundle = {
  bundle: true,
  platform: "browser",
  format: "iife",
  target: "es2022",
  sourcemap: production ? false : "linked",
  minify: production,
  logLevel: "warning",
  absWorkingDir: root,
};

const builds = [
  { ...nodeBundle, entryPoints: ["src/extension.ts"], outfile: "dist/extension.js" },
  { ...nodeBundle, entryPoints: ["src/inferenceHost/main.ts"], outfile: "dist/inference-host.js" },
  // Dataset validation runs in a worker thread so the extension host never blocks on a big file.
  { ...nodeBundle, entryPoints: ["src/core/datasets/validationWorker.ts"], outfile: "dist/dataset-validation-worker.js" },
  // Loaded by that worker to count tokens exactly as preparation renders them.
  { ...nodeBundle, entryPoints: ["src/core/prepare/tokenCounter.ts"], outfile: "dist/token-counter.js" },
  {
    ...nodeBundle,
    entryPoints: ["src/cli/main.ts"],
    outfile: "dist/cli.js",
    banner: { js: "#!/usr/bin/env node" },
  },
  { ...browserBundle, entryPoints: ["webview/training/main.ts"], outfile: "media/training.js" },
  { ...browserBundle, entryPoints: ["webview/chat/main.ts"], outfile: "media/chat.js" },
  {
    ...nodeBundle,
    entryPoints: ["test/integration/suite/index.ts", "test/integration/vsixSmoke/index.ts"],
    outdir: "out/test/integration",
    outbase: "test/integration",
  },
];

mkdirSync(join(root, "dist"), { recursive: true });
const started = Date.now();
if (watch) {
  const contexts = await Promise.all(builds.map((options) => esbuild.context(options)));
  await Promise.all(contexts.map((context) => context.watch()));
  console.log(`[build] watching ${builds.length} bundles for changes (Ctrl+C to stop)`);
} else {
  await Promise.all(builds.map((options) => esbuild.build(options)));
  chmodSync(join(root, "dist/cli.js"), 0o755);
  console.log(`[build] ${builds.length} bundles in ${Date.now() - started} ms${production ? " (production)" : ""}`);
}
