/**
 * Splits a byte stream into text lines. Chunks from a pipe can end in the middle of a line
 * or of a multi-byte UTF-8 character, so bytes go through a streaming decoder and the
 * unfinished tail waits for the next chunk.
 */
export class LineSplitter {
  private readonly decoder = new TextDecoder("utf-8");
  private pending = "";

  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: Uint8Array): void {
    this.pending += this.decoder.decode(chunk, { stream: true });
    let newline = this.pending.indexOf("\n");
    while (newline >= 0) {
      const line = this.pending.slice(0, newline).replace(/\r$/, "");
      this.pending = this.pending.slice(newline + 1);
      if (line.trim().length > 0) this.onLine(line);
      newline = this.pending.indexOf("\n");
    }
  }

  /** Emits whatever is left once the stream has ended. */
  end(): void {
    this.pending += this.decoder.decode();
    const rest = this.pending.trim();
    this.pending = "";
    if (rest.length > 0) this.onLine(rest);
  }
}
