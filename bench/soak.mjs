// The long adversarial soak: the harness of test/adversarial.test.ts (test/adversarial/*.mjs) on
// the built package (dist/), with many more calls. Run `npm run build` first, then
//   node bench/soak.mjs [--calls N] [--seed S] [--threads T] [--build simd128|relaxed|scalar]
//                       [--timeout MS] [--only TEXT] [--replay I]
// Call i of a seed is always the same call (generator i mod their number, its own derived seed).
// A call that leaves the module unusable ends the child process running the calls; a new child
// goes on from the next call, so one broken module does not hide the findings after it.
// Prints a summary and the findings (grouped by class and op, each with the call that gave it and
// its index: `--seed S --replay I` runs that call alone) and exits 1 on any finding.

import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { formatFindings, runAdversarial } from "../test/adversarial/harness.mjs";

const argv = process.argv.slice(2);
/** @param {string} name @param {string | undefined} fallback */
function arg(name, fallback) {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : fallback;
}
const seed = Number(arg("seed", "1"));
const calls = Number(arg("calls", "5000"));
const threads = Number(arg("threads", "1"));
const build = arg("build", undefined);
const timeoutMs = Number(arg("timeout", "5000"));
const only = arg("only", undefined);
const replay = arg("replay", undefined);
const filter = only
  ? (/** @type {{ op: string, name: string }} */ g) => `${g.op}/${g.name}`.includes(only)
  : undefined;

async function child() {
  const api = await import("../dist/index.js");
  await api.init({ threads, ...(build ? { simd: build } : {}) });
  const from = replay !== undefined ? Number(replay) : Number(arg("from", "0"));
  const res = await runAdversarial(api, {
    seed,
    calls: replay !== undefined ? from + 1 : calls,
    from,
    timeoutMs,
    filter,
  });
  if (replay !== undefined) {
    console.log(formatFindings(res.findings));
    process.exit(res.findings.length > 0 ? 1 : 0);
  }
  process.stdout.write(`\n@@RESULT ${JSON.stringify(res)}\n`);
  process.exit(0);
}

function parent() {
  const self = fileURLToPath(import.meta.url);
  /** @type {Map<string, any>} */
  const found = new Map();
  /** @type {Record<string, number>} */
  const perOp = {};
  let from = 0;
  let done = 0;
  let children = 0;
  const t0 = Date.now();
  while (from < calls) {
    children++;
    const run = spawnSync(process.execPath, [self, ...argv, "--child", "--from", String(from)], {
      encoding: "utf8",
      maxBuffer: 256 << 20,
      timeout: Math.max(600_000, calls * 2000),
    });
    const line = run.stdout.split("\n").find((l) => l.startsWith("@@RESULT "));
    if (!line) {
      // The child died (a crash of the runtime itself): that call is a finding too.
      const key = `?|process-crashed|call ${from}`;
      found.set(key, {
        op: "?",
        cls: "process-crashed",
        name: `call ${from}`,
        seed,
        index: from,
        count: 1,
        repro: `node bench/soak.mjs --seed ${seed} --replay ${from}`,
        detail: `exit ${run.status} ${run.signal ?? ""}: ${(run.stderr ?? "").slice(-400)}`,
      });
      from++;
      continue;
    }
    const res = JSON.parse(line.slice("@@RESULT ".length));
    for (const f of res.findings) {
      const key = `${f.op}|${f.cls}|${f.name}`;
      const had = found.get(key);
      if (had) had.count += f.count;
      else found.set(key, f);
    }
    for (const [op, n] of Object.entries(res.perOp)) perOp[op] = (perOp[op] ?? 0) + Number(n);
    done += res.calls;
    from = res.stoppedAt !== undefined ? res.stoppedAt + 1 : calls;
    process.stderr.write(`soak: ${from}/${calls} calls, ${found.size} distinct findings\n`);
  }
  const findings = [...found.values()];
  console.log(
    `soak: seed ${seed}, ${done} calls in ${((Date.now() - t0) / 1000).toFixed(1)} s on ` +
      `${threads} thread(s)${build ? ` (${build})` : ""}, ${children} process(es)`,
  );
  console.log(
    "calls per op: " +
      Object.entries(perOp)
        .sort()
        .map(([op, n]) => `${op} ${n}`)
        .join(", "),
  );
  console.log(formatFindings(findings));
  process.exit(findings.length > 0 ? 1 : 0);
}

if (argv.includes("--child") || replay !== undefined)
  await child().catch((err) => {
    console.error(err);
    process.exit(2);
  });
else parent();
