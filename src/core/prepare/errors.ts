/**
 * The error type of dataset preparation. `code` lets the UI pick a remedy; the message names
 * the sample (file:line), the model file or the prepared-dataset file involved, so a user can
 * open the exact place that is wrong.
 */
import type { SampleSource } from "../datasets/conversation";

export type PrepareErrorCode =
  /** A sample cannot be rendered (bad structure, unknown tool, no target tokens). */
  | "bad_sample"
  /** The chat template renders a conversation so that its prefixes are not prefixes of it. */
  | "template_not_prefix_stable"
  /** Tokenizing the rendered pieces one by one differs from tokenizing the whole text. */
  | "token_boundary"
  /** tokenizer.json / tokenizer_config.json / chat template missing or unusable. */
  | "model_files"
  /** A FIM sample for a model that has no FIM tokens and no FIM format of ours. */
  | "no_fim_support"
  /** Options out of range (seq_len, eval fraction, ...). */
  | "bad_option"
  /** Nothing left to train on after rendering, dedupe and packing. */
  | "empty_dataset"
  /** A prepared folder whose manifest and files disagree. */
  | "verify_failed"
  | "cancelled";

export class PrepareError extends Error {
  constructor(
    readonly code: PrepareErrorCode,
    message: string,
    /** The sample the error is about, when it is about one. */
    readonly source?: SampleSource,
  ) {
    super(source ? `${describeSource(source)}: ${message}` : message);
    this.name = "PrepareError";
  }

  static is(error: unknown, code?: PrepareErrorCode): error is PrepareError {
    return error instanceof PrepareError && (code === undefined || error.code === code);
  }
}

export function describeSource(source: SampleSource): string {
  return `${source.file}:${source.line}`;
}

/** Throws the standard cancellation error when the signal has fired. */
export function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new PrepareError("cancelled", "Dataset preparation was cancelled.");
}
