/**
 * Reads a Hugging Face checkpoint's config.json for the GGUF converters, with the errors a
 * user can act on (missing file, not JSON, not an object).
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { GgufExportError } from "./errors";

export async function readHfConfig(folder: string): Promise<{ path: string; config: Record<string, unknown> }> {
  const path = join(folder, "config.json");
  if (!existsSync(path)) throw new GgufExportError("missing_file", `${folder} has no config.json; point the export at a Hugging Face checkpoint folder.`);
  try {
    const parsed: unknown = JSON.parse(await readFile(path, "utf8"));
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not a JSON object");
    return { path, config: parsed as Record<string, unknown> };
  } catch (error) {
    throw new GgufExportError("bad_config", `${path} is not a valid config (${(error as Error).message}).`);
  }
}
