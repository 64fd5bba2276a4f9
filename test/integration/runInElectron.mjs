#!/usr/bin/env node
// Runs the same integration suite in desktop VS Code (Electron) through @vscode/test-electron, for
// machines that can download VS Code from update.code.visualstudio.com (developer laptops, CI with
// internet). Machines without that access (like the project's build machine) use
// runInCodeServer.mjs instead; here the download fails within a second and we say so (exit 3).
//
// Differences from runInCodeServer.mjs: no screenshots are taken (nothing serves the
// `@@screenshot` protocol, so a test that waits for a marker must skip itself, e.g. when
// FTS_SCREENSHOTS is not '1'), and the extension host output goes straight to this process' stdout.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const EXIT_DOWNLOAD_FAILED = 3;

/**
 * Same options as runIntegrationSuite in runInCodeServer.mjs, plus `version` (VS Code version to
 * download: 'stable' (default), 'insiders' or e.g. '1.95.0'; env VSCODE_TEST_VERSION also works)
 * and `vscodeExecutablePath` (an installed VS Code to use instead; env VSCODE_EXECUTABLE_PATH).
 * @returns {Promise<{exitCode: number, timedOut: boolean, downloadFailed: boolean, durationMs: number, resultsDir: string}>}
 */
export async function runElectronSuite(o) {
  const started = Date.now();
  const log = o.log ?? ((line) => console.log(line));
  const resultsDir = path.resolve(o.resultsDir);
  await mkdir(resultsDir, { recursive: true });
  const result = { exitCode: 1, timedOut: false, downloadFailed: false, error: null };
  const finish = async () => {
    const durationMs = Date.now() - started;
    await writeFile(path.join(resultsDir, 'results.json'), JSON.stringify({ ...result, runner: 'electron', durationMs }, null, 2));
    return { ...result, durationMs, resultsDir };
  };

  // Imported lazily so the "cannot download" path does not depend on anything but the package.
  const testElectron = await import('@vscode/test-electron');
  let executable = o.vscodeExecutablePath ?? process.env.VSCODE_EXECUTABLE_PATH;
  try {
    executable ??= await testElectron.downloadAndUnzipVSCode({ version: o.version ?? process.env.VSCODE_TEST_VERSION ?? 'stable',
      cachePath: path.join(repoRoot, '.cache', 'vscode-test'), timeout: 30_000 });
  } catch (err) {
    result.exitCode = EXIT_DOWNLOAD_FAILED;
    result.downloadFailed = true;
    result.error = `cannot download VS Code: ${err.message}`;
    log(`[electron] ${result.error}\n[electron] This machine cannot reach update.code.visualstudio.com. Use the code-server ` +
      'launcher instead: node test/integration/runInCodeServer.mjs (or npm run test:integration).');
    return finish();
  }
  if (process.platform === 'linux' && !process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) {
    log('[electron] no DISPLAY: desktop VS Code needs an X server; if it fails to start, run this under `xvfb-run -a`.');
  }

  const tmp = await mkdtemp(path.join(os.tmpdir(), 'fts-electron-'));
  const userData = path.join(tmp, 'user-data');
  const extensionsDir = o.extensionsDir ? path.resolve(o.extensionsDir) : path.join(tmp, 'extensions');
  const workspace = o.workspacePath ? path.resolve(o.workspacePath) : path.join(tmp, 'workspace');
  await mkdir(workspace, { recursive: true });
  const profileArgs = [`--user-data-dir=${userData}`, `--extensions-dir=${extensionsDir}`];
  let timer;
  try {
    if (o.installVsix) {
      const [cli, ...cliArgs] = testElectron.resolveCliArgsFromVSCodeExecutablePath(executable, { reuseMachineInstall: true });
      log(`[electron] installing ${o.installVsix} into ${extensionsDir}`);
      const code = await new Promise((resolve) => spawn(cli, [...cliArgs, ...profileArgs, '--install-extension', path.resolve(o.installVsix)],
        { stdio: 'inherit', shell: process.platform === 'win32' }).on('close', resolve).on('error', () => resolve(-1)));
      if (code !== 0) throw new Error(`installing ${o.installVsix} failed (exit ${code})`);
    }
    const timeoutMs = o.timeoutMs ?? 10 * 60_000;
    const timedOut = new Promise((resolve) => { timer = setTimeout(resolve, timeoutMs, 'timeout'); });
    const run = testElectron.runTests({
      vscodeExecutablePath: executable,
      extensionDevelopmentPath: path.resolve(o.extensionDevelopmentPath),
      extensionTestsPath: path.resolve(o.extensionTestsPath),
      extensionTestsEnv: { ...o.env, FTS_SCREENSHOTS: '0' },
      launchArgs: [workspace, ...profileArgs],
    }).then(() => 0, (err) => { log(`[electron] ${err.message}`); return typeof err.code === 'number' ? err.code : 1; });
    const outcome = await Promise.race([run, timedOut]);
    if (outcome === 'timeout') {
      result.timedOut = true;
      result.error = `TIMEOUT: no result within ${timeoutMs / 1000} s`;
      log(`[electron] ${result.error}; killing VS Code`);
      // runTests gives no handle on its child; our unique user-data-dir identifies its processes.
      killVSCodeTree(userData);
      await Promise.race([run, new Promise((r) => setTimeout(r, 5_000))]);
    } else {
      result.exitCode = outcome;
    }
  } catch (err) {
    result.error = err.message;
    log(`[electron] FAILED: ${err.message}`);
  } finally {
    clearTimeout(timer);
    await rm(tmp, { recursive: true, force: true, maxRetries: 3 }).catch(() => {});
  }
  const r = await finish();
  log(`[electron] suite ${r.exitCode === 0 ? 'PASSED' : `FAILED (exit ${r.exitCode})`} in ${(r.durationMs / 1000).toFixed(1)} s`);
  return r;
}

// Linux only (reads /proc); elsewhere a timed-out VS Code is left for the caller's own cleanup.
// Kills our child whose command line holds `marker` and all its descendants (the extension host
// and helpers do not repeat the marker in their own command lines).
function killVSCodeTree(marker) {
  if (!existsSync('/proc')) return;
  const parentOf = new Map();
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number)) {
    try { // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ')'
      parentOf.set(pid, Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[1]));
    } catch { /* exited meanwhile */ }
  }
  const doomed = new Set([...parentOf].filter(([pid, ppid]) => ppid === process.pid && cmdline(pid).includes(marker)).map(([pid]) => pid));
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, ppid] of parentOf) if (doomed.has(ppid) && !doomed.has(pid)) { doomed.add(pid); grew = true; }
  }
  for (const pid of doomed) try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
}

function cmdline(pid) {
  try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8'); } catch { return ''; }
}

// CLI: same flags as runInCodeServer.mjs, plus --version and --vscodeExecutablePath.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { parseLauncherArgs } = await import('./runInCodeServer.mjs');
  const args = parseLauncherArgs({ name: 'runInElectron.mjs', defaultResults: path.join(repoRoot, 'test-results', 'integration-electron'),
    extraOptions: { version: { type: 'string' }, vscodeExecutablePath: { type: 'string' } },
    extraUsage: '\n       [--version stable|insiders|1.x.y] [--vscodeExecutablePath <installed VS Code binary>]' });
  runElectronSuite(args)
    .then((r) => process.exit(r.exitCode), (err) => { console.error(`[electron] ${err.stack ?? err}`); process.exit(1); });
}
