// V8 flags that the running Node needs for the relaxed-SIMD build. Node 20 (V8 11.3) has relaxed
// SIMD behind --experimental-wasm-relaxed-simd; from Node 21 it is on by default and Node 22+
// rejects the flag as a bad option, so the flag is passed only where this Node accepts it.
import { execFileSync } from "node:child_process";

const RELAXED_SIMD_FLAG = "--experimental-wasm-relaxed-simd";

let cached;

/** The flags that turn relaxed SIMD on in a child of this Node: `[]` where it is on by default. */
export function relaxedSimdFlags() {
  if (cached === undefined) {
    try {
      execFileSync(process.execPath, [RELAXED_SIMD_FLAG, "-e", ""], { stdio: "ignore" });
      cached = [RELAXED_SIMD_FLAG];
    } catch {
      cached = [];
    }
  }
  return cached;
}
