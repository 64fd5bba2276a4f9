/**
 * Feeds JSONL files into preparation: every line that converts to a sample without an error
 * becomes a SourcedSample; the rest are counted so the caller can say how many were skipped
 * (`validate` tells the user why, line by line).
 */
import { scanDatasetLines } from "../datasets/datasetScanner";
import type { SourcedSample } from "./prepareDataset";

export interface SkippedLines {
  count: number;
}

export async function* samplesFromJsonl(files: readonly string[], skipped: SkippedLines): AsyncGenerator<SourcedSample> {
  for (const file of files) {
    for await (const scanned of scanDatasetLines(file)) {
      const hasError = scanned.problems.some((problem) => problem.severity === "error");
      if (scanned.sample && !hasError) yield { sample: scanned.sample, source: { file, line: scanned.line } };
      else if (scanned.problems.length > 0) skipped.count++;
    }
  }
}
