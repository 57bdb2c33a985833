// A tiny page that uses wasm-attention through a bundler (esbuild or Vite): it computes causal
// attention on fixed data and shows the result. test/bundlers.test.ts builds it both ways and
// opens it in Chromium.
import { init, scaledDotProductAttention } from "wasm-attention";

await init();
const q = { data: new Float32Array([1, 0, 0, 1, 1, 1]), shape: [3, 2] };
const v = { data: new Float32Array([1, 2, 3, 4, 5, 6]), shape: [3, 2] };
const { output } = scaledDotProductAttention(q, q, v, { causal: true });
const text = Array.from(output.data, (x) => x.toFixed(6)).join(",");
document.getElementById("result").textContent = text;
document.title = "done";
