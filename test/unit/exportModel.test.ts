import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { EXPORT_TYPES, exportModelToGguf, parseExportType } from "../../src/core/exportModel";
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
