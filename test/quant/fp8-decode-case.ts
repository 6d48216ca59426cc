/**
 * Products over fp8 panels whose 64-code groups mix the cases of the GFNI decode (native/e4m3_bf16.h): groups of
 * normal codes only (the byte maps), groups holding a subnormal or a zero code (the tables), and every non-NaN code.
 * qgemm.test.ts runs it in this process and in a child with R1_NO_GFNI (tables everywhere) and compares the outputs
 * bit for bit. Run as a script it prints the outputs as base64 of their bytes.
 */
import { qgemm, qgemmGlu, fp8PanelsFromRows, type PackedMatrix } from '../../src/quant/qgemm.js';
import { lcg } from '../util.js';

/** Row-major E4M3 codes [N, K]: mostly normal codes; some rows hold a subnormal or zero code every few groups. */
function codes(N: number, K: number, rnd: () => number): Uint8Array {
  const c = new Uint8Array(N * K);
  for (let i = 0; i < N * K; i++) {
    let v = 0x08 + Math.floor(rnd() * 0x77); // exponent field 1..15: normal (0x7f excluded)
    if (v >= 0x7f) v = 0x7e;
    c[i] = (rnd() < 0.5 ? 0x80 : 0) | v;
  }
  for (let n = 0; n < N; n++) {
    if (n % 5 === 1) for (let k = n % 7; k < K; k += 97) c[n * K + k] = (rnd() < 0.5 ? 0x80 : 0) | Math.floor(rnd() * 8); // subnormal or zero
    if (n % 11 === 3) { // every code, the NaNs (0x7f, 0xff) replaced by zeros of their sign
      for (let k = 0; k < K; k += 3) {
        const v = (k * 7 + n) % 256;
        c[n * K + k] = (v & 0x7f) === 0x7f ? v & 0x80 : v;
      }
    }
  }
  return c;
}

export function fp8DecodeCase(): Float32Array[] {
  const rnd = lcg(77);
  const out: Float32Array[] = [];
  for (const [N, K] of [[256, 384], [128, 136], [384, 900]] as [number, number][]) {
    const sk = Math.ceil(K / 128), scaleInv = new Float32Array(Math.ceil(N / 128) * sk);
    for (let i = 0; i < scaleInv.length; i++) scaleInv[i] = 2 ** (Math.floor(rnd() * 8) - 12);
    const w: PackedMatrix = { format: 'fp8', rows: N, cols: K, data: fp8PanelsFromRows(codes(N, K, rnd), N, K), scaleInv, layout: 'panels' };
    for (const M of [1, 2, 16, 40]) {
      const x = new Float32Array(M * K);
      for (let i = 0; i < x.length; i++) x[i] = (rnd() - 0.5) * 2 ** (Math.floor(rnd() * 12) - 6);
      out.push(qgemm(x, M, w));
      const g = qgemmGlu(x, M, w);
      if (g) out.push(g);
    }
  }
  return out;
}

if (process.argv[2] === '--print') {
  for (const y of fp8DecodeCase()) console.log(Buffer.from(y.buffer, y.byteOffset, y.byteLength).toString('base64'));
}
