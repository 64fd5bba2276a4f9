/**
 * Locations inside the installed extension (or the repository, for the CLI). Every bundle
 * lives in dist/, so the root is one level up from the running bundle.
 */
import { homedir } from "node:os";
import { join } from "node:path";

export interface ProductPaths {
  /** The extension's (or repository's) root folder. */
  root: string;
  /** The Python sidecar package's parent folder, put on PYTHONPATH. */
  nativeDir: string;
  /** dist/inference-host.js. */
  inferenceHostEntry: string;
  /** Sample datasets shipped with the product. */
  samplesDir: string;
  /** Webview bundles and styles. */
  mediaDir: string;
}

export function productPaths(root: string): ProductPaths {
  return {
    root,
    nativeDir: join(root, "native"),
    inferenceHostEntry: join(root, "dist", "inference-host.js"),
    samplesDir: join(root, "samples"),
    mediaDir: join(root, "media"),
  };
}

/** Where models live when the user has not chosen a folder. */
export function defaultModelsFolder(): string {
  return join(homedir(), ".finetune-studio", "models");
}
