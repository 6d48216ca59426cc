/**
 * The native f32 GEMM (native/gemm.c through the addon's matmul) against a naive float64 product.
 * Shapes are chosen to hit every path of the blocked kernel: sizes that are not multiples of the
 * register tile (AVX2 6x16, AVX-512 12x32, portable 4x16), sizes crossing the cache blocks
 * (MC 144, KC 256, NC 4096), m = 1 and n = 1 (the unpacked GEMV paths, both operand layouts),
 * k = 1, every transpose combination, accumulate (beta = 1) and overwrite (beta = 0: C must never be
 * read, so NaN garbage in C must not leak into the result), and several thread counts (row split,
 * column split, serial). The portable kernel is checked in a child process started with R1_ISA=scalar.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { loadNative, nativeLoadError } from '../../src/tensor/backends/native.js';
import { repoPath } from '../util.js';

const N = loadNative();
const SKIP = N ? false : `native addon not available: ${nativeLoadError() ?? 'unknown'}`;

/** Deterministic values in [-1, 1) (xorshift32), so a failure reproduces exactly. */
function fill(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    out[i] = s / 2147483648 - 1;
  }
  return out;
}

interface Case { m: number; n: number; k: number; tA: boolean; tB: boolean; acc: boolean; batch?: number }

/** Run one case through the native matmul and compare with a float64 product, element by element.
 *  Tolerance per element: 1e-5 * sum_p |a_ip * b_pj| (+ |C0| when accumulating): an f32 dot product
 *  of length k has a rounding error bounded by ~k * 2^-24 * that sum; blocking only shortens the chains. */
function check(c: Case, seed: number, corrupt?: (C: Float32Array) => void): void {
  const { m, n, k, tA, tB, acc } = c;
  const batch = c.batch ?? 1;
  const be = N!;
  // Padded leading dimensions so row strides differ from the logical widths.
  const lda = (tA ? m : k) + 3, ldb = (tB ? k : n) + 1;
  const aRows = tA ? k : m, bRows = tB ? n : k;
  const aBS = aRows * lda, bBS = bRows * ldb;
  const aOff = 2, bOff = 5, cOff = 1;
  const A = fill(aOff + batch * aBS, seed), B = fill(bOff + batch * bBS, seed + 1);
  const C = acc ? fill(cOff + batch * m * n + 3, seed + 2) : new Float32Array(cOff + batch * m * n + 3).fill(NaN);
  const C0 = C.slice();
  if (!acc) { C[0] = 7; C[C.length - 1] = 9; C0[0] = 7; C0[C.length - 1] = 9; }
  be.matmul(C, cOff, A, aOff, aBS, lda, tA, B, bOff, bBS, ldb, tB, batch, m, n, k, acc);
  corrupt?.(C);
  const label = `b${batch} ${m}x${n}x${k} tA=${tA} tB=${tB} acc=${acc} threads=${be.getThreads()} isa=${be.isa}`;
  assert.equal(C[0], C0[0], `${label}: wrote before C`);
  for (let t = cOff + batch * m * n; t < C.length; t++) assert.ok(Object.is(C[t], C0[t]), `${label}: wrote past C`);
  for (let b = 0; b < batch; b++) {
    const ab = aOff + b * aBS, bb = bOff + b * bBS, cb = cOff + b * m * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0, mag = 0;
        for (let p = 0; p < k; p++) {
          const av = A[ab + (tA ? p * lda + i : i * lda + p)];
          const bv = B[bb + (tB ? j * ldb + p : p * ldb + j)];
          s += av * bv;
          mag += Math.abs(av * bv);
        }
        const base = acc ? C0[cb + i * n + j] : 0;
        const want = s + base;
        const got = C[cb + i * n + j];
        const tol = 1e-5 * (mag + Math.abs(base)) + 1e-6;
        if (!(Math.abs(got - want) <= tol)) {
          assert.fail(`${label}: C[${b}][${i},${j}] = ${got}, want ${want} (tol ${tol})`);
        }
      }
    }
  }
}

const SMALL = [1, 2, 3, 5, 6, 7, 11, 12, 13, 16, 17, 31, 33];

function smallCases(): Case[] {
  const out: Case[] = [];
  let r = 0;
  for (const m of SMALL) {
    for (const n of SMALL) {
      // Vary k and the flags along with m and n instead of taking the full product (fast and still
      // covers every tA/tB/acc combination for every m and every n).
      const k = SMALL[(r * 7 + 3) % SMALL.length];
      out.push({ m, n, k, tA: (r & 1) === 1, tB: (r & 2) === 2, acc: (r & 4) === 4 });
      r++;
    }
  }
  return out;
}

// Shapes crossing MC/KC/NC block edges, tall/skinny, and the matrix-vector paths.
const BIG: Array<[number, number, number]> = [
  [150, 70, 300],   // m crosses MC = 144, k crosses KC = 256
  [13, 4200, 9],    // n crosses NC = 4096 (two column panels), small m: column split between threads
  [200, 300, 520],  // k in three balanced blocks
  [1, 4864, 40],    // GEMV, m = 1: y = x B or x B^T
  [1, 9, 1000],     // GEMV with long k
  [300, 1, 130],    // n = 1: y = A x or A^T x (strided output column)
  [1, 1, 77],       // dot product
  [64, 64, 1],      // k = 1 (rank-1 update)
];

function bigCases(): Case[] {
  const out: Case[] = [];
  for (const [m, n, k] of BIG) {
    for (let f = 0; f < 4; f++) out.push({ m, n, k, tA: (f & 1) === 1, tB: (f & 2) === 2, acc: f === 3 });
  }
  return out;
}

// Expert-sized products (DeepSeekMoE: tens of rows) take native/qsmall.c's register-blocked kernels on AVX-512 (NT for
// m <= 64, NN for m <= 128, TN for k <= 128, single-threaded calls); the shapes straddle those limits.
test('gemm: expert-sized products around the small-kernel limits (NT/NN/TN, accumulate and overwrite)', { skip: SKIP }, () => {
  const be = N!;
  const before = be.getThreads();
  let seed = 500;
  try {
    be.setThreads(1);
    for (const [m, n, k, tA, tB] of [[32, 256, 96, false, true], [64, 70, 40, false, true], [65, 70, 40, false, true],
      [32, 90, 100, false, false], [128, 33, 20, false, false], [129, 33, 20, false, false],
      [70, 90, 32, true, false], [40, 30, 128, true, false], [40, 30, 129, true, false]] as const) {
      for (const acc of [false, true]) check({ m, n, k, tA, tB, acc }, seed++);
    }
  } finally {
    be.setThreads(before);
  }
});

test('gemm: small odd shapes, every transpose, accumulate and overwrite', { skip: SKIP }, () => {
  let seed = 1;
  for (const c of smallCases()) check(c, seed++);
});

test('gemm: block-crossing and matrix-vector shapes at 1, 2 and 3 threads', { skip: SKIP }, () => {
  const be = N!;
  const saved = be.getThreads();
  try {
    for (const threads of [1, 2, 3]) {
      be.setThreads(threads);
      assert.equal(be.getThreads(), threads);
      let seed = 100 * threads;
      for (const c of bigCases()) check(c, seed++);
    }
  } finally {
    be.setThreads(saved);
  }
});

test('gemm: packed A larger than one row super-block (m x k > 8M floats)', { skip: SKIP }, () => {
  // 2100 x 4000 = 8.4M floats of A: the driver packs and multiplies it in two row super-blocks.
  check({ m: 2100, n: 3, k: 4000, tA: false, tB: true, acc: true }, 11);
  check({ m: 2100, n: 2, k: 4000, tA: true, tB: false, acc: false }, 12);
});

test('gemm: batched with broadcast operands', { skip: SKIP }, () => {
  check({ m: 7, n: 19, k: 23, tA: false, tB: true, acc: false, batch: 3 }, 7);
  check({ m: 20, n: 5, k: 9, tA: true, tB: false, acc: true, batch: 4 }, 8);
});

test('gemm: the checker rejects a wrong element (it can fail)', { skip: SKIP }, () => {
  const c: Case = { m: 9, n: 21, k: 40, tA: false, tB: false, acc: true };
  check(c, 3);
  // Off by ~1e-3 relative in one element of the second row: far outside the tolerance.
  assert.throws(() => check(c, 3, (C) => { C[1 + 21 + 4] += 1e-2; }), /C\[0\]\[1,4\]/);
  // Writing outside C is caught too.
  assert.throws(() => check(c, 3, (C) => { C[0] = -1; }), /wrote before C/);
});

test('gemm: portable kernel (R1_ISA=scalar) in a child process', { skip: SKIP }, () => {
  const url = pathToFileURL(repoPath('dist', 'src', 'tensor', 'backends', 'native.js')).href;
  // The child repeats a reduced check (naive f64 reference) and prints the worst relative error.
  const code = `
    import { loadNative } from ${JSON.stringify(url)};
    const be = loadNative();
    if (!be) { console.log(JSON.stringify({ error: 'no addon' })); process.exit(0); }
    let worst = 0, s = 12345;
    const rnd = () => { s = (s * 1103515245 + 12345) >>> 0; return s / 2147483648 - 1; };
    for (const [m, n, k, tA, tB] of [[37, 29, 300, false, false], [5, 70, 17, true, true], [1, 50, 33, false, true], [40, 1, 9, true, false], [150, 20, 40, false, true]]) {
      const A = Float32Array.from({ length: m * k }, rnd), B = Float32Array.from({ length: k * n }, rnd);
      const C = new Float32Array(m * n).fill(NaN);
      be.matmul(C, 0, A, 0, 0, tA ? m : k, tA, B, 0, 0, tB ? k : n, tB, 1, m, n, k, false);
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
        let r = 0, mag = 0;
        for (let p = 0; p < k; p++) { const x = A[tA ? p * m + i : i * k + p] * B[tB ? j * k + p : p * n + j]; r += x; mag += Math.abs(x); }
        const e = Math.abs(C[i * n + j] - r) / (mag + 1e-6);
        worst = Number.isNaN(e) ? Infinity : Math.max(worst, e);
      }
    }
    console.log(JSON.stringify({ isa: be.isa, worst }));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    env: { ...process.env, R1_ISA: 'scalar', R1_THREADS: '2' }, encoding: 'utf8', timeout: 30000,
  });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { isa?: string; worst?: number; error?: string };
  assert.equal(out.error, undefined);
  assert.equal(out.isa, 'scalar');
  assert.ok(out.worst !== undefined && out.worst < 1e-5, `scalar kernel worst relative error ${out.worst}`);
});

test('gemm: 2..16 rows against a transposed B (the small-M streaming path of decode batches)', { skip: SKIP }, () => {
  const be = N!;
  for (const m of [2, 3, 5, 8, 16]) {
    for (const [n, k] of [[64, 7], [130, 128], [1000, 600], [67, 1031]] as const) {
      const A = fill(m * k, m * 31 + k), B = fill(n * k, n + 7);
      const C = new Float32Array(m * n).fill(NaN);
      be.matmul(C, 0, A, 0, 0, k, false, B, 0, 0, k, true, 1, m, n, k, false);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let s = 0, mag = 0;
          for (let p = 0; p < k; p++) { s += A[i * k + p]! * B[j * k + p]!; mag += Math.abs(A[i * k + p]! * B[j * k + p]!); }
          const got = C[i * n + j]!;
          if (!(Math.abs(got - s) <= 1e-5 * mag + 1e-6)) assert.fail(`${m}x${n}x${k}: C[${i},${j}] = ${got}, want ${s}`);
        }
      }
    }
  }
});

// The kernels are chosen per process from the CPU; on an AVX-512 machine rerun this file capped to AVX2 so the AVX2
// small-product kernels (native/qsmall.c) and micro-kernels are checked as well.
test('gemm: every check above again with R1_ISA=avx2, in a child process', { skip: SKIP || process.env['R1_GEMM_TEST_CHILD'] === '1' || !N || !N.isa.startsWith('avx512') }, () => {
  const env: NodeJS.ProcessEnv = { ...process.env, R1_ISA: 'avx2', R1_GEMM_TEST_CHILD: '1' };
  delete env['NODE_TEST_CONTEXT'];
  const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', fileURLToPath(import.meta.url)], { env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout.slice(-3000) + r.stderr.slice(-2000));
  assert.match(r.stdout, /# fail 0/);
});
