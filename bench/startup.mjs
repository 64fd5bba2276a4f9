#!/usr/bin/env node
// Start-up cost of the two child processes, each against its own floor measured in the same run:
//   sidecar `info` to `done`       vs  a bare `python -c "import torch"`
//   inference host fork to `hello`  vs  a bare node process that loads node-llama-cpp
// Usage: npm run build && node bench/startup.mjs [--runs N]
import { execFileSync, fork, spawnSync } from "node:child_process";
import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const runsIndex = process.argv.indexOf("--runs");
const runs = runsIndex >= 0 ? Number(process.argv[runsIndex + 1]) : 5;

const python = execFileSync(process.execPath, [join(root, "dist", "cli.js"), "setup", "--print-python"], { encoding: "utf8" })
  .trim()
  .split("\n")
  .pop();

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function timeSync(command, args, env) {
  const started = process.hrtime.bigint();
  const result = spawnSync(command, args, { env: { ...process.env, ...env }, stdio: "ignore" });
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} exited with ${result.status}`);
  return Number(process.hrtime.bigint() - started) / 1e6;
}

function timeInferenceHello() {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = fork(join(root, "dist", "inference-host.js"), [], { stdio: ["ignore", "ignore", "ignore", "ipc"] });
    child.on("message", (message) => {
      if (message.kind !== "hello") return reject(new Error(JSON.stringify(message)));
      const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
      child.kill("SIGKILL");
      resolve(elapsed);
    });
    child.on("error", reject);
  });
}

const floorScript = join(mkdtempSync(join(tmpdir(), "fts-bench-")), "load.mjs");
writeFileSync(
  floorScript,
  `const m = await import(${JSON.stringify(join(root, "node_modules", "node-llama-cpp", "dist", "index.js"))});\n` +
    `await m.getLlama({ build: "never", gpu: "auto", progressLogs: false, skipDownload: true });\nprocess.exit(0);\n`,
);

const rows = [];
const torchFloor = [];
const sidecar = [];
const llamaFloor = [];
const host = [];
for (let run = 0; run < runs; run++) {
  torchFloor.push(timeSync(python, ["-c", "import torch"], {}));
  sidecar.push(timeSync(python, ["-m", "finetune_sidecar", "info"], { PYTHONPATH: join(root, "native") }));
  llamaFloor.push(timeSync(process.execPath, [floorScript], {}));
  host.push(await timeInferenceHello());
}
rows.push(["sidecar info (hello..done)", median(sidecar), "python -c 'import torch'", median(torchFloor)]);
rows.push(["inference host fork..hello", median(host), "node: import + getLlama()", median(llamaFloor)]);

console.log(`Start-up, median of ${runs} runs (${process.platform}, ${process.arch}, Node ${process.version}, ${python})`);
console.log("| measured | ms | floor | ms | ratio |");
console.log("|---|---|---|---|---|");
for (const [name, value, floorName, floor] of rows) {
  console.log(`| ${name} | ${value.toFixed(0)} | ${floorName} | ${floor.toFixed(0)} | ${(value / floor).toFixed(2)}x |`);
}
