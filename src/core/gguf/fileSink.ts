/**
 * Sequential writes to an open file, tracking where the next byte lands. Small writes (header
 * strings, short tensors, padding) are batched; large chunks go straight through. It never
 * keeps a reference to a caller's chunk after write() resolves, so producers may reuse their
 * buffers.
 */
import type { FileHandle } from "node:fs/promises";

const STAGING_BYTES = 4 << 20;

export class FileSink {
  private readonly staging = Buffer.allocUnsafe(STAGING_BYTES);
  private staged = 0;
  /** Bytes accepted so far (flushed or staged). */
  position = 0;

  constructor(private readonly handle: FileHandle) {}

  async write(bytes: Uint8Array): Promise<void> {
    this.position += bytes.byteLength;
    if (bytes.byteLength >= STAGING_BYTES / 2) {
      await this.flush();
      await this.writeFully(bytes);
      return;
    }
    if (this.staged + bytes.byteLength > STAGING_BYTES) await this.flush();
    this.staging.set(bytes, this.staged);
    this.staged += bytes.byteLength;
  }

  async flush(): Promise<void> {
    if (this.staged === 0) return;
    const staged = this.staged;
    this.staged = 0;
    await this.writeFully(this.staging.subarray(0, staged));
  }

  private async writeFully(bytes: Uint8Array): Promise<void> {
    let written = 0;
    while (written < bytes.byteLength) written += (await this.handle.write(bytes, written, bytes.byteLength - written)).bytesWritten;
  }
}
