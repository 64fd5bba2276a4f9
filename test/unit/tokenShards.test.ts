import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, truncateSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { resolvePython } from "../../src/core/pythonEnvironment";
import { TokenShardError, readTokenShard, writeTokenShard, type PackedRows } from "../../src/core/tokenShardFile";
import { TOKEN_SHARD_ALIGNMENT } from "../../src/protocol/tokenShards";

const root = join(__dirname, "..", "..");
const meta = { vocab_size: 201088, tokenizer: "o200k_harmony", template_hash: "abc123" };

function sampleRows(): PackedRows {
  // Two rows of 8: row 0 packs two documents, row 1 one document and padding.
  return {
    rows: 2,
    seqLen: 8,
    tokens: Uint32Array.from([200006, 1, 2, 3, 200006, 4, 5, 201087, 200006, 7, 8, 9, 10, 0, 0, 0]),
    documentIds: Uint16Array.from([1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1, 1, 0, 0, 0]),
    lossMask: Uint8Array.from([0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0]),
  };
}

test("round-trips packed rows and counts documents and targets", () => {
  const path = join(mkdtempSync(join(tmpdir(), "fts-shard-")), "train-0000.ftshard");
  const header = writeTokenShard(path, sampleRows(), meta);
  assert.equal(header.documents, 3);
  assert.equal(header.target_tokens, 6);
  const { header: readBack, packed } = readTokenShard(path);
  assert.deepEqual(readBack, header);
  assert.deepEqual(packed, sampleRows());
  const headerLength = readFileSync(path).readUInt32LE(8);
  assert.equal((statSync(path).size - 7 * 16) % TOKEN_SHARD_ALIGNMENT, 0, "data starts on the alignment");
  assert.ok(headerLength > 0);
});

test("rejects tokens outside the vocabulary and mismatched array lengths", () => {
  const path = join(mkdtempSync(join(tmpdir(), "fts-shard-")), "bad.ftshard");
  const rows = sampleRows();
  rows.tokens[3] = 300000;
  assert.throws(() => writeTokenShard(path, rows, meta), /Token 300000 at row 0, column 3/);
  assert.throws(() => writeTokenShard(path, { ...sampleRows(), lossMask: new Uint8Array(3) }, meta), /lossMask has 3 entries/);
});

test("rejects a truncated shard and a file that is not a shard", () => {
  const folder = mkdtempSync(join(tmpdir(), "fts-shard-"));
  const path = join(folder, "cut.ftshard");
  writeTokenShard(path, sampleRows(), meta);
  truncateSync(path, statSync(path).size - 5);
  assert.throws(() => readTokenShard(path), (error: unknown) => error instanceof TokenShardError && /truncated/.test(error.message));
  const notShard = join(folder, "data.jsonl");
  writeFileSync(notShard, '{"messages": []}\n');
  assert.throws(() => readTokenShard(notShard), /bad magic/);
});

test("the Python trainer's reader sees the same tensors (format mirror check)", async () => {
  const resolution = await resolvePython({ configuredPath: undefined, projectRoot: root, env: process.env });
  assert.ok(resolution.ok, "a Python with torch is installed");
  const path = join(mkdtempSync(join(tmpdir(), "fts-shard-")), "train-0000.ftshard");
  writeTokenShard(path, sampleRows(), meta);
  const script = [
    "import json, sys",
    "from finetune_sidecar.shards import read_token_shard",
    "s = read_token_shard(sys.argv[1])",
    "print(json.dumps({'header': s.header, 'tokens': s.tokens.tolist(), 'doc': s.document_ids.tolist(), 'mask': s.loss_mask.tolist()}))",
  ].join("\n");
  const output = execFileSync(resolution.python.path, ["-c", script, path], {
    env: { ...process.env, PYTHONPATH: join(root, "native") },
    encoding: "utf8",
  });
  const seen = JSON.parse(output) as { header: unknown; tokens: number[][]; doc: number[][]; mask: number[][] };
  const rows = sampleRows();
  assert.deepEqual(seen.header, readTokenShard(path).header);
  assert.deepEqual(seen.tokens.flat(), [...rows.tokens]);
  assert.deepEqual(seen.doc.flat(), [...rows.documentIds]);
  assert.deepEqual(seen.mask.flat(), [...rows.lossMask]);
});
