// Setup of the vitest projects that pin a build: WASM_ATTENTION_BUILD ("scalar", "simd128" or
// "relaxed") initialises the module with that build before the suites' own init() calls, which then
// reuse it (init() returns its first call's promise).
import { init } from "../../src/index";

const build = process.env.WASM_ATTENTION_BUILD as "scalar" | "simd128" | "relaxed" | undefined;
if (build) await init(undefined, { simd: build });
