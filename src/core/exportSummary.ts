/**
 * What the user is told after an export, the same in the CLI and the editor: the file, its
 * verification figures against the PyTorch model, and how to use it in Ollama.
 */
import type { ExportResult } from "./exportModel";
import { writeOllamaModelfile, type WrittenModelfile } from "./handoff/ollamaModelfile";

export function describeExport(result: ExportResult): string {
  const size = `${(result.bytes / 1e6).toFixed(1)} MB`;
  const verification = result.verification?.distribution;
  const verified = verification
    ? `; verified against PyTorch on ${verification.positions} positions: KL mean ${verification.klMean.toExponential(1)}, ` +
      `max ${verification.klMax.toExponential(1)}, top-1 ${(verification.top1 * 100).toFixed(1)}%`
    : "; not verified";
  return `${result.outFile} (${result.type}, ${result.architecture}, ${size}, ${result.seconds.toFixed(1)} s${verified})`;
}

/** Writes the Ollama Modelfile beside the GGUF; undefined (with the reason logged) if it cannot. */
export async function writeHandoffFiles(result: ExportResult, log: (line: string) => void): Promise<WrittenModelfile | undefined> {
  try {
    return await writeOllamaModelfile(result.outFile);
  } catch (error) {
    log(`No Ollama Modelfile: ${error instanceof Error ? error.message : String(error)}`);
    return undefined;
  }
}
