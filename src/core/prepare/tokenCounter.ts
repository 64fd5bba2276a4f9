/**
 * Token counting for dataset statistics, loadable inside the validation worker thread
 * (bundled as dist/token-counter.js). It renders each sample exactly as preparation will,
 * so "tokens per sample" and "too long" mean what training will see.
 */
import type { TrainingSample } from "../datasets/conversation";
import { createSampleRenderer, type TokenizerSpec } from "./sampleRenderer";

export interface TokenCounterConfig {
  tokenizer: TokenizerSpec;
}

export async function createTokenCounter(config: TokenCounterConfig): Promise<(sample: TrainingSample) => number> {
  const renderer = await createSampleRenderer(config.tokenizer);
  return (sample) => renderer.render(sample).ids.length;
}
