import assert from "node:assert/strict";
import { test } from "node:test";
import type { TrainingSample } from "../../src/core/datasets/conversation";
import { PrepareError } from "../../src/core/prepare/errors";
import { packSamples, type PackedDataset } from "../../src/core/prepare/packing";
import { seededRandom } from "../../src/core/prepare/random";
import { assignSplits, splitGroupKey } from "../../src/core/prepare/splitting";
import type { TokenizedSample } from "../../src/core/prepare/tokenSequence";

const PAD = 9;

/** Sample i: ids 1000*i + position, targets on its second half. */
function makeSamples(lengths: readonly number[]): TokenizedSample[] {
  return lengths.map((length, sample) => ({
    ids: Uint32Array.from({ length }, (_, position) => 1000 * (sample + 1) + position),
    mask: Uint8Array.from({ length }, (_, position) => (position >= length / 2 ? 1 : 0)),
  }));
}

function randomLengths(count: number, max: number, seed: number): number[] {
  const random = seededRandom(seed, "lengths");
  return Array.from({ length: count }, () => 2 + Math.floor(random() * (max - 1)));
}

function materializeAll(packed: PackedDataset) {
  return packed.materialize(0, packed.rows.length);
}

test("packing is deterministic for a seed and the row order changes with the seed", () => {
  const samples = makeSamples(randomLengths(500, 200, 1));
  const a = materializeAll(packSamples(samples, { seqLen: 256, padId: PAD, seed: 7 }));
  const b = materializeAll(packSamples(samples, { seqLen: 256, padId: PAD, seed: 7 }));
  assert.deepEqual(a, b);
  const c = materializeAll(packSamples(samples, { seqLen: 256, padId: PAD, seed: 8 }));
  assert.equal(c.rows, a.rows, "first-fit decreasing needs the same number of rows");
  assert.notDeepEqual(c.tokens, a.tokens);
});

test("no sample crosses a row: each is whole, contiguous, numbered 1.. in its row, padding last", () => {
  const lengths = randomLengths(800, 300, 2);
  const samples = makeSamples(lengths);
  const seqLen = 512;
  const packed = packSamples(samples, { seqLen, padId: PAD, seed: 3 });
  const rows = materializeAll(packed);
  const seen = new Set<number>();
  for (let row = 0; row < rows.rows; row++) {
    let column = 0;
    let expectedDocument = 1;
    while (column < seqLen && (rows.documentIds[row * seqLen + column] ?? 0) !== 0) {
      const index = row * seqLen + column;
      assert.equal(rows.documentIds[index], expectedDocument, `row ${row} column ${column}: documents are numbered in order`);
      const sample = Math.floor((rows.tokens[index] ?? 0) / 1000) - 1;
      assert.ok(!seen.has(sample), `sample ${sample} is packed once`);
      seen.add(sample);
      const length = lengths[sample] ?? 0;
      for (let position = 0; position < length; position++) {
        assert.equal(rows.tokens[index + position], 1000 * (sample + 1) + position, `sample ${sample} is contiguous and whole`);
        assert.equal(rows.documentIds[index + position], expectedDocument);
        assert.equal(rows.lossMask[index + position], position >= length / 2 && position > 0 ? 1 : 0);
      }
      column += length;
      expectedDocument += 1;
    }
    for (; column < seqLen; column++) {
      const index = row * seqLen + column;
      assert.deepEqual([rows.tokens[index], rows.documentIds[index], rows.lossMask[index]], [PAD, 0, 0], `row ${row} column ${column} is padding`);
    }
  }
  assert.equal(seen.size, samples.length);
  const tokens = lengths.reduce((sum, length) => sum + length, 0);
  assert.equal(packed.stats.tokens, tokens);
  assert.equal(packed.stats.efficiency, tokens / (rows.rows * seqLen));
  assert.ok(packed.stats.efficiency > 0.95, `first-fit decreasing packs tightly (${packed.stats.efficiency})`);
});

test("first-fit decreasing fills rows exactly when lengths allow; the first token of a document is never a target", () => {
  const samples = makeSamples([5, 3, 5, 3, 5, 3, 8]);
  samples.forEach((sample) => sample.mask.fill(1));
  const packed = packSamples(samples, { seqLen: 8, padId: PAD, seed: 0 });
  assert.equal(packed.stats.rows, 4);
  assert.equal(packed.stats.efficiency, 1);
  const rows = materializeAll(packed);
  rows.documentIds.forEach((document, index) => {
    const starts = index % 8 === 0 || rows.documentIds[index - 1] !== document;
    assert.equal(rows.lossMask[index], starts ? 0 : 1, `token ${index}`);
  });
  assert.equal(packed.stats.targetTokens, 32 - 7);
});

test("samples longer than seq_len are dropped by default and truncated on request, with counts", () => {
  const samples = makeSamples([4, 20, 6, 12]);
  const dropped = packSamples(samples, { seqLen: 10, padId: PAD, seed: 0 });
  assert.deepEqual([dropped.stats.documents, dropped.stats.droppedOverlong, dropped.stats.truncated], [2, 2, 0]);
  // Truncating the 20-token sample keeps positions 0..9, whose targets start at 10: nothing left.
  const truncated = packSamples(samples, { seqLen: 10, padId: PAD, seed: 0, overlong: "truncate" });
  assert.deepEqual(
    [truncated.stats.documents, truncated.stats.droppedOverlong, truncated.stats.truncated, truncated.stats.droppedNoTargetsAfterTruncation],
    [3, 0, 2, 1],
  );
  assert.throws(() => packSamples(samples, { seqLen: 1, padId: PAD, seed: 0 }), (error: unknown) => PrepareError.is(error, "bad_option"));
});

test("packing 200k samples stays fast (segment tree, no row scan)", (t) => {
  const samples = makeSamples(randomLengths(200_000, 60, 4));
  const started = performance.now();
  const packed = packSamples(samples, { seqLen: 2048, padId: PAD, seed: 1 });
  const elapsed = performance.now() - started;
  t.diagnostic(`packed ${samples.length} samples into ${packed.stats.rows} rows in ${elapsed.toFixed(0)} ms, efficiency ${packed.stats.efficiency.toFixed(4)}`);
  assert.ok(elapsed < 5000);
  assert.ok(packed.stats.efficiency > 0.99);
});

test("the split keeps every file wholly in train or in eval, is seeded, and holds out at least one group", () => {
  const samples: TrainingSample[] = [];
  for (let file = 0; file < 20; file++) {
    for (let cut = 0; cut < 5; cut++) samples.push({ kind: "fim", prefix: `p${cut}`, suffix: "s", middle: "m", path: `src/file${file}.ts` });
  }
  samples.push({ kind: "conversation", messages: [{ role: "user", content: "hi" }] });
  samples.push({ kind: "fim", prefix: "a", suffix: "b", middle: "c" });
  const keys = samples.map(splitGroupKey);
  const first = assignSplits(keys, 0.2, 11);
  assert.deepEqual(assignSplits(keys, 0.2, 11), first);
  assert.deepEqual([first.trainGroups, first.evalGroups], [18, 4]);
  const splitOfFile = new Map<string, string>();
  samples.forEach((sample, index) => {
    if (sample.kind !== "fim" || sample.path === undefined) return;
    const known = splitOfFile.get(sample.path);
    assert.ok(known === undefined || known === first.splits[index], `${sample.path} is in one split`);
    splitOfFile.set(sample.path, first.splits[index] as string);
  });
  assert.notDeepEqual(assignSplits(keys, 0.2, 12).splits, first.splits);
  assert.equal(assignSplits(keys.slice(0, 10), 0.01, 1).evalGroups, 1, "a small fraction still holds out one group");
  assert.equal(assignSplits(keys, 0, 1).evalGroups, 0);
  assert.throws(() => assignSplits(keys, 1, 1), (error: unknown) => PrepareError.is(error, "bad_option"));
});
