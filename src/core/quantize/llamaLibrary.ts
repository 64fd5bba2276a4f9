/**
 * Finds the prebuilt libllama that node-llama-cpp ships (the same library the inference host
 * runs, so the quantizer and the loader always agree on formats) and binds the quantizer
 * functions with koffi. The search mirrors node-llama-cpp's own (getPrebuiltBinaryPath):
 * the @node-llama-cpp/<platform> package resolved from node-llama-cpp's folder, with its
 * version equal to node-llama-cpp's, binaries in <package>/bins/<folder>/. Paths come from
 * module resolution, so they hold in the repository and in an installed .vsix alike.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import {
  LLAMA_QUANTIZE_FUNCTIONS,
  LLAMA_QUANTIZE_STRUCTS,
  PINNED_LLAMA_CPP_RELEASE,
  koffiStructDefinition,
} from "./llamaQuantizeAbi";
import { QuantizeError } from "./quantizeTypes";

export interface LlamaLibraryLocation {
  nodeLlamaCppFolder: string;
  nodeLlamaCppVersion: string;
  /** e.g. "@node-llama-cpp/linux-x64". */
  binariesPackage: string;
  binariesFolder: string;
  /** llama.cpp release the binaries were built from (_nlcBuildMetadata.json). */
  llamaCppRelease: string;
  /** ggml-base then ggml: loaded first so that libllama finds them on every OS. */
  dependencies: string[];
  library: string;
  /** koffi's entry file, for the quantizer child process to require. */
  koffiPath: string;
}

export interface LocateOptions {
  /** Module path to resolve packages from; default: this file (dist/extension.js when bundled). */
  from?: string;
  platform?: NodeJS.Platform;
  arch?: string;
}

const LIBRARY_FILE = /^(?:lib)?llama(?:\.[^-]+)?\.(?:so|dylib|dll)$/;
const GGML_FILE = /^(?:lib)?ggml(?:\.[^-]+)?\.(?:so|dylib|dll)$/;
const GGML_BASE_FILE = /^(?:lib)?ggml-base(?:\.[^-]+)?\.(?:so|dylib|dll)$/;

/**
 * Binary packages for a platform, CPU build first: llama_model_quantize runs on the CPU in
 * every build, and the CPU build needs no GPU driver to load. GPU builds are a fallback for
 * installs that only have those.
 */
export function binaryPackageCandidates(platform: NodeJS.Platform, arch: string): string[] {
  const names: Record<string, string[]> = {
    "darwin-arm64": ["mac-arm64-metal"],
    "darwin-x64": ["mac-x64"],
    "linux-x64": ["linux-x64", "linux-x64-vulkan", "linux-x64-cuda"],
    "linux-arm64": ["linux-arm64"],
    "linux-arm": ["linux-armv7l"],
    "linux-riscv64": ["linux-riscv64"],
    "win32-x64": ["win-x64", "win-x64-vulkan", "win-x64-cuda"],
    "win32-arm64": ["win-arm64"],
  };
  return (names[`${platform}-${arch}`] ?? []).map((name) => `@node-llama-cpp/${name}`);
}

/** node-llama-cpp's "exports" hide its package.json, so walk the folders Node would search. */
export function findPackageFolder(name: string, from: string): string | undefined {
  for (const folder of createRequire(from).resolve.paths(name) ?? []) {
    if (existsSync(join(folder, name, "package.json"))) return join(folder, name);
  }
  return undefined;
}

function readJson(path: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

export function locateLlamaLibrary(options: LocateOptions = {}): LlamaLibraryLocation {
  const from = options.from ?? __filename;
  const platform = options.platform ?? process.platform;
  const arch = options.arch ?? process.arch;
  const nodeLlamaCppFolder = findPackageFolder("node-llama-cpp", from);
  if (!nodeLlamaCppFolder) {
    throw new QuantizeError("library_missing", `node-llama-cpp is not installed next to ${from}; reinstall the extension (or run npm install in a development checkout).`);
  }
  const nodeLlamaCppVersion = String(readJson(join(nodeLlamaCppFolder, "package.json"))?.["version"] ?? "unknown");
  let koffiPath: string;
  try {
    koffiPath = createRequire(from).resolve("koffi");
  } catch {
    throw new QuantizeError("library_missing", `The koffi package is not installed next to ${from}; reinstall the extension (or run npm install).`);
  }

  const candidates = binaryPackageCandidates(platform, arch);
  const tried: string[] = [];
  for (const binariesPackage of candidates) {
    const packageFolder = findPackageFolder(binariesPackage, join(nodeLlamaCppFolder, "package.json"));
    if (!packageFolder) continue;
    const packageVersion = readJson(join(packageFolder, "package.json"))?.["version"];
    if (packageVersion !== nodeLlamaCppVersion) {
      tried.push(`${binariesPackage} ${String(packageVersion)} (node-llama-cpp is ${nodeLlamaCppVersion})`);
      continue;
    }
    const folder = binariesFolderIn(join(packageFolder, "bins"), binariesPackage.split("/")[1] ?? "");
    if (!folder) {
      tried.push(`${binariesPackage} (no libllama under ${join(packageFolder, "bins")})`);
      continue;
    }
    const files = readdirSync(folder);
    const library = files.find((file) => LIBRARY_FILE.test(file));
    if (!library) continue;
    const dependencies = [files.find((file) => GGML_BASE_FILE.test(file)), files.find((file) => GGML_FILE.test(file))]
      .filter((file): file is string => file !== undefined)
      .map((file) => join(folder, file));
    const metadata = readJson(join(folder, "_nlcBuildMetadata.json"));
    const llamaCpp = (metadata?.["buildOptions"] as { llamaCpp?: { release?: unknown } } | undefined)?.llamaCpp;
    const llamaCppRelease = typeof llamaCpp?.release === "string" ? llamaCpp.release : "unknown";
    if (llamaCppRelease !== PINNED_LLAMA_CPP_RELEASE) {
      throw new QuantizeError(
        "library_mismatch",
        `${join(folder, library)} is llama.cpp ${llamaCppRelease}, but the quantizer's FFI declarations are for ${PINNED_LLAMA_CPP_RELEASE} (node-llama-cpp ${nodeLlamaCppVersion}); update src/core/quantize/llamaQuantizeAbi.ts for this version, or reinstall the extension.`,
      );
    }
    return { nodeLlamaCppFolder, nodeLlamaCppVersion, binariesPackage, binariesFolder: folder, llamaCppRelease, dependencies, library: join(folder, library), koffiPath };
  }
  const wanted = candidates.length > 0 ? candidates.join(", ") : "(none: node-llama-cpp ships no prebuilt binaries for this platform)";
  throw new QuantizeError(
    "library_missing",
    `No prebuilt llama.cpp library for ${platform}-${arch} was found for node-llama-cpp ${nodeLlamaCppVersion} in ${nodeLlamaCppFolder}; looked for ${wanted}${tried.length > 0 ? `; skipped ${tried.join("; ")}` : ""}. Reinstall the extension for this platform.`,
  );
}

/** The folder under bins/ holding libllama, preferring the one named like the package. */
function binariesFolderIn(binsFolder: string, preferred: string): string | undefined {
  let entries: string[];
  try {
    entries = readdirSync(binsFolder);
  } catch {
    return undefined;
  }
  const ordered = [preferred, ...entries.filter((entry) => entry !== preferred)];
  for (const entry of ordered) {
    const folder = join(binsFolder, entry);
    try {
      if (readdirSync(folder).some((file) => LIBRARY_FILE.test(file))) return folder;
    } catch {
      // a plain file (e.g. a marker) or an unreadable entry: not a binaries folder
    }
  }
  return undefined;
}

type Koffi = typeof import("koffi");
type KoffiFunction = ReturnType<ReturnType<Koffi["load"]>["func"]>;

export interface LlamaQuantizeBinding {
  location: LlamaLibraryLocation;
  koffi: Koffi;
  functions: Readonly<Record<string, KoffiFunction>>;
  /** koffi's view of each declared struct: size and member offsets, for layout checks. */
  structs: Readonly<Record<string, ReturnType<Koffi["type"]>>>;
}

let binding: LlamaQuantizeBinding | undefined;

/**
 * Loads libllama into THIS process and declares the quantizer API from llamaQuantizeAbi.ts.
 * koffi registers struct names globally, so the binding is made once per process. The
 * extension host never calls this (a native crash would take VS Code's extension host down):
 * quantizeGguf runs the same declarations in a child process. Tests and diagnostics use it.
 */
export function bindLlamaQuantize(location: LlamaLibraryLocation = locateLlamaLibrary()): LlamaQuantizeBinding {
  if (binding) return binding;
  const koffi = createRequire(__filename)(location.koffiPath) as Koffi;
  for (const dependency of location.dependencies) koffi.load(dependency);
  const library = koffi.load(location.library);
  const structs: Record<string, ReturnType<Koffi["type"]>> = {};
  for (const struct of LLAMA_QUANTIZE_STRUCTS) structs[struct.name] = koffi.type(koffi.struct(struct.name, koffiStructDefinition(struct)));
  const functions: Record<string, KoffiFunction> = {};
  for (const fn of LLAMA_QUANTIZE_FUNCTIONS) {
    functions[fn.name] = library.func(fn.name, fn.resultKoffiType, fn.parameters.map((parameter) => parameter.koffiType));
  }
  binding = { location, koffi, functions, structs };
  return binding;
}
