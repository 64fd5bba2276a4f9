// Export benchmark: a locally generated GPT-OSS-architecture model of about 1B parameters
// (random weights, MXFP4 experts, the real o200k_harmony tokenizer) exported to every GGUF
// type. Baseline measured in the same run: copying the checkpoint's bytes (cp), i.e. the
// floor for any tool that reads the whole checkpoint once and writes a file of similar size.
// Usage: npm run bench:export [-- --keep] [-- --types F16,Q4_K_M]
// (node --import tsx bench/export.ts)
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { EXPORT_TYPES, exportModelToGguf, parseExportType, type ExportType } from "../src/core/exportModel";
import { resolvePython } from "../src/core/pythonEnvironment";
import { runSidecarCommand } from "../src/core/sidecarProcess";
import { writeHarmonyTokenizerFiles } from "../src/core/tokenizers/huggingFaceTokenizerJson";

// Run through tsx so the benchmark measures the same core modules the extension runs.
const root = join(__dirname, "..");

async function main(): Promise<void> {

const typesIndex = process.argv.indexOf("--types");
const types: ExportType[] =
  typesIndex >= 0 ? (process.argv[typesIndex + 1] ?? "").split(",").map((t) => parseExportType(t) ?? "F16") : [...EXPORT_TYPES];
const workDir = join(tmpdir(), "fts-bench-export");
const modelDir = join(workDir, "gpt-oss-1b");
mkdirSync(workDir, { recursive: true });

const python = await resolvePython({ configuredPath: undefined, projectRoot: root, env: process.env });
if (!python.ok) throw new Error(python.fix);

// 16 layers, hidden 1024, 16 experts of 1024: about 1.05 B parameters (0.41 B in the
// embedding and unembedding, the rest mostly experts), close in shape to gpt-oss's blocks.
if (!existsSync(join(modelDir, "tokenizer.json"))) {
  const started = performance.now();
  await runSidecarCommand({
    python: python.python.path,
    nativeDir: join(root, "native"),
    args: ["make-tiny-model", "--arch", "gpt-oss", "--out", modelDir, "--force", "--layers", "16", "--hidden", "1024",
      "--head-dim", "64", "--heads", "16", "--kv-heads", "4", "--experts", "16", "--experts-per-tok", "4", "--intermediate", "1024"],
  });
  await writeHarmonyTokenizerFiles(modelDir);
  console.log(`generated the model in ${((performance.now() - started) / 1000).toFixed(0)} s`);
}

const config = JSON.parse(readFileSync(join(modelDir, "config.json"), "utf8")) as ModelConfig;
const checkpointBytes = readdirSync(modelDir).filter((f) => f.endsWith(".safetensors")).reduce((s, f) => s + statSync(join(modelDir, f)).size, 0);
const parameters = estimateParameters(config);

const copyTarget = join(workDir, "copy.bin");
const copyStarted = performance.now();
for (const file of readdirSync(modelDir).filter((f) => f.endsWith(".safetensors"))) copyFileSync(join(modelDir, file), copyTarget);
const copySeconds = (performance.now() - copyStarted) / 1000;
rmSync(copyTarget, { force: true });

const rows: Array<{ type: ExportType; seconds: number; bytes: number; fileType: number }> = [];
for (const type of types) {
  const outFile = join(workDir, `gpt-oss-1b-${type}.gguf`);
  const started = performance.now();
  const result = await exportModelToGguf({ modelFolder: modelDir, outFile, type });
  const seconds = (performance.now() - started) / 1000;
  rows.push({ type, seconds, bytes: result.bytes, fileType: result.fileType });
  if (!process.argv.includes("--keep")) rmSync(outFile, { force: true });
  console.log(`${type}: ${seconds.toFixed(1)} s, ${(result.bytes / 1e9).toFixed(3)} GB`);
}

console.log(`\nExport benchmark: ${(parameters / 1e9).toFixed(2)} B parameters, checkpoint ${(checkpointBytes / 1e9).toFixed(2)} GB ` +
  `(bf16 + MXFP4 experts), ${cpus().length} cores, Node ${process.version}`);
console.log(`baseline: copying the checkpoint took ${copySeconds.toFixed(2)} s (${(checkpointBytes / 1e9 / copySeconds).toFixed(2)} GB/s)`);
console.log("| type | seconds | output GB | bits/param | checkpoint GB/s | time vs copy |");
console.log("|---|---|---|---|---|---|");
for (const row of rows) {
  console.log(`| ${row.type} | ${row.seconds.toFixed(1)} | ${(row.bytes / 1e9).toFixed(3)} | ${((8 * row.bytes) / parameters).toFixed(2)} | ` +
    `${(checkpointBytes / 1e9 / row.seconds).toFixed(2)} | ${(row.seconds / copySeconds).toFixed(1)}x |`);
}

}

interface ModelConfig {
  hidden_size: number;
  num_hidden_layers: number;
  num_local_experts: number;
  intermediate_size: number;
  head_dim: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  vocab_size: number;
}

function estimateParameters(c: ModelConfig): number {
  const h = c.hidden_size, layers = c.num_hidden_layers, e = c.num_local_experts, f = c.intermediate_size, d = c.head_dim;
  const attention = h * d * (c.num_attention_heads * 2 + c.num_key_value_heads * 2);
  const experts = e * (h * 2 * f + f * h);
  return 2 * c.vocab_size * h + layers * (attention + experts + e * h);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
