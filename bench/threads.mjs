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
  // One head: no head split to share, so two threads split the keys (src/key-split.ts).
  { name: "decode H1 D128, 32768 keys", H: 1, N: 32768, D: 128, decode: true },
  // Training: split by (batch, kv-head) group. ONNX Runtime Web has no backward pass.
  { name: "backward B1 H12 N512 D64", H: 12, N: 512, D: 64, backward: true },
];

async function child(kind, threads) {
  const { measure, randomArray } = await import("./timing.mjs");
  const results = [];
  if (kind === "ours") {
    const {
      init,
      scaledDotProductAttention,
      scaledDotProductAttentionBackward,
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
      }
      for (let i = 0; i < 30; i++) call(); // tier up every thread's code
      results.push((await measure(call, { warmup: 0, minRuns: 10 })).median);
    }
  } else {
    const { createOrtSdpa, createOrtDecode, setOrtThreads } = await import("./peers/ort.mjs");
    setOrtThreads(threads);
    for (const c of CASES) {
      if (c.backward) {
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
