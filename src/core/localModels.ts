/**
 * What is in the models folder: Hugging Face checkpoint folders (config.json plus
 * safetensors) and GGUF files. Read-only; never follows the user into other folders.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

export interface LocalModel {
  name: string;
  path: string;
  kind: "hf-checkpoint" | "gguf";
  bytes: number;
  /** model_type from config.json, or "gguf". */
  architecture: string;
}

export function listLocalModels(folder: string): LocalModel[] {
  if (!existsSync(folder)) return [];
  const models: LocalModel[] = [];
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    const path = join(folder, entry.name);
    if (entry.isFile() && entry.name.endsWith(".gguf")) {
      models.push({ name: entry.name, path, kind: "gguf", bytes: statSync(path).size, architecture: "gguf" });
    } else if (entry.isDirectory() && existsSync(join(path, "config.json"))) {
      models.push({
        name: entry.name,
        path,
        kind: "hf-checkpoint",
        bytes: folderBytes(path),
        architecture: readModelType(join(path, "config.json")),
      });
    }
  }
  return models.sort((a, b) => a.name.localeCompare(b.name));
}

function readModelType(configPath: string): string {
  try {
    const config = JSON.parse(readFileSync(configPath, "utf8")) as { model_type?: unknown };
    return typeof config.model_type === "string" ? config.model_type : "unknown";
  } catch {
    return "unreadable config.json";
  }
}

function folderBytes(folder: string): number {
  let total = 0;
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    if (entry.isFile()) total += statSync(join(folder, entry.name)).size;
  }
  return total;
}
