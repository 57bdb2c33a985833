// The worker pool: workers (worker_threads in Node, Web Workers in browsers) instantiate the same
// module on one shared WebAssembly.Memory. Only the main side allocates; a worker runs the kernel
// calls it is handed (a range of heads, a range of rows) on scratch buffers of its own and counts
// itself done in a shared control word. The calling thread takes the first share and waits on that
// word with Atomics.wait where blocking is allowed (Node's main thread, workers); a browser's main
// thread may not block, so there every call runs on the calling thread alone.

import { AttentionError } from "../core/errors.js";
import type { WasmMemory, WasmModule } from "./host-types.js";

// Runs in every worker, as a Node eval script (CommonJS or an ES module) or a classic Web Worker
// from a Blob.
const WORKER_SOURCE = `
"use strict";
// Not "exports": Deno and Bun wrap an eval worker in a CommonJS function that declares it.
let kernels = null;
let control = null;
let post;
function onMessage(m) {
  if (m.type === "init") {
    const instance = new WebAssembly.Instance(m.module, { env: { memory: m.memory } });
    kernels = instance.exports;
    control = new Int32Array(m.control);
    // Ready: synchronous calls may hand this worker tasks from now on.
    Atomics.store(control, 2 + m.index, 1);
    return;
  }
  let error = null;
  try {
    kernels[m.fn].apply(null, m.args);
  } catch (e) {
    error = String((e && e.message) || e);
    if (m.id === undefined) Atomics.store(control, 1, 1);
  }
  if (m.id === undefined) {
    Atomics.add(control, 0, 1);
    Atomics.notify(control, 0);
  } else {
    post({ type: "done", id: m.id, error });
  }
}
function listen({ parentPort }) {
  post = (m) => parentPort.postMessage(m);
  parentPort.on("message", onMessage);
}
// A worker_threads Worker listens on its parentPort (Bun's also has a self whose onmessage never
// hears the parent). Node evaluates this as CommonJS, or as an ES module (no require) when the
// process runs with --input-type=module or --experimental-default-type=module; the port queues
// messages until the import is done.
const workerThreads = typeof require === "function" ? require("node:worker_threads") : null;
if (workerThreads && workerThreads.parentPort) listen(workerThreads);
else if (typeof self === "undefined") import("node:worker_threads").then(listen);
else {
  post = (m) => self.postMessage(m);
  self.onmessage = (e) => onMessage(e.data);
}
`;

interface Pending {
  remaining: number;
  error?: string;
  resolve(): void;
  reject(err: unknown): void;
}

/** One kernel call: an exported function of the module and its arguments. */
export interface Task {
  fn: string;
  args: number[];
}

interface WorkerLike {
  postMessage(message: unknown): void;
  /** Node returns a promise settled once the thread has stopped; a Web Worker returns nothing. */
  terminate(): unknown;
  /** Node only: whether the worker keeps the process alive. */
  ref?(): void;
  unref?(): void;
}

// A worker gets this long to report a call done before the call fails (a worker killed while it
// computes must not hang the caller forever). A worker that never started cannot hold up a call:
// synchronous calls only go to workers that have said they are ready.
const WAIT_MS = 120_000;

/**
 * Lifecycle: the workers start idle and never keep a Node process alive, except while an
 * asynchronous call is pending (its promise must settle before the process may exit). A worker
 * that fails (an error, or an exit we did not ask for) stops the whole pool: its pending calls
 * reject with WORKER_FAILED and every later call runs on the calling thread. terminate() stops
 * the pool once its pending calls have settled.
 */
export class Pool {
  /** Threads computing a call: the calling thread and the workers. */
  readonly size: number;
  readonly #workers: WorkerLike[];
  /**
   * Shared with the workers: [0] tasks of the synchronous call done, [1] one of them failed,
   * [2 + w] worker w is ready (has instantiated the module). A blocked calling thread cannot hear
   * a worker's events, so it learns all this from here.
   */
  readonly #control: Int32Array;
  readonly #run: (task: Task) => void;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #failure: string | undefined;
  /** Set by terminate(): no new call reaches the workers. */
  #closing = false;
  /** Settles once every worker has stopped (set when the pool starts stopping them). */
  #stopped: Promise<void> | undefined;
  /** Resolved (and emptied) each time the last pending call settles. */
  #idle: (() => void)[] = [];

  constructor(workers: WorkerLike[], control: Int32Array, run: (task: Task) => void) {
    this.#workers = workers;
    this.#control = control;
    this.#run = run;
    this.size = workers.length + 1;
  }

  /**
   * A worker died (an error event, or an exit the pool did not ask for): the pool stops every
   * worker, then rejects the pending calls (only then: a live worker could still be writing to a
   * call's buffers, which the op frees when it fails). From now on every call runs on the calling
   * thread.
   */
  fail(reason: string): void {
    if (this.#failure !== undefined || this.#stopped !== undefined) return;
    this.#failure = reason;
    console.warn(`wasm-attention: a worker failed (${reason}); computing on 1 thread from now on`);
    void this.#stopWorkers().then(() => {
      for (const id of [...this.#pending.keys()]) this.#settle(id, reason);
    });
  }

  /** A worker's thread ended: a failure unless the pool is stopping its workers. */
  exited(code: number): void {
    if (this.#stopped === undefined) this.fail(`a worker exited with code ${code}`);
  }

  /** Whether calls may go to the workers. */
  get #usable(): boolean {
    return this.#workers.length > 0 && this.#failure === undefined && !this.#closing;
  }

  /**
   * Runs the tasks, tasks[0] on the calling thread and the others on workers, and returns when all
   * are done. Where the calling thread may not block, runs them all on the calling thread.
   */
  runAll(op: string, tasks: Task[]): void {
    if (tasks.length === 0) return;
    if (tasks.length === 1 || !canBlock() || !this.#usable) {
      for (const task of tasks) this.#run(task);
      return;
    }
    const control = this.#control;
    // Workers still starting (or that never will) get nothing: their tasks run here, after the
    // first, so a call never waits on a worker's startup.
    const ready = this.#workers.filter((_, w) => Atomics.load(control, 2 + w) === 1);
    const expected = Math.min(tasks.length - 1, ready.length);
    Atomics.store(control, 0, 0);
    Atomics.store(control, 1, 0);
    for (let i = 0; i < expected; i++) ready[i].postMessage({ type: "run", ...tasks[i + 1] });
    let mainError: unknown;
    try {
      this.#run(tasks[0]);
      for (const task of tasks.slice(expected + 1)) this.#run(task);
    } catch (err) {
      mainError = err;
    }
    const deadline = Date.now() + WAIT_MS;
    for (let done = Atomics.load(control, 0); done < expected; done = Atomics.load(control, 0)) {
      if (Date.now() > deadline || this.#failure !== undefined) {
        throw workerError(op, this.#failure ?? `workers did not finish within ${WAIT_MS / 1000} s`);
      }
      Atomics.wait(control, 0, done, 100);
    }
    if (mainError) throw mainError;
    if (Atomics.load(control, 1)) throw workerError(op, "a kernel call failed in a worker");
  }

  /** Routes a worker's "done" message of an asynchronous call. */
  receive(message: { type: string; id?: number; error?: string | null }): void {
    if (message.type !== "done" || message.id === undefined) return;
    const pending = this.#pending.get(message.id);
    if (!pending) return;
    if (message.error) pending.error ??= message.error;
    if (--pending.remaining > 0) return;
    this.#settle(message.id, pending.error);
  }

  /**
   * Runs the tasks on the workers without blocking the calling thread (on the calling thread
   * itself only when the pool has no usable worker); resolves when all are done.
   */
  runAllAsync(op: string, tasks: Task[]): Promise<void> {
    // No task, no "done" message to wait for: a pending entry would never settle.
    if (tasks.length === 0) return Promise.resolve();
    if (!this.#usable) {
      try {
        for (const task of tasks) this.#run(task);
      } catch (err) {
        return Promise.reject(err);
      }
      return Promise.resolve();
    }
    const id = this.#nextId++;
    return new Promise<void>((resolve, reject) => {
      // A pending call keeps a Node process alive: the workers are referenced while any is.
      if (this.#pending.size === 0) for (const worker of this.#workers) worker.ref?.();
      this.#pending.set(id, {
        remaining: tasks.length,
        resolve,
        reject: (err) => reject(workerError(op, String(err))),
      });
      try {
        tasks.forEach((task, i) => {
          this.#workers[i % this.#workers.length].postMessage({ type: "run", id, ...task });
        });
      } catch (err) {
        // A worker that cannot take a message is a failed pool: fail() settles this call (and any
        // other pending one) once every worker has stopped.
        this.fail(`a worker could not be sent a task: ${String(err)}`);
      }
    });
  }

  // Ends the pending call `id`, rejected when there is an error; the last one lets the process go.
  #settle(id: number, error: string | undefined): void {
    const pending = this.#pending.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    if (error) pending.reject(error);
    else pending.resolve();
    if (this.#pending.size > 0) return;
    for (const worker of this.#workers) worker.unref?.();
    for (const wake of this.#idle.splice(0)) wake();
  }

  /** Workers that can take tasks besides the calling thread. */
  get workers(): number {
    return this.#usable ? this.#workers.length : 0;
  }

  /**
   * Stops the pool: calls made from now on run on the calling thread; the pending asynchronous
   * calls finish on the workers; then the workers stop. Settles once they have.
   */
  async terminate(): Promise<void> {
    this.#closing = true;
    while (this.#pending.size > 0) {
      await new Promise<void>((wake) => this.#idle.push(wake));
    }
    await this.#stopWorkers();
  }

  #stopWorkers(): Promise<void> {
    this.#stopped ??= Promise.allSettled(this.#workers.map((worker) => worker.terminate())).then(
      () => undefined,
    );
    return this.#stopped;
  }
}

function workerError(op: string, reason: string): AttentionError {
  return new AttentionError("WORKER_FAILED", `${op}: ${reason}`);
}

let blocking: boolean | undefined;

/** Whether this thread may block in Atomics.wait (not a browser's main thread). */
export function canBlock(): boolean {
  if (blocking === undefined) {
    try {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
      blocking = true;
    } catch {
      blocking = false;
    }
  }
  return blocking;
}

type NodeWorkerModule = {
  Worker: new (
    source: string,
    options: { eval: boolean },
  ) => WorkerLike & {
    unref(): void;
    on(event: string, listener: (value: unknown) => void): void;
  };
};

type NodeProcess = {
  versions?: { node?: string };
  getBuiltinModule?: (name: string) => unknown;
};

const nodeProcess = (): NodeProcess | undefined =>
  (globalThis as { process?: NodeProcess }).process;

// Builtins that loadNodeBuiltins() imported, for Nodes without process.getBuiltinModule.
const importedBuiltins = new Map<string, unknown>();

/** A Node builtin module, synchronously: by process.getBuiltinModule, or as imported before. */
function nodeBuiltin(name: string): unknown {
  return nodeProcess()?.getBuiltinModule?.(name) ?? importedBuiltins.get(name);
}

/**
 * Where process.getBuiltinModule is missing (Node 18, 20 before 20.16, 22 before 22.3), imports
 * node:worker_threads and node:os so that the synchronous nodeWorkers() and hardwareThreads() find
 * them; elsewhere (browsers, Deno and Bun with getBuiltinModule, newer Node) it does nothing.
 * init() awaits it; initSync() cannot, so there such a Node computes on one thread.
 */
export async function loadNodeBuiltins(): Promise<void> {
  const proc = nodeProcess();
  if (!proc?.versions?.node || typeof proc.getBuiltinModule === "function") return;
  // import() hidden in a function made from a string: a literal or variable specifier would make
  // browser bundlers try to resolve it and Miniflare reject the workerd bundle ("dynamic module
  // specifiers are unsupported"). Only this branch, only in such a Node, ever builds it.
  const load = new Function("specifier", "return import(specifier)") as (
    specifier: string,
  ) => Promise<unknown>;
  for (const name of ["node:worker_threads", "node:os"]) {
    if (importedBuiltins.has(name)) continue;
    try {
      importedBuiltins.set(name, await load(name));
    } catch {
      // Not a real Node after all: threads stay unavailable, with init's warning.
    }
  }
}

function nodeWorkers(): NodeWorkerModule | undefined {
  return nodeBuiltin("node:worker_threads") as NodeWorkerModule | undefined;
}

/** Why threads cannot run here, or undefined when they can. */
export function threadsUnavailable(): string | undefined {
  if (typeof SharedArrayBuffer === "undefined") return "SharedArrayBuffer is not available";
  if (nodeWorkers()) return undefined;
  if (nodeProcess()?.versions?.node && typeof nodeProcess()?.getBuiltinModule !== "function") {
    // Only init() can import node:worker_threads (asynchronously) on such a Node.
    return "this Node has no process.getBuiltinModule, so initSync() cannot start workers; use await init({ threads })";
  }
  const g = globalThis as { Worker?: unknown; crossOriginIsolated?: boolean };
  if (typeof g.Worker !== "function") return "this runtime has no Worker";
  if (g.crossOriginIsolated === false) return "the page is not cross-origin isolated (COOP/COEP)";
  return undefined;
}

/** The number of threads "auto" means: the hardware's parallelism (1 where it is unknown). */
export function hardwareThreads(): number {
  return hardwareParallelism() ?? 1;
}

/**
 * The most threads init() starts: the hardware's parallelism, or 16 where the runtime does not
 * tell it (an explicit number is then trusted that far).
 */
export function maxThreads(): number {
  return hardwareParallelism() ?? 16;
}

// The hardware's parallelism, at most 16, or undefined where the runtime does not tell it.
function hardwareParallelism(): number | undefined {
  const os = nodeBuiltin("node:os") as
    { availableParallelism?: () => number; cpus?: () => unknown[] } | undefined;
  const n =
    os?.availableParallelism?.() ??
    os?.cpus?.().length ??
    (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency;
  return typeof n === "number" && n >= 1 ? Math.min(16, Math.floor(n)) : undefined;
}

/**
 * Starts `threads − 1` workers on `module` and `memory`; `run` calls a kernel on the calling
 * thread's instance. Workers keep a Node process alive only while an asynchronous call is pending.
 */
export function createPool(
  module: WasmModule,
  memory: WasmMemory,
  threads: number,
  run: (task: Task) => void,
): Pool {
  const controlBuffer = new SharedArrayBuffer(4 * (2 + threads - 1));
  const workers: WorkerLike[] = [];
  let pool: Pool | undefined;
  const node = nodeWorkers();
  try {
    for (let i = 1; i < threads; i++) workers.push(startWorker(i - 1));
  } catch (err) {
    for (const worker of workers) void worker.terminate();
    throw err;
  }
  pool = new Pool(workers, new Int32Array(controlBuffer), run);
  return pool;

  function startWorker(index: number): WorkerLike {
    let worker: WorkerLike;
    if (node) {
      const w = new node.Worker(WORKER_SOURCE, { eval: true });
      w.on("error", (err) => pool?.fail(String((err as Error)?.message ?? err)));
      w.on("exit", (code) => pool?.exited(code as number));
      w.on("message", (m) => pool?.receive(m as { type: string }));
      // Last: a worker's first "message" listener references it again (Node refs the port), so
      // an unref() before it would keep the process alive forever.
      w.unref();
      worker = w;
    } else {
      const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
      const w = new Worker(url);
      w.onerror = (event) => pool?.fail(event.message);
      w.onmessage = (event) => pool?.receive(event.data as { type: string });
      worker = w;
    }
    worker.postMessage({ type: "init", module, memory, control: controlBuffer, index });
    return worker;
  }
}
