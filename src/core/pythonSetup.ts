/**
 * Makes a torch-capable interpreter exist: on Debian as root through apt (the distribution's
 * CPU torch, which is what CI uses), elsewhere through a project venv with the pinned
 * requirements. The extension never runs this on its own; it shows the command instead.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import {
  DEBIAN_TORCH_PACKAGES,
  isDebianLike,
  isRoot,
  resolvePython,
  type PythonReport,
} from "./pythonEnvironment";

export interface PythonSetupOptions {
  projectRoot: string;
  configuredPath: string | undefined;
  env: NodeJS.ProcessEnv;
  /** Also require pytest (the test tiers need it; training does not). */
  needPytest: boolean;
  log: (line: string) => void;
}

export async function ensurePythonEnvironment(options: PythonSetupOptions): Promise<PythonReport> {
  const found = await resolvePython(options);
  if (found.ok && (!options.needPytest || found.python.pytest)) return found.python;

  if (isDebianLike() && isRoot()) {
    options.log(`Installing ${DEBIAN_TORCH_PACKAGES.join(", ")} with apt (CPU PyTorch from Debian)…`);
    await runLogged("apt-get", ["update", "-qq"], options.log);
    await runLogged(
      "apt-get",
      ["install", "-y", "-qq", "--no-install-recommends", ...DEBIAN_TORCH_PACKAGES],
      options.log,
      { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    );
  } else {
    const venv = join(options.projectRoot, ".venv");
    const venvPython = process.platform === "win32" ? join(venv, "Scripts", "python.exe") : join(venv, "bin", "python");
    options.log(`Creating ${venv} and installing native/requirements.txt with pip…`);
    await runLogged(process.platform === "win32" ? "python" : "python3", ["-m", "venv", venv], options.log);
    const requirements = join(options.projectRoot, "native", "requirements.txt");
    const extra = options.needPytest ? ["pytest"] : [];
    await runLogged(venvPython, ["-m", "pip", "install", "-r", requirements, ...extra], options.log);
  }

  const again = await resolvePython(options);
  if (!again.ok) throw new Error(`Python setup finished but no interpreter imports torch.\n${again.fix}`);
  if (options.needPytest && !again.python.pytest) {
    throw new Error(`${again.python.path} has torch but not pytest; install pytest for it.`);
  }
  return again.python;
}

function runLogged(
  command: string,
  args: string[],
  log: (line: string) => void,
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let tail = "";
    const keep = (chunk: Buffer): void => {
      tail = (tail + chunk.toString("utf8")).slice(-4000);
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    child.on("error", (error) => reject(new Error(`Could not run ${command}: ${error.message}`)));
    child.on("close", (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${command} ${args.join(" ")} failed with exit code ${code}:\n${tail}`));
    });
    log(`$ ${command} ${args.join(" ")}`);
  });
}
