// V8 flags that the running Node needs for the relaxed-SIMD build. Node 20 (V8 11.3) has relaxed
// SIMD behind --experimental-wasm-relaxed-simd; from Node 21 it is on by default and Node 22+
// rejects the flag as a bad option, so the flag is passed only where this Node accepts it.
import { execFileSync } from "node:child_process";

const RELAXED_SIMD_FLAG = "--experimental-wasm-relaxed-simd";

const cached = new Map();

/**
 * The flags that turn relaxed SIMD on in a process of the `node` binary (this one by default):
 * `[]` where it is on by default.
 */
export function relaxedSimdFlags(node = process.execPath) {
  if (!cached.has(node)) {
    try {
      execFileSync(node, [RELAXED_SIMD_FLAG, "-e", ""], { stdio: "ignore" });
      cached.set(node, [RELAXED_SIMD_FLAG]);
    } catch {
      cached.set(node, []);
    }
  }
  return cached.get(node);
}
