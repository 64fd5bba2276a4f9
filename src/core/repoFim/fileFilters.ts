/**
 * The per-file checks that decide whether a repository file is fit to train on. They follow
 * Refact's static filters (anchors.md section 4): a repository fine-tune is only as good as the
 * code it sees, and a leaked secret in a LoRA cannot be taken back, so every rejection carries a
 * reason the user can read.
 */

import { basename, extname } from "node:path";

export type SkipReason =
  | "gitignored"
  | "excluded-directory"
  | "symlink"
  | "unreadable"
  | "too-large"
  | "empty"
  | "lockfile"
  | "secret-file"
  | "secret-content"
  | "binary"
  | "not-utf8"
  | "minified"
  | "generated"
  | "unknown-language";

export const SKIP_REASONS: readonly SkipReason[] = [
  "gitignored", "excluded-directory", "symlink", "unreadable", "too-large", "empty", "lockfile",
  "secret-file", "secret-content", "binary", "not-utf8", "minified", "generated", "unknown-language",
];

/** Directories never walked: dependencies, build outputs and our own run folders are not the user's code. */
export const EXCLUDED_DIRECTORIES: ReadonlySet<string> = new Set([
  ".git", ".hg", ".svn", "node_modules", "vendor", "third_party", "third-party", "dist", "build", "out",
  ".finetune", "__pycache__", ".venv", "venv", ".tox", ".mypy_cache", ".pytest_cache", "target",
  ".next", ".nuxt", "coverage", ".gradle", ".idea", ".vscode-test", "bower_components", "Pods",
]);

const LOCKFILES: ReadonlySet<string> = new Set([
  "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lockb", "bun.lock",
  "Cargo.lock", "poetry.lock", "Pipfile.lock", "uv.lock", "pdm.lock", "go.sum", "Gemfile.lock",
  "composer.lock", "mix.lock", "pubspec.lock", "Podfile.lock", "packages.lock.json", "flake.lock",
  "gradle.lockfile", "conda-lock.yml",
]);

const LANGUAGES: Readonly<Record<string, string>> = {
  ".ts": "typescript", ".tsx": "typescript", ".mts": "typescript", ".cts": "typescript",
  ".js": "javascript", ".jsx": "javascript", ".mjs": "javascript", ".cjs": "javascript",
  ".py": "python", ".pyi": "python", ".go": "go", ".rs": "rust", ".java": "java", ".kt": "kotlin",
  ".kts": "kotlin", ".scala": "scala", ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp",
  ".hpp": "cpp", ".hh": "cpp", ".cs": "csharp", ".swift": "swift", ".m": "objective-c", ".rb": "ruby",
  ".php": "php", ".lua": "lua", ".sh": "shell", ".bash": "shell", ".zsh": "shell", ".ps1": "powershell",
  ".r": "r", ".jl": "julia", ".dart": "dart", ".ex": "elixir", ".exs": "elixir", ".erl": "erlang",
  ".hs": "haskell", ".ml": "ocaml", ".clj": "clojure", ".vue": "vue", ".svelte": "svelte",
  ".html": "html", ".css": "css", ".scss": "scss", ".sql": "sql", ".zig": "zig", ".nim": "nim",
  ".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".proto": "protobuf", ".tf": "terraform",
};

/** Said by name so the report tells "binary", not just "unknown language", without reading the file. */
const BINARY_EXTENSIONS =
  /\.(png|jpe?g|gif|bmp|ico|webp|tiff?|pdf|zip|gz|tgz|bz2|xz|7z|rar|jar|war|class|exe|dll|so|dylib|a|o|obj|lib|wasm|pyc|pyo|woff2?|ttf|otf|eot|mp[34]|mov|avi|wav|flac|ogg|sqlite3?|db|bin|dat|npy|npz|pt|pth|onnx|gguf|safetensors)$/;

/** Files known by name only. */
const LANGUAGES_BY_NAME: Readonly<Record<string, string>> = {
  Dockerfile: "dockerfile", Makefile: "makefile", "CMakeLists.txt": "cmake", Rakefile: "ruby",
};

export function languageOf(path: string): string | undefined {
  const name = basename(path);
  return LANGUAGES_BY_NAME[name] ?? LANGUAGES[extname(name).toLowerCase()];
}

/** A check that can be decided from the name alone, before reading a byte. */
export function skipByName(path: string): SkipReason | undefined {
  const name = basename(path);
  const lower = name.toLowerCase();
  if (LOCKFILES.has(name)) return "lockfile";
  // .env.example is often harmless, but often a copy of the real file: refusing all .env* is the safe side.
  if (lower === ".env" || lower.startsWith(".env.") || lower.endsWith(".env")) return "secret-file";
  if (/\.(pem|key|p12|pfx|jks|keystore|asc|gpg|ppk|der|crt|cer)$/.test(lower)) return "secret-file";
  if (/^id_(rsa|dsa|ecdsa|ed25519)/.test(lower)) return "secret-file";
  if ([".netrc", ".npmrc", ".pypirc", ".pgpass", ".htpasswd", "credentials", "credentials.json", "secrets.json",
    "secrets.yaml", "secrets.yml", "service-account.json"].includes(lower)) return "secret-file";
  if (/\.min\.(js|css|mjs)$/.test(lower) || /[.-]bundle\.js$/.test(lower)) return "minified";
  if (/(\.pb\.go|_pb2\.pyi?|_pb2_grpc\.py|\.g\.dart|\.designer\.cs|\.generated\.\w+)$/.test(lower)) return "generated";
  if (BINARY_EXTENSIONS.test(lower)) return "binary";
  if (languageOf(path) === undefined) return "unknown-language";
  return undefined;
}

/** Private keys and token shapes that a model must never learn to complete. */
const SECRET_PATTERNS: readonly RegExp[] = [
  /-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----/,
  /\b(AKIA|ASIA)[0-9A-Z]{16}\b/,
  /\baws_secret_access_key\s*[:=]\s*["']?[A-Za-z0-9/+=]{40}/i,
  /\bgh[pousr]_[A-Za-z0-9]{36,}\b/,
  /\bgithub_pat_[A-Za-z0-9_]{50,}\b/,
  /\bxox[abprs]-[A-Za-z0-9-]{10,}/,
  /\bAIza[0-9A-Za-z_-]{35}\b/,
  /\bsk-(proj-)?[A-Za-z0-9_-]{32,}\b/,
  /\bsk_live_[0-9a-zA-Z]{24,}\b/,
  // api_key = "...": a secret-sounding name ending right at the assignment (so `tokenizer_class`
  // is not one), given a quoted literal of 20+ token characters with both letters and digits
  // (so `"PreTrainedTokenizerFast"` and `"my-app.token-format"` are not one either).
  /\b[\w-]*(api[_-]?key|secret([_-]?(access[_-]?)?key)?|token|passw(or)?d|access[_-]?key|private[_-]?key)["']?\s*[:=]\s*["'](?=[^"'\s]*\d)(?=[^"'\s]*[A-Za-z])[A-Za-z0-9_\-/+=.]{20,}["']/i,
];

const GENERATED_MARKER = /(@generated\b|\bgenerated by\b|\bauto-?generated\b|\bcode generated\b|do not edit|don't edit this file)/i;

export interface ContentVerdict {
  reason: SkipReason;
  detail: string;
}

/**
 * Decodes and checks a file's bytes. Returns the text, or why it was refused; `detail` says what
 * matched, so a user who disagrees can see which line tripped the check (never the secret itself).
 */
export function checkContent(bytes: Uint8Array): { text: string } | ContentVerdict {
  if (bytes.length === 0) return { reason: "empty", detail: "file is empty" };
  // Git's own heuristic: a NUL in the first 8000 bytes means binary.
  if (bytes.subarray(0, 8000).includes(0)) return { reason: "binary", detail: "contains NUL bytes" };
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return { reason: "not-utf8", detail: "not valid UTF-8" };
  }
  if (text.trim() === "") return { reason: "empty", detail: "only whitespace" };
  const lines = text.split("\n");
  for (const pattern of SECRET_PATTERNS) {
    const line = lines.findIndex((l) => pattern.test(l));
    if (line >= 0) return { reason: "secret-content", detail: `line ${line + 1} looks like a credential or private key` };
  }
  const head = lines.slice(0, 10);
  const marker = head.findIndex((l) => GENERATED_MARKER.test(l));
  if (marker >= 0) return { reason: "generated", detail: `line ${marker + 1} has a generated-code marker` };
  const minified = minifiedReason(text, lines);
  if (minified !== undefined) return { reason: "minified", detail: minified };
  return { text };
}

/** Refact's thresholds: any line over 1000 chars, or an average over 150, is not hand-written code. */
function minifiedReason(text: string, lines: readonly string[]): string | undefined {
  const longest = lines.reduce((max, l) => Math.max(max, l.length), 0);
  if (longest > 1000) return `a line of ${longest} characters`;
  const average = text.length / lines.length;
  if (average > 150) return `average line length ${Math.round(average)}`;
  if (text.length >= 2000) {
    const whitespace = text.match(/\s/g)?.length ?? 0;
    if (whitespace / text.length < 0.05) return "almost no whitespace";
  }
  return undefined;
}
