import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inflateSync } from 'node:zlib';
import * as zlib from 'node:zlib';
import {
  PALETTE, compactNumber, crc32, ema, encodePng, formatTick, glyph, logTicks, niceRange, niceStep, niceTicks, renderChart, stackCharts, textWidth,
  type Point,
} from '../../src/report/plot.js';

/** A minimal independent PNG reader: checks signature and every chunk's CRC, inflates IDAT, undoes filter 0. */
function decodePng(png: Buffer): { width: number; height: number; pixel(x: number, y: number): number[]; chunks: string[] } {
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  let off = 8, width = 0, height = 0;
  const idat: Buffer[] = [];
  const chunks: string[] = [];
  while (off < png.length) {
    const len = png.readUInt32BE(off);
    const type = png.toString('latin1', off + 4, off + 8);
    const body = png.subarray(off + 8, off + 8 + len);
    const crc = png.readUInt32BE(off + 8 + len);
    assert.equal(crc, crc32(png.subarray(off + 4, off + 8 + len)), `${type} CRC`);
    const zcrc = (zlib as unknown as { crc32?: (b: Uint8Array) => number }).crc32;
    if (zcrc) assert.equal(crc, zcrc(png.subarray(off + 4, off + 8 + len)) >>> 0, `${type} CRC vs zlib.crc32`);
    chunks.push(type);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      assert.deepEqual([...body.subarray(8)], [8, 6, 0, 0, 0]);
    } else if (type === 'IDAT') idat.push(body);
    off += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * 4 + 1;
  assert.equal(raw.length, stride * height);
  for (let y = 0; y < height; y++) assert.equal(raw[y * stride], 0, 'filter type 0');
  return { width, height, chunks, pixel: (x, y) => [...raw.subarray(y * stride + 1 + x * 4, y * stride + 1 + x * 4 + 4)] };
}

test('crc32: the standard check value and PNG IEND', () => {
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  assert.equal(crc32(Buffer.from('IEND', 'latin1')), 0xae426082);
  assert.equal(crc32(new Uint8Array(0)), 0);
});

test('encodePng: tiny image round-trips through an independent decoder', () => {
  const rgba = new Uint8Array([255, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255, 10, 20, 30, 40, 1, 2, 3, 4, 5, 6, 7, 8]);
  const d = decodePng(encodePng(3, 2, rgba));
  assert.equal(d.width, 3);
  assert.equal(d.height, 2);
  assert.deepEqual(d.chunks, ['IHDR', 'IDAT', 'IEND']);
  assert.deepEqual(d.pixel(1, 0), [0, 255, 0, 255]);
  assert.deepEqual(d.pixel(2, 1), [5, 6, 7, 8]);
  assert.throws(() => encodePng(3, 3, rgba), /expected 36 bytes/);
});

test('niceStep / niceTicks / niceRange: 1-2-5 steps without float noise', () => {
  assert.equal(niceStep(0.3), 0.5);
  assert.equal(niceStep(0.1 + 0.2), 0.5);
  assert.equal(niceStep(1), 1);
  assert.equal(niceStep(1.01), 2);
  assert.equal(niceStep(7), 10);
  assert.equal(niceStep(230), 500);
  assert.deepEqual(niceTicks(0, 1, 5), { ticks: [0, 0.2, 0.4, 0.6, 0.8, 1], step: 0.2 });
  assert.deepEqual(niceTicks(0.1, 0.35, 5).ticks, [0.1, 0.15, 0.2, 0.25, 0.3, 0.35]);
  assert.deepEqual(niceTicks(1, 400, 5).ticks, [100, 200, 300, 400]);
  assert.deepEqual(niceTicks(-3, 7, 5).ticks, [-2, 0, 2, 4, 6]);
  assert.deepEqual(niceTicks(1e6, 4e6, 3).ticks, [1e6, 2e6, 3e6, 4e6]);
  // A narrow range still gets at least two ticks.
  assert.ok(niceTicks(0.11, 0.19, 1).ticks.length >= 2);
  assert.deepEqual(niceRange(0.23, 3.4, 5), [0, 4]); // step niceStep(3.17 / 5) = 1
  assert.deepEqual(niceRange(0.23, 3.4, 8), [0, 3.5]); // step 0.5
  assert.deepEqual(niceRange(5, 5, 5), [4.4, 5.6]); // widened by 10%, then to multiples of 0.2
  assert.throws(() => niceTicks(2, 1), /bad range/);
});

test('logTicks and labels', () => {
  assert.deepEqual(logTicks(1e-3, 10), [1e-3, 1e-2, 0.1, 1, 10]);
  assert.deepEqual(logTicks(1e-8, 1e4, 4), [1e-8, 1e-5, 1e-2, 10, 1e4]); // every 3rd power
  assert.deepEqual(logTicks(0.3, 3), [0.5, 1, 2]);
  assert.throws(() => logTicks(0, 1), /positive/);
  assert.equal(formatTick(0.30000000000000004, 0.1), '0.3');
  assert.equal(formatTick(200, 100), '200');
  assert.equal(formatTick(25000, 5000), '25k');
  assert.equal(formatTick(2.5e6, 5e5), '2.5M');
  assert.equal(formatTick(-0.5, 0.1), '-0.5');
  assert.equal(formatTick(0.05, 0.05), '0.05');
  assert.equal(compactNumber(1e-5), '1e-5');
  assert.equal(compactNumber(0.02), '0.02');
  assert.equal(compactNumber(2.5e7), '2.5e7');
});

test('ema: debiased, constant stays constant, skips non-finite', () => {
  for (const [, y] of ema([[0, 4], [1, 4], [2, 4]], 0.9)) assert.ok(Math.abs(y - 4) < 1e-12);
  const e = ema([[0, 0], [1, 10], [2, Number.NaN], [3, 10]], 0.5);
  assert.equal(e.length, 3);
  // n=1: 0; n=2: (0.5*0 + 0.5*10)/(1-0.25) = 6.667; n=3: (0.5*5 + 5)/(1-0.125) = 8.571
  assert.ok(Math.abs(e[1]![1] - 5 / 0.75) < 1e-12);
  assert.ok(Math.abs(e[2]![1] - 7.5 / 0.875) < 1e-12);
  assert.deepEqual(ema([[0, 1], [1, 2]], 0), [[0, 1], [1, 2]]);
  assert.throws(() => ema([], 1), /weight must be in \[0, 1\)/);
});

test('font: every printable ASCII glyph has pixels (except space), 5 bits wide', () => {
  for (let c = 33; c <= 126; c++) {
    const rows = glyph(String.fromCharCode(c));
    assert.equal(rows.length, 7);
    assert.ok(rows.some((r) => r !== 0), String.fromCharCode(c));
    assert.ok(rows.every((r) => r >= 0 && r < 32));
  }
  assert.deepEqual(glyph(' '), [0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(glyph('T'), [31, 4, 4, 4, 4, 4, 4]);
  assert.deepEqual(glyph('\u00e9'), glyph('?'));
  assert.equal(textWidth('abc'), 17);
  assert.equal(textWidth('abc', 2), 34);
});

test('renderChart -> PNG: dimensions, line pixels coloured, background white', () => {
  const flat: Point[] = [[0, 3], [10, 3]];
  const diag: Point[] = Array.from({ length: 11 }, (_, i) => [i, i] as Point);
  const chart = renderChart([{ name: 'flat', points: flat }, { name: 'diag', points: diag }], { title: 'Test chart', xLabel: 'step', yLabel: 'value', width: 400, height: 300 });
  const d = decodePng(chart.toPng());
  assert.equal(d.width, 400);
  assert.equal(d.height, 300);
  // On the horizontal line the 2 px stroke covers the pixel fully: exactly the first palette colour.
  const [fx, fy] = chart.pixelOf(5, 3);
  assert.deepEqual(d.pixel(Math.floor(fx), Math.floor(fy)), [...PALETTE[0]!, 255]);
  // On the diagonal (second colour, orange): mostly covered, so clearly orange.
  const [dx, dy] = chart.pixelOf(6.5, 6.5);
  const p = d.pixel(Math.floor(dx), Math.floor(dy));
  assert.ok(p[0]! > 230 && p[2]! < 150 && p[0]! - p[2]! > 100, `diagonal pixel ${p}`);
  // Background: the image corner and a plot-area point away from lines and grid are white.
  assert.deepEqual(d.pixel(1, 1), [255, 255, 255, 255]);
  const [bx, by] = chart.pixelOf(1, 9);
  assert.deepEqual(d.pixel(Math.floor(bx), Math.floor(by)), [255, 255, 255, 255]);
  // Some dark text (title, tick labels) was drawn.
  let dark = 0;
  for (let y = 0; y < 300; y++) for (let x = 0; x < 400; x++) if (d.pixel(x, y)[0]! < 80 && d.pixel(x, y)[2]! < 80) dark++;
  assert.ok(dark > 300, `dark pixels ${dark}`);
  assert.deepEqual(chart.series.map((s) => [s.name, s.points]), [['flat', 2], ['diag', 11]]);
});

test('renderChart -> SVG: well-formed-ish, one polyline per series with every point', () => {
  const pts: Point[] = Array.from({ length: 57 }, (_, i) => [i * 3, Math.sin(i / 5)] as Point);
  const svg = renderChart([{ name: 'sin <x>', points: pts }], { title: 'A & B', xLabel: 'step', yLabel: 'y' }).toSvg();
  assert.match(svg, /^<\?xml[^>]*\?>\n<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="640" height="400"/);
  assert.ok(svg.trimEnd().endsWith('</svg>'));
  // Tag balance: every opened element is closed in order (self-closing ones excepted).
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z]+)[^>]*?(\/?)>/g)) {
    if (m[3] === '/') continue;
    if (m[1] === '/') assert.equal(stack.pop(), m[2]);
    else stack.push(m[2]!);
  }
  assert.deepEqual(stack, []);
  assert.ok(svg.includes('A &amp; B'));
  assert.ok(!svg.includes('sin <x>'));
  const lines = [...svg.matchAll(/<polyline [^>]*points="([^"]*)"/g)];
  assert.equal(lines.length, 1);
  const coords = lines[0]![1]!.split(' ');
  assert.equal(coords.length, 57);
  for (const c of coords) assert.match(c, /^-?\d+(\.\d+)?,-?\d+(\.\d+)?$/);
});

test('non-finite values break a line; log axis drops y <= 0; smoothing adds a bold EMA line', () => {
  const pts: Point[] = [[0, 1], [1, 2], [2, Number.NaN], [3, 4], [4, 5], [5, 0]];
  const svg = renderChart([{ name: 'a', points: pts }], { title: 't', xLabel: 'x', yLabel: 'y' }).toSvg();
  const counts = [...svg.matchAll(/points="([^"]*)"/g)].map((m) => m[1]!.split(' ').length);
  assert.deepEqual(counts, [2, 3]);
  const logSvg = renderChart([{ name: 'a', points: pts }], { title: 't', xLabel: 'x', yLabel: 'y', logY: true }).toSvg();
  assert.deepEqual([...logSvg.matchAll(/points="([^"]*)"/g)].map((m) => m[1]!.split(' ').length), [2, 2]);
  const noisy: Point[] = Array.from({ length: 100 }, (_, i) => [i, 1 + (i % 2 ? 0.5 : -0.5)] as Point);
  const sparse: Point[] = [[0, 1], [50, 2], [99, 3]];
  const c = renderChart([{ name: 'loss', points: noisy }, { name: 'eval', points: sparse }], { title: 't', xLabel: 'x', yLabel: 'y', smooth: 0.9 });
  assert.deepEqual(c.series.map((s) => [s.name, s.points, s.smoothed]), [['loss', 100, false], ['loss (EMA 0.9)', 100, true], ['eval', 3, false]]);
  const s2 = c.toSvg();
  assert.equal((s2.match(/<polyline /g) ?? []).length, 3);
  assert.match(s2, /stroke-opacity="0.3"/);
  assert.throws(() => renderChart([], { title: 't', xLabel: 'x', yLabel: 'y', smooth: 1 }), /smooth must be in \[0, 1\)/);
  // An empty chart still renders axes.
  assert.equal(decodePng(renderChart([], { title: 'empty', xLabel: 'x', yLabel: 'y' }).toPng()).width, 640);
});

test('stackCharts: panels one under the other; pixelOf maps into the right panel', () => {
  const a = renderChart([{ name: 'a', points: [[0, 0], [10, 0]] }], { title: 'a', xLabel: 'x', yLabel: 'y', width: 300, height: 200 });
  const b = renderChart([{ name: 'b', points: [[0, 5], [10, 5]] }], { title: 'b', xLabel: 'x', yLabel: 'y', width: 320, height: 150 });
  const s = stackCharts([a, b]);
  assert.equal(s.width, 320);
  assert.equal(s.height, 350);
  assert.equal(s.panels.length, 2);
  assert.deepEqual(s.series.map((x) => x.panel), [0, 1]);
  const [px, py] = s.pixelOf(5, 5, 1);
  assert.ok(py > 200);
  const d = decodePng(s.toPng());
  assert.deepEqual(d.pixel(Math.floor(px), Math.floor(py)), [...PALETTE[0]!, 255]);
  assert.equal((s.toSvg().match(/<clipPath /g) ?? []).length, 2);
  assert.throws(() => s.pixelOf(0, 0, 2), /no panel 2/);
});
