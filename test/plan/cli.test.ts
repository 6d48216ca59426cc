import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoPath } from '../util.js';

const main = repoPath('dist', 'src', 'cli', 'main.js');
const r1 = (...args: string[]) => execFileSync(process.execPath, [main, ...args], { encoding: 'utf8' });
function configPath(name: string): string {
  const shared = repoPath('..', 'shared', 'models', name, 'config.json');
  return existsSync(shared) ? shared : repoPath('test', 'fixtures', 'models', name, 'config.json');
}

test('r1 plan pipeline --json: bubble, bubbleFormula, activationMicroBatches, parameterCopies per schedule; --svg', () => {
  const j = JSON.parse(r1('plan', 'pipeline', '--pp', '8', '--micro', '20', '--json'));
  for (const s of ['1f1b', 'zb1p', 'dualpipe', 'dualpipev']) {
    const row = j.schedules[s];
    for (const k of ['bubble', 'bubbleFormula', 'activationMicroBatches', 'parameterCopies']) assert.equal(typeof row[k], 'number', `${s}.${k}`);
    assert.equal(row.bubble, row.bubbleFormula);
  }
  assert.equal(j.schedules.dualpipe.bubble, 3 * (3 + 2 - 3));
  const dir = mkdtempSync(join(tmpdir(), 'r1plan-'));
  const svg = join(dir, 't.svg');
  r1('plan', 'pipeline', '--schedule', 'dualpipe', '--pp', '8', '--micro', '20', '--svg', svg);
  const text = readFileSync(svg, 'utf8');
  assert.match(text, /^<svg/);
  assert.equal((text.match(/<rect /g) ?? []).length > 8 * 20, true);
});

test('r1 plan train --json keys; --weeks arithmetic; r1 plan serve; r1 params --json', () => {
  const t = JSON.parse(r1('plan', 'train', '--config', configPath('deepseek-v3'), '--tokens', '14.8e12', '--gpu', 'h800', '--gpus', '2048', '--pp', '16', '--ep', '64', '--precision', 'fp8', '--json'));
  for (const k of ['paramsTotal', 'paramsActive', 'flopsPerToken', 'memoryPerGpuBytes', 'gpuHours', 'wallClockDays', 'costUsd', 'mfu']) assert.equal(typeof t[k], 'number', k);
  assert.ok(Math.abs(t.gpuHours - 2.664e6) < 1);
  const w = JSON.parse(r1('plan', 'train', '--gpus', '50000', '--price', '1.35', '--weeks', '1', '--json'));
  assert.ok(Math.abs(w.costUsd - 11.34e6) < 1e-3);
  assert.match(r1('plan', 'train', '--gpus', '50000', '--price', '1.35', '--weeks', '1'), /\$11\.340 M/);
  const s = JSON.parse(r1('plan', 'serve', '--config', configPath('deepseek-v3'), '--gpu', 'h800', '--precision', 'fp8', '--context', '32768', '--batch', '64', '--json'));
  assert.equal(s.kvCache.valuesPerTokenPerLayer, 576);
  const p = JSON.parse(r1('params', configPath('d1-r1-distill-qwen-1.5b'), '--json'));
  for (const k of ['total', 'active', 'mtp']) assert.equal(typeof p[k], 'number', k);
});

test('bad input: usage errors exit 2 with a message', () => {
  const r = spawnSync(process.execPath, [main, 'plan', 'pipeline', '--schedule', 'dualpipe', '--pp', '7'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /pp must be an even integer/);
  const q = spawnSync(process.execPath, [main, 'plan', 'train', '--gpus', 'many', '--weeks', '1'], { encoding: 'utf8' });
  assert.equal(q.status, 2);
  assert.match(q.stderr, /--gpus must be a number/);
  const c = spawnSync(process.execPath, [main, 'params', '/nonexistent/config.json'], { encoding: 'utf8' });
  assert.equal(c.status, 2);
  assert.match(c.stderr, /nonexistent\/config\.json: cannot read config/);
});
