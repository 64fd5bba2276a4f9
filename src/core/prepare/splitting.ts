/**
 * Seeded train/eval split over groups of samples. Repository FIM samples with a path are
 * grouped by that path, so a file is wholly in train or wholly in eval (held-out files, the
 * accepted way to evaluate a repository fine-tune, anchors §7); every other sample is its own
 * group. Groups are shuffled with the seed and the first round(evalFraction * groups) go to
 * eval, with at least one group on each side when evalFraction > 0 and there are two or more.
 */
import type { TrainingSample } from "../datasets/conversation";
import { PrepareError } from "./errors";
import { seededRandom, shuffleInPlace } from "./random";

export type Split = "train" | "eval";

export function splitGroupKey(sample: TrainingSample, index: number): string {
  return sample.kind === "fim" && sample.path !== undefined ? `file:${sample.path}` : `sample:${index}`;
}

export interface SplitAssignment {
  /** Split of each input key, in input order. */
  splits: Split[];
  trainGroups: number;
  evalGroups: number;
}

export function assignSplits(keys: readonly string[], evalFraction: number, seed: number): SplitAssignment {
  if (!(evalFraction >= 0 && evalFraction < 1)) throw new PrepareError("bad_option", `evalFraction must be in [0, 1) (got ${evalFraction}).`);
  const groups = [...new Set(keys)];
  shuffleInPlace(groups, seededRandom(seed, "split"));
  let evalCount = Math.round(evalFraction * groups.length);
  if (evalFraction > 0 && groups.length >= 2) evalCount = Math.min(Math.max(evalCount, 1), groups.length - 1);
  const evalGroups = new Set(groups.slice(0, evalCount));
  return {
    splits: keys.map((key) => (evalGroups.has(key) ? "eval" : "train")),
    trainGroups: groups.length - evalCount,
    evalGroups: evalCount,
  };
}
