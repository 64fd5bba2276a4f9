import * as assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as vscode from "vscode";
import { waitFor } from "./harness";
import { activatedApi } from "./support";

suite("Child processes", () => {
  let tinyModel = "";

  test("checks the training environment through the real Python sidecar", async () => {
    const summary = await vscode.commands.executeCommand<string | undefined>("finetuneStudio.checkEnvironment");
    assert.ok(summary, "the check returned a summary (is torch installed for /usr/bin/python3?)");
    assert.match(summary, /torch \d+\.\d+/);
  });

  test("creates a tiny GPT-OSS model through the sidecar", async () => {
    const outDir = join(mkdtempSync(join(tmpdir(), "fts-models-")), "tiny");
    const written = await vscode.commands.executeCommand<string | undefined>("finetuneStudio.createTinyModel", { outDir });
    assert.equal(written, outDir);
    const config = JSON.parse(readFileSync(join(outDir, "config.json"), "utf8")) as { model_type: string };
    assert.equal(config.model_type, "gpt_oss");
    assert.ok(existsSync(join(outDir, "model.safetensors")) || existsSync(join(outDir, "model.safetensors.index.json")));
    assert.ok(existsSync(join(outDir, "tokenizer.json")), "the tiny model carries the real tokenizer");
    tinyModel = outDir;
  });

  test("exports the tiny model to Q4_K_M through llama.cpp's quantizer, from the command", async () => {
    assert.ok(tinyModel, "the previous test created a model");
    const outFile = join(mkdtempSync(join(tmpdir(), "fts-export-")), "tiny-Q4_K_M.gguf");
    const written = await vscode.commands.executeCommand<string | undefined>("finetuneStudio.exportModel", {
      modelFolder: tinyModel,
      type: "Q4_K_M",
      outFile,
    });
    assert.equal(written, outFile);
    const header = readFileSync(outFile).subarray(0, 4).toString("latin1");
    assert.equal(header, "GGUF");
    const modelfile = readFileSync(outFile.replace(/\.gguf$/, ".Modelfile"), "utf8");
    assert.match(modelfile, /^FROM \.\/tiny-Q4_K_M\.gguf$/m, "an Ollama Modelfile beside the GGUF");
    assert.match(modelfile, /<\|start\|>/, "with the harmony template");
    const copied = await vscode.commands.executeCommand<string | undefined>("finetuneStudio.copyModelPath", outFile);
    assert.equal(copied, outFile);
    assert.equal(await vscode.env.clipboard.readText(), outFile);
  });

  test("starts node-llama-cpp in the inference host and recovers after it is killed", async () => {
    const api = await activatedApi();
    const text = await vscode.commands.executeCommand<string | undefined>("finetuneStudio.restartInferenceHost");
    assert.match(text ?? "", /node-llama-cpp 3\.22\.1/);
    const firstPid = api.inferenceHost.pid;
    assert.ok(firstPid, "the inference host has a pid");
    process.kill(firstPid, "SIGKILL");
    await waitFor(() => api.inferenceHost.pid !== undefined && api.inferenceHost.pid !== firstPid, 60_000, "a restarted inference host");
    const hello = await api.inferenceHost.ensureStarted();
    assert.equal(hello.pid, api.inferenceHost.pid);
  });
});
