// Threads on a Node without process.getBuiltinModule (18; 20 before 20.16; 22 before 22.3): init()
// imports node:worker_threads itself, so the pool starts instead of warning "this runtime has no
// Worker". A real Node process runs the built package (`npm run build` first; `npm test` does) with
// process.getBuiltinModule removed before anything loads, as on those Nodes. Node-only.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..");
const dir = join(root, "build", "threads-node-builtins");

// Prints what init() did, then exits (the pool's workers are not what this checks).
const SCRIPT = (entry: string): string => `
delete process.getBuiltinModule;
const warnings = [];
console.warn = (...args) => warnings.push(args.join(" "));
const { init, runtimeInfo, scaledDotProductAttention, scaledDotProductAttentionAsync } =
  await import(${JSON.stringify(entry)});
await init({ threads: 2 });
const n = 2 * 4 * 48 * 16;
const tensor = (s) => ({
  data: Float32Array.from({ length: n }, (_, i) => Math.sin(i * s)),
  shape: [2, 4, 48, 16],
});
const [q, k, v] = [tensor(0.1), tensor(0.2), tensor(0.3)];
const pooled = await scaledDotProductAttentionAsync(q, k, v, { causal: true });
const alone = scaledDotProductAttention(q, k, v, { causal: true });
let diff = 0;
for (let i = 0; i < n; i++) diff = Math.max(diff, Math.abs(pooled.output.data[i] - alone.output.data[i]));
console.log(JSON.stringify({
  getBuiltinModule: typeof process.getBuiltinModule,
  threads: runtimeInfo().threads,
  warnings,
  diff,
}));
process.exit(0);
`;

// initSync() cannot wait for an import: it computes on one thread and says how to get threads.
const SYNC_SCRIPT = (entry: string): string => `
delete process.getBuiltinModule;
const warnings = [];
console.warn = (...args) => warnings.push(args.join(" "));
const { initSync, runtimeInfo } = await import(${JSON.stringify(entry)});
initSync({ threads: 2 });
console.log(JSON.stringify({ threads: runtimeInfo().threads, warnings }));
process.exit(0);
`;

/** Runs `source` (given the built entry's URL) in a fresh Node process; its last line of output. */
function runNode(name: string, source: (entry: string) => string): string {
  const entry = join(root, "dist", "index.js");
  if (!existsSync(entry)) throw new Error("dist/ is missing: run `npm run build` first");
  mkdirSync(dir, { recursive: true });
  const script = join(dir, name);
  writeFileSync(script, source(pathToFileURL(entry).href));
  const out = execFileSync(process.execPath, [script], { encoding: "utf8", timeout: 60_000 });
  return out.trim().split("\n").at(-1) ?? "{}";
}

describe("threads where process.getBuiltinModule is missing", () => {
  it("initSync({ threads: 2 }) computes on one thread and points to init()", () => {
    const result = JSON.parse(runNode("threads-sync.mjs", SYNC_SCRIPT)) as {
      threads: number;
      warnings: string[];
    };
    expect(result.threads).toBe(1);
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]).toContain("use await init({ threads })");
  }, 90_000);

  it("init({ threads: 2 }) starts a working pool, with no warning", () => {
    const out = runNode("threads.mjs", SCRIPT);
    const result = JSON.parse(out) as {
      getBuiltinModule: string;
      threads: number;
      warnings: string[];
      diff: number;
    };
    expect(result.getBuiltinModule).toBe("undefined");
    expect(result.warnings).toEqual([]);
    expect(result.threads).toBe(2);
    expect(result.diff).toBeLessThan(1e-5);
  }, 90_000);
});
