// Two threads against one: wasm-attention's worker pool, and ONNX Runtime Web with numThreads = 2,
// each configuration in its own Node process (both libraries fix their thread count when they
// start). Prints a Markdown table.
//   node bench/threads.mjs       (npm run bench runs it too)
import { execFileSync } from "node:child_process";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { machine } from "./timing.mjs";

const CASES = [
  { name: "SDPA B1 H12 N512 D64", H: 12, N: 512, D: 64 },
  { name: "SDPA B1 H12 N2048 D64", H: 12, N: 2048, D: 64 },
  { name: "decode H32 D128, 4096 keys", H: 32, N: 4096, D: 128, decode: true },
  // One head: no head split to share, so two threads split the keys (src/engine/key-split.ts).
  { name: "decode H1 D128, 32768 keys", H: 1, N: 32768, D: 128, decode: true },
  // Training: split by (batch, kv-head) group. ONNX Runtime Web has none of the last three.
  { name: "backward B1 H12 N512 D64", H: 12, N: 512, D: 64, backward: true },
  // The family's own kernels: additive scores split by query rows, hard attention by head group.
  { name: "additive N512 D64 A128", H: 1, N: 512, D: 64, additive: 128 },
  { name: "hard top-32 B1 H12 N512 D64", H: 12, N: 512, D: 64, topK: 32 },
];

async function child(kind, threads) {
  const { measure, randomArray } = await import("./timing.mjs");
  const results = [];
  if (kind === "ours") {
    const {
      init,
      scaledDotProductAttention,
      scaledDotProductAttentionBackward,
      additiveAttention,
      hardAttention,
      allocTensor,
      runtimeInfo,
    } = await import("../dist/index.js");
    await init(undefined, { threads });
    if (runtimeInfo().threads !== threads) throw new Error("thread count not as asked");
    for (const c of CASES) {
      const nq = c.decode ? 1 : c.N;
      const q = { data: randomArray(c.H * nq * c.D, 1), shape: [1, c.H, nq, c.D] };
      let k = { data: randomArray(c.H * c.N * c.D, 2), shape: [1, c.H, c.N, c.D] };
      let v = { data: randomArray(c.H * c.N * c.D, 3), shape: [1, c.H, c.N, c.D] };
      if (c.decode) {
        // The cache stays in WASM memory, as with a KVCache.
        const kw = allocTensor(k.shape);
        const vw = allocTensor(v.shape);
        kw.data.set(k.data);
        vw.data.set(v.data);
        [k, v] = [kw, vw];
      }
      let call = () => scaledDotProductAttention(q, k, v);
      if (c.backward) {
        const f = scaledDotProductAttention(q, k, v, { returnLse: true });
        call = () => scaledDotProductAttentionBackward(q, k, v, f.output, q, { lse: f.lse });
      } else if (c.additive) {
        const A = c.additive;
        const [q3, k3, v3] = [q, k, v].map((t) => ({ data: t.data, shape: [1, c.N, c.D] }));
        const params = {
          wq: randomArray(A * c.D, 4).map((x) => x * 0.2),
          wk: randomArray(A * c.D, 5).map((x) => x * 0.2),
          va: randomArray(A, 6),
        };
        call = () => additiveAttention(q3, k3, v3, params);
      } else if (c.topK) {
        call = () => hardAttention(q, k, v, { topK: c.topK });
      }
      for (let i = 0; i < 30; i++) call(); // tier up every thread's code
      results.push((await measure(call, { warmup: 0, minRuns: 10 })).median);
    }
  } else {
    const { createOrtSdpa, createOrtDecode, setOrtThreads } = await import("./peers/ort.mjs");
    setOrtThreads(threads);
    for (const c of CASES) {
      if (c.backward || c.additive || c.topK) {
        results.push(null);
        continue;
      }
      const nq = c.decode ? 1 : c.N;
      const q = randomArray(c.H * nq * c.D, 1);
      const k = randomArray(c.H * c.N * c.D, 2);
      const v = randomArray(c.H * c.N * c.D, 3);
      const session = c.decode
        ? await createOrtDecode({ H: c.H, Nk: c.N, D: c.D })
        : await createOrtSdpa({ B: 1, H: c.H, Nq: nq, Nk: c.N, D: c.D, Dv: c.D });
      results.push((await measure(() => session.run(q, k, v), { warmup: 3, minRuns: 5 })).median);
      await session.dispose();
    }
  }
  console.log(JSON.stringify(results));
  process.exit(0);
}

if (process.argv[2] === "--child") {
  await child(process.argv[3], Number(process.argv[4]));
} else {
  const self = fileURLToPath(import.meta.url);
  const run = (kind, threads) =>
    JSON.parse(
      execFileSync(process.execPath, [self, "--child", kind, String(threads)], {
        encoding: "utf8",
      }),
    );
  const one = run("ours", 1);
  const two = run("ours", 2);
  const ort2 = run("ort", 2);
  console.log(`\n# Threads: two against one\n${machine(os)}\n`);
  console.log(
    `| case | 1 thread ms | 2 threads ms | × 1 thread | ORT Web 2 threads ms | × ORT Web 2 threads |`,
  );
  console.log(`|---|---|---|---|---|---|`);
  CASES.forEach((c, i) => {
    console.log(
      `| ${c.name} | ${one[i].toFixed(2)} | ${two[i].toFixed(2)} | ${(one[i] / two[i]).toFixed(2)}× | ` +
        (ort2[i] === null
          ? "n/a | n/a |"
          : `${ort2[i].toFixed(2)} | ${(ort2[i] / two[i]).toFixed(2)}× |`),
    );
  });
}
