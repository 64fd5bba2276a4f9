/**
 * Derives a merge list (what tokenizer.json and GGUF `tokenizer.ggml.merges` need) from a
 * tiktoken-style rank table, which has no merges: tiktoken merges whichever adjacent pair forms
 * the token of lowest rank, while a Hugging Face / llama.cpp BPE applies the listed merge of
 * lowest index.
 *
 * Every split of a token into two tokens is listed, ordered by the rank of the token it forms.
 * That is Hugging Face's own tiktoken conversion (transformers' TikTokenConverter) and gives
 * exactly the 446189 merges of GPT-OSS's published tokenizer.json and of ggml-org's GPT-OSS
 * GGUF, so files we export match theirs. The smaller list of only the split that tiktoken's BPE
 * over the token's own bytes ends with (199742 merges for o200k) tokenized our test texts the
 * same, but would not match those files.
 */

/** A merge of two byte-level tokens; `${left}${right}` is a token too. */
export type BpeMerge = readonly [left: string, right: string];

/**
 * Merges for byte-level token texts given in rank order (index = rank). Splits of one token are
 * ordered by the rank of their left part (at most one split per left part, so no ties).
 * One map lookup per byte boundary: about a second for o200k's 200k tokens.
 */
export function deriveBpeMerges(tokenTextsByRank: readonly string[]): BpeMerge[] {
  const rankOf = new Map<string, number>();
  tokenTextsByRank.forEach((text, rank) => {
    if (rankOf.has(text)) throw new Error(`Token "${text}" appears twice in the rank table (ranks ${rankOf.get(text)} and ${rank}).`);
    rankOf.set(text, rank);
  });

  const merges: BpeMerge[] = [];
  const splits: { leftRank: number; merge: BpeMerge }[] = [];
  for (const text of tokenTextsByRank) {
    if (text.length < 2) continue;
    splits.length = 0;
    // Byte-level text has one UTF-16 unit per byte, so string offsets are byte offsets.
    for (let cut = 1; cut < text.length; cut += 1) {
      const left = text.slice(0, cut);
      const leftRank = rankOf.get(left);
      if (leftRank === undefined) continue;
      const right = text.slice(cut);
      if (rankOf.has(right)) splits.push({ leftRank, merge: [left, right] });
    }
    if (splits.length === 0) throw new Error(`Token "${text}" cannot be built from two other tokens.`);
    splits.sort((a, b) => a.leftRank - b.leftRank);
    for (const split of splits) merges.push(split.merge);
  }
  return merges;
}

/** The "left right" form of GGUF and of older tokenizer.json files (byte-level text has no spaces). */
export function mergeToText(merge: BpeMerge): string {
  return `${merge[0]} ${merge[1]}`;
}
