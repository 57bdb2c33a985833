// A Node process that uses threads exits on its own after its last op: each case runs a small
// script against the built package (dist/index.js; `npm test` builds it first) in a real Node
// process, the one running this suite (CI runs the suite on every supported Node), and waits for it
// to exit within a bound. A pool whose workers stay referenced would keep it alive forever. The
// scripts run with --input-type=module, under which Node evaluates the pool's worker source as an ES
// module too. Deno and Bun (their npm packages ship the binaries) run threads through their
// node:worker_threads and must exit as well.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const DIST = fileURLToPath(new URL("../dist/index.js", import.meta.url));
const bin = (name: string): string =>
  fileURLToPath(new URL(`../node_modules/.bin/${name}`, import.meta.url));
let scratch = "";
// Far above the second or so a script takes, even on a loaded machine; a hang never ends.
const BOUND_MS = 25_000;

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

// The command that runs an ES module's source: Node's own, unless a runtime is named (then the
// source goes to a file in the scratch directory).
type Runner = (source: string) => [string, string[]];
const node: Runner = (source) => [process.execPath, ["--input-type=module", "-e", source]];
const inFile =
  (command: string, ...args: string[]): Runner =>
  (source) => {
    const file = join(scratch, `script-${Math.random().toString(36).slice(2)}.mjs`);
    writeFileSync(file, source);
    return [command, [...args, file]];
  };

// Runs `body` as an ES module after a prelude that imports the package, and resolves when the
// process exits; rejects when it is still running after BOUND_MS (and kills it).
function runScript(body: string, runner: Runner = node): Promise<Exit> {
  const prelude = `
import * as wa from ${JSON.stringify(pathToFileURL(DIST).href)};
import { Worker } from "node:worker_threads";
// Deterministic inputs: a tensor of the given shape filled with sin(i * seed).
const tensor = (shape, seed) => ({
  data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * seed)),
  shape,
});
const q = tensor([1, 4, 200, 32], 0.37);
const k = tensor([1, 4, 200, 32], 0.11);
const v = tensor([1, 4, 200, 32], 0.23);
const print = (x) => console.log(JSON.stringify(x));
`;
  return new Promise((resolve, reject) => {
    const [command, args] = runner(prelude + body);
    const child = spawn(command, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, DENO_NO_UPDATE_CHECK: "1", DENO_DIR: join(scratch, ".deno") },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(
          `the process did not exit within ${BOUND_MS / 1000} s\nstdout: ${stdout}\nstderr: ${stderr}`,
        ),
      );
    }, BOUND_MS);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// The JSON lines a script printed.
function printed(exit: Exit): unknown[] {
  return exit.stdout
    .trim()
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as unknown);
}

// Sync ops, then …Async twins on the pool; prints whether both agree.
const ASYNC_TWINS = `
await wa.init({ threads: 2 });
const sync = wa.scaledDotProductAttention(q, k, v).output.data;
const [a, b] = await Promise.all([
  wa.scaledDotProductAttentionAsync(q, k, v),
  wa.linearAsync(tensor([300, 64], 0.5), tensor([64, 64], 0.7).data),
]);
const mha = new wa.MultiHeadAttention({ embedDim: 64, numHeads: 4, seed: 1 });
const x = tensor([1, 150, 64], 0.3);
const c = await mha.forwardAsync(x, x, x);
mha.dispose();
print({
  threads: wa.runtimeInfo().threads,
  same: a.output.data.every((value, i) => value === sync[i]),
  finite: [b.data, c.output.data].every((t) => t.every(Number.isFinite)),
});
`;

beforeAll(() => {
  if (!existsSync(DIST)) throw new Error(`${DIST} is missing: run node scripts/build.mjs first`);
  scratch = mkdtempSync(join(tmpdir(), "wasm-attention-exit-"));
});

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe(`a Node ${process.version} process using threads exits on its own`, () => {
  it("after synchronous ops (init(undefined, { threads: 2 }))", async () => {
    const exit = await runScript(`
await wa.init(undefined, { threads: 2 });
const out = wa.scaledDotProductAttention(q, k, v, { causal: true }).output.data;
const y = wa.linear(tensor([300, 64], 0.5), tensor([64, 64], 0.7).data);
const mha = new wa.MultiHeadAttention({ embedDim: 64, numHeads: 4, seed: 1 });
const x = tensor([1, 150, 64], 0.3);
const z = mha.forward(x, x, x).output.data;
mha.dispose();
print({ threads: wa.runtimeInfo().threads, finite: [out, y.data, z].every((a) => a.every(Number.isFinite)) });
`);
    expect(exit).toMatchObject({ code: 0, stderr: "" });
    expect(printed(exit)).toEqual([{ threads: 2, finite: true }]);
  });

  it("after awaited …Async twins (init({ threads: 2 }))", async () => {
    const exit = await runScript(ASYNC_TWINS);
    expect(exit).toMatchObject({ code: 0, stderr: "" });
    expect(printed(exit)).toEqual([{ threads: 2, same: true, finite: true }]);
  });

  it("only once a pending …Async call has settled", async () => {
    // The script's last statement starts a call and does not await it: the process must stay
    // until the call settles (printing its result), then exit.
    const exit = await runScript(`
await wa.init({ threads: 2 });
print({ threads: wa.runtimeInfo().threads });
wa.scaledDotProductAttentionAsync(q, k, v).then((r) => print({ settled: r.output.data.length }));
`);
    expect(exit).toMatchObject({ code: 0, stderr: "" });
    expect(printed(exit)).toEqual([{ threads: 2 }, { settled: 4 * 200 * 32 }]);
  });

  it("after ops that failed, synchronous and asynchronous", async () => {
    const exit = await runScript(`
await wa.init({ threads: 2 });
const bad = tensor([1, 4, 200, 31], 0.1);
const codes = [];
try { wa.scaledDotProductAttention(q, bad, v); } catch (e) { codes.push(e.code); }
await wa.scaledDotProductAttentionAsync(q, bad, v).catch((e) => codes.push(e.code));
await wa.linearAsync(tensor([300, 64], 0.5), tensor([64, 63], 0.7)).catch((e) => codes.push(e.code));
print({ threads: wa.runtimeInfo().threads, codes });
`);
    expect(exit).toMatchObject({ code: 0, stderr: "" });
    expect(printed(exit)).toEqual([
      { threads: 2, codes: ["SHAPE_MISMATCH", "SHAPE_MISMATCH", "SHAPE_MISMATCH"] },
    ]);
  });

  it("after a worker error while an …Async call was pending (the call rejects)", async () => {
    // The worker is handed a broken init message instead of the call's first task: it throws,
    // uncaught, and dies with an error event, as a worker that crashes.
    const exit = await runScript(`
const post = Worker.prototype.postMessage;
let broken = false;
Worker.prototype.postMessage = function (message) {
  if (!broken && message.type === "run" && message.id !== undefined) {
    broken = true;
    return post.call(this, { type: "init", module: null, memory: null, control: null });
  }
  return post.call(this, message);
};
await wa.init({ threads: 2 });
const want = wa.scaledDotProductAttention(q, k, v).output.data;
const error = await wa.scaledDotProductAttentionAsync(q, k, v).then(() => null, (e) => e.code);
const sync = wa.scaledDotProductAttention(q, k, v).output.data;
const async = (await wa.scaledDotProductAttentionAsync(q, k, v)).output.data;
print({
  error,
  threads: wa.runtimeInfo().threads,
  same: [sync, async].every((a) => a.every((value, i) => value === want[i])),
});
`);
    expect(exit.code).toBe(0);
    expect(exit.stderr).toMatch(/a worker failed .*computing on 1 thread/);
    expect(printed(exit)).toEqual([{ error: "WORKER_FAILED", threads: 1, same: true }]);
  });

  it("after a worker exits unasked (killed from outside)", async () => {
    const exit = await runScript(`
const post = Worker.prototype.postMessage;
const workers = new Set();
Worker.prototype.postMessage = function (message) {
  workers.add(this);
  return post.call(this, message);
};
await wa.init({ threads: 2 });
const want = wa.scaledDotProductAttention(q, k, v).output.data;
const [worker] = workers;
// The pool's "exit" listener, added first, runs before terminate()'s promise settles.
await worker.terminate();
const async = (await wa.scaledDotProductAttentionAsync(q, k, v)).output.data;
const sync = wa.scaledDotProductAttention(q, k, v).output.data;
print({
  workers: workers.size,
  threads: wa.runtimeInfo().threads,
  same: [sync, async].every((a) => a.every((value, i) => value === want[i])),
});
`);
    expect(exit.code).toBe(0);
    expect(exit.stderr).toMatch(/a worker failed \(a worker exited with code \d+\)/);
    expect(printed(exit)).toEqual([{ workers: 1, threads: 1, same: true }]);
  });

  it("after terminateThreads(), and after a new pool that init({ threads }) started", async () => {
    const exit = await runScript(`
const post = Worker.prototype.postMessage;
const workers = new Set();
let exits = 0;
Worker.prototype.postMessage = function (message) {
  if (!workers.has(this)) this.on("exit", () => exits++);
  workers.add(this);
  return post.call(this, message);
};
const same = (a, b) => a.length === b.length && a.every((value, i) => value === b[i]);
await wa.terminateThreads(); // before init: nothing to stop
await wa.init({ threads: 2 });
const kept = wa.allocTensor(q.shape);
kept.data.set(q.data);
const want = wa.scaledDotProductAttention(q, k, v).output.data;
// A call pending when terminateThreads() is called finishes on the workers first.
const pending = wa.scaledDotProductAttentionAsync(q, k, v);
const stopped = wa.terminateThreads();
const threadsAfter = wa.runtimeInfo().threads;
const syncAfter = wa.scaledDotProductAttention(kept, k, v).output.data;
const pendingResult = (await pending).output.data;
await stopped;
const exitsAfterStop = exits;
const asyncAfter = (await wa.scaledDotProductAttentionAsync(kept, k, v)).output.data;
await wa.init({ threads: 2 });
const restarted = wa.runtimeInfo().threads;
const syncRestarted = wa.scaledDotProductAttention(kept, k, v).output.data;
const asyncRestarted = (await wa.scaledDotProductAttentionAsync(kept, k, v)).output.data;
print({
  threadsAfter,
  exitsAfterStop,
  restarted,
  workers: workers.size,
  same: [syncAfter, pendingResult, asyncAfter, syncRestarted, asyncRestarted].every((a) => same(a, want)),
});
`);
    expect(exit).toMatchObject({ code: 0, stderr: "" });
    expect(printed(exit)).toEqual([
      { threadsAfter: 1, exitsAfterStop: 1, restarted: 2, workers: 2, same: true },
    ]);
  });
});

describe("a Deno or Bun process using threads exits on its own", () => {
  for (const [name, runner] of [
    ["Deno", inFile(bin("deno"), "run", "--allow-read", "--allow-env")],
    ["Bun", inFile(bin("bun"))],
  ] as const) {
    it(`in ${name}, with the pool's results`, async () => {
      const exit = await runScript(ASYNC_TWINS, runner);
      expect(exit).toMatchObject({ code: 0, stderr: "" });
      expect(printed(exit)).toEqual([{ threads: 2, same: true, finite: true }]);
    });
  }
});
