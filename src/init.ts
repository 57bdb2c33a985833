// The init core every entry shares: init() / initSync() compile (or take) the wasm, instantiate it
// and make it the active instance. An entry supplies only where its packaged wasm comes from.

import { AttentionError } from "./errors.js";
import type { WasmModule } from "./host-types.js";
import {
  activate,
  chooseBuild,
  compileAsync,
  compileSync,
  isInitialized,
  resolveThreads,
  restartThreads,
  threadsTerminated,
  type Build,
  type InitOptions,
  type SyncWasmSource,
  type WasmSource,
} from "./runtime.js";
import { describe } from "./tensor.js";
import { loadNodeBuiltins } from "./threads.js";

/** Where an entry's packaged wasm comes from, per build: a compiled module or the bytes. */
export interface PackagedWasm {
  /**
   * For init(): may load lazily (the default entry imports the other builds on demand). `threaded`
   * asks for the variant on shared memory that the worker pool needs.
   */
  load(build: Build, threaded: boolean): Promise<WasmModule | Uint8Array<ArrayBuffer>>;
  /** For initSync(): the build available without waiting (SIMD128). */
  loadSync(): WasmModule | Uint8Array<ArrayBuffer>;
}

/** init() and initSync() of one entry. */
export function createInit(packaged: PackagedWasm): {
  init: {
    (options?: InitOptions): Promise<void>;
    (source?: WasmSource, options?: InitOptions): Promise<void>;
  };
  initSync: {
    (options?: InitOptions): void;
    (source?: SyncWasmSource, options?: InitOptions): void;
  };
} {
  let pending: Promise<void> | undefined;

  function init(first?: WasmSource | InitOptions, second?: InitOptions): Promise<void> {
    // After terminateThreads(), the options may start a new pool on the same instance.
    if (pending && threadsTerminated()) {
      return pending.then(() => restartThreads(splitArguments(first, second)[1]));
    }
    if (pending) return pending;
    pending = (async () => {
      const [source, options] = splitArguments<WasmSource>(first, second);
      const build = chooseBuild(options);
      await loadNodeBuiltins(); // a Node without process.getBuiltinModule gets its Worker here
      const threads = resolveThreads(options, build);
      if (source !== undefined) {
        // The caller's wasm, whichever build it is (threads need a build on shared memory).
        activate(await toModule(source), threads);
        return;
      }
      activate(await toModule(await packaged.load(build, threads > 1)), threads);
    })();
    pending.catch(() => {
      pending = undefined;
    });
    return pending;
  }

  /**
   * Synchronous init from a `WebAssembly.Module` or the wasm bytes (the package's `./wasm/*` files);
   * without them, the build the entry has at hand (SIMD128, one thread, in the default entry).
   * Browsers refuse to compile modules above 4 KiB synchronously on the main thread; use init().
   */
  function initSync(first?: SyncWasmSource | InitOptions, second?: InitOptions): void {
    if (isInitialized()) {
      if (threadsTerminated()) restartThreads(splitArguments(first, second)[1]);
      return;
    }
    const [source, options] = splitArguments<SyncWasmSource>(first, second);
    const threads = resolveThreads(options, chooseBuild(options));
    const wasm: unknown = source ?? packaged.loadSync();
    if (wasm instanceof WebAssembly.Module) activate(wasm, threads);
    else if (wasm instanceof ArrayBuffer || ArrayBuffer.isView(wasm)) {
      activate(compileSync(wasm as BufferSource), threads);
    } else throw badSource(wasm);
    pending = Promise.resolve();
  }

  return { init, initSync };
}

/**
 * init(options) and init(source, options) are both accepted: a plain object (not a Module, bytes,
 * URL, string, Response or promise) in first place is the options.
 */
function splitArguments<Source>(
  first: Source | InitOptions | undefined,
  second: InitOptions | undefined,
): [Source | undefined, InitOptions | undefined] {
  if (!isOptionsObject(first)) return [first as Source | undefined, second];
  if (second !== undefined) {
    throw new AttentionError(
      "BAD_OPTION",
      "init: options were passed twice (as the first and the second argument); pass init(options) or init(source, options)",
    );
  }
  return [undefined, first];
}

function isOptionsObject(x: unknown): x is InitOptions {
  if (typeof x !== "object" || x === null) return false;
  const proto: unknown = Object.getPrototypeOf(x);
  return (proto === Object.prototype || proto === null) && !("then" in x) && !isResponse(x);
}

async function toModule(source: WasmSource): Promise<WebAssembly.Module> {
  if (source instanceof WebAssembly.Module) return source;
  if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) return compileAsync(source);
  if (typeof source === "string" || source instanceof URL) {
    if (typeof fetch !== "function") throw badSource(source);
    return fromResponse(fetch(source));
  }
  if (typeof (source as PromiseLike<Response>).then === "function" || isResponse(source)) {
    return fromResponse(source as Response | PromiseLike<Response>);
  }
  throw badSource(source);
}

async function fromResponse(
  response: Response | PromiseLike<Response>,
): Promise<WebAssembly.Module> {
  const r = await response;
  if (!isResponse(r)) throw badSource(r);
  if (!r.ok) {
    throw new AttentionError(
      "INIT_FAILED",
      `init: fetching the wasm failed: HTTP ${r.status} ${r.statusText}`,
    );
  }
  return compileAsync(await r.arrayBuffer());
}

function isResponse(x: unknown): x is Response {
  return typeof x === "object" && x !== null && typeof (x as Response).arrayBuffer === "function";
}

function badSource(source: unknown): AttentionError {
  return new AttentionError(
    "BAD_OPTION",
    `init: source must be a WebAssembly.Module, bytes (ArrayBuffer or view), a URL, or a Response, got ${describe(source)}`,
  );
}
