// The seeded adversarial harness: runs generated calls (test/adversarial/cases.mjs) of every public
// op against the package and checks the invariants of docs/api.md after each one:
//   (a) a throw or rejection is an AttentionError with a documented code;
//   (b) a valid call never throws and gives the reference result;
//   (c) memoryStats().bytesInUse returns to its baseline, and a rejected call does not grow memory;
//   (d) the module stays usable: a canary attention call after each hostile call is right;
//   (e) every promise settles within a timeout;
//   (f) a caller's `out` is written right or left untouched on error; inputs are never modified.
// Plain JavaScript with JSDoc, no Node modules: test/adversarial.test.ts runs it on src/ (Node and
// browsers) and bench/soak.mjs on the built dist/. The package is passed in as `api`.

import { GENERATORS } from "./cases.mjs";
import { referenceSdpa } from "./reference.mjs";

/** The codes of src/core/errors.ts AttentionErrorCode, as docs/api.md lists them. */
export const DOCUMENTED_CODES = [
  "SHAPE_MISMATCH",
  "BAD_DTYPE",
  "BAD_OPTION",
  "NOT_INITIALIZED",
  "OUT_OF_MEMORY",
  "INIT_FAILED",
  "DISPOSED",
  "CACHE_FULL",
  "WORKER_FAILED",
];

/** Growth of WASM memory a rejected call may cause (scratch rounding), in bytes. */
export const GROWTH_BOUND = 4 << 20;

/**
 * @typedef {object} Finding
 * @property {string} op the public op
 * @property {string} cls the invariant broken
 * @property {string} name the generator of the call
 * @property {number} seed the run's seed
 * @property {number} index the call's index in the run (replay: --seed seed --replay index)
 * @property {string} repro what the call was
 * @property {string} detail what went wrong
 * @property {number} count how many calls of this op, class and generator broke it
 */

/** mulberry32, as src/core/mulberry32.ts. @param {number} seed */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The seed of call `index` of run `seed`. @param {number} seed @param {number} index */
export function callSeed(seed, index) {
  let h = Math.imul((seed ^ 0x9e3779b9) >>> 0, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  return h >>> 0;
}

/** @param {unknown} a @returns {a is ArrayBufferView} */
function isView(a) {
  return ArrayBuffer.isView(a);
}

/** The bytes of a typed array, or undefined if it cannot be read (detached). @param {ArrayBufferView} a */
function bytesOf(a) {
  try {
    if (a.byteLength === 0) return new Uint8Array(0);
    return new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice();
  } catch {
    return undefined;
  }
}

/** @param {Uint8Array | undefined} a @param {Uint8Array | undefined} b */
function sameBytes(a, b) {
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** @param {ArrayBufferView} a */
function detached(a) {
  try {
    return a.buffer.byteLength === 0 && a.byteLength === 0;
  } catch {
    return true;
  }
}

/** @param {unknown} err */
function errorText(err) {
  if (err instanceof Error) return `${err.name}: ${err.message}`.slice(0, 300);
  return `${typeof err} ${String(err)}`.slice(0, 300);
}

/**
 * The first element where `got` differs from `want` by more than atol + rtol·|want|, as text, or
 * undefined. -Infinity and NaN must match exactly in kind.
 * @param {ArrayLike<number>} got @param {ArrayLike<number>} want
 * @param {{ atol?: number, rtol?: number }} [tol]
 */
export function closeProblem(got, want, tol = {}) {
  const atol = tol.atol ?? 2e-5;
  const rtol = tol.rtol ?? 2e-4;
  if (!got || typeof got.length !== "number") return `got no array (${String(got)})`;
  if (got.length !== want.length) return `length ${got.length}, want ${want.length}`;
  for (let i = 0; i < want.length; i++) {
    const g = got[i];
    const w = want[i];
    if (Number.isNaN(w) ? Number.isNaN(g) : g === w) continue;
    if (!(Math.abs(g - w) <= atol + rtol * Math.abs(w))) {
      return `element ${i}: got ${g}, want ${w} (of ${want.length})`;
    }
  }
  return undefined;
}

/** @param {readonly number[] | undefined} got @param {readonly number[]} want */
export function shapeProblem(got, want) {
  if (!Array.isArray(got)) return `shape is ${String(got)}`;
  if (got.length !== want.length || got.some((d, i) => d !== want[i])) {
    return `shape [${got.join(",")}], want [${want.join(",")}]`;
  }
  return undefined;
}

/**
 * A small fixed attention call and its reference, run after every hostile call.
 * @param {any} api
 */
function makeCanary(api) {
  const r = mulberry32(12345);
  /** @param {number[]} shape */
  const t = (shape) => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = r() * 2 - 1;
    return { data, shape };
  };
  const q = t([1, 2, 5, 12]);
  const k = t([1, 2, 7, 12]);
  const v = t([1, 2, 7, 6]);
  const want = referenceSdpa(q, k, v, { causal: true }).output.data;
  return {
    /** @returns {string | undefined} */
    sync() {
      try {
        const got = api.scaledDotProductAttention(q, k, v, { causal: true });
        return closeProblem(got.output.data, want);
      } catch (err) {
        return `canary threw ${errorText(err)}`;
      }
    },
    /** @param {number} timeoutMs @returns {Promise<string | undefined>} */
    async async(timeoutMs) {
      try {
        const settled = await withTimeout(
          api.scaledDotProductAttentionAsync(q, k, v, { causal: true }),
          timeoutMs,
        );
        if (settled.timedOut) return "async canary never settled";
        if (!settled.ok) return `async canary rejected ${errorText(settled.error)}`;
        return closeProblem(/** @type {any} */ (settled.value).output.data, want);
      } catch (err) {
        return `async canary threw ${errorText(err)}`;
      }
    },
  };
}

/**
 * @param {unknown} value @param {number} ms
 * @returns {Promise<{ ok: boolean, value?: unknown, error?: unknown, timedOut?: boolean }>}
 */
function withTimeout(value, ms) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, timedOut: true }), ms);
  });
  const settled = Promise.resolve(value).then(
    (v) => ({ ok: true, value: v }),
    (e) => ({ ok: false, error: e }),
  );
  return /** @type {Promise<any>} */ (Promise.race([settled, timeout])).finally(() =>
    clearTimeout(timer),
  );
}

/**
 * Runs one generated call and returns the findings it gives.
 * @param {any} api @param {ReturnType<typeof makeCanary>} canary
 * @param {{ seed: number, index: number, timeoutMs: number, filter?: (g: any) => boolean }} at
 * @returns {Promise<{ findings: Finding[], op: string, name: string, kind: string, broken?: boolean }>}
 */
async function runOne(api, canary, at) {
  const gens = at.filter ? GENERATORS.filter(at.filter) : GENERATORS;
  // A stride coprime with the number of generators: any run of calls spreads over all of them.
  let stride = Math.max(1, Math.floor(gens.length * 0.618));
  const gcd = (/** @type {number} */ a, /** @type {number} */ b) => (b === 0 ? a : gcd(b, a % b));
  while (gcd(stride, gens.length) !== 1) stride++;
  const gen = gens[(at.index * stride) % gens.length];
  const r = mulberry32(callSeed(at.seed, at.index));
  /** @type {Finding[]} */
  const findings = [];
  const base = { seed: at.seed, index: at.index, name: gen.name, count: 1 };
  /** @param {string} op @param {string} cls @param {string} repro @param {string} detail */
  const find = (op, cls, repro, detail) =>
    findings.push({ ...base, op, cls, repro: repro.slice(0, 600), detail: detail.slice(0, 600) });

  const inUse0 = api.memoryStats().bytesInUse;
  /** @type {any} */
  let c;
  try {
    c = gen.make(r, api);
  } catch (err) {
    find(gen.op, "harness-error", gen.name, `the generator threw ${errorText(err)}`);
    return { findings, op: gen.op, name: gen.name, kind: "hostile" };
  }
  const op = c.op ?? gen.op;
  const kind = c.kind ?? gen.kind;
  const expect = c.expect ?? (kind === "hostile" ? "either" : "ok");
  const repro = c.repro ?? gen.name;
  /** @type {ArrayBufferView[]} */
  const watch = (c.watch ?? []).filter(isView);
  const before = watch.map(bytesOf);
  const out = isView(c.out) ? c.out : undefined;
  const outBefore = out ? bytesOf(out) : undefined;
  const memory0 = api.memoryStats().memoryBytes;

  let threwSync = false;
  /** @type {{ ok: boolean, value?: unknown, error?: unknown, timedOut?: boolean }} */
  let settled;
  try {
    const value = c.call();
    settled = c.async ? await withTimeout(value, at.timeoutMs) : { ok: true, value };
    if (!c.async && value && typeof (/** @type {any} */ (value).then) === "function") {
      settled = await withTimeout(value, at.timeoutMs);
    }
  } catch (err) {
    threwSync = true;
    settled = { ok: false, error: err };
  }

  if (settled.timedOut) {
    find(op, "pending-promise", repro, `the promise did not settle within ${at.timeoutMs} ms`);
  } else if (!settled.ok) {
    const err = settled.error;
    if (!(err instanceof api.AttentionError)) {
      find(op, "non-AttentionError", repro, `threw ${errorText(err)}`);
    } else if (!DOCUMENTED_CODES.includes(/** @type {any} */ (err).code)) {
      find(op, "undocumented-code", repro, `code ${String(/** @type {any} */ (err).code)}`);
    } else if (c.codes && !c.codes.includes(/** @type {any} */ (err).code)) {
      find(op, "wrong-code", repro, `${errorText(err)}; documented: ${c.codes.join(" or ")}`);
    }
    if (expect === "ok") find(op, "valid-input-threw", repro, errorText(err));
    if (c.async && threwSync && !c.syncThrowOk) {
      find(op, "async-threw-synchronously", repro, `threw instead of rejecting: ${errorText(err)}`);
    }
    if (out && outBefore && c.outOwned !== false && !detached(out)) {
      if (!sameBytes(bytesOf(out), outBefore)) {
        find(op, "out-written-on-error", repro, `out changed although the call failed`);
      }
    }
    const grown = api.memoryStats().memoryBytes - memory0;
    if (grown > GROWTH_BOUND) {
      find(op, "memory-grown-on-error", repro, `WASM memory grew by ${grown} bytes`);
    }
  } else {
    if (expect === "throw") {
      find(op, "accepted-hostile-input", repro, "returned instead of throwing an AttentionError");
    } else if (c.check) {
      let problem;
      try {
        problem = c.check(settled.value);
      } catch (err) {
        problem = `reading the result threw ${errorText(err)}`;
      }
      if (problem) find(op, "wrong-result", repro, problem);
    }
  }

  for (let i = 0; i < watch.length; i++) {
    if (watch[i] === out || detached(watch[i])) continue;
    if (!sameBytes(bytesOf(watch[i]), before[i])) {
      find(op, "input-modified", repro, `input array #${i} was modified`);
    }
  }
  try {
    c.cleanup?.();
  } catch (err) {
    if (!(err instanceof api.AttentionError)) {
      find(op, "non-AttentionError", repro, `cleanup threw ${errorText(err)}`);
    }
  }
  if (!settled.timedOut) {
    const inUse = api.memoryStats().bytesInUse;
    if (inUse > inUse0) find(op, "leak", repro, `bytesInUse ${inUse0} → ${inUse}`);
  }
  const problem =
    canary.sync() ?? (c.async && kind !== "valid" ? await canary.async(at.timeoutMs) : undefined);
  if (problem) find(op, "module-unusable-after", repro, problem);
  return { findings, op, name: gen.name, kind, broken: problem !== undefined };
}

/**
 * Runs calls `from` (default 0) to `calls` − 1 of run `seed` (call i uses generator i·stride mod
 * their number, so every generator runs once the calls reach their number, and fewer calls spread
 * over all of them). When a call leaves the
 * module unusable, `reload` (if given) must return a fresh, initialised instance of the package
 * (the run goes on with it); without it the run stops there (`stoppedAt`).
 * @param {any} api the package (src/index or dist/index.js), initialised
 * @param {{ seed: number, calls: number, from?: number, timeoutMs?: number,
 *   reload?: () => Promise<any>,
 *   filter?: (g: { op: string, name: string, kind: string }) => boolean,
 *   onCall?: (i: number, op: string, name: string, ms: number) => void }} options
 */
export async function runAdversarial(api, options) {
  let canary = makeCanary(api);
  const timeoutMs = options.timeoutMs ?? 5000;
  /** @type {Map<string, Finding>} */
  const found = new Map();
  /** @type {Record<string, number>} */
  const perOp = {};
  const start = Date.now();
  const first = options.from ?? 0;
  let reloads = 0;
  /** @type {number | undefined} */
  let stoppedAt;
  let index = first;
  for (; index < options.calls; index++) {
    const t0 = Date.now();
    const res = await runOne(api, canary, {
      seed: options.seed,
      index,
      timeoutMs,
      filter: options.filter,
    });
    perOp[res.op] = (perOp[res.op] ?? 0) + 1;
    for (const f of res.findings) {
      const key = `${f.op}|${f.cls}|${f.name}`;
      const had = found.get(key);
      if (had) had.count++;
      else found.set(key, f);
    }
    options.onCall?.(index, res.op, res.name, Date.now() - t0);
    if (res.broken) {
      if (!options.reload) {
        stoppedAt = index;
        break;
      }
      await withTimeout(api.terminateThreads?.(), 2000);
      api = await options.reload();
      canary = makeCanary(api);
      reloads++;
    }
  }
  return {
    findings: [...found.values()],
    calls: index - first + (stoppedAt !== undefined ? 1 : 0),
    perOp,
    ms: Date.now() - start,
    generators: GENERATORS.length,
    reloads,
    stoppedAt,
  };
}

/**
 * The findings as one readable text, grouped by class then op.
 * @param {Finding[]} findings
 */
export function formatFindings(findings) {
  if (findings.length === 0) return "no findings";
  /** @type {Map<string, Finding[]>} */
  const byClass = new Map();
  for (const f of findings) byClass.set(f.cls, [...(byClass.get(f.cls) ?? []), f]);
  const lines = [`${findings.length} distinct findings (op, class, generator):`];
  for (const [cls, list] of [...byClass].sort()) {
    lines.push("", `== ${cls} (${list.length})`);
    list.sort((a, b) => a.op.localeCompare(b.op) || a.name.localeCompare(b.name));
    for (const f of list) {
      lines.push(
        `- ${f.op} [${f.name}] ×${f.count} (seed ${f.seed}, call ${f.index}): ${f.detail}`,
        `    call: ${f.repro}`,
      );
    }
  }
  return lines.join("\n");
}
