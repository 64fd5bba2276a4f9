import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Conversation, TrainingSample } from "../../src/core/datasets/conversation";
import { PrepareError } from "../../src/core/prepare/errors";
import { loadHarmonyEncoder, type HarmonyEncoder } from "../../src/core/prepare/harmonyEncoder";
import { renderHarmonyConversation } from "../../src/core/prepare/harmonyRenderer";
import { loadModelTokenizer } from "../../src/core/prepare/modelTokenizer";
import { prepareDataset, type PrepareDatasetOptions, type SourcedSample } from "../../src/core/prepare/prepareDataset";
import { MANIFEST_FILE, REPORT_FILE, verifyPreparedDataset } from "../../src/core/prepare/preparedDatasetFiles";
import { sha256Hex } from "../../src/core/prepare/sampleRenderer";
import { resolvePython } from "../../src/core/pythonEnvironment";
import { readTokenShard } from "../../src/core/tokenShardFile";
import { HARMONY_CHAT_TEMPLATE } from "../../src/core/tokenizers/harmonyChatTemplate";
import { QWEN_STYLE_FOLDER, REPO_ROOT, loadSampleConversations } from "../fixtures/prepare/helpers";

let encoder: HarmonyEncoder;
before(async () => {
  encoder = await loadHarmonyEncoder();
});

const created: string[] = [];
const freshDir = (): string => {
  const folder = mkdtempSync(join(tmpdir(), "fts-prepared-"));
  created.push(folder);
  return folder;
};
after(() => {
  for (const folder of created) rmSync(folder, { recursive: true, force: true });
});

async function prepareHarmony(outDir: string, extra: Partial<PrepareDatasetOptions> = {}) {
  return prepareDataset({ samples: loadSampleConversations(), tokenizer: "harmony", seqLen: 512, evalFraction: 0.25, seed: 5, outDir, ...extra });
}

/** Every document of every shard of a folder, as [split, ids]. */
function readDocuments(outDir: string): Array<["train" | "eval", number[], number[]]> {
  const manifest = JSON.parse(readFileSync(join(outDir, MANIFEST_FILE), "utf8")) as { shards: Array<{ file: string; split: "train" | "eval" }> };
  const documents: Array<["train" | "eval", number[], number[]]> = [];
  for (const shard of manifest.shards) {
    const { packed } = readTokenShard(join(outDir, shard.file));
    for (let row = 0; row < packed.rows; row++) {
      let current: number[] = [];
      let mask: number[] = [];
      let document = 0;
      for (let column = 0; column <= packed.seqLen; column++) {
        const index = row * packed.seqLen + column;
        const id = column < packed.seqLen ? packed.documentIds[index] ?? 0 : 0;
        if (id !== document && current.length > 0) {
          documents.push([shard.split, current, mask]);
          current = [];
          mask = [];
        }
        document = id;
        if (id !== 0) {
          current.push(packed.tokens[index] ?? 0);
          mask.push(packed.lossMask[index] ?? 0);
        }
      }
    }
  }
  return documents;
}

test("harmony: sample dataset -> shards + manifest -> verify; every document is a rendered sample", async (t) => {
  const outDir = freshDir();
  const result = await prepareHarmony(outDir);
  const { manifest, report } = result;
  t.diagnostic(`16 records: ${report.samplesPerSecond.toFixed(0)} samples/s, ${report.tokensPerSecond.toFixed(0)} tokens/s, efficiency ${report.train.efficiency.toFixed(3)}`);
  assert.equal(manifest.tokenizer, "o200k_harmony");
  assert.equal(manifest.template_hash, sha256Hex(HARMONY_CHAT_TEMPLATE));
  assert.equal(manifest.seq_len, 512);
  assert.deepEqual(manifest.counts, { train_documents: 12, eval_documents: 4, target_tokens: report.train.targetTokens + report.eval.targetTokens });
  assert.deepEqual(manifest.shards.map((shard) => [shard.file, shard.split]), [["train-00000.ftshard", "train"], ["eval-00000.ftshard", "eval"]]);
  assert.deepEqual(await verifyPreparedDataset(outDir), manifest);
  assert.ok(existsSync(join(outDir, REPORT_FILE)));

  const rendered = new Set(loadSampleConversations().map(({ sample }) => [...renderHarmonyConversation(encoder, sample as Conversation).ids].join(",")));
  const documents = readDocuments(outDir);
  assert.equal(documents.length, 16);
  for (const [, ids, mask] of documents) {
    assert.ok(rendered.has(ids.join(",")), `a packed document is one rendered sample: ${encoder.decode(ids).slice(0, 80)}`);
    assert.equal(mask[0], 0);
  }
});

test("a corrupted, truncated or missing shard and a missing manifest are caught by verify, naming the file", async () => {
  const outDir = freshDir();
  await prepareHarmony(outDir);
  const shard = join(outDir, "train-00000.ftshard");
  const original = readFileSync(shard);
  const corrupted = Buffer.from(original);
  corrupted[corrupted.length - 3] = (corrupted[corrupted.length - 3] ?? 0) ^ 1;
  writeFileSync(shard, corrupted);
  await assert.rejects(verifyPreparedDataset(outDir), (error: unknown) => PrepareError.is(error, "verify_failed") && error.message.startsWith(`${shard}: sha256`));
  truncateSync(shard, original.length - 7);
  await assert.rejects(verifyPreparedDataset(outDir), (error: unknown) => PrepareError.is(error, "verify_failed") && error.message.includes(`${shard}: ${original.length - 7} bytes`));
  writeFileSync(shard, "not a shard");
  await assert.rejects(verifyPreparedDataset(outDir), (error: unknown) => PrepareError.is(error, "verify_failed") && error.message.includes("bad magic"));
  writeFileSync(shard, original);
  await verifyPreparedDataset(outDir);
  const manifest = JSON.parse(readFileSync(join(outDir, MANIFEST_FILE), "utf8")) as { counts: { target_tokens: number } };
  manifest.counts.target_tokens += 1;
  writeFileSync(join(outDir, MANIFEST_FILE), JSON.stringify(manifest));
  await assert.rejects(verifyPreparedDataset(outDir), /target tokens/);
  await assert.rejects(verifyPreparedDataset(freshDir()), (error: unknown) => PrepareError.is(error, "verify_failed") && /manifest\.json: missing/.test(error.message));
});

test("re-preparing deletes the old manifest first, and a failed run leaves no manifest behind", async () => {
  const outDir = freshDir();
  await prepareHarmony(outDir, { maxShardBytes: 4096 + 7 * 512 });
  assert.ok(readdirSync(outDir).filter((name) => name.startsWith("train-")).length > 1, "small shards: several files");
  async function* failing(): AsyncIterable<SourcedSample> {
    yield* loadSampleConversations().slice(0, 3);
    throw new Error("disk went away");
  }
  await assert.rejects(prepareDataset({ samples: failing(), tokenizer: "harmony", seqLen: 512, outDir }), /disk went away/);
  assert.ok(!existsSync(join(outDir, MANIFEST_FILE)));
  await assert.rejects(verifyPreparedDataset(outDir), /missing/);
  const again = await prepareHarmony(outDir);
  assert.deepEqual(readdirSync(outDir).filter((name) => name.endsWith(".ftshard")).sort(), again.manifest.shards.map((shard) => shard.file).sort(), "stale shards removed");
  const early = new AbortController();
  early.abort();
  await assert.rejects(prepareHarmony(outDir, { signal: early.signal }), (error: unknown) => PrepareError.is(error, "cancelled"));
  await verifyPreparedDataset(outDir); // cancelled before it started: the folder is untouched
  const midway = new AbortController();
  const phases: string[] = [];
  const onProgress = (progress: { phase: string }): void => {
    phases.push(progress.phase);
    if (progress.phase === "pack") midway.abort();
  };
  await assert.rejects(prepareHarmony(outDir, { signal: midway.signal, onProgress }), (error: unknown) => PrepareError.is(error, "cancelled"));
  assert.deepEqual([...new Set(phases)], ["render", "pack"]);
  assert.ok(!existsSync(join(outDir, MANIFEST_FILE)), "cancelled mid-way: no manifest");
});

test("bad samples, samples without targets and duplicates are counted with their file:line; nothing left is an error", async () => {
  const samples = loadSampleConversations().slice(0, 4);
  const source = (line: number) => ({ file: "extra.jsonl", line });
  const extra: SourcedSample[] = [
    { sample: { kind: "conversation", messages: [{ role: "user", content: "x" }, { role: "tool", toolCallId: "t", name: "", content: "r" }] }, source: source(1) },
    { sample: { kind: "conversation", messages: [{ role: "user", content: "only a question" }] }, source: source(2) },
    { sample: samples[0]?.sample as TrainingSample, source: source(3) },
  ];
  const { report } = await prepareDataset({ samples: [...samples, ...extra], tokenizer: "harmony", seqLen: 512, outDir: freshDir() });
  assert.deepEqual([report.samplesRead, report.rendered, report.duplicates], [7, 4, 1]);
  assert.deepEqual(report.rejected.byReason, { bad_sample: 1, no_targets: 1 });
  assert.deepEqual(report.rejected.examples.map((entry) => [entry.source.line, entry.code]), [[1, "bad_sample"], [2, "no_targets"]]);
  assert.ok(report.rejected.examples[0]?.message.startsWith("extra.jsonl:1: "));
  await assert.rejects(
    prepareDataset({ samples: extra.slice(0, 2), tokenizer: "harmony", seqLen: 512, outDir: freshDir() }),
    (error: unknown) => PrepareError.is(error, "empty_dataset") && /bad_sample: 1, no_targets: 1/.test(error.message),
  );
  const tooLong = await prepareDataset({ samples, tokenizer: "harmony", seqLen: 512, outDir: freshDir(), dedupe: false });
  assert.equal(tooLong.report.train.droppedOverlong, 0);
  await assert.rejects(prepareDataset({ samples, tokenizer: "harmony", seqLen: 64, outDir: freshDir() }), /longer than seq_len 64/);
});

test("Qwen-style model: FIM and chat samples, split by whole file, shards carry the tokenizer.json identity", async () => {
  const samples: SourcedSample[] = [];
  for (let file = 0; file < 8; file++) {
    for (let cut = 0; cut < 3; cut++) {
      samples.push({ sample: { kind: "fim", prefix: `def f${file}():\n    x = ${cut}\n`, suffix: "\n", middle: `return x + ${file}`, path: `src/m${file}.py` }, source: { file: "fim.jsonl", line: file * 3 + cut + 1 } });
    }
  }
  samples.push(...loadSampleConversations().slice(0, 4));
  const outDir = freshDir();
  const { manifest, report } = await prepareDataset({ samples, tokenizer: { modelFolder: QWEN_STYLE_FOLDER }, seqLen: 256, evalFraction: 0.25, seed: 1, outDir, repoName: "demo" });
  const model = await loadModelTokenizer(QWEN_STYLE_FOLDER);
  assert.equal(manifest.tokenizer, model.identity);
  assert.equal(manifest.template_hash, sha256Hex(model.chatTemplate ?? ""));
  assert.equal(report.rendered, 28);
  await verifyPreparedDataset(outDir);
  const files = { train: new Set<string>(), eval: new Set<string>() };
  for (const [split, ids, mask] of readDocuments(outDir)) {
    const text = model.decode(ids);
    const path = /<\|file_sep\|>(.*)\n/.exec(text)?.[1];
    if (path !== undefined) {
      files[split].add(path);
      assert.match(model.decode(ids.filter((_, index) => mask[index] === 1)), /^return x \+ \d<\|endoftext\|>$/);
    }
  }
  assert.ok(files.eval.size >= 1 && files.train.size >= 1);
  assert.deepEqual([...files.eval].filter((path) => files.train.has(path)), [], "no file is in both splits");
  assert.equal(files.eval.size + files.train.size, 8);
});

test("the Python trainer's reader loads a prepared shard with the same tensors", async () => {
  const outDir = freshDir();
  await prepareHarmony(outDir);
  const shard = join(outDir, "train-00000.ftshard");
  const resolution = await resolvePython({ configuredPath: undefined, projectRoot: REPO_ROOT, env: process.env });
  assert.ok(resolution.ok, "a Python with torch is installed");
  const script = [
    "import json, sys",
    "from finetune_sidecar.shards import read_token_shard",
    "s = read_token_shard(sys.argv[1])",
    "print(json.dumps({'header': s.header, 'tokens': s.tokens.flatten().tolist(), 'doc': s.document_ids.flatten().tolist(), 'mask': s.loss_mask.flatten().tolist()}))",
  ].join("\n");
  const output = execFileSync(resolution.python.path, ["-c", script, shard], { env: { ...process.env, PYTHONPATH: join(REPO_ROOT, "native") }, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  const seen = JSON.parse(output) as { header: unknown; tokens: number[]; doc: number[]; mask: number[] };
  const { header, packed } = readTokenShard(shard);
  assert.deepEqual(seen.header, header);
  assert.deepEqual(seen.tokens, [...packed.tokens]);
  assert.deepEqual(seen.doc, [...packed.documentIds]);
  assert.deepEqual(seen.mask, [...packed.lossMask]);
  assert.ok(statSync(shard).size > 0);
});

test("throughput on the sample dataset scaled up (1600 distinct conversations)", async (t) => {
  const base = loadSampleConversations();
  const samples: SourcedSample[] = [];
  for (let copy = 0; copy < 100; copy++) {
    for (const { sample, source } of base) {
      const conversation = sample as Conversation;
      samples.push({ sample: { ...conversation, messages: [...conversation.messages, ...[]].map((message) => (message.role === "user" ? { ...message, content: `${message.content} (${copy})` } : message)) }, source });
    }
  }
  const { report } = await prepareDataset({ samples, tokenizer: "harmony", seqLen: 2048, evalFraction: 0.05, seed: 1, outDir: freshDir() });
  t.diagnostic(
    `${report.samplesRead} samples in ${report.totalSeconds.toFixed(2)} s (render ${report.renderSeconds.toFixed(2)} s): ` +
      `${report.samplesPerSecond.toFixed(0)} samples/s, ${report.tokensPerSecond.toFixed(0)} tokens/s, packing efficiency ${report.train.efficiency.toFixed(3)}`,
  );
  assert.equal(report.rendered, 1600);
});
