// The seeded adversarial suite (issue 14): every public op and async twin, fed valid inputs of
// random small shapes (checked against float64 references) and hostile ones (bad shapes and dtypes,
// typed-array look-alikes, detached buffers, lying getters, `out` in WASM memory, bad and overflowing
// options, sizes that cannot exist), with the invariants of docs/api.md checked after every call
// (test/adversarial/harness.mjs). One fixed seed and a budget of a few seconds per project; the
// long soak over the built package is bench/soak.mjs. All findings of a run fail the test together,
// grouped by class and op, each with its seed, call index and a reproducer.
import { expect, it, vi } from "vitest";
import * as pkg from "../src/index";
import { formatFindings, runAdversarial } from "./adversarial/harness.mjs";

const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env;
const SEED = Number(env?.ADVERSARIAL_SEED ?? 14);
const inBrowser =
  env === undefined || typeof (globalThis as { window?: unknown }).window !== "undefined";
const scalar = env?.WASM_ATTENTION_BUILD === "scalar";
// Node: every generator once (~830); browsers and the scalar build: a spread third of them.
const CALLS = Number(env?.ADVERSARIAL_CALLS ?? (inBrowser || scalar ? 300 : 830));

/** init() as the project pins it (test/setup/force-build.ts), for the first and every reloaded instance. */
async function initLike(api: typeof pkg): Promise<typeof pkg> {
  const build = env?.WASM_ATTENTION_BUILD as "scalar" | "simd128" | "relaxed" | undefined;
  const threads = env?.WASM_ATTENTION_THREADS ? Number(env.WASM_ATTENTION_THREADS) : undefined;
  await api.init(build || threads ? { simd: build, threads } : undefined);
  return api;
}

it(`keeps every invariant on ${CALLS} seeded adversarial calls (seed ${SEED})`, async () => {
  const api = await initLike(pkg);
  const res = await runAdversarial(api, {
    seed: SEED,
    calls: CALLS,
    timeoutMs: 5000,
    // A call that breaks the module: go on with a fresh instance of it.
    reload: async () => {
      vi.resetModules();
      return initLike((await import("../src/index")) as typeof pkg);
    },
  });
  const summary =
    `seed ${SEED}: ${res.calls} calls in ${res.ms} ms, ${res.generators} generators, ` +
    `${res.reloads} reloads after a broken module`;
  console.log(summary);
  expect(res.findings.length, `${summary}\n${formatFindings(res.findings)}`).toBe(0);
}, 300_000);
