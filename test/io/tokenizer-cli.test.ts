/** `r1 tokenizer encode|decode|train` end to end through the real CLI entry point. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoPath } from '../util.js';
import { parseIds } from '../../src/cli/commands/tokenizer.js';
import { UsageError } from '../../src/errors.js';

const main = repoPath('dist', 'src', 'cli', 'main.js');
function r1(args: string[], input = ''): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [main, ...args], { input, encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

test('parseIds accepts JSON arrays and comma/space lists, rejects junk with its position', () => {
  assert.deepEqual(parseIds('[1, 2, 3]'), [1, 2, 3]);
  assert.deepEqual(parseIds(' 4,5  6\n7 '), [4, 5, 6, 7]);
  assert.deepEqual(parseIds(''), []);
  assert.throws(() => parseIds('1 -2'), (e: unknown) => e instanceof UsageError && /position 1/.test((e as Error).message));
  assert.throws(() => parseIds('[1, 2.5]'), UsageError);
  assert.throws(() => parseIds('[1, '), UsageError);
});

test('r1 tokenizer train, then encode and decode with the trained folder', () => {
  const dir = mkdtempSync(join(tmpdir(), 'r1ts-tokcli-'));
  const corpus = join(dir, 'corpus.txt');
  let text = '';
  for (let i = 0; i < 300; i++) text += `Line ${i}: the model answers <think>why</think> 你好世界 ${i * 7919}\n`;
  writeFileSync(corpus, text);
  const tr = r1(['tokenizer', 'train', '--vocab-size', '320', corpus, '-o', dir, '--json']);
  assert.equal(tr.code, 0, tr.err);
  const info = JSON.parse(tr.out) as { vocab_size: number; merges: number };
  assert.equal(info.vocab_size, 320);
  assert.ok(existsSync(join(dir, 'tokenizer.json')) && existsSync(join(dir, 'tokenizer_config.json')));
  const enc = r1(['tokenizer', 'encode', dir, '--json'], 'the model <think>');
  assert.equal(enc.code, 0, enc.err);
  const ids = (JSON.parse(enc.out) as { ids: number[] }).ids;
  assert.equal(ids[0], 0); // BOS from tokenizer_config.json
  assert.equal(ids[ids.length - 1], 4); // <think> is the first added non-special token
  const dec = r1(['tokenizer', 'decode', dir, '--skip-special-tokens'], ids.join(','));
  assert.equal(dec.code, 0, dec.err);
  assert.equal(dec.out, 'the model <think>\n');
  const plain = r1(['tokenizer', 'encode', join(dir, 'tokenizer.json'), '--file', corpus]);
  assert.equal(plain.code, 0, plain.err);
  assert.ok(plain.out.trim().split(' ').length < Buffer.byteLength(text) / 2);
});

test('r1 tokenizer: clear errors for missing files and bad input', () => {
  const dir = mkdtempSync(join(tmpdir(), 'r1ts-tokcli-'));
  let r = r1(['tokenizer', 'encode', join(dir, 'missing.json')], 'x');
  assert.equal(r.code, 2);
  assert.match(r.err, /missing\.json: no such file/);
  r = r1(['tokenizer', 'train', '--vocab-size', '300', join(dir, 'none.txt')]);
  assert.equal(r.code, 2);
  assert.match(r.err, /none\.txt: no such file/);
  writeFileSync(join(dir, 'c.txt'), 'abc');
  r = r1(['tokenizer', 'train', '--vocab-size', 'many', join(dir, 'c.txt')]);
  assert.equal(r.code, 2);
  assert.match(r.err, /--vocab-size must be a number/);
  writeFileSync(join(dir, 'tokenizer.json'), '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a", "b"]]}}');
  r = r1(['tokenizer', 'decode', dir], '0');
  assert.equal(r.code, 2);
  assert.match(r.err, /model\.merges\[0\]: "b" is not in model\.vocab/);
  r = r1(['tokenizer', 'frobnicate']);
  assert.equal(r.code, 2);
  assert.match(r.err, /unknown subcommand 'frobnicate'/);
});
