import assert from "node:assert/strict";
import { test } from "node:test";
import { UsageError, integerFlag, parseArgs, stringFlag } from "../../src/cli/args";

const FLAGS = { out: "value", seed: "value", verbose: "switch" } as const;

test("parses a command, flags with values, switches and positionals", () => {
  const args = parseArgs(["make-tiny-model", "--out", "dir", "--seed=7", "--verbose", "extra"], FLAGS);
  assert.equal(args.command, "make-tiny-model");
  assert.equal(stringFlag(args, "out"), "dir");
  assert.equal(integerFlag(args, "seed"), 7);
  assert.equal(args.flags.get("verbose"), true);
  assert.deepEqual(args.positionals, ["extra"]);
});

test("rejects an unknown flag by name", () => {
  assert.throws(() => parseArgs(["demo", "--ouput", "x"], FLAGS), (error: unknown) => {
    assert.ok(error instanceof UsageError);
    assert.match(error.message, /--ouput/);
    return true;
  });
});

test("rejects a non-integer seed and a value-less flag", () => {
  assert.throws(() => integerFlag(parseArgs(["x", "--seed", "1.5"], FLAGS), "seed"), /whole number/);
  assert.throws(() => stringFlag(parseArgs(["x", "--out"], FLAGS), "out"), /needs a value/);
  assert.throws(() => parseArgs(["x", "--verbose=yes"], FLAGS), /takes no value/);
});
