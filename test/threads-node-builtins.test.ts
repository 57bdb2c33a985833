// Threads on a Node without process.getBuiltinModule (18; 20 before 20.16; 22 before 22.3): init()
// imports node:worker_threads itself, so the pool starts instead of warning "this runtime has no
// Worker". The older Node is simulated by hiding process.getBuiltinModule during init(). Node-only:
// it needs an uninitialised module.
import { afterAll, describe, expect, it, vi } from "vitest";
import { init, runtimeInfo, scaledDotProductAttentionAsync } from "../src/index";
import { expectClose } from "./helpers/conformance";
import { randomTensor, rng } from "./helpers/random";
import { referenceSdpa } from "./reference";

type WithBuiltins = { getBuiltinModule?: unknown };
const proc = process as unknown as WithBuiltins;
const original = Object.getOwnPropertyDescriptor(proc, "getBuiltinModule");

afterAll(() => {
  if (original) Object.defineProperty(proc, "getBuiltinModule", original);
});

describe("threads where process.getBuiltinModule is missing", () => {
  it("init({ threads: 2 }) starts a working pool, with no warning", async () => {
    Object.defineProperty(proc, "getBuiltinModule", {
      value: undefined,
      configurable: true,
      writable: true,
    });
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    try {
      expect(proc.getBuiltinModule).toBeUndefined();
      await init({ threads: 2 });
      expect(warn).not.toHaveBeenCalled();
    } finally {
      warn.mockRestore();
      if (original) Object.defineProperty(proc, "getBuiltinModule", original);
    }
    expect(runtimeInfo().threads).toBe(2);

    // The workers compute: enough heads that the pool splits them.
    const r = rng(5);
    const q = randomTensor(r, [2, 4, 24, 16]);
    const k = randomTensor(r, [2, 4, 40, 16]);
    const v = randomTensor(r, [2, 4, 40, 16]);
    const got = await scaledDotProductAttentionAsync(q, k, v, { causal: true });
    const want = referenceSdpa(q, k, v, { causal: true }).output;
    expectClose(got.output, want, { atol: 2e-5, rtol: 2e-4 }, "output");
  });
});
