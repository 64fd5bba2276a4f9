import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { binaryPackageCandidates, bindLlamaQuantize, findPackageFolder, locateLlamaLibrary } from "../../src/core/quantize/llamaLibrary";
import {
  GGML_TYPE_IDS,
  LLAMA_FTYPE_IDS,
  LLAMA_MODEL_QUANTIZE_PARAMS,
  LLAMA_MODEL_TENSOR_OVERRIDE,
  LLAMA_QUANTIZE_DEFAULTS,
  LLAMA_QUANTIZE_FUNCTIONS,
  PINNED_LLAMA_CPP_RELEASE,
  PINNED_NODE_LLAMA_CPP_VERSION,
  type CStruct,
} from "../../src/core/quantize/llamaQuantizeAbi";
import { QUANTIZE_CHILD_SOURCE, buildQuantizeJob, isQuantizeChildMessage } from "../../src/core/quantize/quantizeChild";
import { QuantizeError } from "../../src/core/quantize/quantizeTypes";

// Header drift: our FFI declarations (llamaQuantizeAbi.ts) against the llama.cpp source that
// node-llama-cpp ships as llama/gitRelease.bundle, read with git at test time. Upgrading
// node-llama-cpp to a llama.cpp whose quantizer struct or signatures differ fails here.

const root = join(__dirname, "..", "..");
const scratch = mkdtempSync(join(tmpdir(), "fts-quantize-abi-"));
const nodeLlamaCpp = findPackageFolder("node-llama-cpp", __filename) ?? "";
let llamaH = "";
let ggmlH = "";
let llamaQuantCpp = "";

before(() => {
  const bundle = join(nodeLlamaCpp, "llama", "gitRelease.bundle");
  const git = (...args: string[]): string => execFileSync("git", args, { encoding: "utf8", maxBuffer: 64 << 20 });
  const head = git("bundle", "list-heads", bundle).trim().split(/\s+/)[0] ?? "";
  assert.match(head, /^[0-9a-f]{40}$/, `a commit in ${bundle}`);
  const repository = join(scratch, "llama.git");
  git("init", "--quiet", "--bare", repository);
  git("-C", repository, "bundle", "unbundle", bundle);
  const show = (path: string): string => stripComments(git("-C", repository, "show", `${head}:${path}`));
  llamaH = show("include/llama.h");
  ggmlH = show("ggml/include/ggml.h");
  llamaQuantCpp = show("src/llama-quant.cpp");
});
after(() => rmSync(scratch, { recursive: true, force: true }));

function stripComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, " ").replace(/\/\/[^\n]*/g, "");
}

/** "const  char*" → "const char *": the spelling llamaQuantizeAbi.ts uses. */
function normalizeType(text: string): string {
  return text.replace(/\s*\*\s*/g, " * ").replace(/\s+/g, " ").trim();
}

function declaration(text: string): { name: string; cType: string } {
  const match = /^(.*?)([A-Za-z_]\w*)$/.exec(text.replace(/\s+/g, " ").trim());
  assert.ok(match, `a C declaration: ${text}`);
  return { name: match[2] ?? "", cType: normalizeType(match[1] ?? "") };
}

function headerStruct(name: string): { name: string; cType: string }[] {
  const body = new RegExp(`struct\\s+${name}\\s*\\{([^}]*)\\}`).exec(llamaH)?.[1];
  assert.ok(body !== undefined, `llama.h declares struct ${name}`);
  return body.split(";").map((member) => member.trim()).filter(Boolean).map(declaration);
}

function enumValues(source: string, prefix: string): Map<string, number> {
  return new Map([...source.matchAll(new RegExp(`\\b${prefix}(\\w+)\\s*=\\s*(\\d+)`, "g"))].map((match) => [match[1] ?? "", Number(match[2])]));
}

const ours = (struct: CStruct): { name: string; cType: string }[] => struct.fields.map(({ name, cType }) => ({ name, cType }));

test("node-llama-cpp, its llama.cpp release and koffi are the pinned versions", () => {
  const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { dependencies: Record<string, string> };
  assert.equal(manifest.dependencies["node-llama-cpp"], PINNED_NODE_LLAMA_CPP_VERSION, "package.json pins node-llama-cpp exactly");
  assert.match(manifest.dependencies["koffi"] ?? "", /^\d+\.\d+\.\d+$/, "package.json pins koffi exactly");
  const installed = JSON.parse(readFileSync(join(nodeLlamaCpp, "package.json"), "utf8")) as { version: string };
  assert.equal(installed.version, PINNED_NODE_LLAMA_CPP_VERSION);
  const release = JSON.parse(readFileSync(join(nodeLlamaCpp, "llama", "binariesGithubRelease.json"), "utf8")) as { release: string };
  assert.equal(release.release, PINNED_LLAMA_CPP_RELEASE);
});

test("llama_model_quantize_params matches llama.h member by member (names, C types, order)", () => {
  assert.deepEqual(ours(LLAMA_MODEL_QUANTIZE_PARAMS), headerStruct("llama_model_quantize_params"));
});

test("llama_model_tensor_override matches llama.h", () => {
  assert.deepEqual(ours(LLAMA_MODEL_TENSOR_OVERRIDE), headerStruct("llama_model_tensor_override"));
});

test("the functions we bind match their LLAMA_API prototypes", () => {
  for (const fn of LLAMA_QUANTIZE_FUNCTIONS) {
    const match = new RegExp(`LLAMA_API\\s+([^;()]*?)\\b${fn.name}\\s*\\(([^)]*)\\)\\s*;`).exec(llamaH);
    assert.ok(match, `llama.h declares ${fn.name}`);
    assert.equal(normalizeType(match[1] ?? ""), fn.resultCType, `${fn.name} result`);
    const parameters = (match[2] ?? "").trim() === "void" ? [] : (match[2] ?? "").split(",").map(declaration);
    assert.deepEqual(parameters, fn.parameters.map(({ name, cType }) => ({ name, cType })), `${fn.name} parameters`);
  }
});

test("the llama_ftype and ggml_type values we use match the headers", () => {
  const ftypes = enumValues(llamaH, "LLAMA_FTYPE_");
  for (const [name, value] of Object.entries(LLAMA_FTYPE_IDS)) assert.equal(ftypes.get(name), value, `LLAMA_FTYPE_${name}`);
  const types = enumValues(ggmlH, "GGML_TYPE_");
  for (const [name, value] of Object.entries(GGML_TYPE_IDS)) assert.equal(types.get(name), value, `GGML_TYPE_${name}`);
});

test("the defaults the child checks are llama_model_quantize_default_params() of llama-quant.cpp", () => {
  const body = /llama_model_quantize_params\s+llama_model_quantize_default_params\(\)\s*\{[\s\S]*?=\s*\{([\s\S]*?)\};/.exec(llamaQuantCpp)?.[1];
  assert.ok(body, "llama-quant.cpp defines llama_model_quantize_default_params");
  const enums = new Map<string, number>();
  for (const [name, value] of enumValues(llamaH, "LLAMA_FTYPE_")) enums.set(`LLAMA_FTYPE_${name}`, value);
  for (const [name, value] of enumValues(ggmlH, "GGML_TYPE_")) enums.set(`GGML_TYPE_${name}`, value);
  const constant = /LLAMA_QUANT_MAX_BUF_SIZE\s*=\s*([\dull*\s]+);/.exec(llamaQuantCpp)?.[1] ?? "";
  const resolveValue = (text: string): unknown => {
    if (/^-?\d+$/.test(text)) return Number(text);
    if (text === "true" || text === "false") return text === "true";
    if (text === "nullptr") return null;
    if (enums.has(text)) return enums.get(text);
    if (text === "LLAMA_QUANT_MAX_BUF_SIZE") return constant.split("*").reduce((product, factor) => product * Number(factor.replace(/ull|\s/g, "")), 1);
    assert.fail(`unknown default ${text}`);
  };
  const values = body.split(",").map((value) => value.trim()).filter(Boolean).map(resolveValue);
  assert.deepEqual(values, LLAMA_MODEL_QUANTIZE_PARAMS.fields.map((member) => LLAMA_QUANTIZE_DEFAULTS[member.name]));
});

test("koffi lays the struct out like a C compiler, and the library's defaults read back through it", (t) => {
  const binding = bindLlamaQuantize();
  t.diagnostic(`libllama: ${binding.location.library}`);
  const params = binding.structs["llama_model_quantize_params"];
  assert.ok(params?.members);
  if (binding.koffi.sizeof("void *") === 8) {
    // LP64 / LLP64: 4 int-sized members, 6 bools, padding to 24, 4 pointers, size_t.
    const offsets = Object.fromEntries(Object.values(params.members).map((member) => [member.name, member.offset]));
    assert.deepEqual(offsets, {
      nthread: 0, ftype: 4, output_tensor_type: 8, token_embedding_type: 12,
      allow_requantize: 16, quantize_output_tensor: 17, only_copy: 18, pure: 19, keep_split: 20, dry_run: 21,
      imatrix: 24, kv_overrides: 32, tt_overrides: 40, prune_layers: 48, max_buf_size: 56,
    });
    assert.equal(params.size, 64);
    assert.equal(binding.structs["llama_model_tensor_override"]?.size, 16);
  }
  const defaults = binding.functions["llama_model_quantize_default_params"]?.() as Record<string, unknown>;
  assert.deepEqual(defaults, { ...LLAMA_QUANTIZE_DEFAULTS });
});

test("locateLlamaLibrary prefers the CPU build and resolves inside an installed extension's folder", () => {
  const real = locateLlamaLibrary();
  if (process.platform === "linux" && process.arch === "x64") assert.equal(real.binariesPackage, "@node-llama-cpp/linux-x64");
  assert.equal(real.llamaCppRelease, PINNED_LLAMA_CPP_RELEASE);
  assert.ok(real.dependencies.length === 2 && real.dependencies.every((file) => file.startsWith(real.binariesFolder)));

  // An installed .vsix: <ext>/dist/extension.js with <ext>/node_modules/... beside it.
  const extension = join(scratch, "installed-extension");
  const link = (name: string, target: string): void => {
    mkdirSync(dirname(join(extension, "node_modules", name)), { recursive: true });
    symlinkSync(target, join(extension, "node_modules", name), "dir");
  };
  link("node-llama-cpp", real.nodeLlamaCppFolder);
  link(real.binariesPackage, dirname(dirname(real.binariesFolder)));
  link("koffi", findPackageFolder("koffi", __filename) ?? "");
  mkdirSync(join(extension, "dist"));
  writeFileSync(join(extension, "dist", "extension.js"), "");
  const installed = locateLlamaLibrary({ from: join(extension, "dist", "extension.js") });
  const modules = join(extension, "node_modules");
  assert.equal(installed.nodeLlamaCppFolder, join(modules, "node-llama-cpp"));
  assert.ok(installed.library.startsWith(join(modules, real.binariesPackage, "bins")), installed.library);
  // require.resolve follows the symlink; from a folder under tmpdir only <ext>/node_modules has koffi.
  assert.equal(realpathSync(installed.koffiPath), realpathSync(real.koffiPath));
});

test("binaries of another llama.cpp release are refused with what to do", () => {
  const fake = join(scratch, "other-release", "node_modules");
  const write = (path: string, text: string): void => {
    mkdirSync(dirname(join(fake, path)), { recursive: true });
    writeFileSync(join(fake, path), text);
  };
  write("node-llama-cpp/package.json", JSON.stringify({ version: "9.9.9" }));
  write("@node-llama-cpp/linux-x64/package.json", JSON.stringify({ version: "9.9.9" }));
  write("@node-llama-cpp/linux-x64/bins/linux-x64/libllama.so", "");
  write("@node-llama-cpp/linux-x64/bins/linux-x64/_nlcBuildMetadata.json", JSON.stringify({ buildOptions: { llamaCpp: { release: "b9999" } } }));
  symlinkSync(findPackageFolder("koffi", __filename) ?? "", join(fake, "koffi"), "dir");
  assert.throws(
    () => locateLlamaLibrary({ from: join(fake, "..", "main.js"), platform: "linux", arch: "x64" }),
    (error: unknown) => QuantizeError.is(error, "library_mismatch") && /llama\.cpp b9999, but .* are for v0\.5\.0/.test(error.message),
  );
  assert.throws(() => locateLlamaLibrary({ from: join(fake, "..", "main.js"), platform: "aix", arch: "ppc64" }), (error: unknown) => QuantizeError.is(error, "library_missing") && /no prebuilt binaries for this platform/.test(error.message));
});

test("binary packages per platform: the CPU build first", () => {
  assert.deepEqual(binaryPackageCandidates("linux", "x64"), ["@node-llama-cpp/linux-x64", "@node-llama-cpp/linux-x64-vulkan", "@node-llama-cpp/linux-x64-cuda"]);
  assert.deepEqual(binaryPackageCandidates("win32", "x64")[0], "@node-llama-cpp/win-x64");
  assert.deepEqual(binaryPackageCandidates("darwin", "arm64"), ["@node-llama-cpp/mac-arm64-metal"]);
  assert.deepEqual(binaryPackageCandidates("freebsd", "x64"), []);
});

test("the child refuses to quantize when the library's defaults do not read back as declared", async () => {
  const job = buildQuantizeJob(locateLlamaLibrary(), { input: "/nonexistent.gguf", output: join(scratch, "never.gguf"), params: {}, overrides: [] });
  // Simulate a library whose struct starts with a 64-bit member: every later member shifts.
  const params = job.structs.find((struct) => struct.name === "llama_model_quantize_params");
  assert.ok(params);
  params.definition["nthread"] = "int64_t";
  const child = spawn(process.execPath, ["-e", QUANTIZE_CHILD_SOURCE], { stdio: ["ignore", "ignore", "pipe", "ipc"], serialization: "json" });
  const message = await new Promise<unknown>((resolve, reject) => {
    child.once("message", resolve);
    child.once("error", reject);
    child.send(job);
  });
  await new Promise((resolve) => child.once("exit", resolve));
  assert.ok(isQuantizeChildMessage(message) && message.kind === "failed", JSON.stringify(message));
  assert.equal(message.stage, "abi");
  assert.match(message.message, /ftype = \d+ \(expected 7\).*struct layout differs/);
});
