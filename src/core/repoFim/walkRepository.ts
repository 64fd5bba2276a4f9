/**
 * Walks a repository the way git sees it: nested .gitignore files apply below their folder, a
 * later rule (or a deeper file) overrides an earlier one, and an ignored folder is not entered.
 * Every file that is left out gets a reason, because "No train files provided" with no
 * explanation is the complaint Refact users had most (anchors.md section 4).
 */

import { lstat, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import ignore, { type Ignore } from "ignore";
import { checkContent, EXCLUDED_DIRECTORIES, languageOf, skipByName, type SkipReason } from "./fileFilters";

export const DEFAULT_MAX_FILE_BYTES = 256 * 1024;

/** A file fit for training. Text is not kept: a big repository would not fit in memory. */
export interface RepoFile {
  /** Repository-relative, forward slashes: the same on every OS, so seeds reproduce across machines. */
  path: string;
  absolutePath: string;
  language: string;
  bytes: number;
}

export interface SkippedEntry {
  /** Repository-relative; folders end with "/". */
  path: string;
  reason: SkipReason;
  detail: string;
}

export interface RepoWalkResult {
  root: string;
  files: RepoFile[];
  skipped: SkippedEntry[];
}

export interface WalkOptions {
  maxFileBytes?: number;
  signal?: AbortSignal;
  onFile?: (path: string) => void;
}

export class RepoWalkError extends Error {
  constructor(readonly path: string, message: string, options?: ErrorOptions) {
    super(`${path}: ${message}`, options);
    this.name = "RepoWalkError";
  }
}

interface IgnoreLayer {
  /** Folder of the .gitignore, relative to the root, "" for the root itself. */
  base: string;
  matcher: Ignore;
}

export async function walkRepository(root: string, options: WalkOptions = {}): Promise<RepoWalkResult> {
  try {
    if (!(await lstat(root)).isDirectory()) throw new RepoWalkError(root, "not a folder");
  } catch (error) {
    if (error instanceof RepoWalkError) throw error;
    throw new RepoWalkError(root, `cannot read the repository folder (${(error as Error).message})`, { cause: error });
  }
  const result: RepoWalkResult = { root, files: [], skipped: [] };
  await walkFolder(root, "", [], options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES, options, result);
  return result;
}

/** Reads a file the walk accepted; it is checked again, because it may have changed since. */
export async function readRepoFile(file: RepoFile): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file.absolutePath);
  } catch (error) {
    throw new RepoWalkError(file.path, `cannot read (${(error as Error).message})`, { cause: error });
  }
  const verdict = checkContent(bytes);
  if ("reason" in verdict) throw new RepoWalkError(file.path, `changed during the build: ${verdict.detail}`);
  return verdict.text;
}

async function walkFolder(
  absolute: string,
  rel: string,
  parentLayers: readonly IgnoreLayer[],
  maxBytes: number,
  options: WalkOptions,
  result: RepoWalkResult,
): Promise<void> {
  options.signal?.throwIfAborted();
  let entries;
  try {
    entries = await readdir(absolute, { withFileTypes: true });
  } catch (error) {
    if (rel === "") throw new RepoWalkError(absolute, `cannot list (${(error as Error).message})`, { cause: error });
    result.skipped.push({ path: `${rel}/`, reason: "unreadable", detail: (error as Error).message });
    return;
  }
  const layers = [...parentLayers];
  const gitignore = entries.find((e) => e.name === ".gitignore" && e.isFile());
  if (gitignore !== undefined) {
    const rules = await readFile(join(absolute, ".gitignore"), "utf8").catch(() => "");
    layers.push({ base: rel, matcher: ignore().add(rules) });
  }
  // Code-point order, not locale order: the same tree gives the same list on every machine.
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const path = rel === "" ? entry.name : `${rel}/${entry.name}`;
    const full = join(absolute, entry.name);
    if (entry.isSymbolicLink()) {
      // A link can leave the repository or loop; the target is walked where it really lives.
      result.skipped.push({ path, reason: "symlink", detail: "symbolic links are not followed" });
      continue;
    }
    if (entry.isDirectory()) {
      if (EXCLUDED_DIRECTORIES.has(entry.name)) {
        result.skipped.push({ path: `${path}/`, reason: "excluded-directory", detail: "dependencies, outputs or tool folder" });
      } else if (isIgnored(layers, path, true)) {
        result.skipped.push({ path: `${path}/`, reason: "gitignored", detail: "matched by .gitignore" });
      } else {
        await walkFolder(full, path, layers, maxBytes, options, result);
      }
      continue;
    }
    if (!entry.isFile()) continue;
    options.signal?.throwIfAborted();
    options.onFile?.(path);
    const skipped = await checkFile(full, path, layers, maxBytes);
    if ("reason" in skipped) result.skipped.push(skipped);
    else result.files.push(skipped);
  }
}

async function checkFile(
  full: string,
  path: string,
  layers: readonly IgnoreLayer[],
  maxBytes: number,
): Promise<RepoFile | SkippedEntry> {
  if (isIgnored(layers, path, false)) return { path, reason: "gitignored", detail: "matched by .gitignore" };
  const byName = skipByName(path);
  if (byName !== undefined) return { path, reason: byName, detail: `refused by file name` };
  let bytes: Buffer;
  try {
    const size = (await lstat(full)).size;
    if (size > maxBytes) return { path, reason: "too-large", detail: `${size} bytes, limit ${maxBytes}` };
    bytes = await readFile(full);
  } catch (error) {
    return { path, reason: "unreadable", detail: (error as Error).message };
  }
  const verdict = checkContent(bytes);
  if ("reason" in verdict) return { path, ...verdict };
  return { path, absolutePath: full, language: languageOf(path) ?? "unknown", bytes: bytes.length };
}

/** Git semantics: layers apply root first, so a deeper .gitignore (or a later "!rule") wins. */
function isIgnored(layers: readonly IgnoreLayer[], path: string, directory: boolean): boolean {
  let ignored = false;
  for (const layer of layers) {
    // Every path below a layer starts with "<base>/", so the rule-relative path is a plain slice.
    const local = layer.base === "" ? path : path.slice(layer.base.length + 1);
    const verdict = layer.matcher.test(directory ? `${local}/` : local);
    if (verdict.ignored) ignored = true;
    else if (verdict.unignored) ignored = false;
  }
  return ignored;
}
