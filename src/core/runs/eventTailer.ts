/**
 * Follows a growing events.jsonl: reads from the last offset whenever fs.watch says the file
 * changed, and on a timer as well, because fs.watch misses events on network and some
 * container file systems and cannot watch a file that does not exist yet.
 */
import { closeSync, existsSync, fstatSync, openSync, readSync, watch, type FSWatcher } from "node:fs";
import type { SidecarEvent } from "../../protocol/sidecar";
import { decodeLines, splitCompleteLines } from "./runEvents";

export class EventTailer {
  private offset = 0;
  private rest = "";
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly path: string,
    private readonly onEvents: (events: SidecarEvent[]) => void,
    private readonly pollMs = 500,
    startOffset = 0,
  ) {
    this.offset = startOffset;
  }

  /** Delivers every complete event already in the file, then follows it. */
  start(): this {
    this.poll();
    this.timer = setInterval(() => this.poll(), this.pollMs);
    this.timer.unref?.();
    return this;
  }

  /** Reads whatever was appended since the last read. Safe to call at any time. */
  poll(): void {
    if (this.closed || !existsSync(this.path)) return;
    this.ensureWatcher();
    let fd: number | undefined;
    try {
      fd = openSync(this.path, "r");
      const size = fstatSync(fd).size;
      if (size < this.offset) {
        // Truncated or replaced (a deleted and recreated run): start over.
        this.offset = 0;
        this.rest = "";
      }
      if (size === this.offset) return;
      const buffer = Buffer.alloc(size - this.offset);
      const read = readSync(fd, buffer, 0, buffer.length, this.offset);
      this.offset += read;
      const { lines, rest } = splitCompleteLines(this.rest + buffer.subarray(0, read).toString("utf8"));
      this.rest = rest;
      const events = decodeLines(lines);
      if (events.length > 0) this.onEvents(events);
    } catch {
      // The file vanished between the check and the read (a deleted run); the next poll says.
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  private ensureWatcher(): void {
    if (this.watcher || this.closed) return;
    try {
      this.watcher = watch(this.path, () => this.poll());
      this.watcher.on("error", () => {
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch {
      // Polling alone still follows the file.
    }
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    this.watcher = undefined;
    if (this.timer) clearInterval(this.timer);
  }
}
