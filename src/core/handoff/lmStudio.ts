/**
 * Hands an exported GGUF to LM Studio. LM Studio lists every GGUF under its models folder laid
 * out as `<models>/<publisher>/<model-name>/<file>.gguf` (the Hugging Face repo layout it
 * downloads into), and reads the chat template from the GGUF itself, so placing the file is
 * all it takes. The file is hard-linked when the models folder is on the same filesystem (no
 * second copy of a 13 GB file) and copied otherwise, through a temporary name and a rename,
 * so LM Studio never sees a half-written model.
 *
 * Models folder: `~/.lmstudio/models` (current default), else `~/.cache/lm-studio/models`
 * (older installs) when only that exists; users can move it in LM Studio's settings, so the
 * caller may pass any folder.
 */
import { existsSync } from "node:fs";
import { copyFile, link, mkdir, rename, rm, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, join } from "node:path";

export function defaultLmStudioModelsDir(home: string = homedir(), exists: (path: string) => boolean = existsSync): string {
  const current = join(home, ".lmstudio", "models");
  const legacy = join(home, ".cache", "lm-studio", "models");
  if (exists(current) || exists(join(home, ".lmstudio"))) return current;
  if (exists(legacy)) return legacy;
  return current;
}

export interface LmStudioInstallOptions {
  ggufPath: string;
  /** LM Studio's models folder (defaultLmStudioModelsDir()). */
  modelsDir: string;
  /** First folder level, e.g. "finetune-studio" or the user's name. */
  publisher: string;
  /** Second folder level, e.g. "qwen2.5-coder-1.5b-myrepo". */
  modelName: string;
  /** "auto" (default): hard link, falling back to a copy across filesystems. */
  mode?: "auto" | "hardlink" | "copy";
  /** Replace a different file already at the destination. */
  replace?: boolean;
}

export interface LmStudioInstallResult {
  path: string;
  mode: "hardlink" | "copy" | "already-present";
  bytes: number;
}

/** One folder name: no separators, no dot-only names, nothing Windows refuses. */
function checkSegment(what: string, value: string): void {
  if (value.length === 0 || value.length > 200 || /[\\/:*?"<>|\u0000-\u001f]/.test(value) || /^\.+$/.test(value) || value !== value.trim()) {
    throw new Error(`The LM Studio ${what} ${JSON.stringify(value)} is not a usable folder name; use letters, digits, dots, dashes and underscores (no slashes).`);
  }
}

export async function installIntoLmStudio(options: LmStudioInstallOptions): Promise<LmStudioInstallResult> {
  checkSegment("publisher", options.publisher);
  checkSegment("model name", options.modelName);
  if (!options.ggufPath.toLowerCase().endsWith(".gguf")) throw new Error(`${options.ggufPath} is not a .gguf file; LM Studio only lists .gguf files.`);
  const source = await stat(options.ggufPath).catch(() => undefined);
  if (!source?.isFile()) throw new Error(`Cannot hand ${options.ggufPath} to LM Studio: the file does not exist.`);
  const folder = join(options.modelsDir, options.publisher, options.modelName);
  const target = join(folder, basename(options.ggufPath));
  const existing = await stat(target).catch(() => undefined);
  if (existing) {
    if (existing.ino === source.ino && existing.dev === source.dev) return { path: target, mode: "already-present", bytes: existing.size };
    if (!options.replace) throw new Error(`${target} already exists and is a different file; pass replace to overwrite it, or choose another model name.`);
  }
  await mkdir(folder, { recursive: true });
  const mode = options.mode ?? "auto";
  const temp = join(folder, `.${basename(target)}.${process.pid}.partial`);
  await rm(temp, { force: true });
  try {
    let used: "hardlink" | "copy" = "copy";
    if (mode !== "copy") {
      try {
        await link(options.ggufPath, temp);
        used = "hardlink";
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (mode === "hardlink" || !["EXDEV", "EPERM", "ENOTSUP", "EOPNOTSUPP", "EMLINK", "EACCES"].includes(code ?? "")) throw error;
      }
    }
    if (used === "copy") await copyFile(options.ggufPath, temp);
    await rename(temp, target);
    return { path: target, mode: used, bytes: source.size };
  } finally {
    await rm(temp, { force: true });
  }
}
