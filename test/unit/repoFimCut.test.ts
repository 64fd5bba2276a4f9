import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { cutFimSamples, FIM_STRATEGIES, type FimCut } from "../../src/core/repoFim/cutFimSamples";
import { findBlocks, lineTable } from "../../src/core/repoFim/textBlocks";

const TS = `export class Queue<T> {
  private items: T[] = [];

  push(item: T): void {
    if (item === undefined) {
      throw new Error("no undefined items");
    }
    this.items.push(item);
  }

  pop(): T | undefined {
    const text = "braces in strings { do not count";
    return this.items.shift();
  }
}
`;

const PY = `def area(shape):
    if shape.kind == "circle":
        return 3.14159 * shape.r ** 2
    return shape.w * shape.h


class Shape:
    def __init__(self, kind):
        self.kind = kind
`;

/** A longer file so context trimming has something to trim. */
const LONG = Array.from({ length: 300 }, (_, i) => `function f${i}(x) {\n  return x + ${i};\n}\n`).join("");

function assertExactSlice(text: string, cut: FimCut): void {
  assert.equal(text.slice(cut.start, cut.end), cut.middle);
  assert.equal(text.slice(cut.start - cut.prefix.length, cut.end + cut.suffix.length), cut.prefix + cut.middle + cut.suffix);
}

describe("cutFimSamples", () => {
  it("every sample is a contiguous slice of the file", () => {
    for (const text of [TS, PY, LONG]) {
      const cuts = cutFimSamples(text, "f.ts", { seed: 7, samplesPerFile: 60 });
      assert.ok(cuts.length > 10);
      for (const cut of cuts) {
        assertExactSlice(text, cut);
        assert.notEqual(cut.middle.trim(), "");
        assert.equal(cut.path, "f.ts");
        assert.equal(cut.kind, "fim");
      }
    }
  });

  it("is deterministic for a seed and differs across seeds", () => {
    const a = cutFimSamples(LONG, "a.js", { seed: 1, samplesPerFile: 20 });
    const b = cutFimSamples(LONG, "a.js", { seed: 1, samplesPerFile: 20 });
    const c = cutFimSamples(LONG, "a.js", { seed: 2, samplesPerFile: 20 });
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
  });

  it("uses every strategy with the default mix, and honours a custom one", () => {
    const cuts = cutFimSamples(LONG, "a.js", { seed: 3, samplesPerFile: 400 });
    const used = new Set(cuts.map((c) => c.strategy));
    for (const s of FIM_STRATEGIES) assert.ok(used.has(s), `strategy ${s} used`);
    const onlyBlocks = cutFimSamples(LONG, "a.js", { seed: 3, samplesPerFile: 30, mix: { "inline-span": 0, "line-end": 0, "multi-line": 0, block: 1 } });
    assert.ok(onlyBlocks.every((c) => c.strategy === "block"));
  });

  it("shapes middles by strategy", () => {
    const cuts = cutFimSamples(LONG, "a.js", { seed: 4, samplesPerFile: 300 });
    for (const cut of cuts) {
      const after = LONG[cut.end];
      if (cut.strategy === "inline-span") {
        assert.ok(!cut.middle.includes("\n") && after !== "\n", "inside one line");
      } else if (cut.strategy === "line-end") {
        assert.ok(!cut.middle.includes("\n") && (after === "\n" || after === undefined), "to the end of the line");
      } else if (cut.strategy === "multi-line") {
        assert.ok(cut.middle.includes("\n") && (after === "\n" || after === undefined), "whole lines to a line end");
      } else {
        assert.ok(cut.start === 0 || LONG[cut.start - 1] === "\n", "block starts a line");
        assert.ok(cut.middle.endsWith("\n"), "block ends with its last line");
      }
    }
  });

  it("limits the middle and trims context to whole lines", () => {
    const cuts = cutFimSamples(LONG, "a.js", { seed: 5, samplesPerFile: 100, maxMiddleChars: 40, contextChars: 200 });
    for (const cut of cuts) {
      assertExactSlice(LONG, cut);
      assert.ok(cut.middle.length <= 40);
      assert.ok(cut.prefix.length <= 200 + 40, `prefix ${cut.prefix.length}`);
      assert.ok(cut.suffix.length <= 200 + 40, `suffix ${cut.suffix.length}`);
      const from = cut.start - cut.prefix.length;
      assert.ok(from === 0 || LONG[from - 1] === "\n", "prefix starts a line");
      const to = cut.end + cut.suffix.length;
      assert.ok(to === LONG.length || LONG[to - 1] === "\n", "suffix ends a line");
    }
  });

  it("gives nothing for a file of blank lines, and few for a tiny file", () => {
    assert.deepEqual(cutFimSamples("\n\n  \n", "x.py", { seed: 1 }), []);
    const tiny = cutFimSamples("x = 1\n", "x.py", { seed: 1, samplesPerFile: 50 });
    assert.ok(tiny.length <= 15);
    for (const cut of tiny) assertExactSlice("x = 1\n", cut);
  });
});

describe("findBlocks", () => {
  it("finds brace bodies as whole lines, ignoring braces in strings", () => {
    const bodies = findBlocks(TS, lineTable(TS)).map((b) => TS.slice(b.start, b.end));
    assert.ok(bodies.includes('      throw new Error("no undefined items");\n'));
    assert.ok(bodies.includes('    const text = "braces in strings { do not count";\n    return this.items.shift();\n'));
    assert.ok(bodies.some((b) => b.startsWith("  private items") && b.endsWith("  }\n")));
  });

  it("finds indentation bodies", () => {
    const bodies = findBlocks(PY, lineTable(PY)).map((b) => PY.slice(b.start, b.end));
    assert.ok(bodies.includes("        return 3.14159 * shape.r ** 2\n"));
    assert.ok(bodies.includes("        self.kind = kind\n"));
    assert.ok(bodies.some((b) => b.startsWith('    if shape.kind') && b.endsWith("shape.h\n")));
  });

  it("maps offsets to lines", () => {
    const table = lineTable("ab\r\ncd\nef");
    assert.deepEqual(table.starts, [0, 4, 7]);
    assert.deepEqual(table.ends, [2, 6, 9]);
    assert.equal(table.lineAt(0), 0);
    assert.equal(table.lineAt(3), 0);
    assert.equal(table.lineAt(4), 1);
    assert.equal(table.lineAt(9), 2);
  });
});
