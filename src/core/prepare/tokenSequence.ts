/**
 * Builds a token sequence and its loss mask from pieces: special tokens inserted by id and
 * text encoded as plain text. Renderers never tokenize a string that contains control-token
 * spellings, so a user message that mentions "<|end|>" or "<|im_end|>" stays text and cannot
 * end a message early.
 *
 * Adjacent text pieces with the same target flag are joined before encoding: the chat template
 * produces one string between two special tokens, and BPE of the joined string is what the
 * template's text tokenizes to. Text pieces with different flags are encoded separately (the
 * renderers only put a flag change next to a special token, where BPE cannot merge across).
 */

/** A rendered sample: token ids and the loss mask (1 = the token is a training target). */
export interface TokenizedSample {
  ids: Uint32Array;
  mask: Uint8Array;
}

export type PlainTextEncoder = (text: string) => readonly number[];

export class TokenSequenceBuilder {
  private readonly ids: number[] = [];
  private readonly mask: number[] = [];
  private pendingText = "";
  private pendingTarget = false;

  constructor(private readonly encodePlain: PlainTextEncoder) {}

  special(id: number, target: boolean): this {
    this.flush();
    this.ids.push(id);
    this.mask.push(target ? 1 : 0);
    return this;
  }

  text(text: string, target: boolean): this {
    if (text.length === 0) return this;
    if (this.pendingText.length > 0 && this.pendingTarget !== target) this.flush();
    this.pendingText += text;
    this.pendingTarget = target;
    return this;
  }

  /** Appends already-tokenized ids (e.g. a prompt built elsewhere), all with one flag. */
  tokens(ids: readonly number[], target: boolean): this {
    this.flush();
    for (const id of ids) {
      this.ids.push(id);
      this.mask.push(target ? 1 : 0);
    }
    return this;
  }

  get length(): number {
    this.flush();
    return this.ids.length;
  }

  finish(): TokenizedSample {
    this.flush();
    return { ids: Uint32Array.from(this.ids), mask: Uint8Array.from(this.mask) };
  }

  private flush(): void {
    if (this.pendingText.length === 0) return;
    const encoded = this.encodePlain(this.pendingText);
    const flag = this.pendingTarget ? 1 : 0;
    for (const id of encoded) {
      this.ids.push(id);
      this.mask.push(flag);
    }
    this.pendingText = "";
  }
}

/** Number of tokens whose mask is 1. */
export function countTargets(mask: Uint8Array): number {
  let total = 0;
  for (const value of mask) total += value;
  return total;
}
