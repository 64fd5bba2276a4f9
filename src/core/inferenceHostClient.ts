/**
 * Parent side of the inference host: forks dist/inference-host.js, waits for its hello,
 * correlates requests with responses, and rejects everything pending when the child dies,
 * so no caller waits forever on a crashed native library.
 */
import { fork, type ChildProcess } from "node:child_process";
import {
  INFERENCE_PROTOCOL_VERSION,
  isHostToParent,
  type InferenceHello,
  type InferenceMethod,
  type InferenceMethods,
  type InferenceRequest,
} from "../protocol/inferenceHost";

export interface InferenceHostOptions {
  /** Path of dist/inference-host.js. */
  entryPoint: string;
  /** How long to wait for hello (loading the native library can take a few seconds). */
  startTimeoutMs?: number;
  requestTimeoutMs?: number;
  onLog?: (line: string) => void;
  /** Called when the child exits without being asked to. */
  onUnexpectedExit?: (description: string) => void;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

export class InferenceHostClient {
  private child: ChildProcess | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private stopping = false;
  hello: InferenceHello | undefined;

  constructor(private readonly options: InferenceHostOptions) {}

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the child and resolves once it said hello. */
  start(): Promise<InferenceHello> {
    if (this.child) throw new Error("The inference host is already running.");
    this.stopping = false;
    const child = fork(this.options.entryPoint, [], { stdio: ["ignore", "pipe", "pipe", "ipc"], serialization: "json" });
    this.child = child;
    child.stdout?.on("data", (chunk: Buffer) => this.options.onLog?.(chunk.toString("utf8").trimEnd()));
    child.stderr?.on("data", (chunk: Buffer) => this.options.onLog?.(chunk.toString("utf8").trimEnd()));

    return new Promise<InferenceHello>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`The inference host did not start within ${this.options.startTimeoutMs ?? 60_000} ms.`));
        child.kill("SIGKILL");
      }, this.options.startTimeoutMs ?? 60_000);

      child.on("message", (message: unknown) => {
        if (!isHostToParent(message)) {
          this.options.onLog?.(`[inference host] ignored a malformed message`);
          return;
        }
        if (message.kind === "hello") {
          clearTimeout(timer);
          if (message.protocolVersion !== INFERENCE_PROTOCOL_VERSION) {
            reject(new Error(`Inference host protocol ${message.protocolVersion}, expected ${INFERENCE_PROTOCOL_VERSION}.`));
            child.kill("SIGKILL");
            return;
          }
          this.hello = message;
          resolve(message);
        } else if (message.kind === "fatal") {
          clearTimeout(timer);
          reject(new Error(`${message.message}\n${message.hint}`));
        } else {
          const waiting = this.pending.get(message.id);
          if (!waiting) return;
          this.pending.delete(message.id);
          clearTimeout(waiting.timer);
          if (message.ok) waiting.resolve(message.result);
          else waiting.reject(new Error(message.error.message));
        }
      });
      child.on("exit", (code, signal) => {
        clearTimeout(timer);
        const description = signal ? `killed by ${signal}` : `exited with code ${code}`;
        this.child = undefined;
        this.hello = undefined;
        for (const [id, waiting] of this.pending) {
          clearTimeout(waiting.timer);
          waiting.reject(new Error(`The inference host ${description} before answering request ${id}.`));
        }
        this.pending.clear();
        reject(new Error(`The inference host ${description} during start-up.`));
        if (!this.stopping) this.options.onUnexpectedExit?.(description);
      });
    });
  }

  request<M extends InferenceMethod>(
    method: M,
    params: InferenceMethods[M]["params"],
  ): Promise<InferenceMethods[M]["result"]> {
    const child = this.child;
    if (!child || !this.hello) return Promise.reject(new Error("The inference host is not running."));
    const id = this.nextId++;
    const request: InferenceRequest<M> = { kind: "request", id, method, params };
    return new Promise((resolve, reject) => {
      const timeoutMs = this.options.requestTimeoutMs ?? 30_000;
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`The inference host did not answer "${method}" within ${timeoutMs} ms.`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
      child.send(request);
    });
  }

  /** Asks the child to exit; kills it if it does not within `graceMs`. */
  async stop(graceMs = 3000): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.stopping = true;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    this.request("shutdown", {}).catch(() => undefined);
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  }
}
