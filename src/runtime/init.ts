// The init core every entry shares: init() / initSync() compile (or take) the wasm, instantiate it
// and make it the active instance. An entry supplies only where its packaged wasm comes from.

import { AttentionError } from "../core/errors.js";
import type { WasmModule } from "./host-types.js";
import {
  activate,
  chooseBuild,
  compileAsync,
  compileSync,
  isInitialized,
  resolveThreads,
  restartThreads,
  type Build,
  type InitOptions,
  type SyncWasmSource,
  type WasmSource,
} from "./runtime.js";
import { describe } from "../core/tensor.js";
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
  // Loads in flight, by source (undefined = the packaged wasm). The rule:
  // - init() calls with the same source (===, so the same URL string too) share one load, with
  //   the first call's options;
  // - a call with another source does not wait for a pending one: it loads its own, so a source
  //   that never settles (or fails) blocks nothing but the calls that gave it;
  // - the first load to complete (or initSync()) makes the instance; it is never replaced
  //   (WasmTensors live in it), and every init() still pending resolves then: the module is
  //   ready, whatever became of its own source (a load completing later is dropped);
  // - a failed load is forgotten: a later init(), with any source, tries afresh;
  // - once initialised, init() resolves at once (after terminateThreads(), its threads start a
  //   new pool) and still refuses bad options.
  const loads = new Map<unknown, Promise<void>>();
  let initialised!: () => void;
  const whenInitialised = new Promise<void>((resolve) => (initialised = resolve));

  function init(first?: WasmSource | InitOptions, second?: InitOptions): Promise<void> {
    let source: WasmSource | undefined;
    let options: InitOptions | undefined;
    try {
      [source, options] = splitArguments<WasmSource>(first, second);
      if (isInitialized()) {
        restartThreads(options);
        return Promise.resolve();
      }
    } catch (err) {
      return Promise.reject(err);
    }
    const shared = loads.get(source);
    if (shared) return shared;
    const loading = (async () => {
      const build = chooseBuild(options);
      if (source !== undefined && !isSource(source)) throw badSource(source);
      await loadNodeBuiltins(); // a Node without process.getBuiltinModule gets its Worker here
      const threads = resolveThreads(options, build);
      let module: WebAssembly.Module;
      try {
        // The caller's wasm is whichever build it is (threads need a build on shared memory).
        module = await toModule(source ?? (await packaged.load(build, threads > 1)));
      } catch (err) {
        throw loadError(source, err);
      }
      if (isInitialized()) return; // another init() or initSync() completed first
      activate(module, threads);
      initialised();
    })();
    const load = Promise.race([loading, whenInitialised]);
    loads.set(source, load);
    const done = (): void => {
      if (loads.get(source) === load) loads.delete(source);
    };
    load.then(done, done);
    return load;
  }

  /**
   * Synchronous init from a `WebAssembly.Module` or the wasm bytes (the package's `./wasm/*` files);
   * without them, the build the entry has at hand (SIMD128, one thread, in the default entry).
   * Browsers refuse to compile modules above 4 KiB synchronously on the main thread; use init().
   */
  function initSync(first?: SyncWasmSource | InitOptions, second?: InitOptions): void {
    const [source, options] = splitArguments<SyncWasmSource>(first, second);
    if (isInitialized()) {
      restartThreads(options);
      return;
    }
    const threads = resolveThreads(options, chooseBuild(options));
    // Only undefined means the packaged wasm: null is a bad source, as in init().
    const wasm: unknown = source === undefined ? packaged.loadSync() : source;
    let module: WebAssembly.Module;
    if (wasm instanceof WebAssembly.Module) module = wasm;
    else if (wasm instanceof ArrayBuffer || ArrayBuffer.isView(wasm)) {
      try {
        module = compileSync(wasm as BufferSource);
      } catch (err) {
        throw loadError(source, err, "initSync");
      }
    } else throw badSource(wasm, "initSync", "a WebAssembly.Module or bytes (ArrayBuffer or view)");
    activate(module, threads);
    initialised();
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

function isSource(x: unknown): boolean {
  return (
    x instanceof WebAssembly.Module ||
    x instanceof ArrayBuffer ||
    ArrayBuffer.isView(x) ||
    typeof x === "string" ||
    x instanceof URL ||
    isThenable(x) ||
    isResponse(x)
  );
}

async function toModule(source: WasmSource): Promise<WebAssembly.Module> {
  if (source instanceof WebAssembly.Module) return source;
  if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) return compileAsync(source);
  if (typeof source === "string" || source instanceof URL) {
    if (typeof fetch !== "function") throw badSource(source);
    return fromResponse(fetch(source));
  }
  if (isThenable(source) || isResponse(source)) return fromResponse(source);
  throw badSource(source);
}

async function fromResponse(
  response: Response | PromiseLike<Response>,
): Promise<WebAssembly.Module> {
  const r = await response;
  if (!isResponse(r)) throw badSource(r);
  if (!r.ok)
    throw new AttentionError("INIT_FAILED", `init: HTTP ${r.status} ${r.statusText}`.trimEnd());
  return compileAsync(await r.arrayBuffer());
}

function isThenable(x: unknown): x is PromiseLike<Response> {
  return (
    (typeof x === "object" || typeof x === "function") &&
    x !== null &&
    typeof (x as PromiseLike<unknown>).then === "function"
  );
}

function isResponse(x: unknown): x is Response {
  return typeof x === "object" && x !== null && typeof (x as Response).arrayBuffer === "function";
}

function badSource(
  source: unknown,
  fn = "init",
  expected = "a WebAssembly.Module, bytes (ArrayBuffer or view), a URL, or a Response",
): AttentionError {
  return new AttentionError(
    "INIT_FAILED",
    `${fn}: the source must be ${expected}, got ${describe(source)}`,
  );
}

/**
 * Whatever loading `source` threw (a fetch that failed, an HTTP error, bytes that are not wasm, a
 * promise that rejected), as INIT_FAILED naming the source.
 */
function loadError(source: unknown, err: unknown, fn = "init"): AttentionError {
  if (err instanceof AttentionError && err.code !== "INIT_FAILED") return err;
  let detail = (err instanceof Error ? err.message : String(err)).replace(/^init(Sync)?: /, "");
  // Node's fetch says only "fetch failed"; the reason (ECONNREFUSED, ...) is its cause.
  const cause = err instanceof Error ? err.cause : undefined;
  if (cause instanceof Error) detail += ` (${cause.message})`;
  const from = source === undefined ? "the packaged wasm" : describeSource(source);
  return new AttentionError("INIT_FAILED", `${fn}: loading ${from} failed: ${detail}`);
}

function describeSource(source: unknown): string {
  if (typeof source === "string") {
    return JSON.stringify(source.length > 200 ? `${source.slice(0, 200)}…` : source);
  }
  if (source instanceof URL) return source.href;
  if (isResponse(source) && typeof source.url === "string" && source.url !== "") {
    return `a Response from ${source.url}`;
  }
  return describe(source);
}
