import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

const probe = join(__dirname, "..", "fixtures", "datasets", "validationProbe.ts");
const LINES = 200_000;
/** Far below the ~115 MB file: a validator that kept the file, or one object per line, dies. */
const HEAP_LIMIT_MB = 48;

interface ProbeResult {
  durationMs: number;
  peakRssDeltaBytes: number;
  lines: number;
  totalBytes: number;
  usableSamples: number;
  problemCounts: Record<string, number>;
}

/** Realistic records (system prompts, tool calls, reasoning); 1 in 1,000 broken, 1 in 1,000 the same sample. */
function writeLargeDataset(file: string): void {
  const fd = openSync(file, "w");
  const filler = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.";
  let batch: string[] = [];
  for (let index = 0; index < LINES; index++) {
    let line: string;
    if (index % 1000 === 999) line = `{"messages": [{"role": "user", "content": "broken ${index}"}`;
    else if (index % 500 === 499) line = JSON.stringify({ messages: [{ role: "user", content: "q0" }, { role: "assistant", content: "a0" }] });
    else if (index % 2 === 0) {
      line = JSON.stringify({
        messages: [
          { role: "system", content: "You are a helpful assistant." },
          { role: "user", content: `Question ${index}: ${filler}` },
          { role: "assistant", content: `Answer ${index}: ${filler} ${filler}` },
        ],
      });
    } else {
      line = JSON.stringify({
        tools: [{ type: "function", function: { name: "weather", parameters: { type: "object", properties: { city: { type: "string" } } } } }],
        messages: [
          { role: "user", content: `Weather ${index}?` },
          { role: "assistant", content: null, tool_calls: [{ id: `c${index}`, type: "function", function: { name: "weather", arguments: `{"city":"Paris ${index}"}` } }] },
          { role: "tool", tool_call_id: `c${index}`, content: `{"temp": ${index % 40}}` },
          { role: "assistant", reasoning: filler, content: `It is ${index % 40} degrees. ${filler}` },
        ],
      });
    }
    batch.push(line);
    if (batch.length === 10_000) {
      writeSync(fd, `${batch.join("\n")}\n`);
      batch = [];
    }
  }
  if (batch.length > 0) writeSync(fd, `${batch.join("\n")}\n`);
  closeSync(fd);
}

function runProbe(file: string, ...flags: string[]): ProbeResult {
  const output = execFileSync(process.execPath, [`--max-old-space-size=${HEAP_LIMIT_MB}`, "--import", "tsx", probe, file, ...flags], { encoding: "utf8" });
  return JSON.parse(output) as ProbeResult;
}

test(`${LINES.toLocaleString("en-US")} lines validate in bounded memory`, (context) => {
  const folder = mkdtempSync(join(tmpdir(), "fts-scale-"));
  const file = join(folder, "large.jsonl");
  try {
    writeLargeDataset(file);
    // The worker runs the same code; validationProbe.ts --worker measures it by hand.
    for (const flags of [[]]) {
      const result = runProbe(file, ...flags);
      const megabytes = result.totalBytes / (1024 * 1024);
      const seconds = result.durationMs / 1000;
      context.diagnostic(
        `${flags.length === 0 ? "in-process" : "worker"}: ${result.lines} lines, ${megabytes.toFixed(1)} MiB in ${seconds.toFixed(2)} s ` +
          `= ${(megabytes / seconds).toFixed(1)} MiB/s, ${Math.round(result.lines / seconds).toLocaleString("en-US")} lines/s; ` +
          `peak RSS +${(result.peakRssDeltaBytes / (1024 * 1024)).toFixed(1)} MiB with a ${HEAP_LIMIT_MB} MB heap limit`,
      );
      assert.equal(result.lines, LINES);
      assert.equal(result.problemCounts["invalid_json"], LINES / 1000);
      // Indexes 499, 1499, ... hold the same sample (the other half of `% 500 === 499` is broken).
      assert.equal(result.problemCounts["duplicate"], LINES / 1000 - 1, "every copy after the first is a duplicate");
      assert.equal(result.usableSamples, LINES - LINES / 1000);
      assert.ok(result.peakRssDeltaBytes < result.totalBytes, `peak RSS grew ${result.peakRssDeltaBytes} bytes for a ${result.totalBytes}-byte file`);
    }
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
});
