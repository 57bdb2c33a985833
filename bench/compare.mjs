// A/B benchmark of this checkout against an earlier commit: both builds are loaded into one process
// and their public calls are timed in alternation (A B, B A, A B, …), so that the drift of a small,
// noisy machine (frequency, other processes) falls on both sides alike. Used to show that a
// refactoring costs no speed.
//
//   npm run bench:compare -- <commit>             e.g. npm run bench:compare -- 1e5916a
//   npm run bench:compare -- <commit> --rounds 15 more alternations (default 9)
//
// The earlier commit is exported with `git archive` into .cache/compare/<commit> and built there
// with this checkout's node_modules. Each round times every case for at least 150 ms per side and
// keeps the median call; the table shows the median over rounds and the ratio old / new (above 1:
// this checkout is faster).
import os from "node:os";
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { randomArray, machine, mhaWeights } from "./timing.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const rev = args.find((a) => !a.startsWith("--"));
const roundsAt = args.indexOf("--rounds");
const ROUNDS = roundsAt >= 0 ? Number(args[roundsAt + 1]) : 9;
if (!rev || !(ROUNDS >= 1)) {
  console.error("usage: node bench/compare.mjs <commit> [--rounds N]");
  process.exit(2);
}

/** The earlier commit's dist/, built once into .cache/compare/<full hash>. */
function buildOf(commit) {
  const hash = execFileSync("git", ["rev-parse", "--verify", `${commit}^{commit}`], {
    cwd: root,
    encoding: "utf8",
  }).trim();
  const dir = path.join(root, ".cache", "compare", hash);
  const entry = path.join(dir, "dist", "index.js");
  if (fs.existsSync(entry)) return { hash, entry };
  fs.mkdirSync(dir, { recursive: true });
  const archive = execFileSync("git", ["archive", hash], { cwd: root, maxBuffer: 1 << 30 });
  execFileSync("tar", ["-x", "-C", dir], { input: archive });
  fs.symlinkSync(path.join(root, "node_modules"), path.join(dir, "node_modules"), "dir");
  execFileSync("npm", ["run", "build"], { cwd: dir, stdio: "inherit" });
  return { hash, entry };
}

const tensor = (shape, seed) => ({
  data: randomArray(
    shape.reduce((a, b) => a * b, 1),
    seed,
  ),
  shape,
});

/** Each case makes, for one build, the call to time (inputs created once, outside the timing). */
const CASES = {
  "SDPA B1 H12 N512 D64": (m) => {
    const [q, k, v] = [1, 2, 3].map((s) => tensor([1, 12, 512, 64], s));
    return () => m.scaledDotProductAttention(q, k, v);
  },
  "SDPA B1 H12 N512 D64 causal": (m) => {
    const [q, k, v] = [1, 2, 3].map((s) => tensor([1, 12, 512, 64], s));
    return () => m.scaledDotProductAttention(q, k, v, { causal: true });
  },
  "SDPA B1 H12 N2048 D64": (m) => {
    const [q, k, v] = [1, 2, 3].map((s) => tensor([1, 12, 2048, 64], s));
    return () => m.scaledDotProductAttention(q, k, v);
  },
  "decode H32 D128, 4096 keys": (m) => {
    const q = tensor([1, 32, 1, 128], 1);
    const [k, v] = [2, 3].map((s) => tensor([1, 32, 4096, 128], s));
    return () => m.scaledDotProductAttention(q, k, v);
  },
  "decode H8 D64, 128 keys": (m) => {
    const q = tensor([1, 8, 1, 64], 1);
    const [k, v] = [2, 3].map((s) => tensor([1, 8, 128, 64], s));
    return () => m.scaledDotProductAttention(q, k, v);
  },
  "MHA E768 H12 N128": (m) => {
    const mha = new m.MultiHeadAttention({ embedDim: 768, numHeads: 12, weights: mhaWeights(768) });
    const x = tensor([1, 128, 768], 4);
    return () => mha.forward(x);
  },
  "MHA E768 H12 N512": (m) => {
    const mha = new m.MultiHeadAttention({ embedDim: 768, numHeads: 12, weights: mhaWeights(768) });
    const x = tensor([1, 512, 768], 4);
    return () => mha.forward(x);
  },
  "backward B1 H12 N512 D64": (m) => {
    const [q, k, v, g] = [1, 2, 3, 5].map((s) => tensor([1, 12, 512, 64], s));
    const { output, lse } = m.scaledDotProductAttention(q, k, v, { returnLse: true });
    return () => m.scaledDotProductAttentionBackward(q, k, v, output, g, { lse });
  },
};

/** Median of the calls made in `ms` milliseconds (at least 3). */
function medianCall(fn, ms) {
  const times = [];
  const until = performance.now() + ms;
  while (performance.now() < until || times.length < 3) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  return median(times);
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}

const old = buildOf(rev);
const sides = [
  ["old", await import(pathToFileURL(old.entry).href)],
  ["new", await import(pathToFileURL(path.join(root, "dist", "index.js")).href)],
];
for (const [, m] of sides) await m.init();

const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root, encoding: "utf8" });
console.log(
  `# A/B: ${old.hash.slice(0, 7)} (old) against this checkout (new, HEAD ${head.trim()})`,
);
console.log(`${machine(os)}; one thread, ${ROUNDS} alternating rounds\n`);
console.log("| case | old ms | new ms | old / new |");
console.log("|---|---|---|---|");
for (const [name, make] of Object.entries(CASES)) {
  const calls = sides.map(([, m]) => make(m));
  for (const call of calls) for (let i = 0; i < 5; i++) call(); // let V8 tier the kernels up
  const times = calls.map(() => []);
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 ? [1, 0] : [0, 1];
    for (const i of order) times[i].push(medianCall(calls[i], 150));
  }
  const [a, b] = times.map(median);
  console.log(`| ${name} | ${a.toFixed(3)} | ${b.toFixed(3)} | ${(a / b).toFixed(3)} |`);
}
