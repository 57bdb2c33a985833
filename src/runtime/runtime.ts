// Loading the kernels: init()/initSync() compile and instantiate the wasm, then every op reaches the
// instance through kernels(). One instance per JavaScript realm (module-level state).

import { SDPA_PARAMS_BYTES } from "../../assembly/shared.js";
import { AttentionError } from "../core/errors.js";
import type { ResponseLike, URLLike, WasmBytes, WasmMemory, WasmModule } from "./host-types.js";
import { checkKnownKeys, optionKeys } from "../core/option-keys.js";
import {
  createPool,
  hardwareThreads,
  maxThreads,
  threadsUnavailable,
  type Pool,
} from "./threads.js";
import { Workspace } from "./workspace.js";

/** The functions the wasm module exports (see assembly/index.ts). */
export interface KernelExports {
  memory: WasmMemory;
  heapBase(): number;
  buildKind(): number;
  sdpaScratchBytes(d: number, dv: number, keys: number): number;
  sdpaForward(params: number, scratch: number, headBegin: number, headEnd: number): void;
  softmaxForward(src: number, dst: number, outer: number, len: number, inner: number): void;
  ropeApply(
    x: number,
    batch: number,
    heads: number,
    rows: number,
    strideB: number,
    strideH: number,
    strideRow: number,
    d: number,
    table: number,
    style: number,
  ): void;
  normalizeRows(src: number, dst: number, rows: number, d: number, minNorm: number): void;
  additiveScores(
    qp: number,
    kp: number,
    va: number,
    batch: number,
    nq: number,
    nk: number,
    a: number,
    out: number,
    accumulate: number,
    mask: number,
    maskKind: number,
    maskStrideB: number,
    maskStrideQ: number,
    maskStrideK: number,
  ): void;
  tanhInPlace(ptr: number, n: number): void;
  sdpaBackwardScratchBytes(d: number, dv: number, keys: number): number;
  sdpaBackward(
    params: number,
    scratch: number,
    gradOut: number,
    lse: number,
    dq: number,
    dk: number,
    dv: number,
    headBegin: number,
    headEnd: number,
  ): void;
  hardAttentionScratchBytes(nk: number, topK: number): number;
  hardAttention(
    q: number,
    k: number,
    v: number,
    out: number,
    weights: number,
    batch: number,
    heads: number,
    kvHeads: number,
    nq: number,
    nk: number,
    d: number,
    dv: number,
    scale: number,
    topK: number,
    mask: number,
    maskKind: number,
    maskStrideB: number,
    maskStrideH: number,
    maskStrideQ: number,
    maskStrideK: number,
    scratch: number,
  ): void;
  packedWeightsBytes(n: number, k: number): number;
  gemmScratchBytes(): number;
  packWeights(w: number, n: number, k: number, ldw: number, dst: number): void;
  gemm(
    x: number,
    m: number,
    k: number,
    ldx: number,
    packedW: number,
    n: number,
    bias: number,
    y: number,
    ldy: number,
    scratch: number,
  ): void;
}

/**
 * What init() accepts as the wasm: a compiled `WebAssembly.Module`, its bytes (an ArrayBuffer or a
 * view), or where to fetch them (a URL or string, a `Response` or a promise of one).
 */
export type WasmSource =
  WasmModule | WasmBytes | URLLike | string | ResponseLike | PromiseLike<ResponseLike>;

/** What initSync() accepts as the wasm: a compiled `WebAssembly.Module` or its bytes. */
export type SyncWasmSource = WasmModule | WasmBytes;

export interface InitOptions {
  /**
   * Threads to compute on: a number, or "auto" (0 too) for the hardware's parallelism; default 1.
   * Where threads cannot run (no SharedArrayBuffer, a page without cross-origin isolation,
   * workerd) init warns once and uses 1 (ONNX Runtime Web's convention).
   */
  threads?: number | "auto";
  /**
   * Which build to run: "auto" (default) picks relaxed SIMD (fused multiply-add) where the runtime
   * validates it, else SIMD128, else (no SIMD at all) the scalar build; "relaxed" asks for relaxed
   * SIMD (falling back to SIMD128 with a warning); "simd128" and "scalar" force those builds.
   */
  simd?: "auto" | "relaxed" | "simd128" | "scalar";
}

const INIT_OPTION_KEYS = optionKeys<InitOptions>({ threads: true, simd: true });

export interface Kernels {
  exports: KernelExports;
  /**
   * The worker pool when threads > 1 (its size counts the calling thread). terminateThreads()
   * removes it from this object, which every call in flight shares.
   */
  pool?: Pool;
  /** What a pool starts on: the module and its shared memory (undefined for a build without). */
  shared?: { module: WasmModule; memory: WasmMemory };
  /** Set by terminateThreads() until a later init({ threads }) starts a new pool. */
  threadsTerminated: boolean;
  /** Which build is running (read from the module itself). */
  build: Build;
  workspace: Workspace;
  /** Address of the persistent parameter block of the ops: one call at a time fills it, and the
   * pool's workers read it during that call. */
  params: number;
}

let loaded: Kernels | undefined;

/** The instance, or NOT_INITIALIZED naming the op that needed it. */
export function kernels(op: string): Kernels {
  if (!loaded) {
    throw new AttentionError(
      "NOT_INITIALIZED",
      `${op}: wasm-attention is not initialised; call (and await) init() or call initSync() first`,
    );
  }
  return loaded;
}

/** True once init() or initSync() has completed. */
export function isInitialized(): boolean {
  return loaded !== undefined;
}

/**
 * The wasm builds: SIMD128, relaxed SIMD (fused multiply-add) where validated, and scalar for
 * runtimes without SIMD.
 */
export type Build = "scalar" | "simd128" | "relaxed";

/** Validates init options and picks the build to load (ignored when the caller brings the wasm). */
export function chooseBuild(options: InitOptions | undefined): Build {
  if (options !== undefined && (typeof options !== "object" || options === null)) {
    throw new AttentionError(
      "BAD_OPTION",
      `init: options must be an object, got ${typeof options}`,
    );
  }
  if (options !== undefined) checkKnownKeys("init", "options", options, INIT_OPTION_KEYS);
  const { threads, simd = "auto" } = options ?? {};
  if (
    threads !== undefined &&
    threads !== "auto" &&
    !(typeof threads === "number" && Number.isInteger(threads) && threads >= 0)
  ) {
    throw new AttentionError(
      "BAD_OPTION",
      `init: options.threads must be a non-negative integer or "auto", got ${typeof threads === "string" ? JSON.stringify(threads) : String(threads)}`,
    );
  }
  if (!["auto", "relaxed", "simd128", "scalar"].includes(simd)) {
    throw new AttentionError(
      "BAD_OPTION",
      `init: options.simd must be "auto", "relaxed", "simd128" or "scalar", got ${String(simd)}`,
    );
  }
  if (simd === "scalar" || !simdSupported()) return "scalar";
  const relaxed = relaxedSimdSupported();
  if (simd === "relaxed" && !relaxed) {
    console.warn(
      "wasm-attention: this runtime does not validate relaxed SIMD; using the SIMD128 build",
    );
  }
  return (simd === "auto" || simd === "relaxed") && relaxed ? "relaxed" : "simd128";
}

/** Instantiates a compiled module and makes it the active instance. */
export function activate(module: WasmModule, threads = 1): void {
  // A threaded build imports its memory: one shared memory for this instance and every worker's.
  const imports = WebAssembly.Module.imports(module);
  const memory = imports.some((i) => i.kind === "memory")
    ? new WebAssembly.Memory({ initial: 16, maximum: 65536, shared: true })
    : undefined;
  let instance: WebAssembly.Instance;
  try {
    instance = new WebAssembly.Instance(module, memory ? { env: { memory } } : {});
  } catch (err) {
    throw new AttentionError(
      "INIT_FAILED",
      `init: the wasm module could not be instantiated: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  const exports = instance.exports as unknown as KernelExports;
  for (const name of [
    "memory",
    "heapBase",
    "buildKind",
    "sdpaForward",
    "sdpaScratchBytes",
    "softmaxForward",
    "gemm",
  ]) {
    if (!(name in exports)) {
      throw new AttentionError(
        "INIT_FAILED",
        `init: the wasm module has no export "${name}"; is it a wasm-attention build?`,
      );
    }
  }
  const workspace = new Workspace(exports.memory, exports.heapBase());
  const params = workspace.alloc(SDPA_PARAMS_BYTES, "init");
  const build = (["scalar", "simd128", "relaxed"] as const)[exports.buildKind()];
  loaded = {
    exports,
    workspace,
    params,
    build,
    shared: memory ? { module, memory } : undefined,
    threadsTerminated: false,
  };
  startPool(loaded, threads);
}

// A pool of `threads` on the instance's module and memory (none for one thread or a build without
// shared memory).
// A runtime that refuses to start a worker (a page whose CSP forbids blob: workers, a thread
// limit) computes on one thread with a warning, as where threads are unavailable.
function startPool(k: Kernels, threads: number): void {
  if (!k.shared || threads <= 1) return;
  const kernelTable = k.exports as unknown as Record<string, (...args: number[]) => unknown>;
  try {
    k.pool = createPool(k.shared.module, k.shared.memory, threads, (task) =>
      kernelTable[task.fn](...task.args),
    );
  } catch (err) {
    console.warn(
      `wasm-attention: a worker could not be started (${err instanceof Error ? err.message : String(err)}); computing on 1 thread`,
    );
  }
}

/**
 * Stops the worker pool that `init({ threads })` started, and lets a Node process exit as it would
 * without threads. Ops called from then on compute on the calling thread (with the same results:
 * only a key split's float rounding depends on the thread count); the instance, every WasmTensor,
 * MultiHeadAttention and KV cache stay valid. `…Async` calls already pending finish on the workers
 * first; the returned promise settles once they have and the workers have stopped. A later
 * `init({ threads })` or `initSync({ threads })` starts a new pool on the same instance (its
 * source and `simd` are ignored: the build stays). Without a pool, or before init() has completed,
 * there is nothing to stop and it resolves at once (an init() still pending starts its pool).
 * Calling it is optional in Node: idle workers never keep a process alive.
 */
export function terminateThreads(): Promise<void> {
  const k = loaded;
  const pool = k?.pool;
  if (!k || !pool) return Promise.resolve();
  k.pool = undefined;
  k.threadsTerminated = true;
  return pool.terminate();
}

/** Whether terminateThreads() stopped the pool (so init may start another). */
export function threadsTerminated(): boolean {
  return loaded?.threadsTerminated ?? false;
}

/** init() after terminateThreads(): validates the options and starts the pool they ask for. */
export function restartThreads(options: InitOptions | undefined): void {
  const k = kernels("init");
  chooseBuild(options);
  if (!k.threadsTerminated) return;
  const threads = resolveThreads(options, k.build);
  k.threadsTerminated = threads <= 1;
  startPool(k, threads);
}

/** Compiles bytes synchronously, with a clear error when the runtime lacks SIMD. */
export function compileSync(bytes: WasmBytes): WasmModule {
  try {
    return new WebAssembly.Module(bytes as BufferSource);
  } catch (err) {
    throw compileError(err);
  }
}

export async function compileAsync(bytes: WasmBytes): Promise<WasmModule> {
  try {
    return await WebAssembly.compile(bytes as BufferSource);
  } catch (err) {
    throw compileError(err);
  }
}

function compileError(err: unknown): AttentionError {
  const detail = err instanceof Error ? err.message : String(err);
  const hint =
    typeof WebAssembly.validate === "function" && !simdSupported()
      ? " This runtime does not support WebAssembly SIMD128, which this build needs."
      : "";
  return new AttentionError(
    "INIT_FAILED",
    `init: the wasm module could not be compiled: ${detail}.${hint}`,
  );
}

// The smallest modules using a v128 instruction (i8x16.splat) and a relaxed-SIMD one
// (f32x4.relaxed_madd): WebAssembly.validate tells what the runtime supports.
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 8, 1, 6, 0, 65, 0, 253, 15,
  11,
]);
const RELAXED_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 19, 1, 17, 0, 65, 0, 253, 15,
  65, 0, 253, 15, 65, 0, 253, 15, 253, 133, 2, 11,
]);

export function simdSupported(): boolean {
  return WebAssembly.validate(SIMD_PROBE);
}

export function relaxedSimdSupported(): boolean {
  return WebAssembly.validate(RELAXED_PROBE);
}

/**
 * What is running: the build and the number of threads (1 once the pool has failed or after
 * terminateThreads()).
 */
export function runtimeInfo(): { build: Build; threads: number } {
  const k = kernels("runtimeInfo");
  return { build: k.build, threads: 1 + (k.pool?.workers ?? 0) };
}

let warnedThreads = false;

/**
 * The number of threads to run: options.threads (a number, or "auto" for the hardware's
 * parallelism; default 1), or 1 with a single warning where threads cannot run. A number above the
 * hardware's parallelism is capped there with a warning: more threads than cores only wait on
 * each other (and threads: 1e9 must not start a billion workers).
 */
export function resolveThreads(options: InitOptions | undefined, build: Build): number {
  const requested = options?.threads ?? 1;
  const count = requested === "auto" || requested === 0 ? hardwareThreads() : requested;
  if (count <= 1) return 1;
  const reason = build === "scalar" ? "the scalar build runs on one thread" : threadsUnavailable();
  if (reason !== undefined) {
    if (!warnedThreads) console.warn(`wasm-attention: ${reason}; computing on 1 thread`);
    warnedThreads = true;
    return 1;
  }
  const most = maxThreads();
  if (count > most) {
    console.warn(
      `wasm-attention: threads: ${count} asked for, but this machine runs ${most} in parallel; using ${most}`,
    );
    return most;
  }
  return count;
}

/** WASM memory of the instance: its size (grow-only, so also the peak) and the bytes held by live
 * allocations (WasmTensors, MultiHeadAttention weights, caches). */
export function memoryStats(): { memoryBytes: number; bytesInUse: number } {
  const { workspace } = kernels("memoryStats");
  return { memoryBytes: workspace.buffer.byteLength, bytesInUse: workspace.bytesInUse };
}
