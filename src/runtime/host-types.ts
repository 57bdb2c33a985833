// The host objects the public declarations mention (WebAssembly.Module and .Memory, BufferSource,
// Response, URL), declared so that dist/types compiles in every kind of consumer project: lib.dom
// declares all of them, but a Node-only project (lib es2022, @types/node) has no BufferSource, and
// no WebAssembly namespace before @types/node 22. Each type is the host's own where the consumer's
// environment declares it (read off `typeof globalThis`), else a structural stand-in the real
// object satisfies, so no consumer sees an unknown name and no declaration clashes with theirs.

type HostGlobal = typeof globalThis;

/** `WebAssembly.Module` where declared; else any object (the real Module has no members). */
export type WasmModule = HostGlobal extends {
  WebAssembly: { Module: { prototype: infer Module } };
}
  ? Module
  : object;

/** `WebAssembly.Memory` where declared; else what the package reads of it. */
export type WasmMemory = HostGlobal extends {
  WebAssembly: { Memory: { prototype: infer Memory } };
}
  ? Memory
  : { readonly buffer: ArrayBuffer | SharedArrayBuffer; grow(delta: number): number };

/** Wasm bytes: an ArrayBuffer or a view of one (lib.dom's BufferSource, declared in ES2022). */
export type WasmBytes = ArrayBuffer | ArrayBufferView;

/** A fetch `Response` where declared; else what init() reads of one. */
export type ResponseLike = HostGlobal extends { Response: { prototype: infer R } }
  ? R
  : {
      readonly ok: boolean;
      readonly status: number;
      readonly statusText: string;
      arrayBuffer(): Promise<ArrayBuffer>;
    };

/** A `URL` where declared; else any object with an href. */
export type URLLike = HostGlobal extends { URL: { prototype: infer U } }
  ? U
  : { readonly href: string };
