// What one core can do at all with f32x4, which the kernels' GFLOP/s are read against:
//
// - Independent accumulator chains a ← a·x + y in a loop, as a multiply and an add (SIMD128) and as
//   f32x4.relaxed_madd (fused): the arithmetic peak.
// - The same chains with the accumulator as the addend, a ← x·y + a, which is what a dot product
//   chains: on this CPU the fused form needs more than 8 chains in flight to reach the peak.
// - The loop of the attention micro-kernels in isolation (operands in L1, d = 64 per pass): 4 rows ×
//   8 keys (8 accumulators, 2 key loads and 4 row broadcasts per step), and 6 rows × 8 keys, the
//   shape with 12 accumulators (see the README for what V8 makes of it).
//
// Every loop is compiled by V8's optimizing tier only (--no-liftoff), in a child process; Node 20
// needs --experimental-wasm-relaxed-simd for the fused loops (passed only where Node needs it).
//
//   node bench/peak.mjs     (npm run bench runs it too)
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { relaxedSimdFlags } from "../scripts/node-flags.mjs";
import wabtInit from "wabt";

const FLOPS_PER_LOOP = 4e9;
const DEPTH = 64;

// `chains` accumulators updated once per iteration; `addend`: a ← x·y + a, else a ← a·x + y.
function chainModule(op, chains, addend) {
  const acc = Array.from({ length: chains }, (_, i) => `$a${i}`);
  const step = (a) => {
    const [m1, m2, c] = addend ? ["$x", "$y", a] : [a, "$x", "$y"];
    const [g1, g2, g3] = [m1, m2, c].map((v) => `(local.get ${v})`);
    return op === "fused"
      ? `(local.set ${a} (f32x4.relaxed_madd ${g1} ${g2} ${g3}))`
      : `(local.set ${a} (f32x4.add (f32x4.mul ${g1} ${g2}) ${g3}))`;
  };
  const sum = acc.slice(1).reduce((s, a) => `(f32x4.add ${s} (local.get ${a}))`, "(local.get $a0)");
  return {
    flopsPerRun: chains * 8,
    wat: `(module (memory 1) (func (export "run") (param $n i32) (result f32)
    (local $x v128) (local $y v128) ${acc.map((a) => `(local ${a} v128)`).join(" ")}
    (local.set $x (f32x4.splat (f32.const 0.999999)))
    (local.set $y (f32x4.splat (f32.const 0.000001)))
    (loop $l ${acc.map(step).join(" ")}
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (local.get $n)))
    (f32x4.extract_lane 0 ${sum})))`,
  };
}

// The micro-kernel loop: `rows` broadcast rows × 8 keys, fused, over DEPTH steps per run.
function tileModule(rows) {
  const acc = [];
  for (let r = 0; r < rows; r++) acc.push(`$a${r}lo`, `$a${r}hi`);
  let body = "(local.set $klo (v128.load (local.get $kp)))";
  body += "(local.set $khi (v128.load offset=16 (local.get $kp)))";
  for (let r = 0; r < rows; r++) {
    body += `(local.set $b (v128.load32_splat offset=${r * 4} (local.get $qp)))`;
    for (const half of ["lo", "hi"]) {
      const a = `$a${r}${half}`;
      body += `(local.set ${a} (f32x4.relaxed_madd (local.get $b) (local.get $k${half}) (local.get ${a})))`;
    }
  }
  const sum = acc
    .slice(1)
    .reduce((s, a) => `(f32x4.add ${s} (local.get ${a}))`, "(local.get $a0lo)");
  return {
    flopsPerRun: DEPTH * rows * 8 * 2,
    wat: `(module (memory 1) (func (export "run") (param $n i32) (result f32)
    (local $qp i32) (local $kp i32) (local $b v128) (local $klo v128) (local $khi v128)
    ${acc.map((a) => `(local ${a} v128)`).join(" ")}
    (loop $runs
      (local.set $qp (i32.const 0))
      (local.set $kp (i32.const 8192))
      (loop $d ${body}
        (local.set $kp (i32.add (local.get $kp) (i32.const 32)))
        (local.set $qp (i32.add (local.get $qp) (i32.const ${rows * 4})))
        (br_if $d (i32.lt_u (local.get $qp) (i32.const ${DEPTH * rows * 4}))))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $runs (local.get $n)))
    (f32x4.extract_lane 0 ${sum})))`,
  };
}

async function gflops({ wat, flopsPerRun }) {
  const wabt = await wabtInit();
  const wasm = wabt
    .parseWat("peak.wat", wat, { simd: true, relaxed_simd: true })
    .toBinary({}).buffer;
  const { instance } = await WebAssembly.instantiate(wasm);
  const runs = Math.round(FLOPS_PER_LOOP / flopsPerRun);
  instance.exports.run(Math.round(runs / 20));
  const times = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    instance.exports.run(runs);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return (runs * flopsPerRun) / times[2] / 1e6;
}

const loops = [
  ["f32x4.mul + f32x4.add, a ← a·x + y, 12 accumulators", () => chainModule("separate", 12, false)],
  ["f32x4.relaxed_madd, a ← a·x + y, 12 accumulators", () => chainModule("fused", 12, false)],
  ["f32x4.relaxed_madd, a ← x·y + a, 8 accumulators", () => chainModule("fused", 8, true)],
  ["f32x4.relaxed_madd, a ← x·y + a, 12 accumulators", () => chainModule("fused", 12, true)],
  ["attention micro-kernel loop, 4 rows × 8 keys (8 accumulators)", () => tileModule(4)],
  ["the same loop, 6 rows × 8 keys (12 accumulators)", () => tileModule(6)],
];

if (process.argv[2] === "--child") {
  const results = [];
  for (const [, make] of loops) results.push(await gflops(make()));
  console.log(JSON.stringify(results));
} else {
  const results = JSON.parse(
    execFileSync(
      process.execPath,
      [...relaxedSimdFlags(), "--no-liftoff", fileURLToPath(import.meta.url), "--child"],
      { encoding: "utf8" },
    ),
  );
  console.log(`# f32x4 peak of one core, Node ${process.versions.node}\n`);
  console.log("| loop | GFLOP/s |");
  console.log("|---|---|");
  loops.forEach(([name], i) => console.log(`| ${name} | ${results[i].toFixed(1)} |`));
}
