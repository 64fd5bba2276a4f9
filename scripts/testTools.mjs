#!/usr/bin/env node
// Installs the tools the integration suite needs to run in a REAL VS Code on a machine that cannot
// download VS Code itself: Node 24 (from the npm registry) and the `code-server` npm package, which
// ships a full VS Code (server + web workbench). Headless Chromium comes from apt.
//
// Everything goes into <repo>/.cache (gitignored). Each tool is installed into a temp folder and
// renamed into place only after it is verified, with a stamp file naming the versions, so a second
// call (or a concurrent one) sees either nothing or a complete install, and returns in milliseconds.
//
// Usage: `node scripts/testTools.mjs` (installs, prints the paths) or
//        `import { ensureIntegrationTools } from './scripts/testTools.mjs'`.

import { spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const NODE24_VERSION = '24.9.0';
export const CODE_SERVER_VERSION = '4.139.1';
export const CHROMIUM_PATH = '/usr/bin/chromium';
export const APT_COMMAND = 'apt-get install -y --no-install-recommends chromium libkrb5-dev';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const defaultCacheDir = path.join(repoRoot, '.cache');

// One npm install step must not hang CI forever (the code-server build takes ~2-3 min here).
const INSTALL_TIMEOUT_MS = 20 * 60_000;

/**
 * Makes sure Node 24, code-server and Chromium are available; installs what is missing.
 * @param {{ log?: (msg: string) => void, cacheDir?: string }} [options]
 * @returns {Promise<{ node24: string, serverMain: string, chromium: string }>}
 */
export async function ensureIntegrationTools({ log = (m) => console.log(m), cacheDir = defaultCacheDir } = {}) {
  // Check the apt packages first: failing after a 3-minute install would waste CI time.
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`integration tools: ${CHROMIUM_PATH} not found. Install it with: ${APT_COMMAND}`);
  }
  const node24 = await ensureNode24(cacheDir, log);
  const serverMain = await ensureCodeServer(cacheDir, node24, log);
  return { node24, serverMain, chromium: CHROMIUM_PATH };
}

async function ensureNode24(cacheDir, log) {
  // The npm registry publishes official Node binaries as node-<os>-<arch> (headers included,
  // which node-gyp needs to build code-server's native modules against Node 24).
  const pkg = `node-${process.platform}-${process.arch}`;
  const dir = path.join(cacheDir, 'node24');
  const node24 = path.join(dir, 'node_modules', pkg, 'bin', 'node');
  const stamp = { tool: 'node24', package: pkg, version: NODE24_VERSION };
  if (await stampMatches(dir, stamp) && existsSync(node24)) return node24;

  log(`[testTools] installing Node ${NODE24_VERSION} (${pkg}) into ${dir}`);
  await installAtomically({
    cacheDir, dir, stamp, log,
    step: 'Node 24 install',
    packageJson: { name: 'finetune-studio-node24', private: true, dependencies: { [pkg]: NODE24_VERSION } },
    env: {},
    verify: async (tmp) => {
      const bin = path.join(tmp, 'node_modules', pkg, 'bin', 'node');
      const out = await capture(bin, ['--version']);
      if (out.trim() !== `v${NODE24_VERSION}`) throw new Error(`${bin} --version printed ${JSON.stringify(out.trim())}`);
    },
  });
  return node24;
}

async function ensureCodeServer(cacheDir, node24, log) {
  const dir = path.join(cacheDir, 'code-server');
  const serverMain = serverMainIn(dir);
  // The native modules are built for one Node ABI, so the stamp names the Node version too.
  const stamp = { tool: 'code-server', version: CODE_SERVER_VERSION, node: NODE24_VERSION };
  if (await stampMatches(dir, stamp) && existsSync(serverMain)) return serverMain;

  // kerberos (a VS Code dependency) compiles against the MIT krb5 headers.
  if (!existsSync('/usr/bin/krb5-config')) {
    throw new Error(`integration tools: libkrb5-dev is missing (needed to build code-server). Install it with: ${APT_COMMAND}`);
  }
  const nodePkgDir = path.dirname(path.dirname(node24));
  log(`[testTools] installing code-server ${CODE_SERVER_VERSION} into ${dir} (builds native modules, ~2-3 min)`);
  await installAtomically({
    cacheDir, dir, stamp, log,
    step: 'code-server install',
    // npm 11 blocks dependency install scripts; the CLI flag --allow-scripts is rejected in a
    // project-scoped install (EALLOWSCRIPTS), so the allow list lives in this package.json.
    // code-server's postinstall runs `npm install` in lib/vscode, which builds the native modules.
    packageJson: {
      name: 'finetune-studio-code-server', private: true,
      dependencies: { 'code-server': CODE_SERVER_VERSION },
      allowScripts: { 'code-server': true, argon2: true },
    },
    env: {
      // Node 24 first on PATH: npm (and the nested npm in code-server's postinstall) runs on it,
      // and the postinstall refuses any other major version.
      PATH: `${path.dirname(node24)}${path.delimiter}${process.env.PATH ?? ''}`,
      // Overrides a user ~/.npmrc `nodedir=/usr` (Node 20 headers: wrong ABI) and keeps node-gyp
      // offline. npm warns "Unknown env config nodedir" but passes it on to node-gyp.
      npm_config_nodedir: nodePkgDir,
    },
    verify: async (tmp) => {
      const main = serverMainIn(tmp);
      if (!existsSync(main)) throw new Error(`${main} missing`);
      // Without the postinstall the server starts but crashes on its first native module.
      const spdlog = path.join(tmp, 'node_modules/code-server/lib/vscode/node_modules/@vscode/spdlog/build/Release/spdlog.node');
      if (!existsSync(spdlog)) throw new Error(`${spdlog} missing: code-server's postinstall did not build the native modules`);
    },
  });
  return serverMain;
}

function serverMainIn(dir) {
  return path.join(dir, 'node_modules', 'code-server', 'lib', 'vscode', 'out', 'server-main.js');
}

async function stampMatches(dir, expected) {
  try {
    const actual = JSON.parse(await readFile(path.join(dir, '.installed.json'), 'utf8'));
    return Object.entries(expected).every(([k, v]) => actual[k] === v);
  } catch {
    return false;
  }
}

/**
 * Under `npm test` the outer npm exports npm_config_* and npm_* variables (user agent
 * "node/v20", node-gyp paths) that the nested install would inherit as its own config;
 * code-server's postinstall reads the Node version from npm_config_user_agent and refuses v20.
 */
function withoutOuterNpmVariables(env) {
  return Object.fromEntries(
    Object.entries(env).filter(([name]) => !/^npm_/i.test(name) && name !== 'NODE' && name !== 'INIT_CWD'),
  );
}

/** npm-installs packageJson into a temp folder next to `dir`, verifies it, then renames it into place. */
async function installAtomically({ cacheDir, dir, stamp, step, packageJson, env, verify, log }) {
  const logsDir = path.join(cacheDir, 'logs');
  await mkdir(logsDir, { recursive: true });
  const logFile = path.join(logsDir, `${path.basename(dir)}-install.log`);
  const tmp = `${dir}.tmp-${process.pid}`;
  await removeAbandonedTempDirs(dir);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const started = Date.now();
  try {
    await writeFile(path.join(tmp, 'package.json'), JSON.stringify(packageJson, null, 2));
    await runLogged('npm', ['install', '--no-audit', '--no-fund', '--foreground-scripts'], {
      cwd: tmp, env: { ...withoutOuterNpmVariables(process.env), ...env }, logFile,
    });
    await verify(tmp);
    await writeFile(path.join(tmp, '.installed.json'), JSON.stringify({ ...stamp, installedAt: new Date().toISOString() }, null, 2));
  } catch (err) {
    await rm(tmp, { recursive: true, force: true }).catch(() => {});
    throw new Error(`integration tools: ${step} failed: ${err.message}\n  full log: ${logFile}`);
  }
  // A stale or older-version install is replaced; if a concurrent run already finished the same
  // install, keep theirs (the rename would fail on a non-empty target).
  if (await stampMatches(dir, stamp)) {
    await rm(tmp, { recursive: true, force: true });
  } else {
    await rm(dir, { recursive: true, force: true });
    try {
      await rename(tmp, dir);
    } catch (err) {
      if (!(await stampMatches(dir, stamp))) throw new Error(`integration tools: ${step}: cannot move ${tmp} to ${dir}: ${err.message}`);
      await rm(tmp, { recursive: true, force: true });
    }
  }
  log(`[testTools] ${step} done in ${((Date.now() - started) / 1000).toFixed(1)} s (log: ${logFile})`);
}

// An install interrupted (Ctrl-C, CI cancel) leaves <dir>.tmp-<pid>; remove those whose process is gone.
async function removeAbandonedTempDirs(dir) {
  const prefix = `${path.basename(dir)}.tmp-`;
  for (const name of await readdir(path.dirname(dir))) {
    const pid = name.startsWith(prefix) ? Number(name.slice(prefix.length)) : NaN;
    if (!Number.isInteger(pid) || isAlive(pid)) continue;
    await rm(path.join(path.dirname(dir), name), { recursive: true, force: true });
  }
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

function runLogged(cmd, args, { cwd, env, logFile }) {
  return new Promise((resolve, reject) => {
    const out = createWriteStream(logFile);
    out.write(`$ (cd ${cwd} && ${cmd} ${args.join(' ')})\n`);
    // stdin ignored: CI has none, and npm must never wait for a prompt.
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pipe(out, { end: false });
    child.stderr.pipe(out, { end: false });
    const timer = setTimeout(() => child.kill('SIGKILL'), INSTALL_TIMEOUT_MS);
    child.on('error', (err) => { clearTimeout(timer); out.end(); reject(err); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      out.end(`\n[exit code ${code}${signal ? `, signal ${signal}` : ''}]\n`);
      if (code === 0) resolve();
      else reject(new Error(`\`${cmd} ${args.join(' ')}\` exited with ${signal ?? code}` +
        (signal === 'SIGKILL' ? ` (killed after ${INSTALL_TIMEOUT_MS / 60_000} min)` : '')));
    });
  });
}

function capture(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout.on('data', (d) => { text += d; });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`${cmd} exited with ${code}`))));
  });
}

// Run as a script: install, print the paths.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  ensureIntegrationTools().then(
    (tools) => console.log(JSON.stringify(tools, null, 2)),
    (err) => { console.error(err.message); process.exitCode = 1; },
  );
}
