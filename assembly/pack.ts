// Packing of row-major matrices into 8-row panels for the register-blocked micro-kernels.
//
// packPanels reads `rows` rows of `depth` floats (row stride rowBytes) and writes them as panels of
// 8 rows, [depth][8] each, one after the other (panel p at dst + p·depth·32), zero-padding the rows
// of the last panel past `rows`. Blocks of 4 rows × 4 floats go through a 4×4 register transpose;
// the depth tail and the last partial group of 4 rows are copied one float at a time.
export function packPanels(src: usize, rowBytes: usize, rows: i32, depth: i32, dst: usize): void {
  const depth4 = depth & ~3;
  const panelBytes = <usize>depth * 32;
  const padded = (rows + 7) & ~7;
  for (let row = 0; row < padded; row += 4) {
    const column = dst + <usize>(row >> 3) * panelBytes + <usize>(row & 7) * 4;
    const from = src + <usize>row * rowBytes;
    if (row + 4 <= rows) {
      for (let i = 0; i < depth4; i += 4) {
        const at = from + <usize>i * 4;
        const r0 = v128.load(at);
        const r1 = v128.load(at + rowBytes);
        const r2 = v128.load(at + 2 * rowBytes);
        const r3 = v128.load(at + 3 * rowBytes);
        const t0 = f32x4.shuffle(r0, r1, 0, 4, 1, 5);
        const t1 = f32x4.shuffle(r2, r3, 0, 4, 1, 5);
        const t2 = f32x4.shuffle(r0, r1, 2, 6, 3, 7);
        const t3 = f32x4.shuffle(r2, r3, 2, 6, 3, 7);
        const out = column + <usize>i * 32;
        v128.store(out, f32x4.shuffle(t0, t1, 0, 1, 4, 5));
        v128.store(out, f32x4.shuffle(t0, t1, 2, 3, 6, 7), 32);
        v128.store(out, f32x4.shuffle(t2, t3, 0, 1, 4, 5), 64);
        v128.store(out, f32x4.shuffle(t2, t3, 2, 3, 6, 7), 96);
      }
      for (let r = 0; r < 4; r++) {
        for (let i = depth4; i < depth; i++) {
          store<f32>(
            column + <usize>i * 32 + r * 4,
            load<f32>(from + <usize>r * rowBytes + <usize>i * 4),
          );
        }
      }
    } else {
      for (let r = 0; r < 4; r++) {
        const inside = row + r < rows;
        for (let i = 0; i < depth; i++) {
          const value: f32 = inside ? load<f32>(from + <usize>r * rowBytes + <usize>i * 4) : 0;
          store<f32>(column + <usize>i * 32 + r * 4, value);
        }
      }
    }
  }
}
