import { readFileSync, writeFileSync, statSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Command } from '../command.js';
import { parseFlags, numberFlag } from '../args.js';
import { UsageError } from '../../errors.js';
import { Tokenizer, trainBpe } from '../../io/tokenizer/index.js';

const usage = `r1 tokenizer <encode|decode|train> ...

  r1 tokenizer encode <tokenizer.json|model-dir> [--file F] [--no-special-tokens] [--json]
      Print the token ids of F (default: stdin), space-separated; --json prints {"ids": [...]}.
      Special tokens written in the text (<｜User｜>, <|im_start|>, <think>) are recognised; the
      post-processor's (and, for a model folder, tokenizer_config.json's) BOS/EOS are added unless
      --no-special-tokens.

  r1 tokenizer decode <tokenizer.json|model-dir> [--file F] [--skip-special-tokens] [--json]
      Read ids from F (default: stdin) as a JSON array or comma/space separated integers and print
      the text; --json prints {"text": "..."}.

  r1 tokenizer train --vocab-size N <corpus.txt> [-o tokenizer.json] [--min-frequency N] [--json]
      Train a byte-level BPE (HF tokenizer.json schema, special tokens incl. <think> and </think>,
      an R1-style chat template) and write tokenizer.json plus tokenizer_config.json beside it
      (-o may also name a folder). Default output: ./tokenizer.json.`;

function readInput(cmd: string, file: string | undefined): string {
  if (file === undefined) return readFileSync(0, 'utf8');
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`r1 tokenizer ${cmd}: cannot read --file ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
}

function loadArg(cmd: string, positionals: string[]): Tokenizer {
  if (positionals.length !== 1) throw new UsageError(`r1 tokenizer ${cmd}: expected one <tokenizer.json|model-dir> argument, got ${positionals.length}. See 'r1 tokenizer --help'.`);
  const p = positionals[0]!;
  if (!existsSync(p)) throw new UsageError(`r1 tokenizer ${cmd}: ${p}: no such file or folder`);
  return Tokenizer.load(p);
}

/** Parse ids given as a JSON array or as integers separated by commas/whitespace. */
export function parseIds(text: string): number[] {
  const t = text.trim();
  if (t === '') return [];
  let items: unknown[];
  if (t.startsWith('[')) {
    try { items = JSON.parse(t) as unknown[]; } catch (e) { throw new UsageError(`r1 tokenizer decode: input is not a valid JSON array: ${(e as Error).message}`); }
    if (!Array.isArray(items)) throw new UsageError('r1 tokenizer decode: input JSON must be an array of ids');
  } else items = t.split(/[\s,]+/).filter((x) => x !== '');
  return items.map((x, i) => {
    const v = typeof x === 'string' && /^\d+$/.test(x) ? Number(x) : x;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new UsageError(`r1 tokenizer decode: token id ${JSON.stringify(x)} at position ${i} is not a non-negative integer`);
    return v;
  });
}

const tokenizer: Command = {
  name: 'tokenizer',
  summary: 'encode/decode text with a tokenizer.json, or train a byte-level BPE',
  usage,
  async run(argv) {
    const [sub, ...rest] = argv;
    if (!sub || sub === '--help' || sub === '-h') { console.log(usage); return sub ? 0 : 2; }
    if (sub === 'encode') {
      const { values, positionals } = parseFlags('tokenizer encode', rest, { file: { type: 'string', short: 'f' }, 'no-special-tokens': { type: 'boolean' } });
      if (values['help']) { console.log(usage); return 0; }
      const tok = loadArg('encode', positionals);
      const ids = tok.encode(readInput('encode', values['file'] as string | undefined), { addSpecialTokens: values['no-special-tokens'] !== true });
      console.log(values['json'] ? JSON.stringify({ ids }) : ids.join(' '));
      return 0;
    }
    if (sub === 'decode') {
      const { values, positionals } = parseFlags('tokenizer decode', rest, { file: { type: 'string', short: 'f' }, 'skip-special-tokens': { type: 'boolean' } });
      if (values['help']) { console.log(usage); return 0; }
      const tok = loadArg('decode', positionals);
      const ids = parseIds(readInput('decode', values['file'] as string | undefined));
      for (let i = 0; i < ids.length; i++) {
        if (tok.idToToken(ids[i]!) === null) throw new UsageError(`r1 tokenizer decode: token id ${ids[i]} at position ${i} is not in the vocabulary (size ${tok.vocabSize})`);
      }
      const text = tok.decode(ids, { skipSpecialTokens: values['skip-special-tokens'] === true });
      if (values['json']) console.log(JSON.stringify({ text }));
      else process.stdout.write(text + '\n');
      return 0;
    }
    if (sub === 'train') {
      const { values, positionals } = parseFlags('tokenizer train', rest, { 'vocab-size': { type: 'string' }, output: { type: 'string', short: 'o' }, 'min-frequency': { type: 'string' } });
      if (values['help']) { console.log(usage); return 0; }
      const vocabSize = numberFlag('tokenizer train', 'vocab-size', values['vocab-size'], { int: true, min: 1 });
      const minFrequency = numberFlag('tokenizer train', 'min-frequency', values['min-frequency'], { int: true, min: 1, def: 2 });
      if (positionals.length < 1) throw new UsageError("r1 tokenizer train: give at least one corpus file. See 'r1 tokenizer --help'.");
      const docs = positionals.map((p) => readInput('train', p));
      let out = (values['output'] as string | undefined) ?? 'tokenizer.json';
      if (existsSync(out) && statSync(out).isDirectory()) out = join(out, 'tokenizer.json');
      if (!existsSync(dirname(out))) throw new UsageError(`r1 tokenizer train: output folder ${dirname(out)} does not exist`);
      const t0 = performance.now();
      const res = trainBpe(docs, vocabSize, { minFrequency });
      const seconds = (performance.now() - t0) / 1000;
      writeFileSync(out, JSON.stringify(res.tokenizerJSON, null, 2) + '\n');
      const cfgPath = join(dirname(out), 'tokenizer_config.json');
      writeFileSync(cfgPath, JSON.stringify(res.tokenizerConfig, null, 2) + '\n');
      const corpusBytes = docs.reduce((n, d) => n + Buffer.byteLength(d), 0);
      if (values['json']) console.log(JSON.stringify({ output: out, config: cfgPath, vocab_size: res.vocabSize, merges: res.merges, corpus_bytes: corpusBytes, seconds: +seconds.toFixed(3) }));
      else {
        console.log(`wrote ${out} and ${cfgPath}: vocabulary ${res.vocabSize} (${res.merges} merges) from ${corpusBytes} bytes in ${seconds.toFixed(2)} s`);
        if (res.vocabSize < vocabSize) console.log(`note: the corpus ran out of pairs seen >= ${minFrequency} times before reaching ${vocabSize}`);
      }
      return 0;
    }
    throw new UsageError(`r1 tokenizer: unknown subcommand '${sub}' (expected encode, decode or train). See 'r1 tokenizer --help'.`);
  },
};
export default tokenizer;
