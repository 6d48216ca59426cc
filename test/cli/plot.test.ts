import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import plot, { choosePanels, numericKeys } from '../../src/cli/commands/plot.js';
import { MetricsWriter } from '../../src/train/metrics.js';
import { FormatError, UsageError } from '../../src/errors.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'r1plot-'));

/** Run the command in-process, capturing what it prints. */
async function run(args: string[]): Promise<{ code: number; out: string }> {
  const orig = console.log;
  const lines: string[] = [];
  console.log = (...a: unknown[]) => { lines.push(a.map(String).join(' ')); };
  try {
    const code = await plot.run(args);
    return { code, out: lines.join('\n') };
  } finally {
    console.log = orig;
  }
}

function pngSize(path: string): [number, number] {
  const b = readFileSync(path);
  assert.deepEqual([...b.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.equal(b.toString('latin1', 12, 16), 'IHDR');
  return [b.readUInt32BE(16), b.readUInt32BE(20)];
}

/** A training log like the trainers write: loss every step, eval accuracy every 10, reward and length. */
function writeRun(dir: string, steps = 60): string {
  const path = join(dir, 'run', 'metrics.jsonl');
  const w = new MetricsWriter(path);
  for (let s = 1; s <= steps; s++) {
    w.write({ step: s, loss: 3 / Math.sqrt(s) + (s % 3) * 0.05, lr: 1e-4, phase: 'grpo', reward: s / steps, completion_length: 100 + s });
    if (s % 10 === 0) w.write({ step: s, eval_accuracy: s / (steps + 10) });
  }
  w.close();
  return path;
}

test('r1 plot: default panels for known metrics, one stacked PNG, --json summary', async () => {
  const dir = tmp();
  const metrics = writeRun(dir);
  const out = join(dir, 'out', 'chart.png');
  const r = await run([metrics, '-o', out, '--json']);
  assert.equal(r.code, 0);
  const j = JSON.parse(r.out) as { files: string[]; series: { panel: string; name: string; x: string; points: number; first: number; last: number; min: number; max: number }[] };
  assert.deepEqual(j.files, [out]);
  assert.deepEqual(j.series.map((s) => [s.panel, s.name, s.points]), [
    ['loss', 'loss', 60], ['eval accuracy', 'eval_accuracy', 6], ['reward', 'reward', 60], ['completion length', 'completion_length', 60],
  ]);
  assert.equal(j.series[0]!.x, 'step');
  assert.equal(j.series[3]!.first, 101);
  assert.equal(j.series[3]!.max, 160);
  assert.deepEqual(pngSize(out), [720, 4 * 320]);
  // Default output name next to the input; plain text summary.
  const d = await run([metrics, '--width', '400', '--height', '200']);
  assert.match(d.out, /^wrote .*metrics\.png: 400 x 800, 4 panel\(s\) \(loss, eval accuracy, reward, completion length\) over step, 66 records/);
  assert.deepEqual(pngSize(join(dir, 'run', 'metrics.png')), [400, 800]);
});

test('r1 plot: --y panels and overlays, --x, --smooth, SVG output with every point', async () => {
  const dir = tmp();
  const metrics = writeRun(dir, 40);
  const svgPath = join(dir, 'c.svg');
  const r = await run([metrics, '-o', svgPath, '--y', 'loss+reward,lr', '--smooth', '0.8', '--json']);
  const j = JSON.parse(r.out) as { series: { panel: string; name: string; smoothed: boolean }[] };
  assert.deepEqual(j.series.map((s) => [s.panel, s.name, s.smoothed]), [['loss / reward', 'loss', true], ['loss / reward', 'reward', true], ['lr', 'lr', true]]);
  const svg = readFileSync(svgPath, 'utf8');
  assert.match(svg, /^<\?xml/);
  const lines = [...svg.matchAll(/<polyline [^>]*points="([^"]*)"/g)].map((m) => m[1]!.split(' ').length);
  assert.deepEqual(lines, [40, 40, 40, 40, 40, 40]); // raw + EMA for each of the 3 series
  assert.match(svg, /loss \(EMA 0\.8\)/);
  // x = another numeric key.
  const x = JSON.parse((await run([metrics, '-o', join(dir, 'x.svg'), '--x', 'completion_length', '--y', 'loss', '--json'])).out) as { series: { x: string; points: number }[] };
  assert.deepEqual(x.series.map((s) => [s.x, s.points]), [['completion_length', 40]]);
});

test('r1 plot: unknown metrics get a panel each; no step key uses the record number', async () => {
  const dir = tmp();
  const path = join(dir, 'm.jsonl');
  writeFileSync(path, '{"foo":1,"bar":2,"name":"a"}\n{"foo":2,"bar":1.5}\n{"foo":4}\n');
  assert.deepEqual(numericKeys([{ foo: 1, name: 'a', ok: true, n: null }, { bar: Number.NaN }]), ['foo']);
  const j = JSON.parse((await run([path, '-o', join(dir, 'm.png'), '--json'])).out) as { series: { panel: string; x: string; points: number }[] };
  assert.deepEqual(j.series.map((s) => [s.panel, s.x, s.points]), [['foo', 'record', 3], ['bar', 'record', 2]]);
  assert.deepEqual(pngSize(join(dir, 'm.png')), [720, 640]);
  assert.deepEqual(choosePanels(['step', 'loss', 'eval_loss', 'x'], 'step', undefined), [{ title: 'loss', keys: ['loss', 'eval_loss'] }]);
  assert.deepEqual(choosePanels(['step', 'a', 'b'], 'step', undefined).map((p) => p.title), ['a', 'b']);
});

test('r1 plot: validation errors name what is wrong', async () => {
  const dir = tmp();
  const metrics = writeRun(dir, 12);
  await assert.rejects(run([join(dir, 'nope.jsonl'), '-o', join(dir, 'a.png')]), (e: unknown) => e instanceof UsageError && /nope\.jsonl: no such file/.test(e.message));
  await assert.rejects(run([metrics, '-o', join(dir, 'a.jpg')]), (e: unknown) => e instanceof UsageError && /must end in \.png or \.svg, got '\.jpg'/.test(e.message));
  await assert.rejects(run([metrics, '-o', join(dir, 'a')]), /got '\(no extension\)'/);
  await assert.rejects(run([metrics, '-o', join(dir, 'a.png'), '--y', 'loss,accuracy']),
    (e: unknown) => e instanceof UsageError && /--y: no numeric metric 'accuracy' in the file\. Numeric keys: step, loss, lr, reward, completion_length, eval_accuracy/.test(e.message));
  await assert.rejects(run([metrics, '-o', join(dir, 'a.png'), '--x', 'phase']), /--x: no numeric key 'phase'.*Numeric keys: step, loss/);
  await assert.rejects(run([metrics, '-o', join(dir, 'a.png'), '--smooth', '1']), /--smooth must be <= 0.999/);
  await assert.rejects(run([metrics, '-o', join(dir, 'a.png'), '--bogus']), UsageError);
  await assert.rejects(run([]), /expected one metrics\.jsonl path, got 0/);
  const strings = join(dir, 's.jsonl');
  writeFileSync(strings, '{"phase":"sft"}\n{"phase":"grpo","done":true}\n');
  await assert.rejects(run([strings, '-o', join(dir, 's.png')]), (e: unknown) => e instanceof UsageError && /s\.jsonl: no numeric metric in 2 record\(s\)/.test(e.message));
  const bad = join(dir, 'bad.jsonl');
  writeFileSync(bad, '{"step":1,"loss":2}\nnot json\n{"step":2,"loss":1}\n');
  await assert.rejects(run([bad, '-o', join(dir, 'b.png')]), (e: unknown) => e instanceof FormatError && e.message.includes(`${bad}:2: not valid JSON`));
  // A last line cut off mid-write (crash) is ignored.
  writeFileSync(bad, '{"step":1,"loss":2}\n{"step":2,"loss":1}\n{"step":3,"lo');
  const ok = JSON.parse((await run([bad, '-o', join(dir, 'b.png'), '--json'])).out) as { series: { points: number }[] };
  assert.equal(ok.series[0]!.points, 2);
  assert.equal(existsSync(join(dir, 'a.png')), false);
  const help = await run(['--help']);
  assert.match(help.out, /^r1 plot <metrics\.jsonl>/);
});
