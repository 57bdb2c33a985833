// Resolved at build time (scripts/build.mjs, vitest.config.ts) to the base64 text of a wasm build.
declare module "inline-wasm:simd" {
  const base64: string;
  export default base64;
}
declare module "inline-wasm:relaxed" {
  const base64: string;
  export default base64;
}
declare module "inline-wasm:scalar" {
  const base64: string;
  export default base64;
}
declare module "inline-wasm:simd-threads" {
  const base64: string;
  export default base64;
}
declare module "inline-wasm:relaxed-threads" {
  const base64: string;
  export default base64;
}
