/** Test helpers: paths into the source tree (tests run from dist/). */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { trainBpe } from '../src/io/tokenizer/train.js';

let root: string | null = null;
/** The package root (the folder holding package.json). */
export function repoRoot(): string {
  if (root) return root;
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) {
    const up = dirname(d);
    if (up === d) throw new Error('package root not found');
    d = up;
  }
  root = d;
  return d;
}
export function repoPath(...parts: string[]): string {
  return join(repoRoot(), ...parts);
}

/** A seeded uniform [0, 1) generator (32-bit LCG) for reproducible test data. */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

/**
 * Train a small byte-level BPE (digits split) on `corpus` and write it as a Hugging Face tokenizer folder
 * (tokenizer.json + tokenizer_config.json) at `dir`; returns its vocabulary size.
 */
export function writeTokenizerFolder(dir: string, corpus: string[], vocab: number): number {
  const t = trainBpe(corpus, vocab, { splitDigits: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(t.tokenizerJSON));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(t.tokenizerConfig));
  return t.vocabSize;
}
