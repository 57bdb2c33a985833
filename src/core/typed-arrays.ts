// What a typed array really is, read through the built-in accessors of %TypedArray%.prototype, which
// look at the object's internal slots: a look-alike (Object.create(Float32Array.prototype)), a
// Proxy, or a subclass whose `length` or `buffer` getters lie cannot fool them. Inputs are re-viewed
// through these, so the ops never read past a buffer or through user code.

const TYPED_ARRAY = Object.getPrototypeOf(Uint8Array.prototype) as object;

function intrinsicGetter(key: PropertyKey): (this: unknown) => unknown {
  const get = Object.getOwnPropertyDescriptor(TYPED_ARRAY, key)?.get;
  if (!get) throw new Error(`%TypedArray%.prototype has no ${String(key)} getter`);
  return get;
}

const tagOf = intrinsicGetter(Symbol.toStringTag);
const lengthOf = intrinsicGetter("length");
const bufferOf = intrinsicGetter("buffer");
const byteOffsetOf = intrinsicGetter("byteOffset");

// ArrayBuffer.prototype.detached exists from Node 22 and current browsers; older runtimes report a
// detached buffer's views as zero-length, which the length checks catch anyway.
const detachedGetter = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, "detached")?.get;

export type TypedArrayName = "Float32Array" | "Uint8Array" | "Int32Array" | "Uint16Array";

/** The element type of a genuine typed array (subclasses included), or undefined for anything else. */
export function typedArrayName(value: unknown): string | undefined {
  const tag = tagOf.call(value);
  return typeof tag === "string" ? tag : undefined;
}

/** The geometry of a genuine typed array as its internal slots hold it. */
export interface TypedArrayGeometry {
  buffer: ArrayBufferLike;
  byteOffset: number;
  length: number;
  detached: boolean;
}

/** Geometry of a value typedArrayName() accepted. */
export function geometryOf(view: unknown): TypedArrayGeometry {
  const buffer = bufferOf.call(view) as ArrayBufferLike;
  // Without ArrayBuffer.prototype.detached (Node 20) a detached buffer's views have length 0, which
  // the length checks catch.
  const detached =
    detachedGetter !== undefined && buffer instanceof ArrayBuffer
      ? detachedGetter.call(buffer) === true
      : false;
  return {
    buffer,
    byteOffset: byteOffsetOf.call(view) as number,
    length: lengthOf.call(view) as number,
    detached,
  };
}

/**
 * A plain Float32Array (or Uint8Array, ...) over the same memory as `view`, whatever class `view`
 * is: its methods and `length` are the built-in ones. (Always a new view: cheaper than proving that
 * no own property or subclass shadows a built-in one.)
 */
export function plainView<T extends Float32Array | Uint8Array | Int32Array>(
  name: TypedArrayName,
  view: T,
): T {
  const g = geometryOf(view);
  const Ctor = globalThis[name] as unknown as new (
    buffer: ArrayBufferLike,
    byteOffset: number,
    length: number,
  ) => T;
  return new Ctor(g.buffer, g.byteOffset, g.length);
}

export interface ByteRange {
  buffer: ArrayBufferLike;
  byteOffset: number;
  bytes: number;
}

/** Whether two byte ranges share a byte of the same buffer. */
export function overlaps(a: ByteRange, b: ByteRange): boolean {
  return (
    a.buffer === b.buffer &&
    a.bytes > 0 &&
    b.bytes > 0 &&
    a.byteOffset < b.byteOffset + b.bytes &&
    b.byteOffset < a.byteOffset + a.bytes
  );
}
