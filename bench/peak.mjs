// The f32x4 arithmetic peak of one core, which the kernels' GFLOP/s are read against: a loop of 12
// independent accumulators (enough to hide the latency, few enough that V8 keeps them and the two
// operands in its 16 xmm registers), a = a·x + y, as a multiply and an add (SIMD128) and as
// f32x4.relaxed_madd (fused). Node 20 needs --experimental-wasm-relaxed-simd for the second; this
// script re-runs itself with the flag.
//
//   node bench/peak.mjs     (npm run bench runs it too)
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import wabtInit from "wabt";

const ACCUMULATORS = 12;
const ITERATIONS = 5e7;

function loopModule(fused) {
  const acc = Array.from({ length: ACCUMULATORS }, (_, i) => `$a${i}`);
  const step = (a) =>
    fused
      ? `(local.set ${a} (f32x4.relaxed_madd (local.get ${a}) (local.get $x) (local.get $y)))`
      : `(local.set ${a} (f32x4.add (f32x4.mul (local.get ${a}) (local.get $x)) (local.get $y)))`;
  const sum = acc.slice(1).reduce((s, a) => `(f32x4.add ${s} (local.get ${a}))`, "(local.get $a0)");
  return `(module (func (export "run") (param $n i32) (result f32)
    (local $x v128) (local $y v128) ${acc.map((a) => `(local ${a} v128)`).join(" ")}
    (local.set $x (f32x4.splat (f32.const 0.999999)))
    (local.set $y (f32x4.splat (f32.const 0.000001)))
    (loop $l ${acc.map(step).join(" ")}
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (local.get $n)))
    (f32x4.extract_lane 0 ${sum})))`;
}

async function gflops(fused) {
  const wabt = await wabtInit();
  const wasm = wabt
    .parseWat("peak.wat", loopModule(fused), { simd: true, relaxed_simd: true })
    .toBinary({}).buffer;
  const { instance } = await WebAssembly.instantiate(wasm);
  instance.exports.run(1e6);
  const times = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    instance.exports.run(ITERATIONS);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return (ITERATIONS * ACCUMULATORS * 8) / times[2] / 1e6;
}

if (process.argv[2] === "--fused") {
  console.log((await gflops(true)).toFixed(1));
} else {
  const separate = await gflops(false);
  const fused = execFileSync(
    process.execPath,
    ["--experimental-wasm-relaxed-simd", fileURLToPath(import.meta.url), "--fused"],
    { encoding: "utf8" },
  ).trim();
  console.log(`# f32x4 peak of one core, Node ${process.versions.node}\n`);
  console.log("| loop | GFLOP/s |");
  console.log("|---|---|");
  console.log(`| f32x4.mul + f32x4.add, ${ACCUMULATORS} accumulators | ${separate.toFixed(1)} |`);
  console.log(`| f32x4.relaxed_madd, ${ACCUMULATORS} accumulators | ${fused} |`);
}
