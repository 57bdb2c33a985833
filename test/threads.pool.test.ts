// The pool itself (only in the "node-threads" project, where init() runs two threads): it survives
// long runs, and a failure inside a worker reaches the caller and leaves the pool usable; its
// lifecycle (references that keep a process alive, failure, terminateThreads() and a new pool).
// Real processes exiting are checked in test/process-exit.test.ts.
import { beforeAll, describe, expect, it, vi } from "vitest";
import {
  AttentionError,
  allocTensor,
  init,
  initSync,
  runtimeInfo,
  scaledDotProductAttention,
  scaledDotProductAttentionAsync,
  terminateThreads,
} from "../src/index";
import { kernels } from "../src/runtime/runtime";
import { Pool } from "../src/runtime/threads";
import { randomTensor, rng } from "./helpers/random";

beforeAll(async () => {
  await init();
});

describe("the worker pool", () => {
  it("survives 100 000 calls that use the pool, and a failure inside a worker", () => {
    const pool = kernels("test").pool!;
    expect(pool.size).toBeGreaterThan(1);
    const r = rng(12);
    // Just above the size from which calls are split across threads.
    const q = randomTensor(r, [1, 2, 64, 64]);
    const want = scaledDotProductAttention(q, q, q).output.data;
    for (let i = 0; i < 100_000; i++) {
      const got = scaledDotProductAttention(q, q, q).output.data;
      if (i % 5000 === 0) expect(Array.from(got)).toEqual(Array.from(want));
    }
    // A task that throws inside a worker reaches the caller as AttentionError WORKER_FAILED...
    expect(() =>
      pool.runAll("test", [
        { fn: "heapBase", args: [] },
        { fn: "noSuchKernel", args: [] },
      ]),
    ).toThrow(expect.objectContaining({ code: "WORKER_FAILED" }));
    // ...and the pool keeps working.
    expect(Array.from(scaledDotProductAttention(q, q, q).output.data)).toEqual(Array.from(want));
  });
});

// A stand-in for a worker: records what the pool does with it; its thread stops when the test says.
class FakeWorker {
  readonly posted: unknown[] = [];
  refs = 0;
  terminated = 0;
  stop!: () => void;
  readonly stopped = new Promise<void>((resolve) => (this.stop = resolve));
  postMessage(message: unknown): void {
    this.posted.push(message);
  }
  terminate(): Promise<void> {
    this.terminated++;
    return this.stopped;
  }
  ref(): void {
    this.refs++;
  }
  unref(): void {
    this.refs--;
  }
}

function fakePool(): { pool: Pool; worker: FakeWorker; ran: string[] } {
  const worker = new FakeWorker();
  const ran: string[] = [];
  const pool = new Pool([worker], new Int32Array(new SharedArrayBuffer(12)), (task) =>
    ran.push(task.fn),
  );
  return { pool, worker, ran };
}

const settled = (p: Promise<unknown>) =>
  Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    new Promise((r) => setTimeout(() => r(false), 20)),
  ]);

describe("the pool's lifecycle", () => {
  it("references its workers exactly while an asynchronous call is pending", async () => {
    const { pool, worker } = fakePool();
    const a = pool.runAllAsync("op", [{ fn: "f", args: [] }]);
    const b = pool.runAllAsync("op", [{ fn: "g", args: [] }]);
    expect(worker.refs).toBe(1);
    pool.receive({ type: "done", id: 1, error: null });
    await a;
    expect(worker.refs).toBe(1);
    pool.receive({ type: "done", id: 2, error: "trap" });
    await expect(b).rejects.toMatchObject({ code: "WORKER_FAILED", message: "op: trap" });
    expect(worker.refs).toBe(0);
  });

  it("on a worker failure, stops the workers, then rejects the pending calls", async () => {
    const { pool, worker, ran } = fakePool();
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const call = pool.runAllAsync("op", [{ fn: "f", args: [] }]);
    pool.fail("boom");
    expect(warn).toHaveBeenCalledOnce();
    warn.mockRestore();
    expect(worker.terminated).toBe(1);
    // Not before the worker has stopped: it could still be writing to the call's buffers.
    expect(await settled(call)).toBe(false);
    worker.stop();
    await expect(call).rejects.toMatchObject({ code: "WORKER_FAILED", message: "op: boom" });
    expect(worker.refs).toBe(0);
    expect(pool.workers).toBe(0);
    // Later calls run on the calling thread.
    await pool.runAllAsync("op", [{ fn: "h", args: [] }]);
    pool.runAll("op", [
      { fn: "i", args: [] },
      { fn: "j", args: [] },
    ]);
    expect(ran).toEqual(["h", "i", "j"]);
    expect(worker.posted).toHaveLength(1);
  });

  it("settles a call with no task at once, on a live pool", async () => {
    const { pool, worker } = fakePool();
    expect(await settled(pool.runAllAsync("op", []))).toBe(true);
    expect(worker.posted).toHaveLength(0);
    expect(worker.refs).toBe(0);
  });

  it("gives a synchronous call's tasks only to workers that have started", () => {
    const { pool, worker, ran } = fakePool();
    // The worker never said it is ready (a worker that failed to start never will): its task runs
    // on the calling thread, so the call neither waits nor hangs.
    pool.runAll("op", [
      { fn: "a", args: [] },
      { fn: "b", args: [] },
    ]);
    expect(ran).toEqual(["a", "b"]);
    expect(worker.posted).toHaveLength(0);
  });

  it("treats an exit it did not ask for as a failure, and its own terminate() as none", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const killed = fakePool();
    killed.pool.exited(1);
    expect(warn).toHaveBeenCalledWith(expect.stringContaining("a worker exited with code 1"));
    expect(killed.pool.workers).toBe(0);
    const stopped = fakePool();
    const done = stopped.pool.terminate();
    stopped.pool.exited(1);
    stopped.worker.stop();
    await done;
    expect(warn).toHaveBeenCalledOnce();
    warn.mockRestore();
  });

  it("terminate() lets pending calls finish first and sends nothing new to the workers", async () => {
    const { pool, worker, ran } = fakePool();
    const call = pool.runAllAsync("op", [{ fn: "f", args: [] }]);
    const done = pool.terminate();
    expect(pool.workers).toBe(0);
    await pool.runAllAsync("op", [{ fn: "g", args: [] }]);
    expect(ran).toEqual(["g"]);
    expect(worker.terminated).toBe(0);
    pool.receive({ type: "done", id: 1, error: null });
    await call;
    await vi.waitFor(() => expect(worker.terminated).toBe(1));
    expect(await settled(done)).toBe(false);
    worker.stop();
    await done;
    expect(worker.posted).toHaveLength(1);
  });
});

describe("terminateThreads()", () => {
  it("stops the pool after its pending calls; ops keep their results; init({ threads }) starts a new pool", async () => {
    const r = rng(30);
    const [q, k, v] = [0, 1, 2].map(() => randomTensor(r, [1, 4, 200, 32]));
    const kept = allocTensor(q.shape);
    kept.data.set(q.data);
    const want = Array.from(scaledDotProductAttention(q, k, v).output.data);
    const pool = kernels("test").pool!;
    const terminate = vi.spyOn(pool, "terminate");
    const toWorkers = vi.spyOn(pool, "runAllAsync");
    const pending = scaledDotProductAttentionAsync(kept, k, v);
    // The call is on the workers when the pool is told to stop.
    expect(toWorkers).toHaveBeenCalledOnce();
    const stopped = terminateThreads();
    expect(terminate).toHaveBeenCalledOnce();
    expect(runtimeInfo().threads).toBe(1);
    expect(kernels("test").pool).toBeUndefined();
    expect(Array.from(scaledDotProductAttention(kept, k, v).output.data)).toEqual(want);
    expect(Array.from((await pending).output.data)).toEqual(want);
    await stopped;
    await terminateThreads(); // nothing left to stop
    expect(Array.from((await scaledDotProductAttentionAsync(kept, k, v)).output.data)).toEqual(
      want,
    );

    // init() without threads keeps one thread; bad options are still refused.
    await init();
    expect(runtimeInfo().threads).toBe(1);
    await expect(init({ threads: -1 })).rejects.toThrow(AttentionError);
    expect(() => initSync({ threads: 1.5 })).toThrow(AttentionError);

    await init({ threads: 2 });
    expect(runtimeInfo().threads).toBe(2);
    expect(kernels("test").pool).not.toBe(pool);
    expect(Array.from(scaledDotProductAttention(kept, k, v).output.data)).toEqual(want);
    expect(Array.from((await scaledDotProductAttentionAsync(kept, k, v)).output.data)).toEqual(
      want,
    );
    // A second init does not start another pool.
    const second = kernels("test").pool;
    await init({ threads: 3 });
    expect(kernels("test").pool).toBe(second);

    // initSync restarts too.
    await terminateThreads();
    initSync({ threads: 2 });
    expect(runtimeInfo().threads).toBe(2);
    expect(Array.from(scaledDotProductAttention(kept, k, v).output.data)).toEqual(want);
    kept.free();
  });
});
