// Setup of the vitest projects that pin how the module runs: WASM_ATTENTION_BUILD ("scalar",
// "simd128" or "relaxed") and WASM_ATTENTION_THREADS (a number) initialise the module before the
// suites' own init() calls, which then reuse it (once initialised, init() resolves at once).
import { init } from "../../src/index";

const env = process.env;
const build = env.WASM_ATTENTION_BUILD as "scalar" | "simd128" | "relaxed" | undefined;
const threads = env.WASM_ATTENTION_THREADS ? Number(env.WASM_ATTENTION_THREADS) : undefined;
if (build || threads) await init(undefined, { simd: build, threads });
