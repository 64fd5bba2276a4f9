import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { EXPORT_TYPES, ensureQuantizeSpace, exportModelToGguf, parseExportType, quantizedExportNeeds } from "../../src/core/exportModel";
import { GgmlType } from "../../src/core/gguf/constants";
import { GgufExportError } from "../../src/core/gguf/errors";
import { resolvePython } from "../../src/core/pythonEnvironment";
import { createTinyModel } from "../../src/core/tinyModel";

const root = join(__dirname, "..", "..");
const scratch = mkdtempSync(join(tmpdir(), "fts-export-"));
const modelDir = join(scratch, "tiny-gpt-oss");

before(async () => {
  const resolution = await resolvePython({ configuredPath: undefined, projectRoot: root, env: process.env });
  assert.ok(resolution.ok, "a Python with torch is installed");
  await createTinyModel({ python: resolution.python.path, nativeDir: join(root, "native"), outDir: modelDir, architecture: "gpt-oss", seed: 5 });
});
after(() => rmSync(scratch, { recursive: true, force: true }));

test("parses every export type case-insensitively and rejects others", () => {
  for (const type of EXPORT_TYPES) assert.equal(parseExportType(type.toLowerCase()), type);
  assert.equal(parseExportType("q3_k_s"), undefined);
});

test("a quantized export goes through F16 and llama.cpp, leaving only the final file", async () => {
  const outDir = join(scratch, "out");
  mkdirSync(outDir);
  const stages = new Set<string>();
  let last = 0;
  const result = await exportModelToGguf({
    modelFolder: modelDir,
    outFile: join(outDir, "tiny-Q4_K_M.gguf"),
    type: "Q4_K_M",
    onProgress: (progress) => {
      stages.add(progress.stage);
      assert.ok(progress.fraction >= last - 1e-9, "progress never goes back");
      last = progress.fraction;
    },
  });
  assert.equal(result.fileType, 15, "general.file_type is MOSTLY_Q4_K_M");
  assert.deepEqual([...stages].sort(), ["quantize", "write"]);
  assert.deepEqual(readdirSync(outDir), ["tiny-Q4_K_M.gguf"], "the F16 intermediate is removed");
});

test("refuses an architecture it cannot export, naming the file and the type", async () => {
  const folder = join(scratch, "llama");
  mkdirSync(folder);
  writeFileSync(join(folder, "config.json"), JSON.stringify({ model_type: "llama" }));
  await assert.rejects(
    exportModelToGguf({ modelFolder: folder, outFile: join(scratch, "x.gguf"), type: "F16" }),
    (error: unknown) => GgufExportError.is(error, "unsupported_architecture") && /config\.json: model_type "llama"/.test(error.message),
  );
});

test("a quantized export first checks room for the F16 intermediate plus the output, naming needed and free bytes", async () => {
  const tensors = [
    { name: "token_embd.weight", dims: [64, 512], type: GgmlType.F16 },
    { name: "blk.0.attn_norm.weight", dims: [64], type: GgmlType.F32 },
    { name: "blk.0.attn_q.weight", dims: [64, 64], type: GgmlType.F16 },
  ];
  const plan = { outFile: join(scratch, "m.gguf"), fileBytes: 4096 + 65536 + 256 + 8192, tensors };
  const needs = quantizedExportNeeds(plan, "Q8_0", []);
  // Q8_0: 34 bytes per 32 weights; the norm stays F32; the 4096-byte header carries over.
  assert.equal(needs.output, 4096 + (64 * 512 * 34) / 32 + 256 + (64 * 64 * 34) / 32);
  assert.equal(needs.total, plan.fileBytes + needs.output);
  await assert.rejects(ensureQuantizeSpace(plan, plan.outFile, "Q8_0", [], async () => 999), (error: unknown) => {
    assert.ok(GgufExportError.is(error, "disk_space"));
    assert.match(error.message, new RegExp(`needs [0-9.]+ KB \\(${needs.total} bytes: the F16 intermediate, ${plan.fileBytes} bytes, and about ${needs.output} bytes of Q8_0 output`));
    assert.match(error.message, /has only 999 B \(999 bytes\) free/);
    return true;
  });
  await ensureQuantizeSpace(plan, plan.outFile, "Q8_0", [], async () => needs.total);
  await ensureQuantizeSpace(plan, plan.outFile, "Q8_0", [], async () => undefined);
});
