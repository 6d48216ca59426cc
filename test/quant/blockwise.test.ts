import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  scaleShape, quantizeWeight, quantizeActivations, dequantizeBlockwise, quantizePerTensor, dequantizePerTensor, scaleInvFromAmax,
} from '../../src/quant/blockwise.js';
import { E4M3_TABLE } from '../../src/quant/fp8.js';
import { lcg } from '../util.js';

function gaussian(n: number, rnd: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  return out;
}

test('scale grid is ceil-div at the edges (DeepSeek-V3 model.py: (out + block - 1) // block)', () => {
  assert.deepEqual(scaleShape(7168, 2048), [56, 16]);
  assert.deepEqual(scaleShape(300, 200), [3, 2]);
  assert.deepEqual(scaleShape(128, 129), [1, 2]);
  assert.deepEqual(scaleShape(1, 1), [1, 1]);
  assert.deepEqual(scaleShape(4, 300, 1, 128), [4, 3]);
});

test('weights: 128x128 blocks, each block amax maps onto 448, round trip within half an FP8 ulp', () => {
  const rows = 300, cols = 200;
  const rnd = lcg(7);
  const w = gaussian(rows * cols, rnd);
  // Blocks with very different magnitudes: fine-grained scaling must adapt to each.
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) w[r * cols + c]! *= 10 ** (Math.floor(r / 128) - Math.floor(c / 128));
  const q = quantizeWeight(w, rows, cols);
  assert.equal(q.scaleInv.length, 3 * 2);
  const deq = dequantizeBlockwise(q.codes, q.scaleInv, rows, cols);
  for (let bi = 0; bi < 3; bi++) {
    for (let bj = 0; bj < 2; bj++) {
      let amax = 0, at = -1;
      for (let r = bi * 128; r < Math.min(rows, bi * 128 + 128); r++) {
        for (let c = bj * 128; c < Math.min(cols, bj * 128 + 128); c++) {
          if (Math.abs(w[r * cols + c]!) > amax) { amax = Math.abs(w[r * cols + c]!); at = r * cols + c; }
        }
      }
      const s = q.scaleInv[bi * 2 + bj]!;
      assert.equal(s, Math.fround(amax / 448));
      assert.equal(q.codes[at]! & 0x7f, 0x7e, 'the block maximum quantizes to +-448');
    }
  }
  for (let i = 0; i < w.length; i++) {
    const s = q.scaleInv[Math.floor(Math.floor(i / cols) / 128) * 2 + Math.floor((i % cols) / 128)]!;
    const err = Math.abs(deq[i]! - w[i]!);
    // E4M3 has 3 mantissa bits: half an ulp is 2^-4 relative for normals; below 2^-6 * s the spacing is 2^-9 * s.
    const bound = Math.max(Math.abs(w[i]!) * 2 ** -4, s * 2 ** -10) * (1 + 2 ** -20);
    assert.ok(err <= bound, `element ${i}: ${w[i]} -> ${deq[i]} (err ${err} > ${bound})`);
  }
});

test('activations: 1x128 tiles, one scale per token per 128 channels', () => {
  const rows = 5, cols = 300;
  const x = gaussian(rows * cols, lcg(3));
  x[2 * cols + 130] = 1000; // an outlier only affects its own tile
  const q = quantizeActivations(x, rows, cols);
  assert.equal(q.scaleInv.length, rows * 3);
  assert.equal(q.scaleInv[2 * 3 + 1], Math.fround(1000 / 448));
  for (let r = 0; r < rows; r++) {
    for (let t = 0; t < 3; t++) {
      if (r === 2 && t === 1) continue;
      assert.ok(q.scaleInv[r * 3 + t]! < 0.05, `tile (${r}, ${t}) is untouched by the outlier`);
    }
  }
  const deq = dequantizeBlockwise(q.codes, q.scaleInv, rows, cols, { blockRows: 1, blockCols: 128 });
  assert.equal(deq[2 * cols + 130], Math.fround(448 * Math.fround(1000 / 448)));
});

test('the released-checkpoint convention: w = fp8 * weight_scale_inv per block, partial edge blocks', () => {
  // Hand-built codes and scales (independent of the quantizer): 130 x 3 with 128 x 2 blocks -> scale grid [2, 2].
  const rows = 130, cols = 3;
  const codes = new Uint8Array(rows * cols);
  for (let i = 0; i < codes.length; i++) codes[i] = (i * 37) % 256 === 0x7f || (i * 37) % 256 === 0xff ? 0x38 : (i * 37) % 256;
  const scaleInv = new Float32Array([0.5, 2, 3, 0.25]);
  const deq = dequantizeBlockwise(codes, scaleInv, rows, cols, { blockRows: 128, blockCols: 2 });
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const s = scaleInv[(r < 128 ? 0 : 2) + (c < 2 ? 0 : 1)]!;
      assert.equal(deq[r * cols + c], Math.fround(E4M3_TABLE[codes[r * cols + c]!]! * s));
    }
  }
  assert.throws(() => dequantizeBlockwise(codes, new Float32Array(3), rows, cols, { blockRows: 128, blockCols: 2 }), /expected \[2, 2\]/);
});

test('all-zero blocks get scale 1 and zero codes; NaN makes its block NaN', () => {
  const x = new Float32Array(256 * 2);
  x[300] = NaN;
  const q = quantizeActivations(x, 2, 256);
  assert.deepEqual([...q.scaleInv.slice(0, 2)], [1, 1]);
  assert.ok(Number.isNaN(q.scaleInv[2]!)); // x[300] is row 1, column 44: tile (1, 0)
  assert.equal(q.scaleInv[3], 1);
  assert.ok(q.codes.slice(0, 256).every((c) => c === 0));
  assert.equal(scaleInvFromAmax(0), 1);
  assert.equal(scaleInvFromAmax(448), 1);
  assert.ok(Number.isNaN(scaleInvFromAmax(Infinity)));
});

test('fine-grained scaling beats per-tensor scaling on activations with outliers (paper section 3.3.2)', () => {
  const rows = 16, cols = 1024;
  const rnd = lcg(11);
  const x = gaussian(rows * cols, rnd);
  // E4M3 keeps 2^-4 relative precision over [2^-6, 448], so per-tensor scaling only loses the ordinary values once
  // an outlier is more than ~448 / 2^-6 = 28672x larger than them and pushes them into the subnormals or to zero.
  for (let i = 0; i < 8; i++) x[Math.floor(rnd() * x.length)] = 1e5 * (rnd() < 0.5 ? -1 : 1);
  const tile = quantizeActivations(x, rows, cols);
  const fine = dequantizeBlockwise(tile.codes, tile.scaleInv, rows, cols, { blockRows: 1, blockCols: 128 });
  const pt = quantizePerTensor(x);
  const coarse = dequantizePerTensor(pt.codes, pt.scaleInv);
  const rel = (y: Float32Array) => {
    let num = 0, den = 0;
    // Over the ordinary values only: the outliers themselves are exact in both schemes and would swamp the sums.
    for (let i = 0; i < x.length; i++) if (Math.abs(x[i]!) < 100) { num += (y[i]! - x[i]!) ** 2; den += x[i]! ** 2; }
    return Math.sqrt(num / den);
  };
  // Per-tensor: scaleInv = 1e5/448 ~ 223, so every N(0,1) value lands in E4M3's subnormals (step 2^-9 * 223 ~ 0.44);
  // with tiles only the <= 8 tiles holding an outlier suffer that.
  const eFine = rel(fine), eCoarse = rel(coarse);
  assert.ok(eFine < 0.05 && eFine * 2.5 < eCoarse, `fine ${eFine} vs per-tensor ${eCoarse}`);
});

test('bad dimensions are RangeErrors', () => {
  assert.throws(() => quantizeWeight(new Float32Array(10), 3, 3), /10 values do not fill \[3, 3\]/);
  assert.throws(() => quantizeWeight(new Float32Array(9), 3, 3, { block: 0 }), /positive integer/);
});
