// The .wasm imports of the workerd and edge-light entries, resolved by those runtimes' bundlers.
declare module "*.wasm" {
  const module: WebAssembly.Module;
  export default module;
}
declare module "*.wasm?module" {
  const module: WebAssembly.Module;
  export default module;
}
