// The published declarations (dist/types, `npm run build` first; `npm test` does) compile with
// zero errors in the three kinds of TypeScript project that consume the package: Node-only (lib
// es2022 and @types/node, no lib.dom, nodenext), DOM-only (lib es2022 + dom, no @types/node) and a
// bundler project (moduleResolution "bundler"), all strict with skipLibCheck off, so tsc checks
// every .d.ts the package ships. Each project links the package into its node_modules, as an
// install does, and type-checks a small consumer file. Node-only: it runs tsc.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..");
const consumers = join(root, "build", "types-consumers");
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");

const STRICT = { strict: true, noEmit: true, skipLibCheck: false, target: "es2022" };

// What every consumer writes: the public API, used as the README shows it. A `@ts-expect-error`
// line fails the check when its line compiles, so they also prove what the types refuse.
const COMMON = `
import {
  init,
  initSync,
  scaledDotProductAttention,
  MultiHeadAttention,
  AttentionError,
  allocTensor,
  type Tensor,
  type TensorInput,
  type KVCache,
  type WasmSource,
  type InitOptions,
} from "wasm-attention";

const options: InitOptions = { threads: 2, simd: "auto" };
await init(options);
await init(undefined, options);
const bytes = new Uint8Array(8);
const source: WasmSource = bytes;
initSync(bytes.buffer);
const q: Tensor = { data: new Float32Array(4), shape: [2, 2] };
// ONNX Runtime's form: { data, dims }.
const fromOnnx: TensorInput = { data: new Float32Array(4), dims: [2, 2] };
scaledDotProductAttention(fromOnnx, fromOnnx, fromOnnx);
const { output, lse } = scaledDotProductAttention(q, q, q, { causal: true, window: [Infinity, 0] });
const sizes: number[] = [output.data.length, lse?.shape[0] ?? 0];
// @ts-expect-error: a misspelled option is a type error too
scaledDotProductAttention(q, q, q, { casual: true });
const mha = new MultiHeadAttention({ embedDim: 4, numHeads: 2 });
const cache: KVCache = mha.createCache({ maxLength: 8 });
mha.forward(q, undefined, undefined, { cache, needWeights: true });
sizes.push(cache.length, cache.maxLength, cache.batch);
cache.reset();
cache.dispose();
// @ts-expect-error: the cache's addresses are internal
sizes.push(cache.keysPtr);
// @ts-expect-error: appending is internal
cache.appendTargets();
// @ts-expect-error: committing is internal
cache.commit(1);
const t = allocTensor([2, 2]);
t.free();
const error: AttentionError | undefined = undefined;
export { source, sizes, error };
`;

interface Consumer {
  name: string;
  compilerOptions: Record<string, unknown>;
  /** Lines that only type-check where the environment declares what they use. */
  extra: string;
  /** Whether @types/node may be part of the program. */
  nodeTypes: boolean;
}

const CONSUMERS: Consumer[] = [
  {
    name: "node-only",
    compilerOptions: {
      ...STRICT,
      lib: ["es2022"],
      types: ["node"],
      module: "nodenext",
      moduleResolution: "nodenext",
    },
    extra: `
import { readFileSync } from "node:fs";
initSync(readFileSync("attention.wasm"));
await init(new URL("file:///attention.wasm"));
`,
    nodeTypes: true,
  },
  {
    name: "dom-only",
    compilerOptions: {
      ...STRICT,
      lib: ["es2022", "dom"],
      types: [],
      module: "node16",
      moduleResolution: "node16",
    },
    extra: `
await init(fetch("attention.wasm"));
await init(await fetch("attention.wasm"));
await init(new URL("attention.wasm", import.meta.url));
initSync(new WebAssembly.Module(bytes));
`,
    nodeTypes: false,
  },
  {
    name: "bundler",
    compilerOptions: {
      ...STRICT,
      lib: ["es2022", "dom"],
      types: [],
      module: "esnext",
      moduleResolution: "bundler",
    },
    extra: `
await init(await WebAssembly.compile(bytes));
await init("/attention.wasm");
`,
    nodeTypes: false,
  },
];

function writeConsumer(c: Consumer): string {
  const dir = join(consumers, c.name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, "node_modules"), { recursive: true });
  // The package as an install links it: by name, through its package.json `exports`.
  symlinkSync(root, join(dir, "node_modules", "wasm-attention"), "dir");
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: c.name, type: "module" }));
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({ compilerOptions: c.compilerOptions, files: ["main.ts"] }, null, 2),
  );
  writeFileSync(join(dir, "main.ts"), COMMON + c.extra);
  return dir;
}

/** tsc's output and whether it succeeded. */
function typeCheck(dir: string): { ok: boolean; output: string } {
  try {
    const output = execFileSync(process.execPath, [tsc, "-p", dir, "--listFiles"], {
      cwd: dir,
      encoding: "utf8",
    });
    return { ok: true, output };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return { ok: false, output: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}

beforeAll(() => {
  if (!existsSync(join(root, "dist", "types", "src", "index.d.ts"))) {
    throw new Error(
      "dist/types is missing: run `npm run build` (or `node scripts/build.mjs`) first",
    );
  }
});

describe("the published declarations in consumer projects", () => {
  it.each(CONSUMERS)(
    "$name: tsc --noEmit with skipLibCheck off reports no error",
    (c) => {
      const { ok, output } = typeCheck(writeConsumer(c));
      const errors = output.split("\n").filter((line) => line.includes("error TS"));
      expect(errors, output).toEqual([]);
      expect(ok, output).toBe(true);
      // The package's own declarations were part of the check, and @types/node only where wanted.
      expect(output).toContain(join("dist", "types", "src", "index.d.ts"));
      expect(output.includes(join("@types", "node")), "@types/node in the program").toBe(
        c.nodeTypes,
      );
    },
    120_000,
  );
});
