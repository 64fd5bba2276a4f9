#!/usr/bin/env node
// Runs an extension's mocha suite inside a REAL VS Code extension host without downloading VS Code:
// VS Code's own server (from the code-server npm package, on Node 24) hosts the Node extension host,
// and headless Chromium (playwright-core) opens the web workbench that drives it. With
// --enable-smoke-test-driver and an extensionTestsPath in the payload, the workbench forwards the
// extension host's console to window.codeAutomationLog(level, args) and reports the suite's exit
// code through window.codeAutomationExit(code, logs); we expose both before the page loads.
// See README.md next to this file for the flags, the screenshot protocol and where logs go.

import { spawn } from 'node:child_process';
import { cpSync, createWriteStream, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { format, inspect, parseArgs } from 'node:util';
import { ensureIntegrationTools, repoRoot } from '../../scripts/testTools.mjs';

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];
const OUR_OUTPUTS = ['results.json', 'automation-log.txt', 'browser-console.log', 'server.log', 'install-extension.log',
  'workbench-url.txt', 'server-logs', 'browser-logs'];
const SCREENSHOT_RE = /@@screenshot ([a-z0-9-]+) (.+)$/;

/**
 * Runs the suite once; never rejects for a failing suite, only for a failed tool install.
 * @param {{ extensionDevelopmentPath: string, extensionTestsPath: string, resultsDir: string, workspacePath?: string,
 *   extensionsDir?: string, installVsix?: string, timeoutMs?: number, env?: Record<string, string>,
 *   enableWorkspaceTrust?: boolean, log?: (line: string) => void, tools?: { node24: string, serverMain: string, chromium: string } }} o
 *   Defaults: workspace and extensions folder fresh temp folders, timeoutMs 10 min (everything after the
 *   tool install), workspace trust off (like @vscode/test-electron), tools from ensureIntegrationTools().
 * @returns {Promise<{ exitCode: number, timedOut: boolean, durationMs: number, screenshots: string[], resultsDir: string }>}
 */
export async function runIntegrationSuite(o) {
  const started = Date.now();
  const log = o.log ?? ((line) => console.log(line));
  const resultsDir = path.resolve(o.resultsDir);
  const timeoutMs = o.timeoutMs ?? 10 * 60_000;
  await clearOldResults(resultsDir);
  let tools = o.tools;
  try {
    tools ??= await ensureIntegrationTools({ log });
  } catch (err) { // the install step is not interruptible by our signal handling, so it runs first
    await writeResults(resultsDir, { exitCode: 1, timedOut: false, error: err.message, screenshots: [] }, started);
    throw err;
  }
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'fts-it-'));
  const dirs = { serverData: path.join(tmp, 'server-data'), userData: path.join(tmp, 'user-data'),
    extensions: o.extensionsDir ? path.resolve(o.extensionsDir) : path.join(tmp, 'extensions'),
    profile: path.join(tmp, 'chromium-profile'), workspace: o.workspacePath ? path.resolve(o.workspacePath) : path.join(tmp, 'workspace') };
  for (const d of Object.values(dirs)) await mkdir(d, { recursive: true });
  const serverArgs = ['--accept-server-license-terms', '--server-data-dir', dirs.serverData,
    '--user-data-dir', dirs.userData, '--extensions-dir', dirs.extensions];
  // The server's environment reaches the extension host; FTS_SCREENSHOTS=1 tells the suite that
  // this launcher serves `@@screenshot` requests (runInElectron.mjs sets it to 0).
  const env = { ...process.env, ...o.env, FTS_SCREENSHOTS: '1' };
  const state = { server: null, context: null, page: null, exitCode: 1, timedOut: false, screenshots: [], extHostLines: 0,
    browserLogsWritten: Promise.resolve() };
  const automationLog = createWriteStream(path.join(resultsDir, 'automation-log.txt'));
  let fail; // rejects the run early: server died, browser crashed, signal, timeout
  const failed = new Promise((_, reject) => { fail = reject; });
  failed.catch(() => {});
  const onSignal = (sig) => { state.signal = sig; fail(new Error(`received ${sig}`)); };
  const onExit = () => killGroup(state.server, 'SIGKILL'); // last resort if this process exits mid-run
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal).once('exit', onExit);
  const timer = setTimeout(() => { state.timedOut = true; fail(new Error(`TIMEOUT: no result within ${timeoutMs / 1000} s`)); }, timeoutMs);

  // Screenshot requests arrive as extension host console lines (via codeAutomationLog; the server's
  // stdout never carries them). Requests are served one at a time, in order; no de-duplication,
  // so a suite may reuse a marker path once it has deleted it.
  let shots = Promise.resolve();
  const scanForScreenshot = (text) => {
    for (const line of String(text).split(/\r?\n/)) {
      const m = SCREENSHOT_RE.exec(line);
      if (!m) continue;
      const [name, marker] = [m[1], m[2].trim().replace(/^["']|["']$/g, '')];
      shots = shots.then(() => takeRequestedScreenshot(state, resultsDir, name, marker, log));
    }
  };

  try {
    if (o.installVsix) {
      const vsix = path.resolve(o.installVsix);
      log(`[it] installing ${vsix} into ${dirs.extensions}`);
      const { code } = await runServer(tools, [...serverArgs, '--install-extension', vsix], env, path.join(resultsDir, 'install-extension.log'));
      if (code !== 0) throw new Error(`installing ${vsix} failed (exit ${code}); see ${path.join(resultsDir, 'install-extension.log')}`);
    }

    // --port 0: the server picks a free port and prints it; no race with a port we probed.
    const server = runServer(tools, ['--host', '127.0.0.1', '--port', '0', '--without-connection-token', '--enable-smoke-test-driver',
      ...(o.enableWorkspaceTrust ? [] : ['--disable-workspace-trust']), ...serverArgs], env, path.join(resultsDir, 'server.log'));
    state.server = server.child;
    server.exited.then(({ code, signal }) => fail(new Error(`VS Code server exited early (${signal ?? code}); see ${resultsDir}/server.log`)));
    const port = await Promise.race([server.port, failed]);
    log(`[it] VS Code server listening on 127.0.0.1:${port} after ${((Date.now() - started) / 1000).toFixed(1)} s`);

    const { chromium } = await import('playwright-core');
    // Playwright's own signal handlers would kill the browser and exit the process mid-cleanup.
    state.context = await chromium.launchPersistentContext(dirs.profile, { executablePath: tools.chromium, headless: true,
      args: CHROMIUM_ARGS, viewport: { width: 1400, height: 900 }, handleSIGINT: false, handleSIGTERM: false, handleSIGHUP: false });
    const page = state.context.pages()[0] ?? await state.context.newPage();
    state.page = page;
    const consoleLog = state.consoleLog = createWriteStream(path.join(resultsDir, 'browser-console.log'));
    page.on('console', (msg) => consoleLog.write(`[${msg.type()}] ${msg.text()}\n`));
    page.on('pageerror', (err) => consoleLog.write(`[pageerror] ${err.stack ?? err}\n`));
    page.on('crash', () => fail(new Error('the workbench page crashed')));
    state.context.on('close', () => fail(new Error('the browser closed unexpectedly')));

    let exited;
    const exitCodeReceived = new Promise((resolve) => { exited = resolve; });
    // The workbench calls codeAutomationLog(level, [format, ...args]) for ALL its info+ log lines,
    // extension host console output included and indistinguishable by content. The RPC method
    // name $logExtensionHostMessage survives minification, so a wrapper tells the two apart by
    // its (synchronous) call stack: extension host lines go to the console, the rest to a file.
    await page.exposeFunction('__ftsAutomationLog', (level, args, fromExtHost) => {
      const list = Array.isArray(args) ? args : [args];
      const text = typeof list[0] === 'string' ? format(...list) : list.map((a) => inspect(a)).join(' ');
      automationLog.write(`[${fromExtHost ? 'exthost' : 'workbench'}] [${level}] ${text}\n`);
      if (fromExtHost) {
        state.extHostLines++;
        for (const line of text.replace(/\n$/, '').split('\n')) log(line);
      }
      scanForScreenshot(text);
    });
    await page.addInitScript(() => {
      window.codeAutomationLog = (level, args) => {
        const limit = Error.stackTraceLimit;
        Error.stackTraceLimit = 60;
        const fromExtHost = /\$logExtensionHostMessage/.test(new Error().stack ?? '');
        Error.stackTraceLimit = limit;
        window.__ftsAutomationLog(level, args, fromExtHost);
      };
    });
    // codeAutomationExit(code, logs): logs are the browser-side log files [{ relativePath, contents }].
    await page.exposeFunction('codeAutomationExit', (code, logs) => {
      state.browserLogsWritten = writeBrowserLogs(resultsDir, logs);
      exited(typeof code === 'number' ? code : 1);
    });

    const remote = (p) => `vscode-remote://127.0.0.1:${port}${pathToFileURL(path.resolve(p)).pathname}`;
    const payload = [['extensionDevelopmentPath', remote(o.extensionDevelopmentPath)],
      ['extensionTestsPath', remote(o.extensionTestsPath)], ['skipWelcome', 'true'], ['skipReleaseNotes', 'true']];
    const url = `http://127.0.0.1:${port}/?folder=${encodeURIComponent(remote(dirs.workspace))}` +
      `&payload=${encodeURIComponent(JSON.stringify(payload))}`;
    await writeFile(path.join(resultsDir, 'workbench-url.txt'), `${url}\n`);
    await page.goto(url, { waitUntil: 'domcontentloaded' });
    log(`[it] workbench loaded at ${((Date.now() - started) / 1000).toFixed(1)} s; running the suite in the extension host`);

    state.exitCode = await Promise.race([exitCodeReceived, failed]);
    log(`[it] extension tests exited with code ${state.exitCode} at ${((Date.now() - started) / 1000).toFixed(1)} s`);
    await writeResults(resultsDir, state, started); // before the final screenshot and cleanup can throw
    if (state.extHostLines === 0) log('[it] note: no extension host output was recognised (VS Code internals changed?); see automation-log.txt');
    await withTimeout(shots, 60_000, 'pending screenshots');
  } catch (err) {
    state.exitCode = state.exitCode === 0 ? 1 : state.exitCode;
    state.error = err.message;
    log(`[it] FAILED: ${err.message}`);
    await writeResults(resultsDir, state, started).catch(() => {});
  } finally {
    clearTimeout(timer);
    if (state.page) await withTimeout(state.page.screenshot({ path: path.join(resultsDir, 'workbench-final.png'), fullPage: true }), 15_000, 'final screenshot').catch((e) => log(`[it] no final screenshot: ${e.message}`));
    if (state.context) await withTimeout(state.context.close(), 15_000, 'closing the browser').catch(() => {});
    await stopServer(state.server);
    await cp(path.join(dirs.userData, 'logs'), path.join(resultsDir, 'server-logs'), { recursive: true }).catch(() => {});
    await state.browserLogsWritten;
    automationLog.end();
    state.consoleLog?.end();
    await rm(tmp, { recursive: true, force: true, maxRetries: 3 }).catch(() => {});
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal).off('exit', onExit);
  }
  const durationMs = Date.now() - started;
  log(`[it] suite ${state.exitCode === 0 ? 'PASSED' : `FAILED (exit ${state.exitCode})`}${state.timedOut ? ' by TIMEOUT' : ''} in ${(durationMs / 1000).toFixed(1)} s; results in ${resultsDir}`);
  if (state.signal) process.kill(process.pid, state.signal); // cleaned up; now die of the signal as usual
  return { exitCode: state.exitCode, timedOut: state.timedOut, durationMs, screenshots: state.screenshots, resultsDir };
}

async function writeBrowserLogs(resultsDir, logs) {
  for (const { relativePath, contents } of Array.isArray(logs) ? logs : []) {
    const file = path.join(resultsDir, 'browser-logs', path.normalize(String(relativePath)).replace(/^(\.\.[/\\])+/, ''));
    await mkdir(path.dirname(file), { recursive: true }).then(() => writeFile(file, String(contents))).catch(() => {});
  }
}

async function takeRequestedScreenshot(state, resultsDir, name, marker, log) {
  const file = path.join(resultsDir, `${name}.png`);
  let status = 'ok';
  try {
    await state.page.screenshot({ path: file, fullPage: true, timeout: 30_000 });
    if (!state.screenshots.includes(file)) state.screenshots.push(file);
    log(`[it] screenshot ${name} -> ${file}`);
  } catch (err) {
    status = `error: ${err.message.split('\n')[0]}`;
    log(`[it] screenshot ${name} failed: ${status}`);
  }
  // The extension host polls for this file; write it even on failure so the test does not hang,
  // and atomically (rename) so it never reads it half-written.
  const partial = `${marker}.${process.pid}.partial`;
  await mkdir(path.dirname(marker), { recursive: true }).then(() => writeFile(partial, `${status}\n`)).then(() => rename(partial, marker))
    .catch((err) => log(`[it] cannot write screenshot marker ${marker}: ${err.message}`));
}

/** Starts server-main.js on Node 24 in its own process group, output to logFile. */
function runServer(tools, args, env, logFile) {
  const out = createWriteStream(logFile);
  out.write(`$ ${tools.node24} ${tools.serverMain} ${args.join(' ')}\n`);
  const child = spawn(tools.node24, [tools.serverMain, ...args], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let resolvePort;
  const port = new Promise((resolve) => { resolvePort = resolve; });
  for (const stream of [child.stdout, child.stderr]) {
    stream.setEncoding('utf8');
    stream.on('data', (text) => {
      out.write(text);
      const m = /Extension host agent listening on (\d+)/.exec(text);
      if (m) resolvePort(Number(m[1]));
    });
  }
  const exited = new Promise((resolve) => {
    child.on('error', (err) => { out.write(`spawn error: ${err.message}\n`); resolve({ code: -1, signal: null }); });
    child.on('close', (code, signal) => { out.end(`\n[exit ${signal ?? code}]\n`); child.closed = true; resolve({ code, signal }); });
  });
  return Object.assign(exited, { child, port, exited });
}

function killGroup(child, signal) {
  try { if (child?.pid) process.kill(-child.pid, signal); } catch { /* group already gone */ }
}

// SIGTERM the server's process group, give it 5 s, then SIGKILL whatever is left in the group
// (an extension host can outlive the server).
async function stopServer(child) {
  if (!child?.pid) return;
  if (!child.closed) {
    const closed = new Promise((resolve) => child.once('close', resolve));
    killGroup(child, 'SIGTERM');
    await withTimeout(closed, 5_000, 'server stop').catch(() => {});
  }
  killGroup(child, 'SIGKILL');
}

// Remove only what a previous run wrote (a stale screenshot must not pass for a new one); the
// folder itself may hold other things.
async function clearOldResults(resultsDir) {
  await mkdir(resultsDir, { recursive: true });
  for (const name of await readdir(resultsDir)) {
    if (name.endsWith('.png') || OUR_OUTPUTS.includes(name)) await rm(path.join(resultsDir, name), { recursive: true, force: true });
  }
}

async function writeResults(resultsDir, state, started) {
  await writeFile(path.join(resultsDir, 'results.json'), JSON.stringify({ exitCode: state.exitCode, timedOut: state.timedOut,
    error: state.error ?? null, durationMs: Date.now() - started, screenshots: state.screenshots }, null, 2));
}

function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([promise, new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`${what}: timed out after ${ms / 1000} s`)), ms); })])
    .finally(() => clearTimeout(t));
}

/**
 * Parses the launcher flags shared by both CLIs. Long names match the API options; the short
 * spellings (--extension, --tests, --install-vsix, --extensions-dir) are what scripts/test.mjs
 * passes. Defaults: the repo as extension, its built suite, and a temp copy of
 * test/integration/workspace (tests may write to it). Exits 2 with a usage text on bad input.
 */
export function parseLauncherArgs({ name, defaultResults, extraOptions = {}, extraUsage = '' }) {
  let v;
  try {
    v = parseArgs({ options: {
      extensionDevelopmentPath: { type: 'string' }, extension: { type: 'string' },
      extensionTestsPath: { type: 'string' }, tests: { type: 'string' },
      workspace: { type: 'string' }, results: { type: 'string' },
      extensionsDir: { type: 'string' }, 'extensions-dir': { type: 'string' },
      installVsix: { type: 'string' }, 'install-vsix': { type: 'string' },
      timeout: { type: 'string', default: '600' }, ...extraOptions,
    } }).values;
  } catch (err) {
    v = { error: err.message };
  }
  const tests = v.extensionTestsPath ?? v.tests ?? path.join(repoRoot, 'out', 'test', 'integration', 'suite', 'index.js');
  if (v.error || !existsSync(tests) || !(Number(v.timeout) > 0)) {
    console.error(`usage: ${name} [--extensionTestsPath|--tests <suite index.js>] [--extensionDevelopmentPath|--extension <dir>]
       [--workspace <dir>] [--results <dir>] [--extensionsDir|--extensions-dir <dir>] [--installVsix|--install-vsix <file>]
       [--timeout <seconds, default 600>]${extraUsage}
${v.error ?? (existsSync(tests) ? `bad --timeout ${v.timeout}` : `suite not found: ${tests} (build it first: node scripts/build.mjs)`)}`);
    process.exit(2);
  }
  let workspacePath = v.workspace;
  const fixture = path.join(repoRoot, 'test', 'integration', 'workspace');
  if (!workspacePath && existsSync(fixture)) {
    workspacePath = mkdtempSync(path.join(os.tmpdir(), 'fts-workspace-'));
    cpSync(fixture, workspacePath, { recursive: true });
    process.once('exit', () => rmSync(workspacePath, { recursive: true, force: true }));
  }
  return { ...v, extensionDevelopmentPath: v.extensionDevelopmentPath ?? v.extension ?? repoRoot, extensionTestsPath: tests,
    workspacePath, resultsDir: v.results ?? defaultResults, extensionsDir: v.extensionsDir ?? v['extensions-dir'],
    installVsix: v.installVsix ?? v['install-vsix'], timeoutMs: Number(v.timeout) * 1000 };
}

// CLI: node test/integration/runInCodeServer.mjs [flags above]
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = parseLauncherArgs({ name: 'runInCodeServer.mjs', defaultResults: path.join(repoRoot, 'test-results', 'integration') });
  runIntegrationSuite(args)
    .then((r) => process.exit(r.exitCode), (err) => { console.error(`[it] ${err.stack ?? err}`); process.exit(1); });
}
