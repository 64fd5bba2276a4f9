/** Entry point VS Code loads with --extensionTestsPath: the product suite. */
import { runMocha } from "./harness";

export function run(): Promise<void> {
  return runMocha("integration", () => {
    require("./extension.test");
    require("./webviews.test");
    require("./datasets.test");
    require("./processes.test");
    require("./runs.test");
  });
}
