// Reading a weight matrix back out of its packed form in WASM memory (assembly/gemm.ts,
// packWeights), so that a module keeps no JavaScript copy of its weights: the scalar build keeps W
// row-major; the SIMD builds keep depth blocks of GEMM_KC, each a run of 8-row panels [kc][8].

import { GEMM_KC, GEMM_NR } from "../../../assembly/shared.js";
import type { Kernels } from "../../runtime/runtime.js";

/** W [n, k] row-major, from the packed matrix at byte address `packed`. */
export function unpackWeights(
  kernels: Kernels,
  packed: number,
  n: number,
  k: number,
): Float32Array {
  const f32 = kernels.workspace.f32;
  const base = packed >>> 2;
  if (kernels.build === "scalar") return f32.slice(base, base + n * k);
  const w = new Float32Array(n * k);
  const panels = Math.ceil(n / GEMM_NR);
  for (let k0 = 0; k0 < k; k0 += GEMM_KC) {
    const kc = Math.min(GEMM_KC, k - k0);
    const block = base + k0 * panels * GEMM_NR;
    for (let r = 0; r < n; r++) {
      const panel = block + Math.floor(r / GEMM_NR) * kc * GEMM_NR + (r % GEMM_NR);
      for (let t = 0; t < kc; t++) w[r * k + k0 + t] = f32[panel + t * GEMM_NR];
    }
  }
  return w;
}
